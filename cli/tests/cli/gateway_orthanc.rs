//! `autocontour gateway` with a real PACS: Orthanc from Debian (`orthanc`), started by the test
//! on loopback ports of its own with `tests/setup/orthanc.json`, stopped by PID. A CT stored in
//! Orthanc is sent by Orthanc to the gateway (`/modalities/autocontour/store`); the RT Structure
//! Set the gateway sends back is found in Orthanc (`/tools/find`, Modality RTSTRUCT) under the
//! same patient and study.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use autocontour_test_support::procs::{Killed, phantom_ct, wait_until};
use autocontour_test_support::rabbitmq::free_port;
use autocontour_test_support::{cli, ort_lib, root};
use serde_json::Value;

/// One HTTP/1.1 request to Orthanc on loopback: (status, body).
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("Orthanc's HTTP port");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let status: u16 = String::from_utf8_lossy(&resp[..end])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("an HTTP status");
    let headers = String::from_utf8_lossy(&resp[..end]).to_lowercase();
    let mut body = resp[end + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < eol + 4 + n {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
    out
}

fn json(port: u16, method: &str, path: &str, body: &str) -> Value {
    let (status, bytes) = http(port, method, path, body.as_bytes());
    assert!(
        (200..300).contains(&status),
        "{method} {path}: HTTP {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn start_orthanc(dir: &Path, http_port: u16, dicom_port: u16, gw_port: u16) -> Killed {
    assert!(
        Path::new("/usr/sbin/Orthanc").exists(),
        "/usr/sbin/Orthanc is missing: apt-get install orthanc (.ci/run does)"
    );
    let template = std::fs::read_to_string(root().join("tests/setup/orthanc.json")).unwrap();
    let config = template
        .replace("@HTTP_PORT@", &http_port.to_string())
        .replace("@DICOM_PORT@", &dicom_port.to_string())
        .replace("@GATEWAY_PORT@", &gw_port.to_string())
        .replace("@DIR@", &dir.to_string_lossy());
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("orthanc.json");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join("orthanc.log")).unwrap();
    let child = Command::new("/usr/sbin/Orthanc")
        .arg(&path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let k = Killed(child);
    wait_until("Orthanc's REST API", Duration::from_secs(60), || {
        TcpStream::connect(("127.0.0.1", http_port)).is_ok()
            && http(http_port, "GET", "/system", b"").0 == 200
    });
    k
}

#[test]
fn a_ct_sent_by_orthanc_comes_back_to_orthanc_as_an_rtstruct_in_the_same_study() {
    let tmp = tempfile::tempdir().unwrap();
    let (http_port, dicom_port, gw_port) = (free_port(), free_port(), free_port());
    let _orthanc = start_orthanc(&tmp.path().join("orthanc"), http_port, dicom_port, gw_port);
    let config = tmp.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "ae_title = \"AUTOCONTOUR\"\nlisten = \"127.0.0.1:{gw_port}\"\n\
             allowed_calling_ae_titles = [\"ORTHANC\"]\nspool = \"spool\"\n\
             series_idle_seconds = 1\n\
             [destination]\nae_title = \"ORTHANC\"\nhost = \"127.0.0.1\"\nport = {dicom_port}\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(tmp.path().join("gateway.log")).unwrap();
    let _gw = Killed(
        Command::new(cli())
            .env("AUTOCONTOUR_ORT_LIB", ort_lib())
            .args(["gateway", "--config"])
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_until("the gateway's port", Duration::from_secs(60), || {
        TcpStream::connect(("127.0.0.1", gw_port)).is_ok()
    });
    // A CT into Orthanc over its REST API.
    let ct = phantom_ct(&tmp.path().join("phantom"), "orthanc", &[]);
    let mut study = String::new();
    for f in std::fs::read_dir(&ct).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        let (status, body) = http(http_port, "POST", "/instances", &bytes);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        study = v["ParentStudy"].as_str().unwrap().to_string();
    }
    let patient = json(http_port, "GET", &format!("/studies/{study}"), "")["ParentPatient"]
        .as_str()
        .unwrap()
        .to_string();
    // Orthanc sends the study to the gateway (C-STORE), synchronously.
    json(
        http_port,
        "POST",
        "/modalities/autocontour/store",
        &format!("{{\"Resources\": [\"{study}\"], \"Synchronous\": true}}"),
    );
    // The gateway's RTSTRUCT arrives in Orthanc under the same patient and study.
    let mut found = Value::Null;
    wait_until("an RTSTRUCT in Orthanc", Duration::from_secs(180), || {
        found = json(
            http_port,
            "POST",
            "/tools/find",
            "{\"Level\": \"Series\", \"Expand\": true, \"Query\": {\"Modality\": \"RTSTRUCT\"}}",
        );
        found.as_array().is_some_and(|a| !a.is_empty())
    });
    let series = &found.as_array().unwrap()[0];
    assert_eq!(
        series["ParentStudy"].as_str(),
        Some(study.as_str()),
        "{series}"
    );
    let st = json(http_port, "GET", &format!("/studies/{study}"), "");
    assert_eq!(st["ParentPatient"].as_str(), Some(patient.as_str()));
    assert_eq!(st["Series"].as_array().map(Vec::len), Some(2), "{st}");
}
