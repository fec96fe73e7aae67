//! C-ECHO and C-STORE service class provider: receives CT instances into the spool.

use std::sync::Arc;

use dicom_core::{DataElement, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::association::Association;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, PDataValue, PDataValueType, Pdu,
    UserIdentity,
};
use tokio::io::AsyncWriteExt;

use super::Gateway;
use super::spool::SeriesInfo;
use autocontour::dicom::write::{CT_IMAGE_STORAGE, IMPLEMENTATION_CLASS_UID};

/// The Verification SOP class (C-ECHO).
const VERIFICATION: &str = "1.2.840.10008.1.1";

/// Transfer syntaxes offered for CT Image Storage: those the loader decodes.
const TRANSFER_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2",      // implicit VR little endian
    "1.2.840.10008.1.2.1",    // explicit VR little endian
    "1.2.840.10008.1.2.1.99", // deflated explicit VR little endian
    "1.2.840.10008.1.2.2",    // explicit VR big endian (retired)
    "1.2.840.10008.1.2.4.50", // JPEG baseline
    "1.2.840.10008.1.2.4.57", // JPEG lossless
    "1.2.840.10008.1.2.4.70", // JPEG lossless SV1
    "1.2.840.10008.1.2.4.80", // JPEG-LS lossless
    "1.2.840.10008.1.2.4.81", // JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91", // JPEG 2000
    "1.2.840.10008.1.2.5",    // RLE lossless
];

/// C-STORE statuses.
const SUCCESS: u16 = 0x0000;
const OUT_OF_RESOURCES: u16 = 0xA700;
const CANNOT_UNDERSTAND: u16 = 0xC000;

/// Calling AE titles from the allow-list, called AE titles the gateway answers to.
struct Access {
    gateway: Arc<Gateway>,
}

impl AccessControl for Access {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let c = &self.gateway.config;
        if !c.allows(calling_ae_title) {
            log::warn!(
                "association from {calling_ae_title:?} rejected: calling AE title not allowed"
            );
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        if !c
            .called_titles()
            .iter()
            .any(|t| t == called_ae_title.trim())
        {
            log::warn!("association to {called_ae_title:?} rejected: called AE title unknown");
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        Ok(())
    }
}

/// Answers an association request with A-ASSOCIATE-RJ (transient, local limit exceeded) when
/// `max_associations` are already being served.
pub async fn reject_busy(mut socket: tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    if dicom_ul::pdu::write_pdu(&mut buf, &rj).is_ok() {
        // The request itself is not read: the peer gets the rejection and the close.
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), socket.write_all(&buf)).await;
    }
    let _ = socket.shutdown().await;
}

/// Serves one association: C-ECHO, and C-STORE of CT images into the spool.
pub async fn serve(gateway: Arc<Gateway>, socket: tokio::net::TcpStream) {
    let peer = socket
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let mut opts = dicom_ul::association::ServerAssociationOptions::new()
        .ae_access_control(Access {
            gateway: gateway.clone(),
        })
        .ae_title(gateway.config.ae_title.trim())
        .max_pdu_length(65536)
        .read_timeout(std::time::Duration::from_secs(120))
        .write_timeout(std::time::Duration::from_secs(120))
        .with_abstract_syntax(VERIFICATION)
        .with_abstract_syntax(CT_IMAGE_STORAGE);
    for ts in TRANSFER_SYNTAXES {
        if TransferSyntaxRegistry.get(ts).is_some() {
            opts = opts.with_transfer_syntax(*ts);
        }
    }
    match gateway.server_tls.clone() {
        Some(tls) => match opts.tls_config(tls).establish_tls_async(socket).await {
            Ok(a) => handle(gateway, a, peer).await,
            Err(e) => log::warn!("TLS association from {peer} not established: {e}"),
        },
        None => match opts.establish_async(socket).await {
            Ok(a) => handle(gateway, a, peer).await,
            Err(e) => log::warn!("association from {peer} not established: {e}"),
        },
    }
}

