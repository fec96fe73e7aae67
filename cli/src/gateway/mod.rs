//! `autocontour gateway`: a DICOM node that receives CT series (C-STORE), segments each complete
//! series and sends the RT Structure Set (C-STORE) to a destination, with every step durable in a
//! spool (docs/gateway.md).

pub mod config;
pub mod handoff;
pub mod reid;
pub mod scp;
pub mod scu;
pub mod spool;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autocontour::Error;
use autocontour::model::{Device, Fallback, ModelOptions};
use autocontour::profile::{ResolvedProfile, SiteProfile};
use autocontour::runtime::RuntimeOptions;
use serde_json::json;

use crate::error::{CliError, CliResult};
use crate::models::ModelCache;
use crate::queue::{stop_signal, unix_now};
use crate::segment::{CaseOptions, default_model, run_case};
use config::GatewayConfig;
use spool::{STATES, SendState, Spool};

/// Arguments of `autocontour gateway`.
#[derive(clap::Args)]
pub struct GatewayArgs {
    /// The gateway's configuration (TOML; docs/gateway.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// `status`: list the series in the spool by state instead of running the gateway.
    #[arg(value_parser = ["status"])]
    pub action: Option<String>,
}

/// What the gateway's tasks share.
pub struct Gateway {
    /// The configuration.
    pub config: GatewayConfig,
    /// The spool.
    pub spool: Spool,
    models: ModelCache,
    profile: Option<ResolvedProfile>,
    /// TLS of the listening port.
    pub server_tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS towards the destination, and the name its certificate must carry.
    pub client_tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// The site's pseudonymiser (`[deid]`).
    pub pseudonymiser: Option<autocontour::deid::Pseudonymiser>,
}

pub fn run(args: GatewayArgs, runtime: RuntimeOptions) -> CliResult<()> {
    let config = GatewayConfig::load(&args.config)?;
    if args.action.as_deref() == Some("status") {
        return status(&config);
    }
    let spool = Spool::open(&config.spool).map_err(|e| Error::io(&config.spool, e))?;
    let device: Device = config
        .device
        .parse()
        .map_err(|e: Error| CliError::Usage(e.to_string()))?;
    let models = ModelCache::new(
        config.model.clone().unwrap_or_else(default_model),
        ModelOptions {
            runtime,
            device,
            threads: config.threads,
            fallback: Fallback::ToCpu,
            folds: None,
        },
    );
    // Every model a route names is opened now: a wrong path fails at start, not at 3 a.m. (In
    // queue mode the workers open them; the broker URL is checked instead.)
    let profile = if let Some(q) = &config.queue {
        q.url()?;
        None
    } else {
        let default = models.get(None, None)?;
        for r in &config.routes {
            models.get(Some(&r.model), None)?;
        }
        match &config.profile {
            Some(p) => Some(SiteProfile::load(p)?.resolve(&default.manifest)?),
            None => None,
        }
    };
    let server_tls = config.tls.as_ref().map(|t| t.server_config()).transpose()?;
    let client_tls = config
        .destination
        .tls
        .as_ref()
        .map(|t| t.client_config(&config.destination.host))
        .transpose()?;
    let pseudonymiser = match &config.deid {
        Some(d) => Some(autocontour::deid::Pseudonymiser::new(
            autocontour::deid::SiteKey::from_file(&d.key_file)?,
        )),
        None => None,
    };
    let gateway = Arc::new(Gateway {
        pseudonymiser,
        config,
        spool,
        models,
        profile,
        server_tls,
        client_tls,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io(Path::new("tokio runtime"), e))?;
    rt.block_on(serve(gateway))
}

async fn serve(gateway: Arc<Gateway>) -> CliResult<()> {
    let listen = gateway.config.listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| Error::io(Path::new(&listen), e))?;
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(listen);
    eprintln!(
        "gateway: {} listening on {local}; spool {}; sending to {}@{}:{}",
        gateway.config.ae_title,
        gateway.spool.root().display(),
        gateway.config.destination.ae_title,
        gateway.config.destination.host,
        gateway.config.destination.port
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(gateway.config.max_associations));
    let wake = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(complete_series(gateway.clone(), wake.clone()));
    match gateway.config.queue.clone() {
        Some(q) => {
            tokio::spawn(handoff::run(gateway.clone(), q, wake));
        }
        None => {
            tokio::spawn(process_series(gateway.clone(), wake));
        }
    }
    // Results re-identified by the gateway (in-process, or queue mode with [deid]) are sent
    // from the outbox.
    tokio::spawn(send_results(gateway.clone()));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let g = gateway.clone();
                        tokio::spawn(async move {
                            scp::serve(g, socket).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        log::warn!("association refused: {} already served", gateway.config.max_associations);
                        tokio::spawn(scp::reject_busy(socket));
                    }
                },
                Err(e) => log::warn!("accept failed: {e}"),
            },
            _ = &mut stop => {
                eprintln!("gateway: stopping (series in progress resume at the next start)");
                return Ok(());
            }
        }
    }
}

