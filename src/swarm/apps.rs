//! The apps: each one MQTT connection (a persistent session with a fixed client id, so its
//! subscriptions and the answers queued for it survive a broker restart) that drives its own
//! partition of the lamps: it subscribes with one wildcard per answer topic, sends `desired`
//! updates and `set_config` at its share of the rate, and keeps the [`LampLedger`] of each lamp.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS, Request,
    TlsConfiguration, Transport,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::config::BrokerAddr;

use super::ledger::{self, Kind, LampLedger, Light, PkidMap, Seen};
use super::measure::unix_ms;
use super::naming::Names;
use super::report::{Counts, Latencies, Lost, Timeline};

/// Counters the progress line reads while the run goes on.
#[derive(Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub received: AtomicU64,
    pub errors: AtomicU64,
    /// The timeline's latency so far, coarsely: the report's HDR histograms stay with their
    /// apps until the end, and the line needs no more than "about how slow".
    pub latency: CoarseLatency,
}

/// Latencies counted in buckets a quarter of an octave wide (a bucket's bound is up to 19 % above), up to 2^20 µs (about a
/// second; longer ones count there), without a lock: many apps record, the line reads.
pub struct CoarseLatency([AtomicU64; COARSE_BUCKETS]);

const COARSE_BUCKETS: usize = 81;

