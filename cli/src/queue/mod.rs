//! Segmentation jobs on RabbitMQ: `autocontour worker` consumes them, `autocontour submit`
//! publishes them and follows their events (docs/queue.md).
//!
//! Topology, declared identically by workers and submitters (`<q>` is `--queue`):
//! * `<q>`: the jobs, a durable quorum queue with a delivery limit and a dead-letter exchange;
//! * `<q>.dlx` (direct exchange) → `<q>.dead` (durable quorum queue): jobs that failed on every
//!   attempt (with their error in the `x-autocontour-error*` headers), jobs that killed their
//!   worker more than the delivery limit allows, malformed job messages;
//! * `<q>.events.<batch>`: one durable queue per submitted batch (the jobs' `reply_to`), where
//!   workers publish `started`, `finished` and `failed` events.
//!
//! Every publish waits for the broker's confirm; jobs are acknowledged only once their outputs
//! are renamed into place and synced to disk.

pub mod submit;
pub mod worker;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};
use crate::segment::CaseOptions;

/// Version of the job message format this build reads and writes.
pub const JOB_FORMAT: u32 = 1;

/// How long an unused events queue lives on the broker (7 days, in ms).
const EVENTS_QUEUE_EXPIRES_MS: i64 = 7 * 24 * 3600 * 1000;

/// The broker URL: `--amqp`, else `AUTOCONTOUR_AMQP_URL`.
#[derive(clap::Args, Debug, Clone)]
pub struct BrokerArgs {
    /// AMQP URL of the RabbitMQ broker, e.g. amqp://user:pass@host:5672/%2f (default:
    /// $AUTOCONTOUR_AMQP_URL).
    #[arg(long, value_name = "URL")]
    pub amqp: Option<String>,
    /// Name of the jobs queue (the other queues' names derive from it).
    #[arg(long, default_value = "autocontour.segment")]
    pub queue: String,
    /// Attempts a job gets before it is dead-lettered (the quorum queue's x-delivery-limit;
    /// fixed when the queue is first declared: every worker and submitter must agree).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub delivery_limit: u32,
}

impl BrokerArgs {
    /// The URL to connect to.
    pub fn url(&self) -> CliResult<String> {
        broker_url(self.amqp.as_deref(), "pass --amqp URL")
    }

    /// The names of the queues and exchange.
    pub fn topology(&self) -> Topology {
        Topology::new(&self.queue, self.delivery_limit)
    }
}

/// The broker URL: `explicit`, else `AUTOCONTOUR_AMQP_URL`; `how` says how to give one.
pub fn broker_url(explicit: Option<&str>, how: &str) -> CliResult<String> {
    explicit
        .map(str::to_string)
        .or_else(|| std::env::var("AUTOCONTOUR_AMQP_URL").ok())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| CliError::Usage(format!("no broker: {how} or set AUTOCONTOUR_AMQP_URL")))
}

/// Queue and exchange names of one jobs queue.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The jobs queue.
    pub jobs: String,
    /// The dead-letter exchange.
    pub dead_exchange: String,
    /// The dead-letter queue (also the routing key dead jobs are published with).
    pub dead: String,
    /// Attempts per job.
    pub delivery_limit: u32,
}

impl Topology {
    /// The names derived from the jobs queue's name.
    pub fn new(jobs: &str, delivery_limit: u32) -> Topology {
        Topology {
            jobs: jobs.to_string(),
            dead_exchange: format!("{jobs}.dlx"),
            dead: format!("{jobs}.dead"),
            delivery_limit,
        }
    }

    /// The events queue of a batch.
    pub fn events(&self, batch: &str) -> String {
        format!("{}.events.{batch}", self.jobs)
    }

    /// Declares the exchange and queues (idempotent; fails with PRECONDITION_FAILED, named, when
    /// the jobs queue exists with other arguments).
    pub async fn declare(&self, ch: &Channel) -> CliResult<()> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.exchange_declare(
            self.dead_exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker("declare the dead-letter exchange", &self.dead_exchange, e))?;
        let mut quorum = FieldTable::default();
        quorum.insert("x-queue-type".into(), long_string("quorum"));
        ch.queue_declare(self.dead.as_str().into(), durable, quorum.clone())
            .await
            .map_err(|e| broker("declare the dead-letter queue", &self.dead, e))?;
        ch.queue_bind(
            self.dead.as_str().into(),
            self.dead_exchange.as_str().into(),
            self.dead.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker("bind the dead-letter queue", &self.dead, e))?;
        let mut args = quorum;
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_exchange),
        );
        args.insert("x-dead-letter-routing-key".into(), long_string(&self.dead));
        ch.queue_declare(self.jobs.as_str().into(), durable, args)
            .await
            .map_err(|e| {
                broker(
                    &format!(
                        "declare the jobs queue as a quorum queue with delivery limit {} (an \
                         existing queue of that name with other arguments must be deleted first)",
                        self.delivery_limit
                    ),
                    &self.jobs,
                    e,
                )
            })?;
        Ok(())
    }

    /// Declares a batch's events queue (durable; removed by the broker after 7 days unused).
    pub async fn declare_events(&self, ch: &Channel, batch: &str) -> CliResult<String> {
        let name = self.events(batch);
        let mut args = FieldTable::default();
        args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(EVENTS_QUEUE_EXPIRES_MS),
        );
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .map_err(|e| broker("declare the events queue", &name, e))?;
        Ok(name)
    }
}

