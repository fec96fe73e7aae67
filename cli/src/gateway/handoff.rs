//! Queue mode: complete series are handed to RabbitMQ workers instead of being segmented in the
//! gateway's process. The spool must be a folder the workers see at the same path.
//!
//! A ready series moves to `queued/`, its job is published (confirmed) with the gateway's
//! destination as `send_to`, and `job.json` records the publish. The gateway follows its own
//! events queue: `finished` moves the series to `sent/`, a final `failed` to `failed/`. Series
//! in `queued/` without `job.json` (a stop between the move and the confirm) are published again
//! at start-up; the job key makes a second run rewrite the same result.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Gateway;
use super::spool::{SendState, Spool};
use crate::error::{CliError, CliResult};
use crate::queue::{
    Event, EventKind, JOB_FORMAT, Job, SendTo, Topology, backoff, connect, publish_confirmed,
    redact, unix_now,
};
use crate::segment::CaseOptions;

/// `[queue]` of gateway.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// AMQP URL of the broker (default: $AUTOCONTOUR_AMQP_URL).
    #[serde(default)]
    pub amqp: Option<String>,
    /// The jobs queue.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Attempts per job (must match the workers').
    #[serde(default = "default_limit")]
    pub delivery_limit: u32,
}

fn default_queue() -> String {
    "autocontour.segment".into()
}
fn default_limit() -> u32 {
    3
}

impl QueueConfig {
    /// The broker URL.
    pub fn url(&self) -> CliResult<String> {
        crate::queue::broker_url(self.amqp.as_deref(), "set amqp = \"amqp://…\" in [queue]")
    }

    fn topology(&self) -> Topology {
        Topology::new(&self.queue, self.delivery_limit)
    }
}

/// The gateway's batch name: its AE title and spool, hashed (one events queue per gateway).
fn batch(gateway: &Gateway) -> String {
    let mut h = Sha256::new();
    h.update(gateway.config.ae_title.trim().as_bytes());
    h.update([0]);
    h.update(gateway.spool.root().to_string_lossy().as_bytes());
    let hex: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("gateway-{hex}")
}

/// Publishes ready series as jobs and follows their events, reconnecting after broker failures.
pub async fn run(gateway: Arc<Gateway>, q: QueueConfig, wake: Arc<tokio::sync::Notify>) {
    let url = match q.url() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("gateway: {e}");
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        if let Err(e) = session(&gateway, &q, &url, &wake).await {
            let wait = backoff(failures);
            failures = failures.saturating_add(1);
            eprintln!(
                "gateway: broker {}: {e}; reconnecting in {:.1} s",
                redact(&url),
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
        }
    }
}

async fn session(
    gateway: &Arc<Gateway>,
    q: &QueueConfig,
    url: &str,
    wake: &tokio::sync::Notify,
) -> CliResult<()> {
    let topology = q.topology();
    let batch = batch(gateway);
    let (_conn, ch) = connect(url, &format!("autocontour gateway {batch}")).await?;
    topology.declare(&ch).await?;
    let events = topology.declare_events(&ch, &batch).await?;
    let (_conn2, ech) = connect(url, &format!("autocontour gateway events {batch}")).await?;
    let mut consumer = ech
        .basic_consume(
            events.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| crate::queue::broker("consume", &events, e))?;
    loop {
        // Publish what is ready (and what was moved to queued/ but not confirmed).
        let spool = &gateway.spool;
        for key in spool.keys("queued") {
            if !spool.dir("queued", &key).join("job.json").exists() {
                publish(gateway, &ch, &topology, &batch, &events, &key).await?;
            }
        }
        for key in spool.keys("ready") {
            spool
                .advance("ready", "queued", &key)
                .map_err(|e| autocontour::Error::io(spool.dir("ready", &key), e))?;
            publish(gateway, &ch, &topology, &batch, &events, &key).await?;
        }
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(d)) => {
                    if let Ok(ev) = serde_json::from_slice::<Event>(&d.data) {
                        let g = gateway.clone();
                        tokio::task::spawn_blocking(move || settle(&g, &ev)).await.ok();
                    }
                    d.ack(BasicAckOptions::default())
                        .await
                        .map_err(|e| crate::queue::broker("acknowledge an event", &events, e))?;
                }
                Some(Err(e)) => return Err(crate::queue::broker("receive", &events, e)),
                None => {
                    return Err(CliError::Broker {
                        what: format!("receive ({events})"),
                        reason: "the broker ended the consumer".into(),
                    })
                }
            },
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Publishes a queued series' job (confirmed) and records it in `job.json`.
async fn publish(
    gateway: &Gateway,
    ch: &lapin::Channel,
    topology: &Topology,
    batch: &str,
    events: &str,
    key: &str,
) -> CliResult<()> {
    let spool = &gateway.spool;
    let dir = spool.dir("queued", key);
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| autocontour::Error::io(p, e));
    let info = spool.info("queued", key).ok_or_else(|| CliError::Input {
        path: dir.join("series.json"),
        reason: "missing or unreadable".into(),
        source: None,
    })?;
    let c = &gateway.config;
    let model = c
        .route(
            &info.called_ae_title,
            &info.series_description,
            &info.body_part,
        )
        .map(|m| abs(m))
        .transpose()?;
    // With [deid] the workers get the pseudonymised series in the shared folder (named by the
    // series pseudonym) and no destination: the gateway re-identifies and sends the result.
    let (job_id, input, output, send_to) = match (&gateway.pseudonymiser, &c.deid) {
        (Some(p), Some(d)) => {
            let shared = d.shared_dir.clone().unwrap_or_default();
            let pseudo =
                super::reid::pseudonymise_series(p, &dir, &dir.join("deid"))?.series_pseudonym;
            let base = shared.join(&pseudo);
            let ct = base.join("ct");
            if ct.exists() {
                let _ = std::fs::remove_dir_all(&ct);
            }
            std::fs::create_dir_all(&base).map_err(|e| autocontour::Error::io(&base, e))?;
            std::fs::rename(dir.join("deid"), &ct).map_err(|e| autocontour::Error::io(&ct, e))?;
            (pseudo, abs(&ct)?, abs(&base.join("out"))?, None)
        }
        _ => (
            key.to_string(),
            abs(&dir)?,
            abs(&dir.join("out"))?,
            Some(SendTo {
                ae_title: c.destination.ae_title.clone(),
                host: c.destination.host.clone(),
                port: c.destination.port,
                calling_ae_title: Some(c.calling_title().to_string()),
            }),
        ),
    };
    let uid = match &gateway.pseudonymiser {
        Some(_) => job_id.clone(),
        None => info.series_uid.clone(),
    };
    let job = Job {
        format: JOB_FORMAT,
        job_id: job_id.clone(),
        batch: batch.to_string(),
        name: job_id.clone(),
        input,
        output,
        model,
        profile: c.profile.as_deref().map(abs).transpose()?,
        options: CaseOptions {
            uid: Some(uid),
            seg: c.seg,
            stable_uids: true,
            ..CaseOptions::default()
        },
        send_to,
    };
    let body = serde_json::to_vec(&job)?;
    let props = BasicProperties::default()
        .with_message_id(job_id.as_str().into())
        .with_reply_to(events.into());
    publish_confirmed(ch, "", &topology.jobs, &body, props).await?;
    autocontour::io::write_bytes_atomically(&dir.join("job.json"), &body)?;
    eprintln!(
        "gateway: series {} ({key}) handed to {}",
        info.series_uid, topology.jobs
    );
    Ok(())
}

