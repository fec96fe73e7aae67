//! `autocontour submit`: queues one job per CT folder and follows the batch's events.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use sha2::{Digest, Sha256};

use autocontour::Error;

use super::{
    BrokerArgs, Event, EventKind, JOB_FORMAT, Job, backoff, connect, publish_confirmed, redact,
    unix_now,
};
use crate::error::{CliError, CliResult};
use crate::segment::{CaseOptions, MismatchArg, case_inputs, case_names};

/// Arguments of `autocontour submit`.
#[derive(clap::Args)]
pub struct SubmitArgs {
    /// CT folders, one job each (paths as the workers see them: a shared folder).
    pub inputs: Vec<PathBuf>,
    /// A text file listing more CT folders, one per line (# comments allowed).
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Output folder: one subfolder per job (as the workers see it).
    #[arg(long, default_value = "autocontour-out")]
    pub out: PathBuf,
    /// Model package folder for every job (default: each worker's own --model).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Site profile for every job.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Also write seg.dcm.
    #[arg(long)]
    pub seg: bool,
    /// Also write labels.nii.gz and labels.json.
    #[arg(long)]
    pub nifti: bool,
    /// Skip the preview PNG.
    #[arg(long)]
    pub no_preview: bool,
    /// `flag` or `refuse` CTs that do not suit the model.
    #[arg(long, value_enum, default_value_t = MismatchArg::Flag)]
    pub on_mismatch: MismatchArg,
    /// nnU-Net packages: the folds to ensemble.
    #[arg(long, num_args = 1.., value_name = "FOLD")]
    pub folds: Option<Vec<u32>>,
    /// Run without test-time mirroring.
    #[arg(long)]
    pub no_mirroring: bool,
    /// Series Instance UID to use when a folder holds several series.
    #[arg(long)]
    pub uid: Option<String>,
    /// Also send each RT Structure Set (and SEG) by C-STORE to this DICOM node, `AE@host:port`;
    /// a job is done only when the node accepted them.
    #[arg(long, value_name = "AE@HOST:PORT")]
    pub send_to: Option<super::SendTo>,
    /// The workers' calling AE title towards --send-to.
    #[arg(long, default_value = "AUTOCONTOUR", requires = "send_to")]
    pub calling_ae_title: String,
    /// Queue the jobs and exit without waiting for them.
    #[arg(long)]
    pub no_wait: bool,
    /// Append every event of the batch to this file as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Give up waiting after this many seconds (0: wait as long as it takes).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
}

/// Where each job stands, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Queued,
    Running,
    Finished,
    Failed,
}

pub fn run(args: SubmitArgs) -> CliResult<()> {
    let url = args.broker.url()?;
    let inputs = case_inputs(&args.inputs, args.list.as_deref())?;
    if args.send_to.is_some() {
        crate::gateway::config::check_ae_title("--calling-ae-title", &args.calling_ae_title)?;
    }
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
    let out = abs(&args.out)?;
    let batch = new_batch_id();
    let options = CaseOptions {
        uid: args.uid.clone(),
        on_mismatch: args.on_mismatch,
        no_mirroring: args.no_mirroring,
        seg: args.seg,
        nifti: args.nifti,
        no_preview: args.no_preview,
        stable_uids: true,
        folds: args.folds.clone(),
    };
    let model = args.model.as_deref().map(abs).transpose()?;
    let profile = args.profile.as_deref().map(abs).transpose()?;
    let mut jobs = Vec::with_capacity(inputs.len());
    for (i, (input, name)) in inputs.iter().zip(case_names(&inputs)).enumerate() {
        jobs.push(Job {
            format: JOB_FORMAT,
            job_id: format!("{batch}-{:04}", i + 1),
            batch: batch.clone(),
            input: abs(input)?,
            output: out.join(&name),
            name,
            model: model.clone(),
            profile: profile.clone(),
            options: options.clone(),
            send_to: args.send_to.clone().map(|mut d| {
                d.calling_ae_title = Some(args.calling_ae_title.clone());
                d
            }),
        });
    }
    let mut log = match &args.events {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::io(p, e))?,
        ),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Broker {
            what: "start the submitter's runtime".into(),
            reason: e.to_string(),
        })?;
    rt.block_on(async {
        let topology = args.broker.topology();
        let (conn, ch) = connect(&url, &format!("autocontour submit {batch}")).await?;
        topology.declare(&ch).await?;
        let events_queue = topology.declare_events(&ch, &batch).await?;
        for job in &jobs {
            let body = serde_json::to_vec(job)?;
            let props = BasicProperties::default()
                .with_message_id(job.job_id.as_str().into())
                .with_reply_to(events_queue.as_str().into());
            publish_confirmed(&ch, "", &topology.jobs, &body, props).await?;
            let ev = Event::new(EventKind::Accepted, &job.job_id, &batch, &job.name);
            write_event(&mut log, &ev)?;
        }
        let _ = conn.close(200, "jobs queued".into()).await;
        println!(
            "batch {batch}: {} jobs queued on {} (events: {events_queue})",
            jobs.len(),
            topology.jobs
        );
        if args.no_wait {
            return Ok(());
        }
        follow(&url, &events_queue, &jobs, &mut log, args.timeout).await
    })
}

