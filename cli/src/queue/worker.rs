//! `autocontour worker`: consumes segmentation jobs from RabbitMQ, one model per process.
//!
//! Each delivery is one job; up to `--prefetch` run at once on the same loaded model. A job is
//! acknowledged only after its outputs are in place and synced. A failed attempt is published
//! as a `failed` event and returned to the queue; on its last attempt (the delivery limit) the
//! worker publishes it to the dead-letter exchange with its error instead. A lost broker
//! connection is retried with backoff; the jobs it had in flight are redelivered by the broker
//! and rewritten with the same UIDs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use tokio::task::JoinSet;

use autocontour::Error;
use autocontour::model::{Device, Fallback, ModelOptions};
use autocontour::profile::SiteProfile;
use autocontour::runtime::RuntimeOptions;

use super::{
    BrokerArgs, Event, EventKind, JOB_FORMAT, Job, Topology, backoff, connect, header_int,
    long_string, publish_confirmed, publish_event, redact, stop_signal, unix_now, worker_id,
};
use crate::error::{CliError, CliResult};
use crate::models::ModelCache;
use crate::segment::{default_model, run_case};

/// Arguments of `autocontour worker`.
#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Jobs run at the same time (the channel's prefetch count), sharing one loaded model.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub prefetch: u16,
    /// Model package for jobs that name none (default: $AUTOCONTOUR_MODEL, then the bundled
    /// models/thorax-basic).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Execution provider: cpu, cuda[:N] or tensorrt[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Fail instead of falling back to the CPU when the device is unavailable.
    #[arg(long)]
    pub no_fallback: bool,
    /// CPU threads for ONNX Runtime (0: its default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Stop after this many jobs were acknowledged or dead-lettered (0: never).
    #[arg(long, default_value_t = 0)]
    pub max_jobs: u64,
}

/// What every job of this worker shares.
struct Shared {
    topology: Topology,
    models: ModelCache,
    id: String,
    done: std::sync::atomic::AtomicU64,
}

/// Why a job attempt failed: a name and a message.
struct Failure {
    code: String,
    message: String,
}

impl From<CliError> for Failure {
    fn from(e: CliError) -> Self {
        Failure {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::from(CliError::Sdk(e))
    }
}

pub fn run(args: WorkerArgs, runtime: RuntimeOptions) -> CliResult<()> {
    let url = args.broker.url()?;
    let device: Device = args
        .device
        .parse()
        .map_err(|e: Error| CliError::Usage(e.to_string()))?;
    let default_model = args.model.clone().unwrap_or_else(default_model);
    let shared = Arc::new(Shared {
        topology: args.broker.topology(),
        models: ModelCache::new(
            default_model,
            ModelOptions {
                runtime,
                device,
                threads: args.threads,
                fallback: if args.no_fallback {
                    Fallback::Fail
                } else {
                    Fallback::ToCpu
                },
                folds: None,
            },
        ),
        id: worker_id(),
        done: Default::default(),
    });
    // The default model is opened before consuming: a worker that cannot run it says so at once.
    shared.models.get(None, None)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Broker {
            what: "start the worker's runtime".into(),
            reason: e.to_string(),
        })?;
    rt.block_on(consume_forever(url, shared, args.prefetch, args.max_jobs))
}

impl Shared {
    /// Runs one job to its durable outputs; returns the case summary.
    fn execute(&self, job: &Job) -> Result<serde_json::Value, Failure> {
        if job.format != JOB_FORMAT {
            return Err(Failure {
                code: "MalformedJob".into(),
                message: format!(
                    "job format {} is not supported (this worker reads format {JOB_FORMAT})",
                    job.format
                ),
            });
        }
        let model = self
            .models
            .get(job.model.as_deref(), job.options.folds.clone())?;
        let profile = match &job.profile {
            Some(p) => Some(SiteProfile::load(p)?.resolve(&model.manifest)?),
            None => None,
        };
        std::fs::create_dir_all(&job.output).map_err(|e| Error::io(&job.output, e))?;
        let mut opts = job.options.clone();
        opts.stable_uids = true;
        let (summary, _) = run_case(
            &model,
            profile.as_ref(),
            &job.input,
            &job.output,
            &job.name,
            &opts,
            false,
        )?;
        if let Some(d) = &job.send_to {
            let mut files = vec![job.output.join("rtstruct.dcm")];
            if opts.seg {
                files.push(job.output.join("seg.dcm"));
            }
            let refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
            let calling = d.calling_ae_title.as_deref().unwrap_or("AUTOCONTOUR");
            crate::gateway::scu::store_files(&refs, calling, &d.ae_title, &d.host, d.port, None)
                .map_err(|message| Failure {
                    code: "SendFailed".into(),
                    message,
                })?;
        }
        Ok(summary)
    }
}

