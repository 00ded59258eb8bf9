//! `lampi swarm raw`: the broker's own ceiling, measured with the least an MQTT client can do —
//! rumqttc as the lamp uses it, and no lamp code — so that a swarm's throughput reads as a share
//! of it, and a load generator's cost per message can be compared with another's.
//!
//! - `firehose`: publishers send as fast as the broker acknowledges (or at a rate) to topics
//!   every subscriber receives: the broker's PUBLISH ceiling.
//! - `echo`: the swarm's shape without the lamp. Echo clients each subscribe to their own
//!   `…/lamp/set_config` and republish each payload to `…/lamp/changed`; apps send `set_config`
//!   at the rate, each to its share of the echo clients, and time set_config → changed.
//!
//! A run talks to the one broker it is given, connects nothing that was not asked for, stops
//! sending at its duration or its message budget, waits at most [`GRACE`] for the answers
//! still owed, and disconnects. Connections are not remade: one lost is counted as failed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rumqttc::{AsyncClient, ClientError, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use serde::Deserialize;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

use super::measure;
use super::report::{Baseline, Latency, Parameters, Report, Source};

/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most connections of one kind.
pub const MAX_CONNECTIONS: u32 = 100_000;
/// The highest rate, in messages a second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// How long answers still owed when sending stops are waited for.
pub const GRACE: Duration = Duration::from_secs(5);
/// Messages each connection may have unacknowledged (rumqttc's default, which the lamp keeps).
const INFLIGHT: u16 = 100;
/// Connections being set up at once: Mosquitto listens with a backlog of 100, and a connect
/// storm past it waits a second for SYN retransmits.
const CONNECTING: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Firehose,
    Echo,
}

impl FromStr for Pattern {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "firehose" => Ok(Self::Firehose),
            "echo" => Ok(Self::Echo),
            _ => Err(format!("{text:?} is not a pattern: firehose or echo")),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Firehose => "firehose",
            Self::Echo => "echo",
        })
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `HOST:PORT`, given explicitly.
    pub broker: String,
    pub pattern: Pattern,
    /// Firehose: publishers. Echo: echo clients (the lamps' stand-ins).
    pub connections: u32,
    /// Firehose: subscribers, each receiving every message. Echo: apps.
    pub peers: u32,
    /// Messages a second all publishers (apps) send together; `None`: as fast as the broker
    /// acknowledges, [`INFLIGHT`] unacknowledged per connection.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// The most messages the publishers (apps) send; by default 110 % of rate × duration, or
    /// 100,000 a second of duration at full speed.
    pub max_messages: Option<u64>,
    pub qos: QoS,
    pub run_id: String,
    /// Topics are `{prefix}/{run_id}/…`.
    pub prefix: String,
}

/// Why a run did not happen, with the exit status `lampi swarm raw` gives it (sysexits(3)).
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("{0}")]
    Plan(String),
    #[error("{0}")]
    Descriptors(String),
    #[error("{ready} of {total} connections to {broker} ready (waiting at most {waited:?}); first error: {error}")]
    Connect {
        broker: String,
        ready: usize,
        total: usize,
        waited: Duration,
        error: String,
    },
}

impl RawError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Plan(_) => 78,
            Self::Descriptors(_) | Self::Connect { .. } => 69,
        }
    }
}

impl Plan {
    fn host_port(&self) -> Result<(String, u16), RawError> {
        let bad = || RawError::Plan(format!("--broker {:?} is not HOST:PORT", self.broker));
        let (host, port) = self.broker.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok((host.to_owned(), port))
    }

