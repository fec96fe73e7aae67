//! File output shared by every writer: atomic replacement of a file, and a set of outputs
//! ([`OutputSet`]) that replaces its files together.
//!
//! Every temporary name starts with [`TEMP_PREFIX`] and carries the writing process's id and a
//! per-process token (`.ac-tmp.<pid>.<token>.<n>.<name>`), so that temporary files orphaned by a
//! killed process are recognised and removed by the next [`OutputSet::new`] in that folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Writes through `write` into a temporary file beside `path` (same folder, so the rename stays on
/// one file system), flushes and syncs it, then renames it over `path`. On any error the
/// temporary file is removed and `path` is left as it was: a failure never leaves a partial file.
///
/// Concurrent calls (threads or processes) use distinct temporary names.
///
/// ```no_run
/// use std::io::Write;
/// autocontour::io::write_atomically(std::path::Path::new("out/summary.json"), |f| {
///     f.write_all(b"{}")
/// })?;
/// # Ok::<(), autocontour::Error>(())
/// ```
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_beside(path, "");
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Start of every temporary file name the SDK writes beside an output.
pub const TEMP_PREFIX: &str = ".ac-tmp.";

/// How old an orphaned temporary file must be before [`remove_stale_temps`] removes it even when
/// its process id is in use (by an unrelated process that reused it): 24 hours.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A token of this process, told apart from an earlier process with the same id (containers
/// start every run as the same pid).
fn process_token() -> u64 {
    static TOKEN: OnceLock<u64> = OnceLock::new();
    *TOKEN.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // Mixed with an address so two processes started in the same nanosecond differ.
        now ^ ((&TOKEN as *const _ as u64).rotate_left(32))
    })
}

/// `dir/.ac-tmp.<pid>.<token>.<n>.<tag><name>` for `path` = `dir/name`.
fn temp_beside(path: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{TEMP_PREFIX}{}.{:x}.{n}.{tag}{name}",
        std::process::id(),
        process_token()
    ))
}

/// Whether process `pid` may still be running. Where it cannot be told (no `/proc`), yes.
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

/// Removes the temporary files in `dir` left by processes that ended without cleaning up (killed
/// mid-write): those whose process is gone, those of an earlier process with this process's id,
/// and any older than [`STALE_TEMP_AGE`]. Returns how many were removed; failures are logged,
/// never an error.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let me = std::process::id();
    let token = format!("{:x}", process_token());
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.as_encoded_bytes().strip_prefix(TEMP_PREFIX.as_bytes()) else {
            continue;
        };
        let mut fields = rest.split(|&b| b == b'.');
        let pid = fields
            .next()
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| f.parse::<u32>().ok());
        let their_token = fields.next().unwrap_or_default();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        let stale = match pid {
            None => old,
            Some(pid) if pid == me => their_token != token.as_bytes() || old,
            Some(pid) => !process_alive(pid) || old,
        };
        if stale {
            let p = e.path();
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    log::info!("{}: removed a stale temporary file", p.display());
                    removed += 1;
                }
                Err(err) => log::debug!("{}: not removed: {err}", p.display()),
            }
        }
    }
    removed
}

/// Output files that replace their previous versions together, as far as POSIX allows.
///
/// Each output is first written to a temporary name beside it ([`OutputSet::stage`]); nothing
/// visible changes until [`OutputSet::commit`] renames them all into place, in the order they
/// were staged (stage the summary last). A failure while writing — any stage, a full disk on
/// the last file — leaves every previous output untouched and the temporary files removed
/// (also when the set is dropped uncommitted). If a rename fails during the commit, the files
/// already renamed are rolled back to their previous versions (kept as hard links, or copies,
/// until the commit ends). Creating the set removes temporary files orphaned in the folder by
/// killed processes ([`remove_stale_temps`]).
#[derive(Debug)]
pub struct OutputSet {
    /// (temporary, final) per staged output, in staging order.
    staged: Vec<(PathBuf, PathBuf)>,
    committed: bool,
}

impl OutputSet {
    /// A set of outputs to be written into `dir`; removes stale temporary files there first.
    pub fn new(dir: &Path) -> Self {
        remove_stale_temps(dir);
        OutputSet {
            staged: Vec::new(),
            committed: false,
        }
    }

    /// The temporary path to write `final_path` to; it takes `final_path`'s place at
    /// [`commit`](OutputSet::commit).
    pub fn stage(&mut self, final_path: &Path) -> PathBuf {
        let tmp = temp_beside(final_path, "");
        self.staged.push((tmp.clone(), final_path.to_path_buf()));
        tmp
    }

