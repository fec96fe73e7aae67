//! `autocontour worker` and `submit` against a real RabbitMQ (Debian's `rabbitmq-server`,
//! started privately on loopback by `autocontour_test_support::rabbitmq`): jobs done exactly
//! once through a worker killed with SIGKILL and a broker restart; broken jobs named and
//! dead-lettered while the worker goes on.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autocontour::dicom::write::derived_uid;
use autocontour_test_support::procs::{phantom_ct, sigterm, wait_until};
use autocontour_test_support::rabbitmq::Broker;
use autocontour_test_support::{cli, ort_lib};
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;

fn autocontour(url: &str) -> Command {
    let mut c = Command::new(cli());
    c.env("AUTOCONTOUR_ORT_LIB", ort_lib())
        .env("AUTOCONTOUR_AMQP_URL", url)
        .stdin(Stdio::null());
    c
}

/// `n` phantom CT series with distinct UIDs under `dir/pNN/ct`.
fn phantoms(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            phantom_ct(
                &dir.join(format!("p{i:02}")),
                &format!("queue-{i}"),
                &["--size", "96,96,48"],
            )
        })
        .collect()
}

fn spawn_worker(url: &str, log_dir: &Path, n: usize, extra: &[&str]) -> Child {
    let log = std::fs::File::create(log_dir.join(format!("worker{n}.log"))).unwrap();
    autocontour(url)
        .arg("worker")
        .args(extra)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The SOP Instance UID written in an RTSTRUCT.
fn sop_uid(path: &Path) -> String {
    let obj = dicom_object::open_file(path).unwrap();
    obj.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

#[test]
fn thirty_jobs_on_three_workers_survive_a_killed_worker_and_a_broker_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&tmp.path().join("broker"));
    let url = broker.url();
    let inputs = phantoms(&tmp.path().join("cts"), 30);
    let mut workers: Vec<Child> = (0..3)
        .map(|i| spawn_worker(&url, tmp.path(), i, &[]))
        .collect();
    let events = tmp.path().join("events.jsonl");
    let out = tmp.path().join("out");
    let mut submit = autocontour(&url)
        .arg("submit")
        .args(&inputs)
        .arg("--out")
        .arg(&out)
        .arg("--events")
        .arg(&events)
        .stdout(std::fs::File::create(tmp.path().join("submit.log")).unwrap())
        .stderr(std::fs::File::create(tmp.path().join("submit.err")).unwrap())
        .spawn()
        .unwrap();

    // SIGKILL the first worker seen starting a job, in the middle of it.
    let mut victim = None;
    wait_until("a started job", Duration::from_secs(120), || {
        victim = read_events(&events)
            .into_iter()
            .find(|e| e["event"] == "started")
            .map(|e| (e["pid"].as_u64().unwrap() as u32, e["job_id"].clone()));
        victim.is_some()
    });
    let (victim_pid, victim_job) = victim.unwrap();
    let idx = workers
        .iter()
        .position(|w| w.id() == victim_pid)
        .expect("the started job's pid is one of the workers");
    let mut killed = workers.remove(idx);
    killed.kill().unwrap();
    killed.wait().unwrap();

    // Restart the broker once a third of the jobs are done.
    let finished = |evs: &[Value]| {
        evs.iter()
            .filter(|e| e["event"] == "finished")
            .map(|e| e["job_id"].as_str().unwrap().to_string())
            .collect::<HashSet<_>>()
    };
    wait_until("10 finished jobs", Duration::from_secs(300), || {
        finished(&read_events(&events)).len() >= 10
    });
    broker.restart();

    let status = wait_exit(&mut submit, Duration::from_secs(600));
    let log = std::fs::read_to_string(tmp.path().join("submit.log")).unwrap();
    let err = std::fs::read_to_string(tmp.path().join("submit.err")).unwrap();
    assert!(status.success(), "submit failed: {log}\n{err}");
    assert!(log.contains("30 jobs: 30 finished, 0 failed"), "{log}");

    let evs = read_events(&events);
    assert_eq!(finished(&evs).len(), 30);
    // The killed worker's job was redelivered and finished by another worker.
    assert!(
        evs.iter().any(|e| e["event"] == "finished"
            && e["job_id"] == victim_job
            && e["pid"].as_u64() != Some(u64::from(victim_pid))),
        "job {victim_job} (worker {victim_pid} killed) was not finished by another worker"
    );
    assert!(
        !evs.iter()
            .any(|e| e["event"] == "finished" && e["pid"].as_u64() == Some(u64::from(victim_pid))),
        "the killed worker finished a job: it was not killed mid-job"
    );
    // One output set per job, with the UIDs derived from its key, all distinct.
    let mut uids = HashSet::new();
    let dirs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 30, "{dirs:?}");
    for d in &dirs {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["preview.png", "rtstruct.dcm", "summary.json"],
            "{}",
            d.display()
        );
        let summary: Value =
            serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
        let key = summary["job_key"].as_str().unwrap();
        let uid = sop_uid(&d.join("rtstruct.dcm"));
        assert_eq!(uid, derived_uid(key, "rtstruct.sop"), "{}", d.display());
        assert_eq!(
            summary["outputs"]["rtstruct_sop_instance_uid"],
            uid.as_str()
        );
        assert!(uids.insert(uid), "two jobs wrote the same UID");
    }
    // The surviving workers stop cleanly on SIGTERM.
    for mut w in workers {
        assert!(sigterm(&mut w).success());
    }
}