    /// The message budget, after checking every bound.
    pub fn validate(&self) -> Result<u64, RawError> {
        let fail = |why: String| Err(RawError::Plan(why));
        self.host_port()?;
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) || !(1..=MAX_CONNECTIONS).contains(&self.peers) {
            return fail(format!("connections, subscribers and apps are 1 to {MAX_CONNECTIONS}"));
        }
        if self.pattern == Pattern::Echo && self.peers > self.connections {
            return fail("echo: more apps than echo clients".to_owned());
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return fail(format!("the duration is over 0 and at most {MAX_DURATION:?}"));
        }
        if let Some(rate) = self.rate
            && !(rate > 0.0 && rate <= MAX_RATE)
        {
            return fail(format!("the rate is over 0 and at most {MAX_RATE} messages a second"));
        }
        for (what, text) in [("run id", &self.run_id), ("prefix", &self.prefix)] {
            if text.is_empty() || text.contains(['+', '#', '\0']) {
                return fail(format!("the {what} must not be empty nor hold + or #"));
            }
        }
        let default = match self.rate {
            Some(rate) => (rate * self.duration.as_secs_f64() * 11.0 / 10.0).ceil() as u64,
            None => (100_000.0 * self.duration.as_secs_f64()).ceil() as u64,
        };
        match self.max_messages {
            Some(0) => fail("--max-messages is at least 1".to_owned()),
            Some(n) => Ok(n),
            None => Ok(default.max(1)),
        }
    }

    fn topic(&self, rest: &str) -> String {
        format!("{}/{}/{rest}", self.prefix, self.run_id)
    }

    /// Echo client `i`'s `lamp/` topic prefix, `…/a{app}/{id}/`: one process, so no lamp offset.
    fn lamp_prefix(&self, i: u32) -> String {
        self.topic(&format!("a{}/{}-{i:05}/lamp/", i % self.peers, self.run_id))
    }
}

/// What the whole run counted; one lock, taken once per MQTT event.
struct Tally {
    /// The app-level messages: firehose publishes and deliveries; echo set_config and changed.
    sent: u64,
    acked: u64,
    received: u64,
    duplicates: u64,
    publish_in: u64,
    publish_out: u64,
    puback: Latency,
    round_trip: Latency,
    /// The timeline holds [`Tally::round_trip`] for echo, [`Tally::puback`] for firehose.
    report: Report,
    pattern: Pattern,
    made: u64,
    failed: u64,
    last_received: Option<Instant>,
}

impl Tally {
    fn point(&mut self) -> &mut super::report::Point {
        self.report.timeline.at(measure::unix_ms(SystemTime::now()))
    }

    fn record_puback(&mut self, us: u64) {
        self.acked += 1;
        self.puback.record(us);
        if self.pattern == Pattern::Firehose {
            self.point().latency_us.record(us);
        }
    }

    fn record_received(&mut self, round_trip_us: Option<u64>) {
        self.received += 1;
        self.last_received = Some(Instant::now());
        let point = self.point();
        point.received += 1;
        if let Some(us) = round_trip_us {
            point.latency_us.record(us);
            self.round_trip.record(us);
        }
    }
}

type Shared = Arc<Mutex<Tally>>;

fn lock(tally: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().expect("no task panics holding the tally")
}

/// A sender's publishes, from its `publish` call to the broker's PUBACK. rumqttc assigns the
/// packet id inside its event loop and reports it as `Outgoing::Publish(pkid)` in the order of
/// the calls (one sender per connection), so call times queue until their pkid is known.
#[derive(Default)]
struct Inflight {
    called: VecDeque<Instant>,
    by_pkid: HashMap<u16, Instant>,
    /// Echo apps: set_config sequence numbers not answered yet, with their call times.
    unanswered: HashMap<u64, Instant>,
}

enum Role {
    /// Publishes (firehose publisher, echo app); `app` also receives `changed`.
    Sender {
        inflight: Arc<Mutex<Inflight>>,
        app: bool,
    },
    Subscriber,
    /// Republishes each `set_config` to `changed`, queueing what rumqttc's request channel has
    /// no room for rather than waiting on it from inside the event loop.
    Echo {
        changed: String,
        qos: QoS,
        backlog: VecDeque<Vec<u8>>,
    },
}

struct Connection {
    client: AsyncClient,
    task: JoinHandle<()>,
}

/// The `client` field's sequence number: `…-{seq}`.
fn sequence(payload: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Echoed<'a> {
        #[serde(borrow)]
        client: &'a str,
    }
    let echoed: Echoed = serde_json::from_slice(payload).ok()?;
    echoed.client.rsplit_once('-')?.1.parse().ok()
}

/// A `set_config`-sized message: the app's id and sequence number in `client`.
fn payload(sender: &str, seq: u64) -> Vec<u8> {
    format!(
        r#"{{"client":"{sender}-{seq}","on":true,"brightness":{:.3}}}"#,
        (seq % 1000) as f64 / 1000.0
    )
    .into_bytes()
}

