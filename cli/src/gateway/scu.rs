//! C-STORE service class user: sends the gateway's results to the destination.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use dicom_core::{DataElement, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};

/// Sends DICOM files to `ae_title@host:port` in one association, as `calling`; each file in its
/// own transfer syntax. `Err` names the file and the reason (association refused, status).
pub fn store_files(
    files: &[&Path],
    calling: &str,
    ae_title: &str,
    host: &str,
    port: u16,
) -> Result<(), String> {
    let mut objects = Vec::with_capacity(files.len());
    let mut opts = ClientAssociationOptions::new()
        .calling_ae_title(calling)
        .called_ae_title(ae_title)
        .connection_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .write_timeout(Duration::from_secs(120));
    for f in files {
        let obj = autocontour::dicom::read_file(f)
            .map_err(|e| e.to_string())?
            .obj;
        let class = obj
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string();
        let ts = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        opts = opts.with_presentation_context(class.clone(), vec![ts.clone()]);
        objects.push((f, obj, class, ts));
    }
    let mut assoc = opts
        .establish((host, port))
        .map_err(|e| format!("association with {ae_title}@{host}:{port} failed: {e}"))?;
    for (i, (path, obj, class, ts_uid)) in objects.iter().enumerate() {
        let pc = assoc
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.reason == PresentationContextResultReason::Acceptance
                    && pc.abstract_syntax.trim_end_matches('\0') == class
                    && pc.transfer_syntax.trim_end_matches('\0') == ts_uid
            })
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{}: {ae_title} accepts neither SOP class {class} nor transfer syntax {ts_uid}",
                    path.display()
                )
            })?;
        let ts = TransferSyntaxRegistry
            .get(ts_uid)
            .ok_or_else(|| format!("{}: transfer syntax {ts_uid} unknown", path.display()))?;
        let sop = obj
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string();
        let message_id = u16::try_from(i + 1).unwrap_or(u16::MAX);
        let cmd = InMemDicomObject::command_from_element_iter([
            DataElement::new(
                tags::AFFECTED_SOP_CLASS_UID,
                VR::UI,
                dicom_value!(Str, class.as_str()),
            ),
            DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [0x0001])),
            DataElement::new(tags::MESSAGE_ID, VR::US, dicom_value!(U16, [message_id])),
            DataElement::new(tags::PRIORITY, VR::US, dicom_value!(U16, [0x0000])),
            DataElement::new(
                tags::COMMAND_DATA_SET_TYPE,
                VR::US,
                dicom_value!(U16, [0x0000]),
            ),
            DataElement::new(
                tags::AFFECTED_SOP_INSTANCE_UID,
                VR::UI,
                dicom_value!(Str, sop.as_str()),
            ),
        ]);
        let mut cmd_bytes = Vec::with_capacity(256);
        cmd.write_dataset_with_ts(&mut cmd_bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .map_err(|e| format!("C-STORE command: {e}"))?;
        let mut data = Vec::new();
        obj.write_dataset_with_ts(&mut data, ts)
            .map_err(|e| format!("{}: encoding: {e}", path.display()))?;
        assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: pc.id,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: cmd_bytes,
                }],
            })
            .map_err(|e| format!("{}: sending: {e}", path.display()))?;
        {
            let mut w = assoc.send_pdata(pc.id);
            w.write_all(&data)
                .and_then(|_| w.flush())
                .map_err(|e| format!("{}: sending: {e}", path.display()))?;
        }
        let status = match assoc.receive() {
            Ok(Pdu::PData { data }) => data
                .first()
                .and_then(|v| {
                    InMemDicomObject::read_dataset_with_ts(
                        &v.data[..],
                        &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
                    )
                    .ok()
                })
                .and_then(|o| o.element(tags::STATUS).ok()?.to_int::<u16>().ok())
                .ok_or_else(|| format!("{}: a response without a status", path.display()))?,
            Ok(other) => {
                return Err(format!(
                    "{}: {ae_title} answered {} instead of a C-STORE response",
                    path.display(),
                    other.short_description()
                ));
            }
            Err(e) => return Err(format!("{}: no response: {e}", path.display())),
        };
        // 0000 success; 0001, 0107, 0116, Bxxx warnings (stored).
        if !(status == 0
            || status == 1
            || status == 0x0107
            || status == 0x0116
            || (0xB000..=0xBFFF).contains(&status))
        {
            let _ = assoc.abort();
            return Err(format!(
                "{}: {ae_title} refused the instance (status {status:04X}H)",
                path.display()
            ));
        }
    }
    assoc
        .release()
        .map_err(|e| format!("releasing the association: {e}"))?;
    Ok(())
}