/// Consumes until stopped by SIGTERM/SIGINT or `max_jobs`, reconnecting after broker failures.
async fn consume_forever(
    url: String,
    shared: Arc<Shared>,
    prefetch: u16,
    max_jobs: u64,
) -> CliResult<()> {
    let mut failures = 0u32;
    loop {
        match session(&url, &shared, prefetch, max_jobs).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let wait = backoff(failures);
                failures = failures.saturating_add(1);
                log::warn!("{e}; reconnecting in {:.1} s", wait.as_secs_f64());
                eprintln!(
                    "worker {}: {e}; reconnecting to {} in {:.1} s",
                    shared.id,
                    redact(&url),
                    wait.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop_signal() => return Ok(()),
                }
            }
        }
    }
}

/// One connection's life: declare, consume, run jobs. `Ok` when asked to stop; `Err` when the
/// connection failed (after the jobs in flight have ended).
async fn session(url: &str, shared: &Arc<Shared>, prefetch: u16, max_jobs: u64) -> CliResult<()> {
    let (conn, ch) = connect(url, &format!("autocontour worker {}", shared.id)).await?;
    shared.topology.declare(&ch).await?;
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| super::broker("set the prefetch count", &shared.topology.jobs, e))?;
    let mut consumer = ch
        .basic_consume(
            shared.topology.jobs.as_str().into(),
            format!("autocontour-worker-{}", shared.id).as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| super::broker("consume", &shared.topology.jobs, e))?;
    eprintln!(
        "worker {}: consuming {} on {} (prefetch {prefetch})",
        shared.id,
        shared.topology.jobs,
        redact(url)
    );
    let mut running = JoinSet::new();
    let stop = stop_signal();
    tokio::pin!(stop);
    let outcome = loop {
        if max_jobs > 0 && shared.done.load(std::sync::atomic::Ordering::SeqCst) >= max_jobs {
            break Ok(());
        }
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    let (ch, shared) = (ch.clone(), shared.clone());
                    running.spawn(async move { handle(delivery, ch, shared).await });
                }
                Some(Err(e)) => break Err(super::broker("receive", &shared.topology.jobs, e)),
                None => break Err(CliError::Broker {
                    what: format!("receive ({})", shared.topology.jobs),
                    reason: "the broker ended the consumer".into(),
                }),
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = &mut stop => {
                eprintln!("worker {}: stopping after the jobs in flight", shared.id);
                break Ok(());
            }
        }
    };
    // Jobs in flight finish (their outputs are complete either way); after a lost connection
    // their acknowledgements fail and the broker redelivers them.
    while running.join_next().await.is_some() {}
    if outcome.is_ok() {
        let _ = conn.close(200, "worker stopping".into()).await;
    }
    outcome
}

