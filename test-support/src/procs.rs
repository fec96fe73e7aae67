//! Child processes and waiting, for tests that start servers (the gateway, RabbitMQ, Orthanc,
//! dcmtk's storescp) and clients.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 50 ms until it holds; panics naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to a minute) until something accepts TCP connections on loopback `port`.
pub fn wait_port(port: u16) {
    wait_until(
        &format!("port {port} to open"),
        Duration::from_secs(60),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

/// Sends SIGTERM to `child` by PID and waits (up to a minute) for it to exit.
pub fn sigterm(child: &mut Child) -> ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let mut status = None;
    wait_until(
        "the process to stop after SIGTERM",
        Duration::from_secs(60),
        || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        },
    );
    status.expect("an exit status")
}

/// Writes a phantom CT series with `autocontour phantom <dir> --seed <seed> [args]` (distinct
/// seeds give distinct UIDs); returns its `ct/` folder.
pub fn phantom_ct(dir: &Path, seed: &str, args: &[&str]) -> PathBuf {
    let ok = Command::new(crate::cli())
        .arg("phantom")
        .arg(dir)
        .args(["--seed", seed])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("autocontour phantom");
    assert!(ok.success(), "autocontour phantom {} failed", dir.display());
    dir.join("ct")
}
