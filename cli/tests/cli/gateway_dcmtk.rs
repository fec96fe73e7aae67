//! `autocontour gateway` against dcmtk (Debian's `dcmtk`: echoscu, storescu, storescp), all on
//! loopback ports of the test's own: the RIDER CT sent by storescu comes back as one RTSTRUCT at
//! a storescp destination (dciodvfy clean, referencing the original UIDs) through a destination
//! that is down at first and a gateway killed with SIGKILL; unknown calling AE titles are
//! rejected; 8 concurrent associations are all stored and segmented.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use autocontour_test_support::procs::{Killed, phantom_ct, wait_port, wait_until};
use autocontour_test_support::rabbitmq::free_port;
use autocontour_test_support::{cli, dciodvfy, ort_lib, require};
use dicom_dictionary_std::tags;

fn storescp(port: u16, out: &Path, log: &Path) -> Killed {
    std::fs::create_dir_all(out).unwrap();
    Killed(
        Command::new("storescp")
            .args(["-aet", "DEST", "-od"])
            .arg(out)
            .arg(port.to_string())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("storescp (apt-get install dcmtk; .ci/run does)"),
    )
}

fn gateway(config: &Path, log: &Path) -> Killed {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Killed(
        Command::new(cli())
            .env("AUTOCONTOUR_ORT_LIB", ort_lib())
            .args(["gateway", "--config"])
            .arg(config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn rtstructs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("RS."))
        })
        .collect();
    v.sort();
    v
}

