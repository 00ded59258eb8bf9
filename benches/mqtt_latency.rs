//! set_config → lamp/changed: round-trip latency and flood catch-up, for the lamp and for the
//! physical limit measured in the same run — Mosquitto's own clients relaying the same
//! messages (`mosquitto_sub -t lamp/set_config | mosquitto_pub -l -t lamp/changed`).
//!
//! `cargo bench --bench mqtt_latency` (needs mosquitto and mosquitto-clients)

#[path = "../tests/common/mod.rs"]
mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Broker, Client, rss_kib, write_config};
use rumqttc::QoS;

const WARM_UP: u32 = 200;
const ROUND_TRIPS: u32 = 3000;
const FLOOD: u32 = 20_000;

struct Peer {
    name: &'static str,
    child: Child,
}

impl Drop for Peer {
    /// Each peer leads its own process group (the relay is two processes); kill all of it.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn relay(port: u16) -> Peer {
    // stdbuf keeps mosquitto_sub's output line-buffered through the pipe, as in a terminal.
    let script = format!(
        "stdbuf -oL mosquitto_sub -p {port} -q 1 -t lamp/set_config | mosquitto_pub -p {port} -q 1 -l -t lamp/changed"
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .process_group(0)
        .spawn()
        .unwrap();
    Peer {
        name: "mosquitto relay",
        child,
    }
}

fn lamp(port: u16, dir: &std::path::Path) -> Peer {
    let config = write_config(dir, port, &dir.join("state"), "lamp_service");
    let child = common::lampi_run(&config).process_group(0).spawn().unwrap();
    Peer { name: "lampi", child }
}

fn payload(i: u32, total: u32) -> String {
    format!(
        r#"{{"brightness":{},"client":"bench"}}"#,
        f64::from(i) / f64::from(total)
    )
}

async fn wait_for(client: &mut Client, i: u32, total: u32) {
    let want = f64::from(i) / f64::from(total);
    client
        .next_matching("lamp/changed", |j| j["brightness"].as_f64() == Some(want))
        .await;
}

struct Report {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    flood_catch_up: Duration,
    flood_send: Duration,
    rss: Option<(u64, u64, u64)>,
}

async fn measure(peer: &Peer, client: &mut Client, with_rss: bool) -> Report {
    // Wait for the peer to be subscribed: resend until an echo arrives.
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            client.publish("lamp/set_config", payload(0, 1)).await;
            let got = tokio::time::timeout(Duration::from_millis(200), wait_for(client, 0, 1)).await;
            if got.is_ok() {
                return;
            }
        }
    });
    ready.await.expect("peer answers");
    client.drain("lamp/changed", Duration::from_millis(300)).await;

    let mut samples = Vec::with_capacity(ROUND_TRIPS as usize);
    for i in 1..=WARM_UP + ROUND_TRIPS {
        let start = Instant::now();
        client
            .publish("lamp/set_config", payload(i, WARM_UP + ROUND_TRIPS))
            .await;
        wait_for(client, i, WARM_UP + ROUND_TRIPS).await;
        if i > WARM_UP {
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    let pct = |p: usize| samples[samples.len() * p / 100];

    let pid = peer.child.id();
    let rss_before = rss_kib(pid);
    let sampler = with_rss.then(|| {
        tokio::spawn(async move {
            let mut peak = 0;
            for _ in 0..400 {
                peak = peak.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    });
    let start = Instant::now();
    for i in 1..=FLOOD {
        client
            .client
            .publish("lamp/set_config", QoS::AtLeastOnce, false, payload(i, FLOOD))
            .await
            .unwrap();
    }
    let sent = Instant::now();
    wait_for(client, FLOOD, FLOOD).await;
    let caught_up = sent.elapsed();
    let rss = match sampler {
        Some(sampler) => {
            let peak = sampler.await.unwrap();
            Some((rss_before, peak, rss_kib(pid)))
        }
        None => None,
    };
    client.drain("lamp/changed", Duration::from_millis(500)).await;
    Report {
        p50: pct(50),
        p90: pct(90),
        p99: pct(99),
        flood_catch_up: caught_up,
        flood_send: sent - start,
        rss,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    for which in ["relay", "lamp"] {
        let broker = Broker::start();
        let mut client = Client::connect(broker.port, "bench").await;
        client.subscribe("lamp/changed").await;
        let peer = if which == "relay" {
            relay(broker.port)
        } else {
            lamp(broker.port, dir.path())
        };
        let report = measure(&peer, &mut client, which == "lamp").await;
        reports.push((peer.name, report));
    }
    println!("set_config → lamp/changed over loopback Mosquitto, {ROUND_TRIPS} round trips after {WARM_UP} warm-up:");
    println!(
        "  {:<16} {:>9} {:>9} {:>9}   flood of {FLOOD}: sent in, newest seen after last sent",
        "", "p50", "p90", "p99"
    );
    for (name, r) in &reports {
        println!(
            "  {name:<16} {:>7.0}µs {:>7.0}µs {:>7.0}µs   {:>7.0} ms, {:>7.1} ms",
            r.p50.as_secs_f64() * 1e6,
            r.p90.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.flood_send.as_secs_f64() * 1e3,
            r.flood_catch_up.as_secs_f64() * 1e3,
        );
    }
    let relay_p50 = reports[0].1.p50.as_secs_f64();
    let lamp_p50 = reports[1].1.p50.as_secs_f64();
    println!("  lampi p50 / relay p50 = {:.2}", lamp_p50 / relay_p50);
    if let Some((before, peak, after)) = reports[1].1.rss {
        println!("  lampi RSS during flood: before {before} KiB, peak {peak} KiB, after {after} KiB");
    }
}
