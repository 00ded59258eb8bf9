//! A private Mosquitto on loopback for `lampi swarm run --mosquitto`: a free port, enough
//! descriptors and connections for the fleet, persistence in the run's directory, and a graceful
//! restart (SIGTERM, so it saves its sessions and queued messages) for fault injection.
//!
//! One keeper thread starts, restarts and stops it for the whole run, and the broker is asked to
//! die with that thread (`PR_SET_PDEATHSIG` follows the thread that forked, not the process): so
//! a swarm killed outright, even by SIGKILL, leaves no broker behind holding its port and
//! directory.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long Mosquitto gets to open its port, or to save and exit.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The broker, through its keeper thread.
pub struct LocalMosquitto {
    pub port: u16,
    orders: Option<mpsc::Sender<Restart>>,
    keeper: Option<JoinHandle<()>>,
}

/// Stop, stay down this long, start again; the keeper answers once it listens again.
struct Restart {
    down: Duration,
    done: mpsc::SyncSender<Result<(), MosquittoError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MosquittoError {
    #[error("cannot start mosquitto (is it installed?): {0}")]
    Spawn(std::io::Error),
    #[error("cannot write its config or find a free port: {0}")]
    Setup(std::io::Error),
    #[error("mosquitto did not open 127.0.0.1:{0} within {START_TIMEOUT:?}")]
    NotListening(u16),
    #[error("cannot start the thread that keeps mosquitto: {0}")]
    Keeper(std::io::Error),
    #[error("the thread keeping mosquitto is gone")]
    KeeperGone,
}

impl LocalMosquitto {
    /// Starts one with its config and database in `dir`, allowed `nofile` descriptors.
    pub fn start(dir: &Path, nofile: u64) -> Result<Self, MosquittoError> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(MosquittoError::Setup)?
            .port();
        let mut process = Process {
            port,
            dir: dir.to_owned(),
            nofile,
            child: None,
        };
        process.write_config().map_err(MosquittoError::Setup)?;
        let (orders, inbox) = mpsc::channel::<Restart>();
        let (started_tx, started) = mpsc::sync_channel(1);
        let keeper = std::thread::Builder::new()
            .name("swarm-mosquitto".into())
            .spawn(move || {
                let _ = started_tx.send(process.spawn());
                // Ends when the owner drops the sender: the broker is stopped with it.
                for order in inbox {
                    process.stop();
                    std::thread::sleep(order.down);
                    let _ = order.done.send(process.spawn());
                }
                process.stop();
            })
            .map_err(MosquittoError::Keeper)?;
        let broker = LocalMosquitto {
            port,
            orders: Some(orders),
            keeper: Some(keeper),
        };
        started.recv().map_err(|_| MosquittoError::KeeperGone)??;
        Ok(broker)
    }

    /// Stops it with SIGTERM (it saves its database), waits `down`, and starts it again on the
    /// same port; returns once it listens. Blocks the calling thread throughout.
    pub fn restart(&self, down: Duration) -> Result<(), MosquittoError> {
        let (done, answer) = mpsc::sync_channel(1);
        self.orders
            .as_ref()
            .and_then(|orders| orders.send(Restart { down, done }).ok())
            .ok_or(MosquittoError::KeeperGone)?;
        answer.recv().map_err(|_| MosquittoError::KeeperGone)?
    }
}

impl Drop for LocalMosquitto {
    fn drop(&mut self) {
        drop(self.orders.take());
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

/// The broker process itself; lives on the keeper thread.
struct Process {
    port: u16,
    dir: PathBuf,
    nofile: u64,
    child: Option<Child>,
}

impl Process {
    fn config_path(&self) -> PathBuf {
        self.dir.join("mosquitto.conf")
    }

    fn write_config(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root\n"
        } else {
            ""
        };
        // max_queued_messages 0 (no limit) so the broker drops nothing for a slow subscriber:
        // loss must be the fleet's, not a queue limit's.
        let config = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\nmax_connections -1\nset_tcp_nodelay true\n\
             max_queued_messages 0\nmax_packet_size 262144\npersistence true\npersistence_location {dir}/\n\
             log_dest file {dir}/mosquitto.log\n{user}",
            self.port,
            dir = self.dir.display()
        );
        std::fs::write(self.config_path(), config)
    }

    fn spawn(&mut self) -> Result<(), MosquittoError> {
        let nofile = self.nofile;
        let mut command = Command::new("mosquitto");
        command
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let swarm = std::process::id();
        // SAFETY: only prctl, getppid and setrlimit, async-signal-safe, run between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // SIGTERM rather than SIGKILL: the broker still saves its database.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                // Killed between the fork and the line above: nobody is left to stop it.
                if libc::getppid() as u32 != swarm {
                    return Err(std::io::Error::other("the swarm exited while mosquitto started"));
                }
                let limit = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                // Lowering or an unprivileged raise may fail; mosquitto then runs with what it has.
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
        self.child = Some(command.spawn().map_err(MosquittoError::Spawn)?);
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            if Instant::now() > deadline {
                self.stop();
                return Err(MosquittoError::NotListening(self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops it with SIGTERM, so it saves its database, and waits for it to exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SAFETY: kill with a pid this process spawned and has not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + START_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
    }
}
