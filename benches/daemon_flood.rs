//! One daemon under flood: `set_config` and shadow `desired` updates (half each) at rising rates
//! into one `lampi run` (the release binary, its own process) through a private loopback
//! Mosquitto. Per step: the rate sent and what the lamp put out (`lamp/changed`,
//! `update/accepted`, `update/documents`), set_config → lamp/changed p50/p99 for the set_configs
//! echoed (the lamp coalesces: under a flood it publishes the newest state and skips superseded
//! ones), how long after the last message its state came out on `lamp/changed` (catch-up), the lamp's
//! CPU, and its resident memory at the start and end of the step (flat: nothing queues without
//! bound).
//!
//! `cargo bench --bench daemon_flood` (needs mosquitto). `FLOOD_RATES=100,300,1000` and
//! `FLOOD_SECONDS=5` change the steps; every step is bounded (rate × seconds messages, then at
//! most [`SETTLE`] for the answers).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/process.rs"]
mod process;

use std::collections::HashMap;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Broker, write_config};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use serde::Deserialize;

const SHADOW: &str = "$aws/things/test/shadow/";
/// The longest wait, after a step's last message, for its state on `lamp/changed`.
const SETTLE: Duration = Duration::from_secs(3);
/// How long the lamp idles after the last step before its memory is read again.
const IDLE: Duration = Duration::from_secs(5);
/// A step counts as kept up with when the last message's state came out within this.
const KEPT_UP: Duration = Duration::from_secs(1);

struct Lamp(Child);

impl Drop for Lamp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `lamp/changed`: the sequence number of the set_config it echoes, if any, and the
    /// brightness it shows.
    Changed(Option<u64>, Option<f64>),
    /// `update/accepted`, with the sequence number of the desired update it answers; `None` for
    /// the lamp's own reports.
    Accepted(Option<u64>),
    Documents,
    Rejected,
}

type Arrivals = Arc<Mutex<Vec<(Instant, Kind)>>>;

/// Message `k`'s brightness: a new one each message, none repeated within a step.
fn brightness(k: u64) -> f64 {
    (k % 100_000 + 1) as f64 / 100_001.0
}

/// `f-17` → 17.
fn sequence(token: Option<&str>) -> Option<u64> {
    token?.split_once('-')?.1.parse().ok()
}

fn classify(topic: &str, payload: &[u8]) -> Option<Kind> {
    #[derive(Default, Deserialize)]
    struct Tokens {
        client: Option<String>,
        #[serde(rename = "clientToken")]
        client_token: Option<String>,
        brightness: Option<f64>,
    }
    let tokens = || serde_json::from_slice::<Tokens>(payload).unwrap_or_default();
    Some(match topic.strip_prefix(SHADOW) {
        Some("update/accepted") => Kind::Accepted(sequence(tokens().client_token.as_deref())),
        Some("update/documents") => Kind::Documents,
        Some("update/rejected") => Kind::Rejected,
        Some(_) => return None,
        None => match topic {
            "lamp/changed" => {
                let tokens = tokens();
                Kind::Changed(sequence(tokens.client.as_deref()), tokens.brightness)
            }
            "lamp/set_config/rejected" => Kind::Rejected,
            _ => return None,
        },
    })
}

/// The app: one connection that sends the flood and records every answer's arrival.
async fn connect(port: u16) -> (AsyncClient, Arrivals, tokio::task::JoinHandle<()>) {
    let mut options = MqttOptions::new("flood", "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let arrivals: Arrivals = Arc::default();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let topics = [
        "lamp/changed".to_owned(),
        "lamp/set_config/rejected".to_owned(),
        format!("{SHADOW}update/accepted"),
        format!("{SHADOW}update/documents"),
        format!("{SHADOW}update/rejected"),
    ];
    for topic in &topics {
        client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    }
    let record = arrivals.clone();
    let receiving = tokio::spawn(async move {
        let mut subacks = 0;
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some(kind) = classify(&p.topic, &p.payload) {
                        record.lock().unwrap().push((Instant::now(), kind));
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subacks += 1;
                    if subacks == topics.len()
                        && let Some(tx) = subscribed_tx.take()
                    {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("the flood's connection failed: {e}"),
            }
        }
    });
    tokio::time::timeout(common::TIMEOUT, subscribed)
        .await
        .unwrap()
        .unwrap();
    (client, arrivals, receiving)
}

