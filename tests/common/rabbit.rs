//! A three-node RabbitMQ cluster (MQTT plugin) on loopback, owned by one test: the test's side
//! of scripts/rabbitmq-cluster.sh, which does the work and which a human can run too.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

/// Ports the script takes above its base: epmd, AMQP, distribution, MQTT and the CLI's own.
const PORTS_USED: u16 = 40;

/// The cluster's nodes, killed (every process of them, and its epmd) when dropped, so a failing
/// test leaves nothing running.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// Each node's MQTT port, node `i` (0-based) being `lampi{i+1}@localhost`.
    pub mqtt: [u16; 3],
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/rabbitmq-cluster.sh")
}

/// A base with all of the script's ports free on loopback, below the kernel's ephemeral range
/// (32768–60999) so that no client socket takes one meanwhile.
fn free_base() -> u16 {
    let seed = std::process::id() as u16;
    (0..200u16)
        .map(|k| 20000 + (seed.wrapping_add(k.wrapping_mul(97)) % 250) * PORTS_USED)
        .find(|&base| (base..base + PORTS_USED).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()))
        .expect("no free range of loopback ports for the cluster")
}

impl Cluster {
    /// Starts the three nodes and joins 2 and 3 to 1; tens of seconds on a busy machine.
    pub fn start() -> Cluster {
        let base = free_base();
        let cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            mqtt: [base + 21, base + 22, base + 23],
        };
        let status = Command::new(script())
            .arg(cluster.dir.path())
            .arg("start")
            .env("BASE", base.to_string())
            .status()
            .expect("scripts/rabbitmq-cluster.sh runs");
        assert!(
            status.success(),
            "the RabbitMQ cluster did not start (apt-get install rabbitmq-server)"
        );
        cluster
    }

    /// `stop-node` (graceful), `kill-node` or `start-node` for node `i` (0-based). Blocking: run
    /// it off the runtime's workers ([`tokio::task::spawn_blocking`]) while lamps are running.
    pub fn node(&self, command: &str, i: usize) -> impl FnOnce() + Send + 'static {
        let mut run = Command::new(script());
        run.arg(self.dir.path()).arg(command).arg((i + 1).to_string());
        let command = command.to_owned();
        move || {
            let status = run.status().expect("scripts/rabbitmq-cluster.sh runs");
            assert!(status.success(), "rabbitmq-cluster.sh {command} {} failed", i + 1);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg(self.dir.path()).arg("down").status();
    }
}