/// Runs one delivery and settles it: ack, requeue, or dead-letter with its error.
async fn handle(delivery: Delivery, ch: Channel, shared: Arc<Shared>) {
    let props = delivery.properties.clone();
    let attempt = header_int(props.headers(), "x-delivery-count")
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0)
        .saturating_add(1);
    let reply_to = props.reply_to().as_ref().map(|s| s.as_str().to_string());
    let message_id = props
        .message_id()
        .as_ref()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let event = |kind: EventKind, job: Option<&Job>| {
        let mut ev = match job {
            Some(j) => Event::new(kind, &j.job_id, &j.batch, &j.name),
            None => Event::new(kind, &message_id, "", ""),
        };
        ev.worker = Some(shared.id.clone());
        ev.pid = Some(std::process::id());
        ev.attempt = Some(attempt);
        ev
    };
    let send = |ev: Event| {
        let (ch, reply_to) = (ch.clone(), reply_to.clone());
        async move {
            if let Some(q) = reply_to
                && let Err(e) = publish_event(&ch, &q, &ev).await
            {
                log::warn!("job {}: event not published: {e}", ev.job_id);
            }
        }
    };
    let job: Job = match serde_json::from_slice(&delivery.data) {
        Ok(j) => j,
        Err(e) => {
            // A message that does not parse fails the same way on every attempt.
            let failure = Failure {
                code: "MalformedJob".into(),
                message: format!("the job message is not a job: {e}"),
            };
            eprintln!(
                "worker {}: message {message_id:?}: {}",
                shared.id, failure.message
            );
            let mut ev = event(EventKind::Failed, None);
            ev.is_final = true;
            ev.error_code = Some(failure.code.clone());
            ev.error = Some(failure.message.clone());
            send(ev).await;
            dead_letter(&delivery, &ch, &shared, &failure, attempt).await;
            return;
        }
    };
    eprintln!(
        "worker {}: job {} ({}) attempt {attempt}: started",
        shared.id, job.job_id, job.name
    );
    send(event(EventKind::Started, Some(&job))).await;
    let t = Instant::now();
    let result = {
        let (shared, job) = (shared.clone(), job.clone());
        tokio::task::spawn_blocking(move || shared.execute(&job))
            .await
            .unwrap_or_else(|e| {
                Err(Failure {
                    code: "Panic".into(),
                    message: format!("the job's thread panicked: {e}"),
                })
            })
    };
    let seconds = t.elapsed().as_secs_f64();
    match result {
        Ok(summary) => {
            let mut ev = event(EventKind::Finished, Some(&job));
            ev.seconds = Some(seconds);
            ev.summary = Some(summary);
            send(ev).await;
            match delivery.ack(BasicAckOptions::default()).await {
                Ok(_) => {
                    shared
                        .done
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    eprintln!(
                        "worker {}: job {} finished in {seconds:.1} s",
                        shared.id, job.job_id
                    );
                }
                Err(e) => eprintln!(
                    "worker {}: job {} finished but its acknowledgement failed ({e}); the broker \
                     will redeliver it and it will be rewritten with the same UIDs",
                    shared.id, job.job_id
                ),
            }
        }
        Err(failure) => {
            let last = attempt >= shared.topology.delivery_limit;
            eprintln!(
                "worker {}: job {} attempt {attempt}/{} failed: {}: {}{}",
                shared.id,
                job.job_id,
                shared.topology.delivery_limit,
                failure.code,
                failure.message,
                if last {
                    "; dead-lettered"
                } else {
                    "; requeued"
                }
            );
            let mut ev = event(EventKind::Failed, Some(&job));
            ev.seconds = Some(seconds);
            ev.is_final = last;
            ev.error_code = Some(failure.code.clone());
            ev.error = Some(failure.message.clone());
            send(ev).await;
            if last {
                dead_letter(&delivery, &ch, &shared, &failure, attempt).await;
            } else if let Err(e) = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
            {
                log::warn!("job {}: requeue failed ({e}); the broker will", job.job_id);
            }
        }
    }
}

/// Publishes the delivery to the dead-letter exchange with its error (confirmed), then acks it.
/// If the publish fails the delivery is requeued instead, so it is never lost.
async fn dead_letter(
    delivery: &Delivery,
    ch: &Channel,
    shared: &Shared,
    failure: &Failure,
    attempt: u32,
) {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-autocontour-error-code".into(),
        long_string(&failure.code),
    );
    headers.insert("x-autocontour-error".into(), long_string(&failure.message));
    headers.insert(
        "x-autocontour-attempts".into(),
        AMQPValue::LongLongInt(i64::from(attempt)),
    );
    headers.insert("x-autocontour-worker".into(), long_string(&shared.id));
    headers.insert(
        "x-autocontour-time".into(),
        AMQPValue::LongLongInt(unix_now() as i64),
    );
    let mut props = BasicProperties::default().with_headers(headers);
    if let Some(id) = delivery.properties.message_id() {
        props = props.with_message_id(id.clone());
    }
    if let Some(r) = delivery.properties.reply_to() {
        props = props.with_reply_to(r.clone());
    }
    let t = &shared.topology;
    match publish_confirmed(ch, &t.dead_exchange, &t.dead, &delivery.data, props).await {
        Ok(()) => {
            if delivery.ack(BasicAckOptions::default()).await.is_ok() {
                shared
                    .done
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Err(e) => {
            log::warn!("dead-lettering failed ({e}); the job is requeued");
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await;
        }
    }
}