fn text(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// The series UID the RTSTRUCT references (RT Referenced Series).
fn referenced_series(obj: &dicom_object::DefaultDicomObject) -> String {
    let frames = obj
        .element(tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE)
        .unwrap();
    let frame = &frames.items().unwrap()[0];
    let study = &frame
        .element(tags::RT_REFERENCED_STUDY_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    let series = &study
        .element(tags::RT_REFERENCED_SERIES_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    series
        .element(tags::SERIES_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

#[test]
fn ct_in_rtstruct_out_through_a_down_destination_and_a_killed_gateway() {
    let rider = require("rider/ct");
    let tmp = tempfile::tempdir().unwrap();
    let (gw_port, dest_port) = (free_port(), free_port());
    let config = tmp.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "ae_title = \"AUTOCONTOUR\"\nlisten = \"127.0.0.1:{gw_port}\"\n\
             allowed_calling_ae_titles = [\"STORESCU\"]\nspool = \"spool\"\n\
             series_idle_seconds = 1.5\nmax_associations = 8\n\
             [destination]\nae_title = \"DEST\"\nhost = \"127.0.0.1\"\nport = {dest_port}\n\
             retry_seconds = 0.5\n"
        ),
    )
    .unwrap();
    let log = tmp.path().join("gateway.log");
    let status = || {
        let o = Command::new(cli())
            .args(["gateway", "--config"])
            .arg(&config)
            .arg("status")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let mut gw = gateway(&config, &log);
    wait_port(gw_port);

    // C-ECHO: the allowed AE title is answered, another is rejected at association.
    let echo = |aet: &str| {
        Command::new("echoscu")
            .args([
                "-aet",
                aet,
                "-aec",
                "AUTOCONTOUR",
                "127.0.0.1",
                &gw_port.to_string(),
            ])
            .output()
            .unwrap()
    };
    let ok = echo("STORESCU");
    assert!(
        ok.status.success(),
        "echoscu: {}\ngateway log: {}",
        String::from_utf8_lossy(&ok.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let bad = echo("INTRUDER");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("Calling AE Title Not Recognized"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // RIDER in while the destination is down: the result waits in the outbox.
    let st = Command::new("storescu")
        .args([
            "-aet",
            "STORESCU",
            "-aec",
            "AUTOCONTOUR",
            "+sd",
            "+r",
            "+sp",
            "*.dcm",
        ])
        .args(["127.0.0.1", &gw_port.to_string()])
        .arg(&rider)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    wait_until(
        "a failed send in the outbox",
        Duration::from_secs(300),
        || status().contains("last error"),
    );
    // The gateway dies; the destination comes up; a new gateway sends the kept result once.
    gw.0.kill().unwrap();
    gw.0.wait().unwrap();
    let dest = tmp.path().join("dest");
    let _scp = storescp(dest_port, &dest, &tmp.path().join("storescp.log"));
    wait_port(dest_port);
    gw = gateway(&config, &log);
    wait_until(
        "the RIDER RTSTRUCT at the destination",
        Duration::from_secs(120),
        || rtstructs(&dest).len() == 1,
    );
    std::thread::sleep(Duration::from_secs(3));
    let got = rtstructs(&dest);
    assert_eq!(got.len(), 1, "{got:?}");
    let rs = dicom_object::open_file(&got[0]).unwrap();
    let ct = dicom_object::open_file(rider.join("1-001.dcm")).unwrap();
    assert_eq!(text(&rs, tags::MODALITY), "RTSTRUCT");
    assert_eq!(
        text(&rs, tags::STUDY_INSTANCE_UID),
        text(&ct, tags::STUDY_INSTANCE_UID)
    );
    assert_eq!(text(&rs, tags::PATIENT_ID), text(&ct, tags::PATIENT_ID));
    assert_eq!(referenced_series(&rs), text(&ct, tags::SERIES_INSTANCE_UID));
    let report = dciodvfy(&got[0]);
    assert!(
        !report.lines().any(|l| l.starts_with("Error")),
        "dciodvfy:\n{report}"
    );
    let s = status();
    assert!(s.contains("sent: 1") && s.contains("outbox: 0"), "{s}");

    // 8 associations at once, one phantom series each: all stored, segmented and sent.
    let phantoms: Vec<PathBuf> = (0..8)
        .map(|i| {
            phantom_ct(
                &tmp.path().join(format!("p{i}")),
                &format!("gateway-{i}"),
                &[],
            )
        })
        .collect();
    let senders: Vec<Child> = phantoms
        .iter()
        .map(|p| {
            Command::new("storescu")
                .args(["-aet", "STORESCU", "-aec", "AUTOCONTOUR", "+sd", "+r"])
                .args(["127.0.0.1", &gw_port.to_string()])
                .arg(p)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for s in senders {
        let o = s.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    wait_until(
        "9 RTSTRUCTs at the destination",
        Duration::from_secs(300),
        || rtstructs(&dest).len() >= 9,
    );
    let mut series = std::collections::HashSet::new();
    for p in rtstructs(&dest) {
        let rs = dicom_object::open_file(&p).unwrap();
        assert!(
            series.insert(referenced_series(&rs)),
            "two results for one series"
        );
    }
    assert_eq!(series.len(), 9);
    wait_until("9 series settled as sent", Duration::from_secs(30), || {
        status().contains("sent: 9")
    });
    let s = status();
    assert!(s.contains("failed: 0"), "{s}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("236 stored, 0 refused"), "{log}");
    drop(gw);
}

/// A test CA and certificates signed by it for `names` (CN localhost, SAN localhost and
/// 127.0.0.1), made with the openssl command-line tool: (ca.pem, [(name.pem, name.key)]).
fn test_pki(dir: &Path, names: &[&str]) -> PathBuf {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=autocontour test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    for n in names {
        let (key, csr, pem) = (format!("{n}.key"), format!("{n}.csr"), format!("{n}.pem"));
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ]);
    }
    dir.join("ca.pem")
}

#[test]
fn tls_both_ways_with_client_certificates_and_plain_tcp_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = test_pki(&pki, &["gateway", "sender", "dest"]);
    let p = |n: &str| pki.join(n).to_string_lossy().into_owned();
    let (gw_port, dest_port) = (free_port(), free_port());
    let config = tmp.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "ae_title = \"AUTOCONTOUR\"\nlisten = \"127.0.0.1:{gw_port}\"\n\
             allowed_calling_ae_titles = [\"STORESCU\"]\nspool = \"spool\"\n\
             series_idle_seconds = 1\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\
             [destination]\nae_title = \"DEST\"\nhost = \"127.0.0.1\"\nport = {dest_port}\n\
             [destination.tls]\nca = \"{}\"\nserver_name = \"localhost\"\ncert = \"{}\"\nkey = \"{}\"\n",
            p("gateway.pem"),
            p("gateway.key"),
            ca.display(),
            ca.display(),
            p("gateway.pem"),
            p("gateway.key"),
        ),
    )
    .unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let _scp = Killed(
        Command::new("storescp")
            .args(["+tls", &p("dest.key"), &p("dest.pem"), "+cf"])
            .arg(&ca)
            .args(["-aet", "DEST", "-od"])
            .arg(&dest)
            .arg(dest_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let gw = gateway(&config, &tmp.path().join("gateway.log"));
    wait_port(gw_port);
    wait_port(dest_port);
    let ct = phantom_ct(&tmp.path().join("p"), "tls", &[]);
    let store = |tls: &[&str]| {
        Command::new("storescu")
            .args(tls)
            .args(["-aet", "STORESCU", "-aec", "AUTOCONTOUR", "+sd", "+r"])
            .args(["127.0.0.1", &gw_port.to_string()])
            .arg(&ct)
            .output()
            .unwrap()
    };
    // Plain TCP to the TLS port, and TLS without a client certificate, are refused.
    assert!(!store(&[]).status.success());
    let ca_s = ca.to_string_lossy().into_owned();
    assert!(!store(&["+tla", "+cf", &ca_s]).status.success());
    // With the sender's certificate: stored, segmented, sent over TLS to the destination.
    let o = store(&["+tls", &p("sender.key"), &p("sender.pem"), "+cf", &ca_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(
        "the RTSTRUCT at the TLS destination",
        Duration::from_secs(120),
        || rtstructs(&dest).len() == 1,
    );
    drop(gw);
    let log = std::fs::read_to_string(tmp.path().join("gateway.log")).unwrap();
    assert!(log.contains("TLS association from"), "{log}");
}

#[test]
fn with_deid_the_model_sees_pseudonyms_and_the_result_references_the_original_ct() {
    let tmp = tempfile::tempdir().unwrap();
    let (gw_port, dest_port) = (free_port(), free_port());
    let key = tmp.path().join("site.key");
    std::fs::write(
        &key,
        (0u8..48)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let config = tmp.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "ae_title = \"AUTOCONTOUR\"\nlisten = \"127.0.0.1:{gw_port}\"\n\
             allowed_calling_ae_titles = [\"STORESCU\"]\nspool = \"spool\"\n\
             series_idle_seconds = 1\nkeep_sent_series = true\n\
             [deid]\nkey_file = \"{}\"\n\
             [destination]\nae_title = \"DEST\"\nhost = \"127.0.0.1\"\nport = {dest_port}\n",
            key.display()
        ),
    )
    .unwrap();
    let dest = tmp.path().join("dest");
    let _scp = storescp(dest_port, &dest, &tmp.path().join("storescp.log"));
    let _gw = gateway(&config, &tmp.path().join("gateway.log"));
    wait_port(gw_port);
    wait_port(dest_port);
    let ct = phantom_ct(&tmp.path().join("p"), "deid", &[]);
    let o = Command::new("storescu")
        .args(["-aet", "STORESCU", "-aec", "AUTOCONTOUR", "+sd", "+r"])
        .args(["127.0.0.1", &gw_port.to_string()])
        .arg(&ct)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(
        "the RTSTRUCT at the destination",
        Duration::from_secs(120),
        || rtstructs(&dest).len() == 1,
    );
    let first = std::fs::read_dir(&ct)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let original = dicom_object::open_file(&first).unwrap();
    let rs = dicom_object::open_file(&rtstructs(&dest)[0]).unwrap();
    // The result names the original series, study and patient.
    assert_eq!(
        referenced_series(&rs),
        text(&original, tags::SERIES_INSTANCE_UID)
    );
    assert_eq!(
        text(&rs, tags::STUDY_INSTANCE_UID),
        text(&original, tags::STUDY_INSTANCE_UID)
    );
    assert_eq!(
        text(&rs, tags::PATIENT_ID),
        text(&original, tags::PATIENT_ID)
    );
    assert!(rs.element(tags::PATIENT_IDENTITY_REMOVED).is_err());
    // What the model read was pseudonymised: other UIDs, another patient id, the marker set.
    let sent = tmp.path().join("spool/sent");
    wait_until(
        "the series settled as sent",
        Duration::from_secs(30),
        || std::fs::read_dir(&sent).is_ok_and(|mut d| d.next().is_some()),
    );
    let series_dir = std::fs::read_dir(&sent)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let deid_file = std::fs::read_dir(series_dir.join("deid"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let seen = dicom_object::open_file(&deid_file).unwrap();
    assert_ne!(
        text(&seen, tags::SERIES_INSTANCE_UID),
        text(&original, tags::SERIES_INSTANCE_UID)
    );
    assert_ne!(
        text(&seen, tags::STUDY_INSTANCE_UID),
        text(&original, tags::STUDY_INSTANCE_UID)
    );
    assert_ne!(
        text(&seen, tags::PATIENT_ID),
        text(&original, tags::PATIENT_ID)
    );
    assert_eq!(text(&seen, tags::PATIENT_IDENTITY_REMOVED), "YES");
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(series_dir.join("out-pseudonymised/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        summary["series_uid"].as_str(),
        Some(text(&seen, tags::SERIES_INSTANCE_UID).as_str())
    );
    let report = dciodvfy(&rtstructs(&dest)[0]);
    assert!(
        !report.lines().any(|l| l.starts_with("Error")),
        "dciodvfy:\n{report}"
    );
}