/// Drives one connection's event loop until it is told to disconnect or the connection fails.
/// How a connection tells it is up: through `tx` once connected (and subscribed, if
/// `subscribes`), holding a permit of `gate` while it connects.
struct Ready {
    tx: oneshot::Sender<Result<(), String>>,
    subscribes: bool,
    gate: Arc<Semaphore>,
}

async fn drive(mut eventloop: EventLoop, mut role: Role, client: AsyncClient, tally: Shared, ready: Ready) {
    let mut connecting = Some(ready.gate.acquire_owned().await.expect("the gate is never closed"));
    let subscribes = ready.subscribes;
    let mut ready = Some(ready.tx);
    loop {
        let event = match eventloop.poll().await {
            Ok(event) => event,
            Err(e) => {
                drop(connecting.take());
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Err(e.to_string()));
                    }
                    None => lock(&tally).failed += 1,
                }
                return;
            }
        };
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                lock(&tally).made += 1;
                // The permit is held only while connecting.
                drop(connecting.take());
                if !subscribes && let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            Event::Incoming(Packet::SubAck(_)) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let mut tally = lock(&tally);
                tally.publish_in += 1;
                if let Role::Sender { inflight, .. } = &role {
                    let mut inflight = inflight.lock().expect("no panics holding it");
                    if let Some(called) = inflight.called.pop_front()
                        && pkid != 0
                    {
                        inflight.by_pkid.insert(pkid, called);
                    }
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Role::Sender { inflight, .. } = &role {
                    let called = inflight.lock().expect("no panics holding it").by_pkid.remove(&ack.pkid);
                    if let Some(called) = called {
                        lock(&tally).record_puback(called.elapsed().as_micros() as u64);
                    }
                }
            }
            Event::Incoming(Packet::Publish(publish)) => {
                let now = Instant::now();
                match &mut role {
                    Role::Sender { inflight, app: true } => {
                        let asked = sequence(&publish.payload)
                            .and_then(|seq| inflight.lock().expect("no panics holding it").unanswered.remove(&seq));
                        let mut tally = lock(&tally);
                        tally.publish_out += 1;
                        match asked {
                            Some(at) => tally.record_received(Some((now - at).as_micros() as u64)),
                            None => tally.duplicates += 1,
                        }
                    }
                    Role::Sender { app: false, .. } => lock(&tally).publish_out += 1,
                    Role::Subscriber => {
                        let mut tally = lock(&tally);
                        tally.publish_out += 1;
                        tally.record_received(None);
                    }
                    Role::Echo { backlog, .. } => {
                        lock(&tally).publish_out += 1;
                        backlog.push_back(publish.payload.to_vec());
                    }
                }
            }
            Event::Outgoing(Outgoing::Disconnect) => return,
            _ => {}
        }
        if let Role::Echo { changed, qos, backlog } = &mut role {
            while let Some(payload) = backlog.front() {
                match client.try_publish(changed.as_str(), *qos, false, payload.clone()) {
                    Ok(()) => {
                        backlog.pop_front();
                    }
                    Err(ClientError::TryRequest(_)) => break,
                    Err(_) => return,
                }
            }
        }
    }
}

/// Starts one connection; `subscribe` (if any) is sent right after CONNECT.
fn start(
    options: MqttOptions,
    role: Role,
    subscribe: Option<(String, QoS)>,
    tally: &Shared,
    gate: &Arc<Semaphore>,
) -> (Connection, oneshot::Receiver<Result<(), String>>) {
    let (client, mut eventloop) = AsyncClient::new(options, INFLIGHT as usize);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let subscribes = subscribe.is_some();
    if let Some((topic, qos)) = subscribe {
        client
            .try_subscribe(topic, qos)
            .expect("an empty request channel has room");
    }
    let (ready_tx, ready) = oneshot::channel();
    let ready_tx = Ready {
        tx: ready_tx,
        subscribes,
        gate: gate.clone(),
    };
    let task = tokio::spawn(drive(eventloop, role, client.clone(), tally.clone(), ready_tx));
    (Connection { client, task }, ready)
}

