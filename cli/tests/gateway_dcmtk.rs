//! `autocontour gateway` against dcmtk (Debian's `dcmtk`: echoscu, storescu, storescp), all on
//! loopback ports of the test's own: the RIDER CT sent by storescu comes back as one RTSTRUCT at
//! a storescp destination (dciodvfy clean, referencing the original UIDs) through a destination
//! that is down at first and a gateway killed with SIGKILL; unknown calling AE titles are
//! rejected; 8 concurrent associations are all stored and segmented.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autocontour_test_support::rabbitmq::free_port;
use autocontour_test_support::{cli, dciodvfy, ort_lib, require};
use dicom_dictionary_std::tags;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

fn wait_port(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
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
    assert!(echo("STORESCU").status.success());
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
            let d = tmp.path().join(format!("p{i}"));
            let ok = Command::new(cli())
                .arg("phantom")
                .arg(&d)
                .args(["--seed", &format!("gateway-{i}")])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(ok.success());
            d.join("ct")
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
    let s = status();
    assert!(s.contains("sent: 9") && s.contains("failed: 0"), "{s}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("236 stored, 0 refused"), "{log}");
    drop(gw);
}
