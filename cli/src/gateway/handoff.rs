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
        self.amqp
            .clone()
            .or_else(|| std::env::var("AUTOCONTOUR_AMQP_URL").ok())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                CliError::Usage("[queue] needs amqp = \"amqp://…\" or AUTOCONTOUR_AMQP_URL".into())
            })
    }

    fn topology(&self) -> Topology {
        Topology {
            jobs: self.queue.clone(),
            dead_exchange: format!("{}.dlx", self.queue),
            dead: format!("{}.dead", self.queue),
            delivery_limit: self.delivery_limit,
        }
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
    let job = Job {
        format: JOB_FORMAT,
        job_id: key.to_string(),
        batch: batch.to_string(),
        name: key.to_string(),
        input: abs(&dir)?,
        output: abs(&dir.join("out"))?,
        model,
        profile: c.profile.as_deref().map(abs).transpose()?,
        options: CaseOptions {
            uid: Some(info.series_uid.clone()),
            seg: c.seg,
            stable_uids: true,
            ..CaseOptions::default()
        },
        send_to: Some(SendTo {
            ae_title: c.destination.ae_title.clone(),
            host: c.destination.host.clone(),
            port: c.destination.port,
            calling_ae_title: Some(c.calling_title().to_string()),
        }),
    };
    let body = serde_json::to_vec(&job)?;
    let props = BasicProperties::default()
        .with_message_id(key.into())
        .with_reply_to(events.into());
    publish_confirmed(ch, "", &topology.jobs, &body, props).await?;
    autocontour::io::write_bytes_atomically(&dir.join("job.json"), &body)?;
    eprintln!(
        "gateway: series {} ({key}) handed to {}",
        info.series_uid, topology.jobs
    );
    Ok(())
}

/// Moves a queued series on a terminal event of its job.
fn settle(gateway: &Gateway, ev: &Event) {
    let spool = &gateway.spool;
    let key = ev.job_id.as_str();
    if !super::spool::is_key(key) || !spool.dir("queued", key).exists() {
        return;
    }
    match ev.event {
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
                    for f in Spool::instances(&spool.dir("sent", key)) {
                        let _ = std::fs::remove_file(f);
                    }
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