/// One sender's loop: at its share of the rate (or as fast as acknowledged) until `end` or the
/// shared budget runs out.
struct Pace {
    /// The time between two of this sender's messages; `None`: back to back.
    interval: Option<Duration>,
    first: Instant,
    end: Instant,
}

/// A connection that publishes: a firehose publisher, or an echo app sending `set_config` to
/// `topics` in turn.
struct Sender {
    client: AsyncClient,
    inflight: Arc<Mutex<Inflight>>,
    name: String,
    topics: Vec<String>,
    qos: QoS,
    app: bool,
}

async fn send(sender: Sender, pace: Pace, budget: Arc<AtomicU64>, tally: Shared) {
    let Sender {
        client,
        inflight,
        name,
        topics,
        qos,
        app,
    } = sender;
    for seq in 0u64.. {
        if let Some(interval) = pace.interval {
            let at = pace.first + interval.mul_f64(seq as f64);
            if at >= pace.end {
                return;
            }
            tokio::time::sleep_until(at.into()).await;
        } else if Instant::now() >= pace.end {
            return;
        }
        if budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
        {
            return;
        }
        let called = Instant::now();
        {
            let mut inflight = inflight.lock().expect("no panics holding it");
            inflight.called.push_back(called);
            if app {
                inflight.unanswered.insert(seq, called);
            }
        }
        {
            let mut tally = lock(&tally);
            tally.sent += 1;
            tally.point().sent += 1;
        }
        let topic = &topics[seq as usize % topics.len()];
        if client
            .publish(topic.as_str(), qos, false, payload(&name, seq))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Runs the plan and reports what it measured.
pub async fn run(plan: &Plan) -> Result<Report, RawError> {
    let budget = plan.validate()?;
    let (host, port) = plan.host_port()?;
    super::rlimit::raise_nofile(u64::from(plan.connections) + u64::from(plan.peers) + 64)
        .map_err(RawError::Descriptors)?;
    let started = SystemTime::now();
    let rss_before = measure::rss_bytes();
    let parameters = Parameters {
        run_id: plan.run_id.clone(),
        brokers: vec![plan.broker.clone()],
        lamps: if plan.pattern == Pattern::Echo {
            u64::from(plan.connections)
        } else {
            0
        },
        apps: if plan.pattern == Pattern::Echo {
            u64::from(plan.peers)
        } else {
            0
        },
        rate_per_s: plan.rate.unwrap_or(0.0),
        mix: match plan.pattern {
            Pattern::Echo => BTreeMap::from([("set_config".to_owned(), 1.0)]),
            Pattern::Firehose => BTreeMap::new(),
        },
        qos: plan.qos as u8,
        ramp_per_s: 0.0,
        duration_ms: plan.duration.as_millis() as u64,
        topic_prefix: format!("{}/{}/", plan.prefix, plan.run_id),
    };
    let source = Source {
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| "unknown".to_owned(), |h| h.trim().to_owned()),
        pid: std::process::id(),
        started_unix_ms: measure::unix_ms(started),
        lamps: [0, parameters.lamps],
        cpu_s: 0.0,
        peak_rss_bytes: 0,
        bytes_per_lamp: 0,
    };
    let timeline = match plan.pattern {
        Pattern::Echo => "set_config_changed",
        Pattern::Firehose => "publish_puback",
    };
    let tally: Shared = Arc::new(Mutex::new(Tally {
        sent: 0,
        acked: 0,
        received: 0,
        duplicates: 0,
        publish_in: 0,
        publish_out: 0,
        puback: Latency::new(),
        round_trip: Latency::new(),
        report: Report::new(parameters, source, timeline),
        pattern: plan.pattern,
        made: 0,
        failed: 0,
        last_received: None,
    }));

    let options = |id: String| {
        let mut options = MqttOptions::new(id, host.clone(), port);
        options.set_inflight(INFLIGHT);
        options.set_keep_alive(Duration::from_secs(30));
        options
    };
    // Receivers first: a message sent before its subscriber is there would be lost to the count.
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for i in 0..plan.connections.max(plan.peers) {
        match plan.pattern {
            Pattern::Firehose => {
                if i < plan.peers {
                    let id = format!("{}-s{i:05}", plan.run_id);
                    receivers.push((options(id), Role::Subscriber, Some(plan.topic("fire/+"))));
                }
                if i < plan.connections {
                    senders.push((format!("f{i}"), vec![plan.topic(&format!("fire/{i}"))]));
                }
            }
            Pattern::Echo => {
                if i < plan.connections {
                    let lamp = plan.lamp_prefix(i);
                    let role = Role::Echo {
                        changed: format!("{lamp}changed"),
                        qos: plan.qos,
                        backlog: VecDeque::new(),
                    };
                    receivers.push((
                        options(format!("{}-{i:05}", plan.run_id)),
                        role,
                        Some(format!("{lamp}set_config")),
                    ));
                }
                if i < plan.peers {
                    let topics = (i..plan.connections)
                        .step_by(plan.peers as usize)
                        .map(|lamp| format!("{}set_config", plan.lamp_prefix(lamp)))
                        .collect();
                    senders.push((format!("a{i}"), topics));
                }
            }
        }
    }
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let mut connections = Vec::new();
    let mut pending = Vec::new();
    for (options, role, subscribe) in receivers {
        let (connection, ready) = start(options, role, subscribe.map(|t| (t, plan.qos)), &tally, &gate);
        connections.push(connection);
        pending.push(ready);
    }
    let mut sending = Vec::new();
    for (name, topics) in senders {
        let inflight = Arc::new(Mutex::new(Inflight::default()));
        let app = plan.pattern == Pattern::Echo;
        let role = Role::Sender {
            inflight: inflight.clone(),
            app,
        };
        let subscribe = app.then(|| (plan.topic(&format!("{name}/+/lamp/changed")), plan.qos));
        let (connection, ready) = start(
            options(format!("{}-{name}", plan.run_id)),
            role,
            subscribe,
            &tally,
            &gate,
        );
        sending.push(Sender {
            client: connection.client.clone(),
            inflight,
            name,
            topics,
            qos: plan.qos,
            app,
        });
        connections.push(connection);
        pending.push(ready);
    }
    let total = pending.len();
    let waited = Duration::from_secs(10) + Duration::from_millis(total as u64);
    let ready = wait_ready(pending, waited).await;
    if let Err((ready, error)) = ready {
        stop(connections).await;
        return Err(RawError::Connect {
            broker: plan.broker.clone(),
            ready,
            total,
            waited,
            error,
        });
    }
    let rss_connected = measure::rss_bytes();

    let first = Instant::now();
    let end = first + plan.duration;
    let budget = Arc::new(AtomicU64::new(budget));
    let senders_count = sending.len();
    let per_sender = plan
        .rate
        .map(|rate| Duration::from_secs_f64(sending.len() as f64 / rate));
    let senders: Vec<_> = sending
        .into_iter()
        .enumerate()
        .map(|(k, sender)| {
            // Spread the senders' ticks over one interval rather than all on the same instant.
            let offset = per_sender.map_or(Duration::ZERO, |i| i.mul_f64(k as f64 / senders_count as f64));
            let pace = Pace {
                interval: per_sender,
                first: first + offset,
                end,
            };
            tokio::spawn(send(sender, pace, budget.clone(), tally.clone()))
        })
        .collect();
    for sender in senders {
        let _ = sender.await;
    }
    let sent_all = Instant::now();
    let drained = sent_all + GRACE;
    while Instant::now() < drained && owed(&lock(&tally), plan) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Receivers come first: for echo, the first `connections` are the echo clients.
    let connected_at_end = connections[..plan.connections as usize]
        .iter()
        .filter(|c| !c.task.is_finished())
        .count() as u64;
    stop(connections).await;

    let tally = Arc::try_unwrap(tally)
        .ok()
        .expect("every task has ended")
        .into_inner()
        .expect("no panics");
    let window = tally.last_received.map_or(sent_all, |last| last.max(sent_all)) - first;
    let mut report = tally.report;
    let source = &mut report.sources[0];
    source.cpu_s = measure::cpu_seconds();
    source.peak_rss_bytes = measure::peak_rss_bytes();
    if plan.pattern == Pattern::Echo {
        source.bytes_per_lamp = rss_connected.saturating_sub(rss_before) / total as u64;
    }
    report.connections.made = tally.made;
    report.connections.failed = tally.failed;
    report.connections.connected_at_end = match plan.pattern {
        Pattern::Echo => connected_at_end,
        Pattern::Firehose => 0,
    };
    if plan.pattern == Pattern::Echo {
        let counts = &mut report.messages.set_config;
        counts.sent = tally.sent;
        counts.acked = tally.acked;
        counts.received = tally.received;
        counts.duplicates = tally.duplicates;
        report.latency_us.set_config_changed = tally.round_trip;
    }
    report.latency_us.publish_puback = tally.puback;
    let (publishers, subscribers) = match plan.pattern {
        Pattern::Firehose => (plan.connections, plan.peers),
        Pattern::Echo => (plan.peers, plan.connections),
    };
    report.baseline = Some(Baseline {
        pattern: plan.pattern.to_string(),
        publishers: u64::from(publishers),
        subscribers: u64::from(subscribers),
        publish_in: tally.publish_in,
        publish_out: tally.publish_out,
        window_ms: window.as_millis() as u64,
    });
    Ok(report)
}

/// Answers still owed: unacknowledged publishes, and echoes or deliveries not yet received.
fn owed(tally: &Tally, plan: &Plan) -> u64 {
    let acks = if plan.qos == QoS::AtMostOnce {
        0
    } else {
        tally.sent.saturating_sub(tally.acked)
    };
    let answers = match plan.pattern {
        Pattern::Echo => tally.sent.saturating_sub(tally.received + tally.duplicates),
        Pattern::Firehose => (tally.sent * u64::from(plan.peers)).saturating_sub(tally.received),
    };
    acks + answers
}

/// Waits for every connection to be up (and subscribed), at most `limit`.
async fn wait_ready(
    pending: Vec<oneshot::Receiver<Result<(), String>>>,
    limit: Duration,
) -> Result<(), (usize, String)> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut ready = 0;
    for receiver in pending {
        match tokio::time::timeout_at(deadline, receiver).await {
            Ok(Ok(Ok(()))) => ready += 1,
            Ok(Ok(Err(error))) => return Err((ready, error)),
            Ok(Err(_)) => return Err((ready, "the connection's task ended".to_owned())),
            Err(_) => return Err((ready, "timed out".to_owned())),
        }
    }
    Ok(())
}