/// The queued series a job id names: the spool key itself, or (with [deid]) the series whose
/// `reid.json` has that series pseudonym.
fn queued_key(spool: &Spool, job_id: &str) -> Option<String> {
    if super::spool::is_key(job_id) && spool.dir("queued", job_id).exists() {
        return Some(job_id.to_string());
    }
    spool.keys("queued").into_iter().find(|k| {
        std::fs::read(spool.dir("queued", k).join("reid.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<super::reid::Reid>(&b).ok())
            .is_some_and(|r| r.series_pseudonym == job_id)
    })
}

/// Moves a queued series on a terminal event of its job.
fn settle(gateway: &Gateway, ev: &Event) {
    let spool = &gateway.spool;
    let Some(key) = queued_key(spool, &ev.job_id) else {
        return;
    };
    let key = key.as_str();
    match ev.event {
        EventKind::Finished if gateway.pseudonymiser.is_some() => {
            // Re-identify the worker's result from the shared folder into the outbox.
            let dir = spool.dir("queued", key);
            let shared = gateway
                .config
                .deid
                .as_ref()
                .and_then(|d| d.shared_dir.clone())
                .unwrap_or_default()
                .join(&ev.job_id);
            match super::reid::reidentify_results(&dir, &shared.join("out"), &dir.join("out")) {
                Ok(_) => {
                    let _ = std::fs::remove_dir_all(&shared);
                    if spool.advance("queued", "outbox", key).is_ok() {
                        eprintln!(
                            "gateway: series {key}: segmented by {}; re-identified result queued \
                             for sending",
                            ev.worker.as_deref().unwrap_or("a worker")
                        );
                    }
                }
                Err(e) => eprintln!("gateway: series {key}: re-identification failed: {e}"),
            }
        }
        EventKind::Finished => {
            let state = SendState {
                attempts: 1,
                sent: Some(unix_now()),
                ..SendState::default()
            };
            let _ = spool.set_send_state("queued", key, &state);
            if spool.advance("queued", "sent", key).is_ok() {
                eprintln!(
                    "gateway: series {key}: segmented by {} and sent",
                    ev.worker.as_deref().unwrap_or("a worker")
                );
                if !gateway.config.keep_sent_series {
                    super::remove_ct(&spool.dir("sent", key));
                }
            }
        }
        EventKind::Failed if ev.is_final => {
            let text = serde_json::json!({
                "error_code": ev.error_code, "error": ev.error, "time": unix_now(),
                "worker": ev.worker,
            });
            let _ = autocontour::io::write_bytes_atomically(
                &spool.dir("queued", key).join("error.json"),
                text.to_string().as_bytes(),
            );
            let _ = spool.advance("queued", "failed", key);
            eprintln!(
                "gateway: series {key}: failed on every attempt: {}",
                ev.error.as_deref().unwrap_or("")
            );
        }
        _ => {}
    }
}