/// One segmentation job: a CT folder in, an output folder out (JSON, `JOB_FORMAT` 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Format version ([`JOB_FORMAT`]).
    pub format: u32,
    /// The job's identifier (also the message id).
    pub job_id: String,
    /// The batch it was submitted in.
    pub batch: String,
    /// Case name (the output folder's name, the events' `name`).
    pub name: String,
    /// CT folder, as the workers see it.
    pub input: PathBuf,
    /// Output folder, as the workers see it: rtstruct.dcm, preview.png, summary.json (seg.dcm,
    /// labels.nii.gz) are written there atomically.
    pub output: PathBuf,
    /// Model package folder (default: the worker's `--model`).
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Site profile (default: none).
    #[serde(default)]
    pub profile: Option<PathBuf>,
    /// Per-case options (UIDs are always derived from the job key).
    #[serde(default)]
    pub options: CaseOptions,
    /// A DICOM node the RT Structure Set (and SEG) are sent to by C-STORE once written; the job
    /// is acknowledged only after the node accepted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_to: Option<SendTo>,
}

/// A DICOM destination of a job's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendTo {
    /// Its AE title.
    pub ae_title: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The worker's calling AE title (default `AUTOCONTOUR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_ae_title: Option<String>,
}

impl std::str::FromStr for SendTo {
    type Err = String;

    /// `AE@host:port`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not AE@host:port");
        let (ae, rest) = s.split_once('@').ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        crate::gateway::config::check_ae_title("destination", ae).map_err(|e| e.to_string())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(SendTo {
            ae_title: ae.to_string(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            calling_ae_title: None,
        })
    }
}

/// What happened to a job, published to its batch's events queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The broker confirmed the job (written by `submit`, not published).
    Accepted,
    /// A worker began an attempt.
    Started,
    /// The outputs are in place; the job is acknowledged.
    Finished,
    /// An attempt failed: retried unless `final` is set, in which case the job is in the
    /// dead-letter queue.
    Failed,
}

/// One event of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// The job.
    pub job_id: String,
    /// Its batch.
    pub batch: String,
    /// Its case name.
    pub name: String,
    /// `host:pid` of the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The worker's process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Which attempt (1 = first delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// Seconds the attempt took (finished, failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// For `failed`: no attempt is left, the job was dead-lettered.
    #[serde(default, rename = "final")]
    pub is_final: bool,
    /// For `failed`: the error's name (the SDK's error variant, or `MalformedJob`, `Panic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// For `failed`: the error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `finished`: the case's summary.json (structures, flags, timings, outputs, job key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
}

impl Event {
    /// An event of `kind` for `job` at the current time.
    pub fn new(kind: EventKind, job_id: &str, batch: &str, name: &str) -> Event {
        Event {
            event: kind,
            job_id: job_id.into(),
            batch: batch.into(),
            name: name.into(),
            worker: None,
            pid: None,
            attempt: None,
            time: unix_now(),
            seconds: None,
            is_final: false,
            error_code: None,
            error: None,
            summary: None,
        }
    }
}

/// Resolves on SIGINT or SIGTERM (`worker` and `gateway` stop gracefully on either).
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `host:pid` of this process.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Opens a connection (with this process as its name) and a channel in confirm mode.
pub async fn connect(url: &str, name: &str) -> CliResult<(Connection, Channel)> {
    let props = ConnectionProperties::default().with_client_property(
        "connection_name".into(),
        LongString::from(name.as_bytes().to_vec()),
    );
    let conn = Connection::connect(url, props)
        .await
        .map_err(|e| broker("connect", &redact(url), e))?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| broker("open a channel", &redact(url), e))?;
    ch.confirm_select(Default::default())
        .await
        .map_err(|e| broker("enable publisher confirms", &redact(url), e))?;
    Ok((conn, ch))
}