struct Step {
    asked: u64,
    sent_per_s: f64,
    set_configs: u64,
    desired: u64,
    echoed: u64,
    changed: u64,
    accepted: u64,
    documents: u64,
    rejected: u64,
    span: Duration,
    p50: Duration,
    p99: Duration,
    catch_up: Option<Duration>,
    cpu_pct: f64,
    rss_start: u64,
    rss_end: u64,
    rss_peak: u64,
}

/// Sends `rate` messages a second for `seconds`, numbered from `first`: even ones set_config,
/// odd ones a desired update, each a new brightness.
async fn step(client: &AsyncClient, arrivals: &Arrivals, pid: u32, rate: u64, seconds: u64, first: u64) -> Step {
    let n = rate * seconds;
    let cpu_before = process::cpu_ns(pid);
    let rss_start = process::resident_kib(pid);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(process::resident_kib(pid));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    arrivals.lock().unwrap().clear();
    let mut sent = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate as f64)).into()).await;
        let k = first + i;
        let brightness = brightness(k);
        let (topic, payload) = if k.is_multiple_of(2) {
            (
                "lamp/set_config".to_owned(),
                format!(r#"{{"client":"f-{k}","brightness":{brightness}}}"#),
            )
        } else {
            (
                format!("{SHADOW}update"),
                format!(r#"{{"state":{{"desired":{{"light":{{"brightness":{brightness}}}}}}},"clientToken":"d-{k}"}}"#),
            )
        };
        sent.push(Instant::now());
        client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }
    let span = start.elapsed();
    // The last message's state on lamp/changed, whichever kind asked for it (a set_config's
    // echo is superseded by a desired update sent after it).
    let newest = brightness(first + n - 1);
    let last_sent = sent[sent.len() - 1];
    let deadline = Instant::now() + SETTLE;
    let mut catch_up = None;
    while catch_up.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        catch_up = arrivals.lock().unwrap().iter().find_map(|(at, kind)| match kind {
            Kind::Changed(_, Some(b)) if *b == newest => Some(at.saturating_duration_since(last_sent)),
            _ => None,
        });
    }
    // The answers still on their way to the newest state.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let arrived = std::mem::take(&mut *arrivals.lock().unwrap());
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let rss_peak = sampler.await.unwrap();
    let rss_end = process::resident_kib(pid);
    let cpu = process::growth(&cpu_before, &process::cpu_ns(pid));
    let elapsed = start.elapsed();

    let mut echoes: HashMap<u64, Instant> = HashMap::new();
    let (mut changed, mut accepted, mut documents, mut rejected) = (0, 0, 0, 0);
    for (at, kind) in arrived {
        match kind {
            Kind::Changed(seq, _) => {
                changed += 1;
                if let Some(k) = seq.filter(|k| (first..first + n).contains(k)) {
                    echoes.entry(k).or_insert(at);
                }
            }
            Kind::Accepted(Some(k)) if (first..first + n).contains(&k) => accepted += 1,
            Kind::Accepted(_) => {}
            Kind::Documents => documents += 1,
            Kind::Rejected => rejected += 1,
        }
    }
    let mut latencies: Vec<Duration> = echoes
        .iter()
        .map(|(k, at)| at.saturating_duration_since(sent[(k - first) as usize]))
        .collect();
    latencies.sort();
    let pct = |p: usize| latencies.get(latencies.len() * p / 100).copied().unwrap_or_default();
    Step {
        asked: rate,
        sent_per_s: n as f64 / span.as_secs_f64().max(1e-3),
        set_configs: n.div_ceil(2),
        desired: n / 2,
        echoed: echoes.len() as u64,
        changed,
        accepted,
        documents,
        rejected,
        span,
        p50: pct(50),
        p99: pct(99),
        catch_up,
        cpu_pct: cpu as f64 / elapsed.as_nanos() as f64 * 100.0,
        rss_start,
        rss_end,
        rss_peak,
    }
}

fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    std::env::var(name).map_or_else(
        |_| default.to_vec(),
        |v| v.split(',').map(|n| n.trim().parse().expect("a number")).collect(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let rates = env_list("FLOOD_RATES", &[100, 300, 1000, 3000, 10_000]);
    let seconds = env_list("FLOOD_SECONDS", &[5])[0];
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), broker.port, &dir.path().join("state"), "lamp_flood");
    let (client, arrivals, receiving) = connect(broker.port).await;
    let lamp = Lamp(common::lampi_run(&config).spawn().unwrap());
    let pid = lamp.0.id();
    // Up: its retained lamp/changed at connect; then let the first reports settle.
    let deadline = Instant::now() + common::TIMEOUT;
    while !arrivals
        .lock()
        .unwrap()
        .iter()
        .any(|(_, k)| matches!(k, Kind::Changed(..)))
    {
        assert!(Instant::now() < deadline, "the lamp did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "one `lampi run` under a flood, half set_config and half shadow desired updates, QoS 1, {seconds} s a step, loopback Mosquitto:"
    );
    println!(
        "  {:>7} {:>8} {:>16} {:>15} {:>12} {:>10} {:>17} {:>10} {:>6} {:>22}",
        "asked/s",
        "sent/s",
        "changed/s (echo)",
        "accepted/desired",
        "documents/s",
        "rejected",
        "set→changed p50/p99",
        "catch-up",
        "CPU",
        "RSS KiB start→end (peak)"
    );
    let mut first = 0;
    let mut sustained = None;
    let mut behind = false;
    for rate in rates {
        let s = step(&client, &arrivals, pid, rate, seconds, first).await;
        first += rate * seconds;
        let secs = s.span.as_secs_f64().max(1e-3);
        let catch_up = s.catch_up.map_or_else(
            || format!("> {} s", SETTLE.as_secs()),
            |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
        );
        println!(
            "  {:>7} {:>8.0} {:>9.0} ({:>3.0}%) {:>7}/{:<7} {:>12.0} {:>10} {:>8.2}/{:<8.2} {:>10} {:>5.0}% {:>8}→{:<6} ({})",
            s.asked,
            s.sent_per_s,
            s.changed as f64 / secs,
            100.0 * s.echoed as f64 / s.set_configs.max(1) as f64,
            s.accepted,
            s.desired,
            s.documents as f64 / secs,
            s.rejected,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            catch_up,
            s.cpu_pct,
            s.rss_start,
            s.rss_end,
            s.rss_peak,
        );
        // Every step runs (memory must stay bounded past the limit too); the sustained rate
        // is the last of the steps kept up with before the first that was not.
        behind |= !(s.catch_up.is_some_and(|d| d <= KEPT_UP) && s.accepted == s.desired && s.rejected == 0);
        if !behind {
            sustained = Some(s.sent_per_s);
        }
    }
    match sustained {
        Some(rate) => println!(
            "  kept up (the last message's state on lamp/changed within {KEPT_UP:?}, every desired update accepted) up to {rate:.0} msgs/s"
        ),
        None => println!("  fell behind at the first step"),
    }
    tokio::time::sleep(IDLE).await;
    println!(
        "  RSS {:?} after the last step: {} KiB",
        IDLE,
        process::resident_kib(pid)
    );
    // Before the broker goes, which the connection would take for a failure.
    receiving.abort();
    drop(lamp);
}