/// Runs an established association to its end.
async fn handle<S>(
    gateway: Arc<Gateway>,
    mut assoc: dicom_ul::association::AsyncServerAssociation<S>,
    peer: String,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let calling = assoc.peer_ae_title().trim().to_string();
    let called = assoc.called_ae_title().trim().to_string();
    log::info!("association from {calling}@{peer} to {called}");
    let mut stored = 0usize;
    let mut failed = 0usize;
    let mut command: Option<InMemDicomObject> = None;
    let mut data: Vec<u8> = Vec::new();
    loop {
        let pdu = match assoc.receive().await {
            Ok(p) => p,
            Err(e) => {
                log::info!("association from {calling}@{peer} ended: {e}");
                break;
            }
        };
        match pdu {
            Pdu::PData { data: values } => {
                for v in values {
                    match v.value_type {
                        PDataValueType::Command => {
                            if !v.is_last {
                                // Command fragments are rare; keep them in `data` order.
                                data.extend_from_slice(&v.data);
                                continue;
                            }
                            let mut bytes = std::mem::take(&mut data);
                            bytes.extend_from_slice(&v.data);
                            let cmd = match InMemDicomObject::read_dataset_with_ts(
                                &bytes[..],
                                &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
                            ) {
                                Ok(c) => c,
                                Err(e) => {
                                    log::warn!("{calling}: a command that does not parse: {e}");
                                    let _ = assoc.abort().await;
                                    return;
                                }
                            };
                            let field = uint(&cmd, tags::COMMAND_FIELD);
                            if field == Some(0x0030) {
                                let id = uint(&cmd, tags::MESSAGE_ID).unwrap_or(1);
                                let rsp = response(0x8030, id, None, SUCCESS);
                                if send_command(&mut assoc, v.presentation_context_id, &rsp)
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            } else if field == Some(0x0001) {
                                command = Some(cmd);
                            } else {
                                log::warn!(
                                    "{calling}: command {field:04X?} not supported; aborting"
                                );
                                let _ = assoc.abort().await;
                                return;
                            }
                        }
                        PDataValueType::Data => {
                            data.extend_from_slice(&v.data);
                            if !v.is_last {
                                continue;
                            }
                            let Some(cmd) = command.take() else {
                                log::warn!("{calling}: data without a C-STORE command; aborting");
                                let _ = assoc.abort().await;
                                return;
                            };
                            let ts = assoc
                                .presentation_contexts()
                                .iter()
                                .find(|pc| pc.id == v.presentation_context_id)
                                .map(|pc| pc.transfer_syntax.trim_end_matches('\0').to_string())
                                .unwrap_or_default();
                            let bytes = std::mem::take(&mut data);
                            let (g, c, t) = (gateway.clone(), calling.clone(), called.clone());
                            let cmd2 = cmd.clone();
                            let status = tokio::task::spawn_blocking(move || {
                                store(&g, &cmd2, &ts, bytes, &c, &t)
                            })
                            .await
                            .unwrap_or(OUT_OF_RESOURCES);
                            if status == SUCCESS {
                                stored += 1;
                            } else {
                                failed += 1;
                            }
                            let id = uint(&cmd, tags::MESSAGE_ID).unwrap_or(1);
                            let sop = string(&cmd, tags::AFFECTED_SOP_INSTANCE_UID);
                            let rsp = response(0x8001, id, Some(sop.as_str()), status);
                            if send_command(&mut assoc, v.presentation_context_id, &rsp)
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP).await;
                break;
            }
            Pdu::AbortRQ { source } => {
                log::warn!("association from {calling}@{peer} aborted by the peer: {source:?}");
                break;
            }
            other => {
                log::warn!("{calling}: unexpected {}", other.short_description());
            }
        }
    }
    log::info!(
        "association from {calling}@{peer} to {called} released: {stored} instance(s) stored, \
         {failed} refused"
    );
    eprintln!(
        "gateway: association {calling}@{peer} → {called}: {stored} stored, {failed} refused"
    );
}

/// A command field as an integer.
fn uint(cmd: &InMemDicomObject, tag: dicom_core::Tag) -> Option<u16> {
    cmd.element(tag).ok()?.to_int::<u16>().ok()
}

/// A string element without padding (empty when absent).
fn string(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

/// A response command (C-ECHO-RSP 0x8030, C-STORE-RSP 0x8001).
fn response(field: u16, message_id: u16, sop: Option<&str>, status: u16) -> InMemDicomObject {
    let mut elements = vec![
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [field])),
        DataElement::new(
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            VR::US,
            dicom_value!(U16, [message_id]),
        ),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            dicom_value!(U16, [0x0101]),
        ),
        DataElement::new(tags::STATUS, VR::US, dicom_value!(U16, [status])),
    ];
    if let Some(sop) = sop {
        elements.push(DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            dicom_value!(Str, CT_IMAGE_STORAGE),
        ));
        elements.push(DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            dicom_value!(Str, sop),
        ));
    }
    InMemDicomObject::command_from_element_iter(elements)
}