/// Publishes `body` persistently and waits for the broker's confirm (a nack is an error).
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> CliResult<()> {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            props
                .with_delivery_mode(2)
                .with_content_type("application/json".into()),
        )
        .await
        .map_err(|e| broker("publish", routing_key, e))?
        .await
        .map_err(|e| broker("wait for the publish confirm", routing_key, e))?;
    if confirm.is_nack() {
        return Err(CliError::Broker {
            what: format!("publish to {routing_key}"),
            reason: "the broker refused the message (nack)".into(),
        });
    }
    Ok(())
}

/// Publishes an event to a batch's events queue (confirmed).
pub async fn publish_event(ch: &Channel, events_queue: &str, ev: &Event) -> CliResult<()> {
    let body = serde_json::to_vec(ev)?;
    publish_confirmed(ch, "", events_queue, &body, BasicProperties::default()).await
}

/// A string header value.
pub fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// An integer header value of any width, if `v` is one.
pub fn header_int(headers: &Option<FieldTable>, key: &str) -> Option<i64> {
    let v = headers.as_ref()?.inner().get(&ShortString::from(key))?;
    match v {
        AMQPValue::ShortShortInt(x) => Some(i64::from(*x)),
        AMQPValue::ShortShortUInt(x) => Some(i64::from(*x)),
        AMQPValue::ShortInt(x) => Some(i64::from(*x)),
        AMQPValue::ShortUInt(x) => Some(i64::from(*x)),
        AMQPValue::LongInt(x) => Some(i64::from(*x)),
        AMQPValue::LongUInt(x) => Some(i64::from(*x)),
        AMQPValue::LongLongInt(x) => Some(*x),
        _ => None,
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A broker error, named.
pub fn broker(what: &str, target: &str, e: lapin::Error) -> CliError {
    CliError::Broker {
        what: format!("{what} ({target})"),
        reason: e.to_string(),
    }
}

/// Waits before the `attempt`-th reconnection: 0.5 s doubling up to 15 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((500u64 << attempt.min(5)).min(15_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact("amqp://user:secret@host:5672/%2f"),
            "amqp://user:***@host:5672/%2f"
        );
        assert_eq!(redact("amqp://host:5672"), "amqp://host:5672");
        assert_eq!(redact("amqp://user@host"), "amqp://user@host");
    }

    #[test]
    fn jobs_round_trip_and_refuse_unknown_fields() {
        let job = Job {
            format: JOB_FORMAT,
            job_id: "j1".into(),
            batch: "b".into(),
            name: "case".into(),
            input: "/data/ct".into(),
            output: "/data/out/case".into(),
            model: None,
            profile: None,
            options: CaseOptions::default(),
            send_to: None,
        };
        let text = serde_json::to_string(&job).unwrap();
        let back: Job = serde_json::from_str(&text).unwrap();
        assert_eq!(back.input, job.input);
        assert!(serde_json::from_str::<Job>(&text.replace("\"job_id\"", "\"jobid\"")).is_err());
        // Options may be left out.
        let minimal =
            r#"{"format":1,"job_id":"j","batch":"b","name":"n","input":"/i","output":"/o"}"#;
        let m: Job = serde_json::from_str(minimal).unwrap();
        assert!(!m.options.seg && m.model.is_none());
    }

    #[test]
    fn destinations_parse_as_ae_at_host_port() {
        let d: SendTo = "PACS@127.0.0.1:4242".parse().unwrap();
        assert_eq!(
            (d.ae_title.as_str(), d.host.as_str(), d.port),
            ("PACS", "127.0.0.1", 4242)
        );
        let d: SendTo = "PACS@[::1]:104".parse().unwrap();
        assert_eq!(d.host, "::1");
        for bad in ["PACS", "PACS@host", "PACS@host:x", "@host:1", "A\\B@h:1"] {
            assert!(bad.parse::<SendTo>().is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_millis(1000));
        assert_eq!(backoff(10), Duration::from_millis(15_000));
    }

    #[test]
    fn delivery_counts_of_any_integer_width_are_read() {
        let mut t = FieldTable::default();
        t.insert("x-delivery-count".into(), AMQPValue::LongInt(2));
        assert_eq!(header_int(&Some(t.clone()), "x-delivery-count"), Some(2));
        t.insert("x-delivery-count".into(), AMQPValue::LongLongInt(5));
        assert_eq!(header_int(&Some(t), "x-delivery-count"), Some(5));
        assert_eq!(header_int(&None, "x-delivery-count"), None);
    }
}