/// A batch id: 16 hex digits from the time, the process and the host.
fn new_batch_id() -> String {
    let mut h = Sha256::new();
    h.update(unix_now().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(super::worker_id().as_bytes());
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_event(log: &mut Option<std::fs::File>, ev: &Event) -> CliResult<()> {
    if let Some(f) = log {
        let mut line = serde_json::to_vec(ev)?;
        line.push(b'\n');
        f.write_all(&line)
            .and_then(|_| f.flush())
            .map_err(|e| Error::io(Path::new("events log"), e))?;
    }
    Ok(())
}

/// Consumes the batch's events until every job finished or was dead-lettered, reconnecting
/// after broker failures; then deletes the events queue.
async fn follow(
    url: &str,
    events_queue: &str,
    jobs: &[Job],
    log: &mut Option<std::fs::File>,
    timeout: u64,
) -> CliResult<()> {
    let mut state: HashMap<&str, State> = jobs
        .iter()
        .map(|j| (j.job_id.as_str(), State::Queued))
        .collect();
    let mut errors: Vec<(String, String)> = Vec::new();
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let deadline = (timeout > 0).then(|| start + Duration::from_secs(timeout));
    let mut failures = 0u32;
    let done = |state: &HashMap<&str, State>| {
        state
            .values()
            .all(|s| matches!(s, State::Finished | State::Failed))
    };
    while !done(&state) {
        let session = async {
            let (conn, ch) = connect(url, &format!("autocontour submit {events_queue}")).await?;
            let mut consumer = ch
                .basic_consume(
                    events_queue.into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| super::broker("consume", events_queue, e))?;
            while !done(&state) {
                let delivery = match consumer.next().await {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => return Err(super::broker("receive", events_queue, e)),
                    None => {
                        return Err(CliError::Broker {
                            what: format!("receive ({events_queue})"),
                            reason: "the broker ended the consumer".into(),
                        });
                    }
                };
                match serde_json::from_slice::<Event>(&delivery.data) {
                    Ok(ev) => {
                        write_event(log, &ev)?;
                        if let Some(s) = state.get_mut(ev.job_id.as_str()) {
                            let before = *s;
                            *s = match (&ev.event, *s) {
                                (_, State::Finished) => State::Finished,
                                (EventKind::Finished, _) => State::Finished,
                                (EventKind::Failed, _) if ev.is_final => State::Failed,
                                (_, State::Failed) => State::Failed,
                                (EventKind::Started | EventKind::Failed, _) => State::Running,
                                (EventKind::Accepted, s) => s,
                            };
                            if *s == State::Failed && before != State::Failed {
                                errors.push((
                                    ev.name.clone(),
                                    format!(
                                        "{}: {}",
                                        ev.error_code.as_deref().unwrap_or("?"),
                                        ev.error.as_deref().unwrap_or("")
                                    ),
                                ));
                            }
                            report(&ev, &state, tty);
                        }
                    }
                    Err(e) => log::warn!("{events_queue}: an event that does not parse: {e}"),
                }
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(|e| super::broker("acknowledge an event", events_queue, e))?;
            }
            let _ = ch
                .queue_delete(events_queue.into(), QueueDeleteOptions::default())
                .await;
            let _ = conn.close(200, "batch done".into()).await;
            Ok::<(), CliError>(())
        };
        let result = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), session).await {
                Ok(r) => r,
                Err(_) => break,
            },
            None => session.await,
        };
        if let Err(e) = result {
            let wait = backoff(failures);
            failures = failures.saturating_add(1);
            eprintln!(
                "submit: {e}; reconnecting to {} in {:.1} s",
                redact(url),
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
        }
    }
    if tty {
        eprintln!();
    }
    let count = |w: State| state.values().filter(|s| **s == w).count();
    let (finished, failed) = (count(State::Finished), count(State::Failed));
    let unfinished = jobs.len() - finished - failed;
    println!(
        "{} jobs: {finished} finished, {failed} failed{} in {:.1} s",
        jobs.len(),
        if unfinished > 0 {
            format!(", {unfinished} not done")
        } else {
            String::new()
        },
        start.elapsed().as_secs_f64()
    );
    for (name, err) in &errors {
        println!("  {name}: {err}");
    }
    if unfinished > 0 {
        return Err(CliError::Batch(format!(
            "{unfinished} job(s) not done after {timeout} s (they stay queued)"
        )));
    }
    if failed > 0 {
        return Err(CliError::Batch(format!(
            "{failed} job(s) failed (in the dead-letter queue)"
        )));
    }
    Ok(())
}

/// The progress line (a terminal) or one line per job that ended.
fn report(ev: &Event, state: &HashMap<&str, State>, tty: bool) {
    let n = state.len();
    let count = |w: State| state.values().filter(|s| **s == w).count();
    let (fin, fail, run) = (
        count(State::Finished),
        count(State::Failed),
        count(State::Running),
    );
    if tty {
        let width = 30;
        let filled = (fin + fail) * width / n.max(1);
        eprint!(
            "\r[{}{}] {}/{n} done, {fail} failed, {run} running ",
            "#".repeat(filled),
            " ".repeat(width - filled),
            fin + fail
        );
    } else {
        match ev.event {
            EventKind::Finished => eprintln!(
                "{}: finished by {} in {:.1} s ({}/{n} done)",
                ev.name,
                ev.worker.as_deref().unwrap_or("?"),
                ev.seconds.unwrap_or(0.0),
                fin + fail
            ),
            EventKind::Failed => eprintln!(
                "{}: attempt {} failed on {}: {}{}",
                ev.name,
                ev.attempt.unwrap_or(0),
                ev.worker.as_deref().unwrap_or("?"),
                ev.error.as_deref().unwrap_or(""),
                if ev.is_final {
                    " (dead-lettered)"
                } else {
                    " (will retry)"
                }
            ),
            _ => {}
        }
    }
    let _ = std::io::stderr().flush();
}