async fn send_command<S>(
    assoc: &mut dicom_ul::association::AsyncServerAssociation<S>,
    pc: u8,
    cmd: &InMemDicomObject,
) -> Result<(), ()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut bytes = Vec::with_capacity(128);
    if cmd
        .write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .is_err()
    {
        return Err(());
    }
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: bytes,
            }],
        })
        .await
        .map_err(|e| log::warn!("response not sent: {e}"))
}

/// Checks one received instance and writes it durably into the spool; the C-STORE status.
fn store(
    gateway: &Gateway,
    cmd: &InMemDicomObject,
    ts: &str,
    dataset: Vec<u8>,
    calling: &str,
    called: &str,
) -> u16 {
    let class = string(cmd, tags::AFFECTED_SOP_CLASS_UID);
    let sop = string(cmd, tags::AFFECTED_SOP_INSTANCE_UID);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class.as_str())
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax(ts)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .source_application_entity_title(calling)
        .build();
    // Preamble, magic code, then the file meta group (FileMetaTable::write starts at the group).
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    match meta.map(|m| m.write(&mut file)) {
        Ok(Ok(())) if file.get(128..132) == Some(&b"DICM"[..]) && file.len() > 140 => {
            if file.get(132..136) == Some(&b"DICM"[..]) {
                // A writer that includes the magic code itself.
                file.drain(128..132);
            }
        }
        _ => {
            log::warn!("{calling}: instance {sop:?}: no file meta could be made");
            return CANNOT_UNDERSTAND;
        }
    }
    file.extend_from_slice(&dataset);
    drop(dataset);
    // The same checks as every file the loader reads (pre-scan for hostile lengths and nesting).
    let name = std::path::PathBuf::from(format!("C-STORE from {calling}: {sop}"));
    let parsed = match autocontour::dicom::read_bytes(&name, &file) {
        Ok(f) => f.obj,
        Err(e) => {
            log::warn!("{e}");
            return CANNOT_UNDERSTAND;
        }
    };
    let get = |tag| {
        parsed
            .element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    };
    let series_uid = get(tags::SERIES_INSTANCE_UID);
    if series_uid.is_empty() || get(tags::SOP_INSTANCE_UID) != sop {
        log::warn!(
            "{calling}: instance {sop:?}: no Series Instance UID, or its SOP Instance UID differs \
             from the command's"
        );
        return CANNOT_UNDERSTAND;
    }
    let info = SeriesInfo {
        series_uid,
        study_uid: get(tags::STUDY_INSTANCE_UID),
        called_ae_title: called.to_string(),
        calling_ae_title: calling.to_string(),
        series_description: get(tags::SERIES_DESCRIPTION),
        body_part: get(tags::BODY_PART_EXAMINED),
        modality: get(tags::MODALITY),
        first_received: crate::queue::unix_now(),
        expected_instances: get(tags::NUMBER_OF_SERIES_RELATED_INSTANCES)
            .trim()
            .parse()
            .ok(),
    };
    match gateway.spool.store(&info, &sop, &file) {
        Ok(_) => SUCCESS,
        Err(e) => {
            log::error!("spool: instance {sop}: {e}");
            eprintln!("gateway: spool write failed for instance {sop}: {e}");
            OUT_OF_RESOURCES
        }
    }
}