/// Publishes a raw message to the jobs queue and collects what lands in the dead-letter queue.
async fn amqp_publish_raw(url: &str, queue: &str, body: &[u8], reply_to: &str) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default()
            .with_message_id("raw-1".into())
            .with_reply_to(reply_to.into())
            .with_delivery_mode(2),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    conn.close(200, "done".into()).await.unwrap();
}

/// Every message of the dead-letter queue: (message id, error code header, error header).
async fn dead_letters(url: &str, queue: &str, expect: usize) -> Vec<(String, String, String)> {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while out.len() < expect {
        let d = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .expect("dead letters arrive")
            .unwrap()
            .unwrap();
        let h = d.properties.headers().clone().unwrap_or_default();
        let text = |k: &str| match h.inner().get(&ShortString::from(k)) {
            Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            _ => String::new(),
        };
        out.push((
            d.properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            text("x-autocontour-error-code"),
            text("x-autocontour-error"),
        ));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    conn.close(200, "done".into()).await.unwrap();
    out
}

#[test]
fn broken_jobs_are_named_dead_lettered_and_the_worker_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("broker"));
    let url = broker.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let good = phantoms(&tmp.path().join("cts"), 2);
    let broken = tmp.path().join("broken/ct");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("slice.dcm"), b"not a DICOM file").unwrap();
    let not_a_dir = tmp.path().join("a-file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let limit = ["--delivery-limit", "2"];
    let mut worker = spawn_worker(&url, tmp.path(), 0, &limit);

    let submit = |inputs: &[&Path], extra: &[&str], out: &Path| {
        let o = autocontour(&url)
            .arg("submit")
            .args(inputs)
            .args(limit)
            .args(extra)
            .arg("--out")
            .arg(out)
            .args(["--timeout", "300"])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    // A good job and a broken CT in one batch: the good one finishes, the broken one is named.
    let out = tmp.path().join("out");
    let (code, text) = submit(&[&good[0], &broken], &[], &out);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("2 jobs: 1 finished, 1 failed"), "{text}");
    assert!(
        text.contains("NotDicom") || text.contains("NoSeries"),
        "{text}"
    );
    assert!(out.join("ct").join("rtstruct.dcm").exists());
    // An unknown model.
    let (code, text) = submit(&[&good[1]], &["--model", "/nonexistent/model"], &out);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("/nonexistent/model"), "{text}");
    // An output folder that cannot be created (below a file).
    let (code, text) = submit(&[&good[1]], &[], &not_a_dir.join("out"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Io: "), "{text}");
    // A message that is not a job.
    rt.block_on(amqp_publish_raw(
        &url,
        "autocontour.segment",
        b"{\"format\": 1, \"oops\": true}",
        "nowhere",
    ));
    // Four dead letters, each with its error; the worker is still alive and consuming.
    let dead = rt.block_on(dead_letters(&url, "autocontour.segment.dead", 4));
    let codes: HashMap<_, _> = dead
        .iter()
        .map(|(id, code, _)| (id.clone(), code.clone()))
        .collect();
    assert_eq!(codes.get("raw-1").map(String::as_str), Some("MalformedJob"));
    assert!(
        dead.iter()
            .all(|(_, code, err)| !code.is_empty() && !err.is_empty()),
        "{dead:?}"
    );
    assert_eq!(worker.try_wait().unwrap(), None, "the worker died");
    let (code, text) = submit(&[&good[1]], &[], &tmp.path().join("out2"));
    assert_eq!(code, Some(0), "{text}");
    assert!(sigterm(&mut worker).success());
    let log = std::fs::read_to_string(tmp.path().join("worker0.log")).unwrap();
    assert!(log.contains("attempt 2/2 failed"), "{log}");
}

#[test]
fn the_gateway_hands_series_to_workers_and_the_results_reach_the_destination() {
    gateway_through_workers(false);
}

#[test]
fn with_deid_workers_see_only_pseudonyms_and_the_gateway_sends_reidentified_results() {
    gateway_through_workers(true);
}

fn gateway_through_workers(deid: bool) {
    use autocontour_test_support::rabbitmq::free_port;
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("broker"));
    let url = broker.url();
    let (gw_port, dest_port) = (free_port(), free_port());
    let dest = tmp.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let mut scp = Command::new("storescp")
        .args(["-aet", "DEST", "-od"])
        .arg(&dest)
        .arg(dest_port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("storescp (apt-get install dcmtk)");
    let config = tmp.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "ae_title = \"AUTOCONTOUR\"\nlisten = \"127.0.0.1:{gw_port}\"\n\
             allowed_calling_ae_titles = [\"STORESCU\"]\nspool = \"spool\"\n\
             series_idle_seconds = 1\n\
             [destination]\nae_title = \"DEST\"\nhost = \"127.0.0.1\"\nport = {dest_port}\n\
             [queue]\namqp = \"{url}\"\n{}",
            if deid {
                let key = tmp.path().join("site.key");
                std::fs::write(&key, [7u8, 1, 9, 3].repeat(12)).unwrap();
                format!(
                    "[deid]\nkey_file = \"{}\"\nshared_dir = \"{}\"\n",
                    key.display(),
                    tmp.path().join("shared").display()
                )
            } else {
                String::new()
            }
        ),
    )
    .unwrap();
    let mut worker = spawn_worker(&url, tmp.path(), 0, &[]);
    let gw_log = std::fs::File::create(tmp.path().join("gateway.log")).unwrap();
    let mut gw = autocontour(&url)
        .args(["gateway", "--config"])
        .arg(&config)
        .stdout(gw_log.try_clone().unwrap())
        .stderr(gw_log)
        .spawn()
        .unwrap();
    wait_until("the gateway's port", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", gw_port)).is_ok()
    });
    let cts = phantoms(&tmp.path().join("cts"), 2);
    for ct in &cts {
        let o = Command::new("storescu")
            .args(["-aet", "STORESCU", "-aec", "AUTOCONTOUR", "+sd", "+r"])
            .args(["127.0.0.1", &gw_port.to_string()])
            .arg(ct)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let count = || {
        std::fs::read_dir(&dest)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("RS."))
            })
            .count()
    };
    wait_until(
        "2 RTSTRUCTs at the destination",
        Duration::from_secs(180),
        || count() == 2,
    );
    wait_until(
        "both series settled as sent",
        Duration::from_secs(60),
        || {
            let o = Command::new(cli())
                .args(["gateway", "--config"])
                .arg(&config)
                .arg("status")
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).contains("sent: 2")
        },
    );
    assert_eq!(count(), 2);
    // Every result references one of the original series.
    let originals: HashSet<String> = cts
        .iter()
        .map(|ct| {
            let f = std::fs::read_dir(ct)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            let o = dicom_object::open_file(f).unwrap();
            o.element(dicom_dictionary_std::tags::SERIES_INSTANCE_UID)
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches('\0')
                .to_string()
        })
        .collect();
    for e in std::fs::read_dir(&dest).unwrap() {
        let p = e.unwrap().path();
        let obj = dicom_object::open_file(&p).unwrap();
        let text = format!("{obj:?}");
        assert!(
            originals.iter().any(|u| text.contains(u.as_str())),
            "{} does not reference an original series",
            p.display()
        );
    }
    if deid {
        // The workers' folder is emptied once the results are re-identified.
        let shared = tmp.path().join("shared");
        assert_eq!(
            std::fs::read_dir(&shared).map(|d| d.count()).unwrap_or(0),
            0
        );
    }
    assert!(sigterm(&mut gw).success());
    assert!(sigterm(&mut worker).success());
    let _ = scp.kill();
    let _ = scp.wait();
}