/// Disconnects every connection and ends its task (after a second, whatever it is doing).
async fn stop(connections: Vec<Connection>) {
    for connection in &connections {
        let _ = connection.client.try_disconnect();
    }
    for connection in connections {
        let abort = connection.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(1), connection.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            broker: "127.0.0.1:1883".to_owned(),
            pattern: Pattern::Echo,
            connections: 10,
            peers: 2,
            rate: Some(100.0),
            duration: Duration::from_secs(2),
            max_messages: None,
            qos: QoS::AtLeastOnce,
            run_id: "r".to_owned(),
            prefix: "raw".to_owned(),
        }
    }

    #[test]
    fn bounds_are_checked_before_anything_connects() {
        assert_eq!(plan().validate().unwrap(), 220);
        let bad = [
            Plan {
                broker: "localhost".to_owned(),
                ..plan()
            },
            Plan {
                broker: "127.0.0.1:0".to_owned(),
                ..plan()
            },
            Plan {
                duration: Duration::from_secs(3601),
                ..plan()
            },
            Plan {
                rate: Some(0.0),
                ..plan()
            },
            Plan {
                rate: Some(2e6),
                ..plan()
            },
            Plan { peers: 11, ..plan() },
            Plan {
                connections: 0,
                ..plan()
            },
            Plan {
                prefix: "a/#".to_owned(),
                ..plan()
            },
            Plan {
                max_messages: Some(0),
                ..plan()
            },
        ];
        for plan in bad {
            assert!(matches!(plan.validate(), Err(RawError::Plan(_))), "{plan:?}");
        }
        assert_eq!(Plan { rate: None, ..plan() }.validate().unwrap(), 200_000);
    }

    #[test]
    fn echo_apps_share_the_clients_and_answers_carry_their_sequence() {
        let plan = plan();
        assert_eq!(plan.lamp_prefix(3), "raw/r/a1/r-00003/lamp/");
        assert_eq!(sequence(&payload("a1", 42)), Some(42));
        assert_eq!(sequence(br#"{"client":"x"}"#), None);
    }
}
