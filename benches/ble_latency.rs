//! Bluetooth LE latency through the BlueZ stand-in of the tests, with the MQTT path beside it
//! in the same run:
//! - a BLE write (the stand-in's WriteValue on the lamp's Brightness) → the LED's new duty;
//! - an MQTT `set_config` → the BLE notification at the stand-in, and → `lamp/changed` at an
//!   MQTT client, for the same messages.
//!
//! The stand-in's side (Python, dbus-python, a JSON line over a pipe each way) is inside the
//! BLE figures; a real BlueZ adds the radio's connection interval (7.5 ms and up) instead.
//!
//! `cargo bench --features ble --bench ble_latency` (needs mosquitto, dbus-daemon and
//! python3-dbusmock).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::ble::{BlueZ, Bus, CENTRAL_A, standin_available};
use common::{Broker, Client, RunningLamp, TIMEOUT};
use lampi::protocol::ble::{self, from_byte};
use serde_json::json;
use tokio::sync::mpsc;

const WARM_UP: usize = 50;
const SAMPLES: usize = 500;

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let pct = |p: usize| samples[samples.len() * p / 100].as_secs_f64() * 1e6;
    format!("p50 / p90 / p99 {:.0} / {:.0} / {:.0} µs", pct(50), pct(90), pct(99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !standin_available() {
        eprintln!("SKIPPED: dbus-daemon or /usr/bin/python3 with python3-dbusmock missing");
        return;
    }
    let bus = Bus::start();
    // SAFETY: set before the lamp starts any thread that reads the environment.
    unsafe { std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bus.address) };
    let mut bluez = BlueZ::start(&bus);
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let lamp = RunningLamp::start_with(broker.port, state.path(), |config| {
        config.ble.enabled = true;
        // No fade: the first new duty is the final one.
        config.light.transition_ms = 0;
    })
    .await;
    bluez.event(
        |e| e["event"] == "registered" && e["what"] == "advertisement",
        "the advertisement",
    );
    let brightness = bluez.path_of(ble::BRIGHTNESS, None);

    // Each new duty the LED is given, with when.
    let (duties_tx, mut duties) = mpsc::unbounded_channel();
    let mut output = lamp.handle.output.clone();
    tokio::spawn(async move {
        while output.changed().await.is_ok() {
            let duty = *output.borrow_and_update();
            if duties_tx.send((Instant::now(), duty)).is_err() {
                return;
            }
        }
    });
    let mut write_to_led = Vec::with_capacity(SAMPLES);
    for i in 0..WARM_UP + SAMPLES {
        let byte = if i % 2 == 0 { 0x40 } else { 0xc0 };
        let expected = lampi::core::colour::duty_for(true, 0.0, 0.0, from_byte(byte).get());
        let start = Instant::now();
        let answer = bluez.write(&brightness, &[byte], CENTRAL_A);
        assert!(answer.get("error").is_none(), "{answer}");
        let shown = loop {
            let (at, duty) = tokio::time::timeout(TIMEOUT, duties.recv()).await.unwrap().unwrap();
            if duty == expected {
                break at;
            }
        };
        if i >= WARM_UP {
            write_to_led.push(shown - start);
        }
    }

    let answer = bluez.ask(json!({"cmd": "start_notify", "path": brightness}));
    assert!(answer.get("error").is_none(), "{answer}");
    let mut client = Client::connect(broker.port, "bench").await;
    client.subscribe("lamp/changed").await;
    let (mut to_notification, mut to_changed) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    for i in 0..WARM_UP + SAMPLES {
        let value = if i % 2 == 0 { 0.25 } else { 0.75 };
        let start = Instant::now();
        client
            .publish(
                "lamp/set_config",
                json!({"client": "bench", "brightness": value}).to_string(),
            )
            .await;
        // The MQTT echo is awaited beside the notification, which the stand-in's pipe blocks on.
        let echo = tokio::spawn(async move {
            client
                .next_matching("lamp/changed", |m| {
                    m["client"] == "bench" && m["brightness"] == json!(value)
                })
                .await;
            (Instant::now(), client)
        });
        let byte = ble::to_byte(value.try_into().unwrap());
        bluez.event(
            |e| e["event"] == "notification" && e["value"] == json!([byte]),
            "the notification",
        );
        let notified = Instant::now();
        let (changed, returned) = echo.await.unwrap();
        client = returned;
        if i >= WARM_UP {
            to_notification.push(notified - start);
            to_changed.push(changed - start);
        }
    }
    println!("BLE write → LED duty: {}", percentiles(write_to_led));
    println!("MQTT set_config → BLE notification: {}", percentiles(to_notification));
    println!(
        "MQTT set_config → lamp/changed (same messages): {}",
        percentiles(to_changed)
    );
    lamp.stop().await;
}
