//! A private Mosquitto on loopback for `lampi swarm run --mosquitto`: a free port, enough
//! descriptors and connections for the fleet, persistence in the run's directory, and a graceful
//! restart (SIGTERM, so it saves its sessions and queued messages) for fault injection.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Mosquitto gets to open its port, or to save and exit.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct LocalMosquitto {
    pub port: u16,
    dir: PathBuf,
    nofile: u64,
    child: Option<Child>,
}

#[derive(Debug, thiserror::Error)]
pub enum MosquittoError {
    #[error("cannot start mosquitto (is it installed?): {0}")]
    Spawn(std::io::Error),
    #[error("cannot write its config or find a free port: {0}")]
    Setup(std::io::Error),
    #[error("mosquitto did not open 127.0.0.1:{0} within {START_TIMEOUT:?}")]
    NotListening(u16),
}

impl LocalMosquitto {
    /// Starts one with its config and database in `dir`, allowed `nofile` descriptors.
    pub fn start(dir: &Path, nofile: u64) -> Result<Self, MosquittoError> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(MosquittoError::Setup)?
            .port();
        let mut broker = LocalMosquitto {
            port,
            dir: dir.to_owned(),
            nofile,
            child: None,
        };
        broker.write_config().map_err(MosquittoError::Setup)?;
        broker.spawn()?;
        Ok(broker)
    }

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
        // SAFETY: only setrlimit, async-signal-safe, runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
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

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it with SIGTERM, so it saves its database, and waits for it to exit.
    pub fn stop(&mut self) {
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

    /// Starts it again on the same port, with the database it saved.
    pub fn restart(&mut self) -> Result<(), MosquittoError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for LocalMosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