impl Default for CoarseLatency {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl CoarseLatency {
    pub fn record(&self, us: u64) {
        let bucket = ((us.max(1) as f64).log2() * 4.0).ceil() as usize;
        self.0[bucket.min(COARSE_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// The upper bound of the bucket holding quantile `q`, in µs; `None` before any sample.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let wanted = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        counts
            .iter()
            .position(|&n| {
                seen += n;
                seen >= wanted
            })
            .map(|bucket| 2f64.powf(bucket as f64 / 4.0).round() as u64)
    }
}

/// When an app sends, and when it asks every lamp for its final state.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub send_from: Instant,
    pub send_until: Instant,
    /// After the grace period: the final shadow `get` to every lamp.
    pub final_get: Instant,
    /// Answers to the final `get` later than this are not waited for.
    pub done_by: Instant,
}

pub struct AppSetup {
    pub app: u64,
    pub names: Names,
    /// The local indexes of its lamps.
    pub lamps: Vec<u64>,
    /// In the order tried: a cluster's nodes rotated per app, so apps spread over them; an app
    /// fails over to the next when its connection fails, as a lamp does.
    pub brokers: Vec<BrokerAddr>,
    /// Its TLS configuration, loaded before the run (with its own certificate), if any.
    pub tls: Option<TlsConfiguration>,
    pub qos: QoS,
    /// Messages a second (this app's share).
    pub rate: f64,
    pub desired_share: f64,
    /// This app's share of the run's message budget.
    pub max_messages: u64,
    /// The run's start, for µs timestamps.
    pub epoch: Instant,
    /// Whose latency the timeline points keep.
    pub timeline_kind: Kind,
}

/// What an app saw, for the report.
pub struct AppResult {
    pub desired: Counts,
    pub set_config: Counts,
    pub latency_us: Latencies,
    pub timeline: Timeline,
    /// Its lost intents, each with the lamp's device id (all of them; the report lists a few).
    pub lost: Vec<Lost>,
    pub connects: u64,
    pub failed_connects: u64,
    /// Lamps that never answered the final `get`.
    pub unanswered: u64,
}

enum Tag {
    Intent { lamp: u64, seq: u64 },
    FinalGet,
}

enum Pumped {
    Event(Event),
    /// The connection failed; the client has set aside this many publishes not yet sent,
    /// which it drops if the broker has lost the session.
    Failed {
        unsent: usize,
    },
}

struct App {
    setup: AppSetup,
    client: AsyncClient,
    ledgers: HashMap<u64, LampLedger>,
    pkids: PkidMap<Tag>,
    counts: [Counts; 2],
    latency_us: Latencies,
    timeline: Timeline,
    progress: Arc<Progress>,
    connected: bool,
    connects: u64,
    failed_connects: u64,
    /// Publishes the client set aside unsent at the last connection failure.
    unsent: usize,
    subacks: usize,
    answered: HashMap<u64, bool>,
}

/// Runs one app: connects, subscribes (then says so on `subscribed`), follows `schedule` once
/// the controller sets it, and returns what it saw after the final `get`s.
pub async fn run(
    setup: AppSetup,
    progress: Arc<Progress>,
    subscribed: mpsc::Sender<u64>,
    mut schedule: watch::Receiver<Option<Schedule>>,
) -> AppResult {
    let brokers: Vec<MqttOptions> = setup
        .brokers
        .iter()
        .map(|broker| {
            let mut options = MqttOptions::new(setup.names.app_client_id(setup.app), broker.host.clone(), broker.port);
            if let Some(tls) = &setup.tls {
                options.set_transport(Transport::tls_with_config(tls.clone()));
            }
            options
                .set_clean_session(false)
                .set_keep_alive(Duration::from_secs(30))
                .set_max_packet_size(1 << 20, 1 << 20)
                .set_inflight(1000);
            options
        })
        .collect();
    let (client, mut eventloop) = AsyncClient::new(brokers[0].clone(), 1024);
    // Nagle's algorithm would add up to 40 ms to each small publish.
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let pump = tokio::spawn(pump(eventloop, brokers, events_tx));
    let ledgers = setup.lamps.iter().map(|&l| (l, LampLedger::default())).collect();
    let timeline = Timeline::new(timeline_latency(setup.timeline_kind));
    let mut app = App {
        setup,
        client,
        ledgers,
        pkids: PkidMap::default(),
        counts: Default::default(),
        latency_us: Latencies::default(),
        timeline,
        progress,
        connected: false,
        connects: 0,
        failed_connects: 0,
        unsent: 0,
        subacks: 0,
        answered: HashMap::new(),
    };
    let filters = app.setup.names.app_filters(app.setup.app).len();

    let plan = loop {
        tokio::select! {
            Some(event) = events.recv() => {
                app.handle(event).await;
                if app.subacks == filters {
                    app.subacks += 1; // said once
                    let _ = subscribed.send(app.setup.app).await;
                }
            }
            changed = schedule.changed() => {
                match changed {
                    Ok(()) => if let Some(plan) = *schedule.borrow() { break plan },
                    // The run ended before sending began.
                    Err(_) => return app.finish(),
                }
            }
        }
    };

    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0u64;
    let mut gets_sent = false;
    loop {
        let now = Instant::now();
        if now >= plan.done_by || (gets_sent && app.answered.len() == app.ledgers.len()) {
            break;
        }
        tokio::select! {
            Some(event) = events.recv() => app.handle(event).await,
            _ = ticker.tick() => {
                if now >= plan.send_from && now < plan.send_until && app.connected {
                    let elapsed = now.duration_since(plan.send_from).as_secs_f64();
                    let due = ((elapsed * app.setup.rate) as u64).min(app.setup.max_messages);
                    // An app that was offline catches up, at ten times its rate at most.
                    let due = due.min(sent + (app.setup.rate / 10.0).ceil() as u64 + 1);
                    while sent < due {
                        app.send(sent).await;
                        sent += 1;
                    }
                } else if now >= plan.final_get && !gets_sent && app.connected {
                    app.final_gets().await;
                    gets_sent = true;
                }
            }
        }
    }
    let _ = app.client.disconnect().await;
    // Let the DISCONNECT go out, then stop the pump.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while events.recv().await.is_some() {}
    })
    .await;
    pump.abort();
    app.finish()
}

