//! The gateway's spool: every series is one folder that moves between state folders by rename.
//!
//! ```text
//! <spool>/incoming/<key>/   instances being received (<sop>.dcm, series.json)
//!         ready/<key>/      complete (idle long enough), waiting to be segmented
//!         running/<key>/    being segmented (moved back to ready/ at start-up)
//!         queued/<key>/     handed to RabbitMQ workers (queue mode; job.json once confirmed)
//!         outbox/<key>/     segmented: out/rtstruct.dcm … to send; send.json counts attempts
//!         sent/<key>/       sent: out/ and send.json kept, the CT removed unless configured
//!         failed/<key>/     segmentation failed: error.json, the CT kept
//! ```
//!
//! `<key>` is 24 hex digits of SHA-256 over (called AE title, Series Instance UID). Instances are
//! written to a temporary name, synced, renamed and their folder synced before the C-STORE
//! response reports success. A folder whose target name is taken (the same series sent again
//! after it moved on) pushes the older one aside as `<key>.<unix ms>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The states a series folder moves through.
pub const STATES: [&str; 7] = [
    "incoming", "ready", "running", "queued", "outbox", "sent", "failed",
];

/// What the gateway records about a series when its first instance arrives (`series.json`;
/// identifying: it stays in the spool).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesInfo {
    /// Series Instance UID.
    pub series_uid: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// The called AE title it was sent to (routing).
    pub called_ae_title: String,
    /// The sender's AE title.
    pub calling_ae_title: String,
    /// Series Description (routing).
    pub series_description: String,
    /// Body Part Examined (routing).
    pub body_part: String,
    /// Modality.
    pub modality: String,
    /// Unix time of the first instance.
    pub first_received: f64,
    /// The series' instance count, when the instances carry Number of Series Related
    /// Instances (0020,1209): the series is complete as soon as that many have arrived.
    #[serde(default)]
    pub expected_instances: Option<usize>,
}

/// Send attempts of a result (`send.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SendState {
    /// Attempts so far.
    pub attempts: u32,
    /// Unix time before which no new attempt is made.
    pub next_attempt: f64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Unix time of the successful send.
    pub sent: Option<f64>,
}

/// The spool and the activity of the series being received.
pub struct Spool {
    root: PathBuf,
    /// Per incoming series: what is being received.
    receiving: Mutex<HashMap<String, Receiving>>,
    /// The gateway's exclusive lock on the spool, held while it runs.
    _lock: Option<std::fs::File>,
}

/// An incoming series' activity.
struct Receiving {
    /// Instances being written now.
    writing: usize,
    /// The last instance's arrival or end of writing.
    last: Instant,
    /// Instance files stored since the gateway started (distinct).
    stored: std::collections::HashSet<String>,
    /// The series' instance count when the sender said it (Number of Series Related
    /// Instances).
    expected: Option<usize>,
}

impl Receiving {
    fn new() -> Self {
        Receiving {
            writing: 0,
            last: Instant::now(),
            stored: Default::default(),
            expected: None,
        }
    }

    /// Idle long enough, or every announced instance is here.
    fn complete(&self, idle: Duration) -> bool {
        self.writing == 0
            && (self.last.elapsed() >= idle
                || self
                    .expected
                    .is_some_and(|n| n > 0 && self.stored.len() >= n))
    }
}

