//! Test peers: a real Mosquitto per test on a free loopback port, and a small MQTT client.

#![allow(dead_code)] // Each test binary uses a different part of this module.

#[cfg(feature = "ble")]
pub mod ble;
pub mod pki;
pub mod rabbit;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lampi::config::Config;
use lampi::core::colour::Rgb;
use lampi::daemon::{self, LampSetup};
use lampi::lamp_task::LampHandle;
use lampi::led::SimLed;
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A Mosquitto broker owned by one test, stopped when dropped.
pub struct Broker {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Keeps retained messages and sessions across restarts, which are then graceful
    /// (SIGTERM, so Mosquitto saves its database) instead of SIGKILL.
    persistent: bool,
    /// More Mosquitto configuration: `global` first (e.g. `per_listener_settings`), `extra`
    /// after the test's own plain listener (e.g. a TLS listener).
    global: String,
    extra: String,
}

pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .map(|line| line.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Resident memory of a process, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with_persistence(false)
    }

    pub fn start_with_persistence(persistent: bool) -> Broker {
        Broker::start_custom(persistent, "", String::new())
    }

    pub fn start_custom(persistent: bool, global: &str, extra: String) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let mut broker = Broker {
            port: free_port(),
            child: None,
            dir,
            persistent,
            global: global.to_owned(),
            extra,
        };
        broker.restart();
        broker
    }

    /// Starts (again) on the same port, with no memory of retained messages.
    pub fn restart(&mut self) {
        self.stop();
        let config = self.dir.path().join("mosquitto.conf");
        let user = if running_as_root() { "user root\n" } else { "" };
        let persistence = if self.persistent {
            format!(
                "persistence true\npersistence_location {}/\n",
                self.dir.path().display()
            )
        } else {
            "persistence false\n".to_owned()
        };
        std::fs::write(
            &config,
            format!(
                "{}set_tcp_nodelay true\nmax_queued_messages 0\n{persistence}{user}listener {} 127.0.0.1\nallow_anonymous true\n{}",
                self.global, self.port, self.extra
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (apt-get install mosquitto)");
        self.child = Some(child);
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start on {}", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.persistent {
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            } else {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain MQTT client for tests: every message on its subscriptions arrives on `messages`.
pub struct Client {
    pub client: AsyncClient,
    messages: mpsc::UnboundedReceiver<Publish>,
    /// How many SUBACKs have arrived, so [`Client::subscribe`] can wait for its own.
    subacks: watch::Receiver<u64>,
    /// How many PUBACKs have arrived, so [`Client::publish_acked`] can wait for its own.
    pubacks: watch::Receiver<u64>,
    /// How many messages were published (all at QoS 1): the broker acknowledges them in order,
    /// so the n-th is acknowledged once n PUBACKs have come, however late an earlier one was.
    published: std::sync::atomic::AtomicU64,
}

impl Client {
    pub async fn connect(port: u16, id: &str) -> Client {
        Client::connect_with(port, id, true).await
    }

    /// A client whose subscriptions and undelivered QoS 1 messages the broker keeps while it
    /// is away (and across a restart of a persistent broker).
    pub async fn connect_persistent(port: u16, id: &str) -> Client {
        Client::connect_with(port, id, false).await
    }

    async fn connect_with(port: u16, id: &str, clean_session: bool) -> Client {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_clean_session(clean_session);
        Client::start(options, true).await.expect("test client connects")
    }

    /// One connection with `options` (credentials, TLS): the broker's refusal as an error, and
    /// no reconnecting once it is up, so a client the broker throws out stays out.
    pub async fn login(options: MqttOptions) -> Result<Client, rumqttc::ConnectionError> {
        Client::start(options, false).await
    }

    async fn start(mut options: MqttOptions, reconnect: bool) -> Result<Client, rumqttc::ConnectionError> {
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let (tx, messages) = mpsc::unbounded_channel();
        let (subacks_tx, subacks) = watch::channel(0);
        let (pubacks_tx, pubacks) = watch::channel(0);
        let (connected_tx, connected) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut connected_tx = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => subacks_tx.send_modify(|n| *n += 1),
                    Ok(Event::Incoming(Packet::PubAck(_))) => pubacks_tx.send_modify(|n| *n += 1),
                    Ok(_) => {}
                    Err(e) if !reconnect => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(Err(e));
                        }
                        return;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(TIMEOUT, connected)
            .await
            .expect("the broker answers")
            .expect("the client's task reports")?;
        Ok(Client {
            client,
            messages,
            subacks,
            pubacks,
            published: Default::default(),
        })
    }

    /// Subscribes and waits for the broker's SUBACK: until then a message another client
    /// publishes may pass the subscription by, and a broker stopped meanwhile forgets it.
    pub async fn subscribe(&self, topic: &str) {
        let mut subacks = self.subacks.clone();
        let before = *subacks.borrow_and_update();
        self.client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(TIMEOUT, subacks.wait_for(|&n| n > before))
            .await
            .unwrap_or_else(|_| panic!("no SUBACK for {topic} within {TIMEOUT:?}"))
            .expect("client alive");
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        self.published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Publishes at QoS 1 and says whether the broker acknowledged it (PUBACK) within `limit`.
    /// One at a time per client: a PUBACK that comes after its message timed out is not taken
    /// for the next one's.
    pub async fn publish_acked(&self, topic: &str, payload: impl Into<Vec<u8>>, limit: Duration) -> bool {
        let mut pubacks = self.pubacks.clone();
        self.publish(topic, payload).await;
        let mine = self.published.load(std::sync::atomic::Ordering::Relaxed);
        matches!(
            tokio::time::timeout(limit, pubacks.wait_for(|&n| n >= mine)).await,
            Ok(Ok(_))
        )
    }

    /// The next message on `topic` (others are skipped), or a panic after [`TIMEOUT`].
    pub async fn next_on(&mut self, topic: &str) -> Publish {
        self.next_matching(topic, |_| true).await
    }

    pub async fn next_matching(&mut self, topic: &str, wanted: impl Fn(&serde_json::Value) -> bool) -> Publish {
        self.next_where(|message| {
            message.topic == topic
                && wanted(&serde_json::from_slice(&message.payload).unwrap_or(serde_json::Value::Null))
        })
        .await
    }

    /// The next message that `wanted` accepts (others are skipped), or a panic after [`TIMEOUT`].
    pub async fn next_where(&mut self, wanted: impl Fn(&Publish) -> bool) -> Publish {
        self.next_within(TIMEOUT, wanted).await
    }

    /// The next message that `wanted` accepts within `limit` (others are skipped).
    pub async fn next_within(&mut self, limit: Duration, wanted: impl Fn(&Publish) -> bool) -> Publish {
        let found = tokio::time::timeout(limit, async {
            loop {
                let message = self.messages.recv().await.expect("client alive");
                if wanted(&message) {
                    return message;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("nothing wanted arrived within {limit:?}"))
    }

    /// Whether the broker closes this [`Client::login`] connection within `limit`.
    pub async fn dropped_within(&mut self, limit: Duration) -> bool {
        let closed = async { while self.messages.recv().await.is_some() {} };
        tokio::time::timeout(limit, closed).await.is_ok()
    }

    /// Waits `quiet` and returns whatever arrived on `topic` meanwhile.
    pub async fn drain(&mut self, topic: &str, quiet: Duration) -> Vec<Publish> {
        let mut found = self.drain_all(quiet).await;
        found.retain(|message| message.topic == topic);
        found
    }

    /// Waits `quiet` and returns whatever arrived meanwhile.
    pub async fn drain_all(&mut self, quiet: Duration) -> Vec<Publish> {
        tokio::time::sleep(quiet).await;
        let mut found = Vec::new();
        while let Ok(message) = self.messages.try_recv() {
            found.push(message);
        }
        found
    }
}

pub fn json(publish: &Publish) -> serde_json::Value {
    serde_json::from_slice(&publish.payload).expect("payload is JSON")
}

/// The built binary with `args`, run in `dir`, logging warnings only; its whole output.
pub fn lampi_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lampi"))
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// `lampi --config CONFIG run`, the built binary, quiet but for warnings.
pub fn lampi_run(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lampi"));
    command
        .arg("--config")
        .arg(config)
        // A developer's desktop session would otherwise give every test lamp a window.
        .args(["run", "--no-ui"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    command
}

/// `lampi ctl ARGS` aimed at lamp1 on the test broker at `port`.
pub fn ctl_command(port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lampi"));
    command
        .args([
            "ctl",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--thing",
            "lamp1",
        ])
        .args(args);
    command
}

/// A config file for a lamp talking to `port`, keeping state in `state_dir`.
pub fn write_config(dir: &Path, port: u16, state_dir: &Path, client_id: &str) -> PathBuf {
    let path = dir.join("lampi.toml");
    std::fs::write(
        &path,
        format!(
            "[device]\nid = \"test\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{client_id}\"\nreconnect_initial_ms = 50\nreconnect_max_ms = 500\n[led]\nbackend = \"sim\"\nswatch = false\n[light]\ntransition_ms = 100\n",
            state_dir.display()
        ),
    )
    .unwrap();
    path
}

/// The daemon running in this process with a simulated LED, as device `lamp1`.
pub struct RunningLamp {
    pub handle: LampHandle,
    shutdown: CancellationToken,
    done: JoinHandle<()>,
}

impl RunningLamp {
    pub async fn start(port: u16, state_dir: &Path) -> RunningLamp {
        Self::start_with(port, state_dir, |_| {}).await
    }

    /// Starts with the test defaults as changed by `tune`.
    pub async fn start_with(port: u16, state_dir: &Path, tune: impl FnOnce(&mut Config)) -> RunningLamp {
        let text = format!(
            "[device]\nid = \"lamp1\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nreconnect_initial_ms = 50\nreconnect_max_ms = 300\n[light]\ntransition_ms = 100\n"
        );
        let mut config = Config::parse(&text, Path::new("test.toml")).unwrap().config;
        tune(&mut config);
        let setup = LampSetup {
            config,
            state_dir: state_dir.to_owned(),
            led: Box::new(SimLed::new()),
        };
        let shutdown = CancellationToken::new();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let done = tokio::spawn(daemon::run(setup, shutdown.clone(), move |handle, _clock| {
            let _ = ready_tx.send(handle.clone());
        }));
        let handle = ready.await.unwrap();
        RunningLamp { handle, shutdown, done }
    }

    /// A local change, as the touchscreen or a wall switch would make it.
    pub async fn set_on(&self, on: bool, client: &str) {
        let change = lampi::core::light::LightChange {
            on: Some(on),
            ..Default::default()
        };
        let command = lampi::lamp_task::Command::Set {
            change,
            transition: None,
            client: client.into(),
        };
        self.handle.commands.send(command).await.unwrap();
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(TIMEOUT, self.done)
            .await
            .expect("clean shutdown")
            .unwrap();
    }

    pub async fn output_settles_at(&mut self, expected: Rgb) {
        let close = |a: Rgb| (a.r - expected.r).abs() + (a.g - expected.g).abs() + (a.b - expected.b).abs() < 1e-9;
        let settled = tokio::time::timeout(TIMEOUT, self.handle.output.wait_for(|o| close(*o)))
            .await
            .is_ok();
        assert!(
            settled,
            "LED never showed {expected:?}; it shows {:?}",
            *self.handle.output.borrow()
        );
    }
}