    /// Renames every staged file into place, in staging order. Every staged file must have been
    /// written. On failure nothing is left changed (see the type's documentation). On success
    /// the folders are synced, so the new outputs survive a crash or power loss from then on.
    pub fn commit(mut self) -> Result<()> {
        for (tmp, _) in &self.staged {
            if let Err(e) = std::fs::metadata(tmp) {
                return Err(Error::io(tmp, e));
            }
        }
        // Keep the previous versions until every rename has succeeded.
        let mut backups: Vec<Option<PathBuf>> = Vec::with_capacity(self.staged.len());
        let mut failure = None;
        for (_, dest) in &self.staged {
            if std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_file()) {
                let b = temp_beside(dest, "previous.");
                let kept =
                    std::fs::hard_link(dest, &b).or_else(|_| std::fs::copy(dest, &b).map(|_| ()));
                match kept {
                    Ok(()) => backups.push(Some(b)),
                    Err(e) => {
                        failure = Some(Error::io(dest, e));
                        break;
                    }
                }
            } else {
                backups.push(None);
            }
        }
        let mut done = 0;
        if failure.is_none() {
            for (tmp, dest) in &self.staged {
                if let Err(e) = std::fs::rename(tmp, dest) {
                    failure = Some(Error::io(dest, e));
                    break;
                }
                done += 1;
            }
        }
        if let Some(err) = failure {
            for ((_, dest), backup) in self.staged.iter().zip(&backups).take(done) {
                let undone = match backup {
                    Some(b) => std::fs::rename(b, dest),
                    None => std::fs::remove_file(dest),
                };
                if let Err(e) = undone {
                    log::error!(
                        "{}: could not restore the previous output: {e}",
                        dest.display()
                    );
                }
            }
            for b in backups.iter().flatten() {
                let _ = std::fs::remove_file(b);
            }
            return Err(err);
        }
        for b in backups.iter().flatten() {
            if let Err(e) = std::fs::remove_file(b) {
                log::debug!("{}: not removed: {e}", b.display());
            }
        }
        // The renames are durable once their folders are synced (the files were synced when
        // written): a caller that acknowledges a job after the commit loses nothing on a crash.
        let mut dirs: Vec<&Path> = self.staged.iter().filter_map(|(_, d)| d.parent()).collect();
        dirs.dedup();
        for d in dirs {
            sync_dir(d);
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputSet {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (tmp, _) in &self.staged {
            if tmp.exists() {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

/// Flushes a folder's entries (renames) to disk where the platform allows it; a failure is
/// logged, not returned (some file systems refuse to sync folders).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    {
        let d = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Err(e) = std::fs::File::open(d).and_then(|f| f.sync_all()) {
            log::debug!("{}: folder not synced: {e}", d.display());
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// [`write_atomically`] for bytes already in memory.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |f| f.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_leaves_no_file_and_success_replaces() {
        let dir = std::env::temp_dir().join(format!("ac-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.bin");
        write_bytes_atomically(&p, b"one").unwrap();
        let err = write_atomically(&p, |f| {
            f.write_all(b"partial")?;
            Err(std::io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty());
        write_bytes_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn output_set_commits_together_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let (a, b) = (d.join("a.dcm"), d.join("summary.json"));
        // First run.
        let mut set = OutputSet::new(d);
        write_bytes_atomically(&set.stage(&a), b"a1").unwrap();
        write_bytes_atomically(&set.stage(&b), b"s1").unwrap();
        assert_eq!(names(d).len(), 2);
        assert!(!a.exists());
        set.commit().unwrap();
        assert_eq!(names(d), ["a.dcm", "summary.json"]);
        // A failure while writing the last output: nothing changes, no temporary file stays.
        let mut set = OutputSet::new(d);
        write_bytes_atomically(&set.stage(&a), b"a2").unwrap();
        let failed = write_atomically(&set.stage(&b), |_| Err(std::io::Error::other("disk full")));
        assert!(failed.is_err());
        drop(set);
        assert_eq!(names(d), ["a.dcm", "summary.json"]);
        assert_eq!(std::fs::read(&a).unwrap(), b"a1");
        // A rename that fails at commit (a folder where the second output goes): the first is
        // rolled back to its previous version.
        let c = d.join("seg.dcm");
        std::fs::create_dir(&c).unwrap();
        std::fs::write(c.join("x"), b"").unwrap();
        let mut set = OutputSet::new(d);
        write_bytes_atomically(&set.stage(&a), b"a3").unwrap();
        write_bytes_atomically(&set.stage(&c), b"c3").unwrap();
        write_bytes_atomically(&set.stage(&b), b"s3").unwrap();
        assert!(set.commit().is_err());
        assert_eq!(names(d), ["a.dcm", "seg.dcm", "summary.json"]);
        assert_eq!(std::fs::read(&a).unwrap(), b"a1");
        assert_eq!(std::fs::read(&b).unwrap(), b"s1");
    }

    #[test]
    fn stale_temporary_files_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        // A process that is gone (pid beyond any pid_max), an earlier process with this pid,
        // a live process (this one), and an unrelated dot file.
        let gone = format!("{TEMP_PREFIX}4294967294.1.0.rtstruct.dcm");
        let earlier = format!("{TEMP_PREFIX}{}.0.3.summary.json", std::process::id());
        for n in [&gone, &earlier, ".keep"] {
            std::fs::write(d.join(n), b"x").unwrap();
        }
        let live = temp_beside(&d.join("seg.dcm"), "");
        std::fs::write(&live, b"x").unwrap();
        let removed = remove_stale_temps(d);
        let left = names(d);
        if Path::new("/proc/self").exists() {
            assert_eq!(removed, 2, "{left:?}");
            assert!(!left.contains(&gone));
        }
        assert!(!left.contains(&earlier));
        assert!(left.contains(&".keep".to_string()));
        assert!(live.exists());
    }
}