/// Polls the event loop (which reconnects by itself, to the next of `brokers` after a failure)
/// and hands every event over, so that publishing never waits on the app's own receiving.
async fn pump(mut eventloop: EventLoop, brokers: Vec<MqttOptions>, events: mpsc::UnboundedSender<Pumped>) {
    let mut current = 0;
    let mut backoff = Duration::from_millis(100);
    loop {
        let pumped = match eventloop.poll().await {
            Ok(event) => {
                if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                    backoff = Duration::from_millis(100);
                }
                let disconnect = matches!(event, Event::Outgoing(Outgoing::Disconnect));
                if events.send(Pumped::Event(event)).is_err() || disconnect {
                    return;
                }
                continue;
            }
            Err(ConnectionError::RequestsDone) => return,
            Err(_) => Pumped::Failed {
                unsent: eventloop
                    .pending
                    .iter()
                    .filter(|request| matches!(request, Request::Publish(publish) if publish.pkid == 0))
                    .count(),
            },
        };
        if events.send(pumped).is_err() {
            return;
        }
        if brokers.len() > 1 {
            current = (current + 1) % brokers.len();
            eventloop.mqtt_options = brokers[current].clone();
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

impl App {
    fn now_us(&self) -> u64 {
        self.setup.epoch.elapsed().as_micros() as u64
    }

    async fn handle(&mut self, pumped: Pumped) {
        let event = match pumped {
            Pumped::Event(event) => event,
            Pumped::Failed { unsent } => {
                self.unsent = unsent;
                if self.connected {
                    self.connected = false;
                } else {
                    self.failed_connects += 1;
                }
                self.progress.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                self.connects += 1;
                self.connected = true;
                if !ack.session_present {
                    // The unacknowledged publishes were dropped with the session: they are
                    // unresolved unless the lamp shows them anyway.
                    self.pkids.session_lost(self.unsent);
                }
                // A session kept from an earlier run of the same id has the subscriptions
                // already; subscribing again is harmless and gives the SUBACKs waited for.
                if self.connects == 1 || !ack.session_present {
                    for filter in self.setup.names.app_filters(self.setup.app) {
                        let _ = self.client.subscribe(filter, QoS::AtLeastOnce).await;
                    }
                }
            }
            Event::Incoming(Packet::SubAck(_)) => self.subacks += 1,
            Event::Outgoing(Outgoing::Publish(pkid)) => self.pkids.outgoing(pkid),
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => self.pkids.collision(pkid),
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(Tag::Intent { lamp, seq }) = self.pkids.acked(ack.pkid) {
                    let now = self.now_us();
                    if let Some(ledger) = self.ledgers.get_mut(&lamp)
                        && let Some((kind, latency)) = ledger.acked(seq, now)
                    {
                        self.counts[kind.index()].acked += 1;
                        self.latency_us.publish_puback.record(latency);
                        self.progress.acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Event::Incoming(Packet::Publish(publish)) if !publish.retain => {
                self.received(&publish.topic, &publish.payload);
            }
            _ => {}
        }
    }

    /// An answer from a lamp. Retained copies (sent at every subscribe) are old news and not
    /// handed here.
    fn received(&mut self, topic: &str, payload: &[u8]) {
        let Some((lamp, what)) = self.setup.names.parse_topic(topic) else {
            return;
        };
        let app = self.setup.app;
        let now = self.now_us();
        let Some(ledger) = self.ledgers.get_mut(&lamp) else {
            return;
        };
        let Ok(body) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let tag_of = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .and_then(|t| ledger::parse_tag(app, t))
        };
        let seen = match what {
            "lamp/changed" => {
                self.counts[Kind::SetConfig.index()].received += 1;
                let seq = tag_of("client").filter(|(l, _)| *l == lamp).map(|(_, seq)| seq);
                ledger.changed(seq, Light::from_lampi(&body), now)
            }
            "shadow/update/documents" => {
                self.counts[Kind::Desired.index()].received += 1;
                let current = &body["current"];
                let Some(version) = current["version"].as_u64() else {
                    return;
                };
                ledger.documents(version, Light::from_shadow(&current["state"]["reported"]["light"]), now)
            }
            "lamp/set_config/rejected" | "shadow/update/rejected" => {
                let key = if what == "lamp/set_config/rejected" {
                    "client"
                } else {
                    "clientToken"
                };
                if let Some((l, seq)) = tag_of(key)
                    && l == lamp
                {
                    ledger.rejected(seq);
                }
                return;
            }
            "shadow/get/accepted" | "shadow/get/rejected" => {
                if body.get("clientToken").and_then(Value::as_str) == Some(&final_token(lamp)) {
                    if let Some(light) = Light::from_shadow(&body["state"]["reported"]["light"]) {
                        ledger.final_state(light);
                    }
                    self.answered.insert(lamp, true);
                }
                return;
            }
            _ => return,
        };
        match seen {
            Seen::Reflected { kind, latency_us } => {
                self.progress.received.fetch_add(1, Ordering::Relaxed);
                let histogram = match kind {
                    Kind::Desired => &mut self.latency_us.desired_reported,
                    Kind::SetConfig => &mut self.latency_us.set_config_changed,
                };
                histogram.record(latency_us);
                let point = self.timeline.at(unix_ms(SystemTime::now()));
                point.received += 1;
                if kind == self.setup.timeline_kind {
                    point.latency_us.record(latency_us);
                    self.progress.latency.record(latency_us);
                }
            }
            Seen::Duplicate(kind) => self.counts[kind.index()].duplicates += 1,
            Seen::Other => {}
        }
    }

    /// Sends message `n` of this app: to the next lamp in turn, of the kind the mix says.
    async fn send(&mut self, n: u64) {
        let lamps = &self.setup.lamps;
        let lamp = lamps[(n % lamps.len() as u64) as usize];
        let kind = Kind::nth(n, self.setup.desired_share);
        let (epoch_us, unix) = (self.now_us(), unix_ms(SystemTime::now()));
        let ledger = self.ledgers.get_mut(&lamp).expect("every lamp of the app has a ledger");
        let intent = ledger.send(kind, epoch_us, unix);
        let (seq, values) = (intent.seq, intent.values);
        let ids = self.setup.names.lamp(lamp);
        let tag = ledger::tag(self.setup.app, lamp, seq);
        let (topic, payload) = match kind {
            Kind::Desired => (
                format!("{}update", ids.shadow_prefix),
                json!({"state": {"desired": {"light": values.shadow_json()}}, "clientToken": tag}),
            ),
            Kind::SetConfig => {
                let mut body = values.lampi_json();
                body["client"] = json!(tag);
                (format!("{}lamp/set_config", ids.topic_prefix), body)
            }
        };
        if self.setup.qos != QoS::AtMostOnce {
            self.pkids.queued(Tag::Intent { lamp, seq });
        }
        self.counts[kind.index()].sent += 1;
        self.progress.sent.fetch_add(1, Ordering::Relaxed);
        self.timeline.at(unix).sent += 1;
        if self
            .client
            .publish(topic, self.setup.qos, false, payload.to_string())
            .await
            .is_err()
        {
            self.progress.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks every lamp of the app for its shadow: what the answers missed, the state shows.
    async fn final_gets(&mut self) {
        let lamps = self.setup.lamps.clone();
        for lamp in lamps {
            let ids = self.setup.names.lamp(lamp);
            self.pkids.queued(Tag::FinalGet);
            let payload = json!({"clientToken": final_token(lamp)}).to_string();
            let _ = self
                .client
                .publish(format!("{}get", ids.shadow_prefix), QoS::AtLeastOnce, false, payload)
                .await;
        }
    }

    fn finish(self) -> AppResult {
        let [mut desired, mut set_config] = self.counts;
        let mut lost = Vec::new();
        for (lamp, ledger) in &self.ledgers {
            let outcome = ledger.settle();
            for (k, counts) in [&mut desired, &mut set_config].into_iter().enumerate() {
                counts.reflected += outcome.reflected[k];
                counts.superseded += outcome.superseded[k];
                counts.rejected += outcome.rejected[k];
                counts.unresolved += outcome.unresolved[k];
                counts.lost += outcome.lost.iter().filter(|i| i.kind.index() == k).count() as u64;
            }
            let device_id = self.setup.names.lamp(*lamp).device_id;
            lost.extend(outcome.lost.into_iter().map(|intent| Lost {
                lamp: device_id.clone(),
                seq: intent.seq,
                kind: intent.kind.name().to_owned(),
                sent_unix_ms: intent.sent_unix_ms,
                values: intent.values.shadow_json(),
                last_reported: ledger.last_reported.map(|l| l.shadow_json()),
            }));
        }
        let unanswered = (self.ledgers.len() - self.answered.len()) as u64;
        AppResult {
            desired,
            set_config,
            latency_us: self.latency_us,
            timeline: self.timeline,
            lost,
            connects: self.connects,
            failed_connects: self.failed_connects,
            unanswered,
        }
    }
}

/// The name in [`Latencies`] of `kind`'s latency.
pub fn timeline_latency(kind: Kind) -> &'static str {
    match kind {
        Kind::Desired => "desired_reported",
        Kind::SetConfig => "set_config_changed",
    }
}

fn final_token(lamp: u64) -> String {
    format!("final-{lamp}")
}

#[cfg(test)]
mod tests {
    use super::CoarseLatency;

    #[test]
    fn the_coarse_p99_is_within_a_quarter_octave_above_the_true_one() {
        let latency = CoarseLatency::default();
        assert_eq!(latency.quantile(0.99), None);
        (1..=1000).for_each(|us| latency.record(us));
        let p99 = latency.quantile(0.99).unwrap();
        assert!((990..=990 * 119 / 100).contains(&p99), "{p99}");
        latency.record(5_000_000);
        assert_eq!(
            latency.quantile(1.0),
            Some(1 << 20),
            "past a second counts as about one"
        );
    }
}
