//! Shadow update latency: request → `update/accepted` at the client, and request → new PWM duty
//! handed to the LED, against a raw Mosquitto round trip (a client receiving its own message)
//! measured in the same run on the same broker.
//!
//! `cargo bench --bench shadow_latency` (needs mosquitto)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Broker, Client, RunningLamp};
use lampi::core::colour::{Rgb, duty_for};
use serde_json::json;

const WARM_UP: usize = 200;
const SAMPLES: usize = 2000;
const PREFIX: &str = "$aws/things/lamp1/shadow/";

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(samples[samples.len() / 2]), us(samples[samples.len() * 99 / 100]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let lamp = RunningLamp::start_with(broker.port, state.path(), |c| c.light.transition_ms = 0).await;
    let mut client = Client::connect(broker.port, "bench").await;
    client.subscribe(&format!("{PREFIX}update/accepted")).await;
    client.subscribe("bench/echo").await;

    // Raw round trip: the broker's floor for one message there and back.
    let mut raw = Vec::with_capacity(SAMPLES);
    for i in 0..WARM_UP + SAMPLES {
        let start = Instant::now();
        client.publish("bench/echo", i.to_string()).await;
        client.next_matching("bench/echo", |j| *j == json!(i)).await;
        if i >= WARM_UP {
            raw.push(start.elapsed());
        }
    }

    let mut accepted = Vec::with_capacity(SAMPLES);
    let mut applied = Vec::with_capacity(SAMPLES);
    for i in 0..WARM_UP + SAMPLES {
        // Alternate so that every update changes the light.
        let brightness = if i % 2 == 0 { 0.25 } else { 0.75 };
        let target = duty_for(true, 0.0, 0.0, brightness);
        let mut output = lamp.handle.output.clone();
        let pwm = tokio::spawn(async move {
            let close = |o: &Rgb| (o.r - target.r).abs() < 1e-9;
            output.wait_for(close).await.unwrap();
            Instant::now()
        });
        let token = format!("b{i}");
        let request =
            json!({"state": {"desired": {"light": {"on": true, "brightness": brightness}}}, "clientToken": token});
        let start = Instant::now();
        client.publish(&format!("{PREFIX}update"), request.to_string()).await;
        client
            .next_matching(&format!("{PREFIX}update/accepted"), |j| {
                j["clientToken"] == json!(token)
            })
            .await;
        let answered = start.elapsed();
        let pwm_at = pwm.await.unwrap();
        if i >= WARM_UP {
            accepted.push(answered);
            applied.push(pwm_at.saturating_duration_since(start));
        }
    }
    lamp.stop().await;

    let (raw50, raw99) = percentiles(raw);
    let (acc50, acc99) = percentiles(accepted);
    let (pwm50, pwm99) = percentiles(applied);
    println!("shadow update latency over loopback Mosquitto, {SAMPLES} samples after {WARM_UP} warm-up:");
    println!("  {:<38} {:>8} {:>8}", "", "p50", "p99");
    println!(
        "  {:<38} {raw50:>6.0}µs {raw99:>6.0}µs",
        "raw round trip (client→broker→client)"
    );
    println!(
        "  {:<38} {acc50:>6.0}µs {acc99:>6.0}µs   ({:.2}× raw)",
        "update → update/accepted",
        acc50 / raw50
    );
    println!(
        "  {:<38} {pwm50:>6.0}µs {pwm99:>6.0}µs   ({:.2}× raw)",
        "update → PWM duty to the LED",
        pwm50 / raw50
    );
}