/// The spool key of a series.
pub fn series_key(called_ae: &str, series_uid: &str) -> String {
    let mut h = Sha256::new();
    h.update(called_ae.trim().as_bytes());
    h.update([0]);
    h.update(series_uid.trim_end_matches(['\0', ' ']).as_bytes());
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file name for an instance: its SOP Instance UID when that is a plain UID, else a hash.
pub fn instance_file_name(sop_uid: &str) -> String {
    let uid = sop_uid.trim_end_matches(['\0', ' ']);
    if !uid.is_empty()
        && uid.len() <= 64
        && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !uid.starts_with('.')
    {
        format!("{uid}.dcm")
    } else {
        let h = Sha256::digest(uid.as_bytes());
        let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("x{hex}.dcm")
    }
}

/// Whether a folder name is a series key (not a pushed-aside `<key>.<ms>`).
pub fn is_key(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Syncs a folder's entries to disk (renames become durable).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

impl Spool {
    /// The spool at `root`, for reading (`gateway status`); nothing is created or moved.
    pub fn at(root: &Path) -> Spool {
        Spool {
            root: root.to_path_buf(),
            receiving: Mutex::new(HashMap::new()),
            _lock: None,
        }
    }

    /// Opens (creates) the spool for a gateway: locks it (one gateway per spool), moves series
    /// left `running` by a stopped gateway back to `ready`, and times `incoming` series from
    /// now.
    pub fn open(root: &Path) -> std::io::Result<Spool> {
        for s in STATES {
            std::fs::create_dir_all(root.join(s))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("gateway.lock"))?;
        lock.try_lock().map_err(|_| {
            std::io::Error::other("another gateway is using this spool (gateway.lock is held)")
        })?;
        let spool = Spool {
            root: root.to_path_buf(),
            receiving: Mutex::new(HashMap::new()),
            _lock: Some(lock),
        };
        for key in spool.keys("running") {
            log::info!("series {key}: resumed (was running when the gateway stopped)");
            spool.advance("running", "ready", &key)?;
        }
        let mut r = spool.receiving.lock().unwrap_or_else(|p| p.into_inner());
        for key in spool.keys("incoming") {
            r.insert(key, Receiving::new());
        }
        drop(r);
        Ok(spool)
    }

    /// The spool folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A series folder in a state.
    pub fn dir(&self, state: &str, key: &str) -> PathBuf {
        self.root.join(state).join(key)
    }

    /// The series keys in a state, oldest first.
    pub fn keys(&self, state: &str) -> Vec<String> {
        let mut v: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(self.root.join(state))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                is_key(&name).then(|| {
                    let t = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    (t, name)
                })
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, k)| k).collect()
    }

    /// Stores one received instance (durably) in its incoming series folder.
    pub fn store(
        &self,
        info: &SeriesInfo,
        sop_uid: &str,
        bytes: &[u8],
    ) -> std::io::Result<PathBuf> {
        let key = series_key(&info.called_ae_title, &info.series_uid);
        let name = instance_file_name(sop_uid);
        {
            let mut r = self.receiving.lock().unwrap_or_else(|p| p.into_inner());
            let e = r.entry(key.clone()).or_insert_with(Receiving::new);
            e.writing += 1;
            e.last = Instant::now();
            if info.expected_instances.is_some() {
                e.expected = info.expected_instances;
            }
        }
        let result = (|| {
            let dir = self.dir("incoming", &key);
            std::fs::create_dir_all(&dir)?;
            let meta = dir.join("series.json");
            if !meta.exists() {
                let text = serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?;
                autocontour::io::write_bytes_atomically(&meta, &text)
                    .map_err(std::io::Error::other)?;
            }
            let path = dir.join(&name);
            autocontour::io::write_bytes_atomically(&path, bytes).map_err(std::io::Error::other)?;
            sync_dir(&dir)?;
            Ok(path)
        })();
        let mut r = self.receiving.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = r.get_mut(&key) {
            e.writing = e.writing.saturating_sub(1);
            e.last = Instant::now();
            if result.is_ok() {
                e.stored.insert(name);
            }
        }
        result
    }

    /// Moves every incoming series idle for `idle`, or holding every instance its sender
    /// announced, to `ready`; returns their keys.
    pub fn complete_idle(&self, idle: Duration) -> Vec<String> {
        let mut r = self.receiving.lock().unwrap_or_else(|p| p.into_inner());
        let due: Vec<String> = r
            .iter()
            .filter(|(_, s)| s.complete(idle))
            .map(|(k, _)| k.clone())
            .collect();
        let mut done = Vec::new();
        for key in due {
            match self.merge_into_ready(&key) {
                Ok(()) => {
                    r.remove(&key);
                    done.push(key);
                }
                Err(e) => log::warn!("series {key}: cannot move to ready: {e}"),
            }
        }
        done
    }

    /// incoming → ready; instances of a series still waiting in `ready` join it.
    fn merge_into_ready(&self, key: &str) -> std::io::Result<()> {
        let from = self.dir("incoming", key);
        let to = self.dir("ready", key);
        if to.exists() {
            for e in std::fs::read_dir(&from)?.flatten() {
                std::fs::rename(e.path(), to.join(e.file_name()))?;
            }
            std::fs::remove_dir(&from)?;
            sync_dir(&to)?;
            sync_dir(&self.root.join("incoming"))
        } else {
            self.advance("incoming", "ready", key)
        }
    }

    /// Moves a series folder from one state to the next (an older folder of the same key in the
    /// target state is pushed aside as `<key>.<unix ms>`).
    pub fn advance(&self, from: &str, to: &str, key: &str) -> std::io::Result<()> {
        let dest = self.dir(to, key);
        if dest.exists() {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            std::fs::rename(&dest, self.root.join(to).join(format!("{key}.{ms}")))?;
        }
        std::fs::rename(self.dir(from, key), &dest)?;
        sync_dir(&self.root.join(to))?;
        sync_dir(&self.root.join(from))
    }

    /// Reads a series' `series.json`.
    pub fn info(&self, state: &str, key: &str) -> Option<SeriesInfo> {
        let bytes = std::fs::read(self.dir(state, key).join("series.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Reads a result's `send.json`.
    pub fn send_state(&self, state: &str, key: &str) -> SendState {
        std::fs::read(self.dir(state, key).join("send.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes a result's `send.json`.
    pub fn set_send_state(&self, state: &str, key: &str, s: &SendState) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
        autocontour::io::write_bytes_atomically(&self.dir(state, key).join("send.json"), &text)
            .map_err(std::io::Error::other)
    }

    /// The received instances of a series folder.
    pub fn instances(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(series: &str) -> SeriesInfo {
        SeriesInfo {
            series_uid: series.into(),
            study_uid: "1.2".into(),
            called_ae_title: "AUTOCONTOUR".into(),
            calling_ae_title: "SCU".into(),
            series_description: String::new(),
            body_part: String::new(),
            modality: "CT".into(),
            first_received: 0.0,
            expected_instances: None,
        }
    }

    #[test]
    fn file_names_never_leave_the_series_folder() {
        assert_eq!(instance_file_name("1.2.3\0"), "1.2.3.dcm");
        for hostile in ["../../etc/passwd", "1.2/../3", "", ".1", "a b"] {
            let n = instance_file_name(hostile);
            assert!(n.starts_with('x') && !n.contains('/'), "{hostile}: {n}");
        }
        assert!(is_key(&series_key("AE", "1.2.3")));
        assert_ne!(series_key("AE", "1.2.3"), series_key("OTHER", "1.2.3"));
    }

    #[test]
    fn series_move_through_states_and_resume_after_a_stop() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        spool.store(&info("1.2.3"), "1.2.3.1", b"a").unwrap();
        spool.store(&info("1.2.3"), "1.2.3.2", b"b").unwrap();
        let key = series_key("AUTOCONTOUR", "1.2.3");
        assert!(spool.complete_idle(Duration::from_secs(60)).is_empty());
        assert_eq!(
            spool.complete_idle(Duration::ZERO),
            std::slice::from_ref(&key)
        );
        assert_eq!(Spool::instances(&spool.dir("ready", &key)).len(), 2);
        // A late instance joins the series still waiting.
        spool.store(&info("1.2.3"), "1.2.3.3", b"c").unwrap();
        spool.complete_idle(Duration::ZERO);
        assert_eq!(Spool::instances(&spool.dir("ready", &key)).len(), 3);
        spool.advance("ready", "running", &key).unwrap();
        // A series whose sender announced its size completes without waiting.
        let mut two = info("1.2.9");
        two.expected_instances = Some(2);
        spool.store(&two, "1.2.9.1", b"a").unwrap();
        assert!(spool.complete_idle(Duration::from_secs(60)).is_empty());
        spool.store(&two, "1.2.9.2", b"b").unwrap();
        assert_eq!(
            spool.complete_idle(Duration::from_secs(60)),
            [series_key("AUTOCONTOUR", "1.2.9")]
        );
        spool
            .advance("ready", "failed", &series_key("AUTOCONTOUR", "1.2.9"))
            .unwrap();
        // One gateway per spool.
        assert!(Spool::open(tmp.path()).is_err());
        // A restart puts a running series back in ready, once.
        drop(spool);
        let spool = Spool::open(tmp.path()).unwrap();
        assert_eq!(spool.keys("ready"), std::slice::from_ref(&key));
        assert!(spool.keys("running").is_empty());
        assert_eq!(spool.info("ready", &key).unwrap().series_uid, "1.2.3");
        // Sent twice: the older folder is pushed aside.
        spool.advance("ready", "sent", &key).unwrap();
        spool.store(&info("1.2.3"), "1.2.3.1", b"a").unwrap();
        spool.complete_idle(Duration::ZERO);
        spool.advance("ready", "sent", &key).unwrap();
        assert_eq!(spool.keys("sent"), [key]);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("sent")).unwrap().count(),
            2
        );
    }
}