/// Moves series idle for `series_idle_seconds` to `ready` and wakes the processor.
async fn complete_series(gateway: Arc<Gateway>, wake: Arc<tokio::sync::Notify>) {
    let idle = Duration::from_secs_f64(gateway.config.series_idle_seconds);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let g = gateway.clone();
        let done = tokio::task::spawn_blocking(move || g.spool.complete_idle(idle))
            .await
            .unwrap_or_default();
        for key in &done {
            let n = Spool::instances(&gateway.spool.dir("ready", key)).len();
            let uid = gateway
                .spool
                .info("ready", key)
                .map(|i| i.series_uid)
                .unwrap_or_default();
            eprintln!("gateway: series {uid} ({key}) complete: {n} instance(s) queued");
        }
        if !done.is_empty() {
            wake.notify_one();
        }
    }
}

/// Segments ready series one at a time, oldest first.
async fn process_series(gateway: Arc<Gateway>, wake: Arc<tokio::sync::Notify>) {
    loop {
        let next = gateway.spool.keys("ready").into_iter().next();
        let Some(key) = next else {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            continue;
        };
        if let Err(e) = gateway.spool.advance("ready", "running", &key) {
            log::error!("series {key}: cannot start: {e}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        let g = gateway.clone();
        let k = key.clone();
        let _ = tokio::task::spawn_blocking(move || segment_series(&g, &k)).await;
    }
}

/// Segments one running series into `out/` and moves it to `outbox` (or `failed`).
fn segment_series(gateway: &Gateway, key: &str) {
    let spool = &gateway.spool;
    let dir = spool.dir("running", key);
    let t = Instant::now();
    let info = spool.info("running", key);
    let result = (|| -> CliResult<serde_json::Value> {
        let info = info.clone().ok_or_else(|| CliError::Input {
            path: dir.join("series.json"),
            reason: "missing or unreadable".into(),
            source: None,
        })?;
        let c = &gateway.config;
        let route = c.route(
            &info.called_ae_title,
            &info.series_description,
            &info.body_part,
        );
        let model = gateway.models.get(route.map(PathBuf::as_path), None)?;
        // With [deid] the model sees the pseudonymised series only; the results are
        // re-identified into out/.
        let (input, uid) = match &gateway.pseudonymiser {
            Some(p) => {
                let to = dir.join("deid");
                let r = reid::pseudonymise_series(p, &dir, &to)?;
                (to, r.series_pseudonym)
            }
            None => (dir.clone(), info.series_uid.clone()),
        };
        let opts = CaseOptions {
            uid: Some(uid),
            seg: c.seg,
            stable_uids: true,
            ..CaseOptions::default()
        };
        let out = dir.join("out");
        let results = match gateway.pseudonymiser {
            Some(_) => dir.join("out-pseudonymised"),
            None => out.clone(),
        };
        let (summary, _) = run_case(
            &model,
            gateway.profile.as_ref(),
            &input,
            &results,
            key,
            &opts,
            false,
        )?;
        if gateway.pseudonymiser.is_some() {
            reid::reidentify_results(&dir, &results, &out)?;
        }
        Ok(summary)
    })();
    let uid = info.map(|i| i.series_uid).unwrap_or_default();
    match result {
        Ok(_) => {
            eprintln!(
                "gateway: series {uid} ({key}) segmented in {:.1} s; result queued for sending",
                t.elapsed().as_secs_f64()
            );
            if let Err(e) = spool.advance("running", "outbox", key) {
                log::error!("series {key}: cannot queue the result: {e}");
            }
        }
        Err(e) => {
            eprintln!("gateway: series {uid} ({key}) failed: {}: {e}", e.code());
            let text = json!({"error_code": e.code(), "error": e.to_string(), "time": unix_now()});
            let _ = autocontour::io::write_bytes_atomically(
                &dir.join("error.json"),
                text.to_string().as_bytes(),
            );
            if let Err(e) = spool.advance("running", "failed", key) {
                log::error!("series {key}: cannot move to failed: {e}");
            }
        }
    }
}

/// Sends results in the outbox, retrying failed sends with backoff.
async fn send_results(gateway: Arc<Gateway>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for key in gateway.spool.keys("outbox") {
            let state = gateway.spool.send_state("outbox", &key);
            if state.next_attempt > unix_now() {
                continue;
            }
            let g = gateway.clone();
            let k = key.clone();
            let _ = tokio::task::spawn_blocking(move || send_one(&g, &k, state)).await;
        }
    }
}

/// One send attempt of a result.
fn send_one(gateway: &Gateway, key: &str, mut state: SendState) {
    let spool = &gateway.spool;
    let out = spool.dir("outbox", key).join("out");
    let files: Vec<PathBuf> = ["rtstruct.dcm", "seg.dcm"]
        .iter()
        .map(|f| out.join(f))
        .filter(|p| p.exists())
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let d = &gateway.config.destination;
    let uid = spool
        .info("outbox", key)
        .map(|i| i.series_uid)
        .unwrap_or_default();
    state.attempts += 1;
    let result = if refs.is_empty() {
        Err("no result file in the outbox".to_string())
    } else {
        scu::store_files(
            &refs,
            gateway.config.calling_title(),
            &d.ae_title,
            &d.host,
            d.port,
            gateway.client_tls.as_ref(),
        )
    };
    match result {
        Ok(()) => {
            state.sent = Some(unix_now());
            state.last_error = None;
            let _ = spool.set_send_state("outbox", key, &state);
            eprintln!(
                "gateway: series {uid} ({key}): result sent to {}@{}:{} (attempt {})",
                d.ae_title, d.host, d.port, state.attempts
            );
            if let Err(e) = spool.advance("outbox", "sent", key) {
                log::error!("series {key}: cannot move to sent: {e}");
                return;
            }
            if !gateway.config.keep_sent_series {
                remove_ct(&spool.dir("sent", key));
            }
        }
        Err(e) => {
            let wait = (d.retry_seconds * 2f64.powi(state.attempts.min(20) as i32 - 1)).min(300.0);
            state.next_attempt = unix_now() + wait;
            state.last_error = Some(e.clone());
            let _ = spool.set_send_state("outbox", key, &state);
            eprintln!(
                "gateway: series {uid} ({key}): send attempt {} failed: {e}; kept in the outbox, \
                 next attempt in {wait:.0} s",
                state.attempts
            );
        }
    }
}

/// Removes a sent series' CT: the received instances and their pseudonymised copies.
pub fn remove_ct(dir: &Path) {
    for f in Spool::instances(dir) {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(dir.join("deid"));
}

/// `gateway status`: the series in each spool state.
fn status(config: &GatewayConfig) -> CliResult<()> {
    let spool = &config.spool;
    if !spool.is_dir() {
        println!("spool {} does not exist yet", spool.display());
        return Ok(());
    }
    let s = Spool::at(spool);
    println!("spool {}", spool.display());
    for state in STATES {
        let keys = s.keys(state);
        println!("{state}: {}", keys.len());
        for key in keys {
            let info = s.info(state, &key);
            let n = Spool::instances(&s.dir(state, &key)).len();
            let mut line = format!(
                "  {key}  series {}  from {} to {}  {n} instance(s)",
                info.as_ref().map_or("?", |i| i.series_uid.as_str()),
                info.as_ref().map_or("?", |i| i.calling_ae_title.as_str()),
                info.as_ref().map_or("?", |i| i.called_ae_title.as_str()),
            );
            if state == "outbox" || state == "sent" {
                let st = s.send_state(state, &key);
                if st.attempts > 0 {
                    line.push_str(&format!("  {} send attempt(s)", st.attempts));
                }
                if let Some(e) = st.last_error {
                    line.push_str(&format!("  last error: {e}"));
                }
            }
            if state == "failed"
                && let Ok(text) = std::fs::read_to_string(s.dir(state, &key).join("error.json"))
            {
                line.push_str(&format!("  {}", text.trim()));
            }
            println!("{line}");
        }
    }
    Ok(())
}
