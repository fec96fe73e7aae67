//! A private RabbitMQ broker for tests: Debian's `rabbitmq-server` started on loopback ports of
//! its own (AMQP, Erlang distribution, and its own `epmd`), with its data in a folder the test
//! owns, waited for until it answers the AMQP handshake, and stopped by PID.
//!
//! Install it with `apt-get install rabbitmq-server` (`.ci/run` does). The Debian wrapper
//! `/usr/sbin/rabbitmq-server` switches to the `rabbitmq` user; the broker here runs
//! `/usr/lib/rabbitmq/bin/rabbitmq-server` as the test's user instead.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker's start script (Debian's `rabbitmq-server` package).
pub const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A running private broker; stopped (and its `epmd`) when dropped.
pub struct Broker {
    dir: PathBuf,
    node: String,
    amqp_port: u16,
    dist_port: u16,
    epmd_port: u16,
    epmd: Option<Child>,
    server: Option<Child>,
}

/// A free loopback TCP port for a server a test starts, never the same twice in one test
/// process. It is taken below Linux's ephemeral range (32768–60999): a port from that range can
/// be handed to an outgoing connection as its source port, and a test polling `connect` to a
/// server that is not listening yet can then connect to itself (TCP self-connect) and keep the
/// server from binding. Bound and released: another process may still take it (a small race).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let mut rng = crate::XorShift::new(seed | 1);
    loop {
        let port = 20_000 + (rng.next_u64() % 12_000) as u16;
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

impl Broker {
    /// Starts a broker keeping its data under `dir` (created), and waits until it answers.
    pub fn start(dir: &Path) -> Broker {
        assert!(
            Path::new(SERVER).exists(),
            "{SERVER} is missing: install RabbitMQ (apt-get install rabbitmq-server; .ci/run does)"
        );
        std::fs::create_dir_all(dir).expect("broker folder");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        let amqp_port = free_port();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp_port}\nloopback_users = none\n\
                 log.console = false\n"
            ),
        )
        .expect("rabbitmq.conf");
        let mut b = Broker {
            dir: dir.to_path_buf(),
            node: format!("actest{}x{amqp_port}@localhost", std::process::id()),
            amqp_port,
            dist_port: free_port(),
            epmd_port: free_port(),
            epmd: None,
            server: None,
        };
        b.epmd = Some(
            Command::new("epmd")
                .args(["-port", &b.epmd_port.to_string(), "-address", "127.0.0.1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("epmd (installed with rabbitmq-server's Erlang)"),
        );
        b.launch();
        b
    }

    /// The AMQP URL (guest on loopback).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    /// The broker's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    fn launch(&mut self) {
        let d = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("server.log"))
            .expect("server.log");
        let child = Command::new(SERVER)
            .env("HOME", d)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start rabbitmq-server");
        self.server = Some(child);
        self.wait_ready(Duration::from_secs(120));
    }

    /// Waits until the broker answers an AMQP 0-9-1 protocol header with a method frame
    /// (Connection.Start).
    fn wait_ready(&mut self, limit: Duration) {
        let t = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.amqp_port));
        loop {
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "rabbitmq-server exited ({status}) while starting; see {}",
                    self.dir.join("server.log").display()
                );
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut frame = [0u8; 7];
                if s.write_all(b"AMQP\x00\x00\x09\x01").is_ok()
                    && s.read_exact(&mut frame).is_ok()
                    && frame[0] == 1
                {
                    return;
                }
            }
            assert!(
                t.elapsed() < limit,
                "rabbitmq-server did not answer on port {} within {limit:?}; see {}",
                self.amqp_port,
                self.dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the broker gracefully (SIGTERM by PID) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(60) {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the broker and starts it again on the same ports and data (durable queues and
    /// persistent messages survive).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut e) = self.epmd.take() {
            let _ = e.kill();
            let _ = e.wait();
        }
    }
}
