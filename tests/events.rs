//! Analytics events on `lampi/<id>/events`: published live with their source, and spooled to
//! disk while the broker is away — bounded, oldest dropped first and counted.

mod common;

use common::{Broker, Client, RunningLamp, json};
use lampi::events::MAX_SPOOLED;
use serde_json::json;

const EVENTS: &str = "lampi/lamp1/events";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_their_source() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let mut client = Client::connect(broker.port, "analytics").await;
    client.subscribe(EVENTS).await;
    client.subscribe("lamp/changed").await;
    let lamp = RunningLamp::start(broker.port, state.path()).await;
    client.next_on("lamp/changed").await;

    client
        .publish("lamp/set_config", r#"{"on":false,"client":"phone"}"#)
        .await;
    let power = json(&client.next_on(EVENTS).await);
    assert_eq!(
        (power["type"].as_str(), power["on"].as_bool(), power["source"].as_str()),
        (Some("power"), Some(false), Some("phone"))
    );
    assert!(power["timestamp"].is_u64());

    let update = json!({"state": {"desired": {"light": {"brightness": 0.3}}}});
    client
        .publish("$aws/things/lamp1/shadow/update", update.to_string())
        .await;
    let light = json(&client.next_on(EVENTS).await);
    assert_eq!(
        (
            light["type"].as_str(),
            light["brightness"].as_f64(),
            light["source"].as_str()
        ),
        (Some("light"), Some(0.3), Some("shadow"))
    );
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_events_are_spooled_bounded_and_sent_on_reconnect() {
    // The analytics subscriber has a persistent session on a persistent broker, so what the
    // lamp sends on reconnecting waits for it however the two reconnects are ordered.
    let mut broker = Broker::start_with_persistence(true);
    let state = tempfile::tempdir().unwrap();
    let mut client = Client::connect_persistent(broker.port, "analytics").await;
    client.subscribe(EVENTS).await;
    let lamp = RunningLamp::start(broker.port, state.path()).await;
    broker.stop();
    // The lamp sees the connection close at once; give its tasks a moment to act on it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // More switches than the spool holds.
    let offline = MAX_SPOOLED + 5;
    for i in 0..offline {
        lamp.set_on(i % 2 == 1, &format!("button{i}")).await;
    }
    broker.restart();
    // More switches while the backlog is going out: rumqttc's queue is full then, so these are
    // spooled with the link up and must still leave without another reconnect.
    let late = 200;
    let first = json(&client.next_on(EVENTS).await);
    for i in offline..offline + late {
        lamp.set_on(i % 2 == 1, &format!("button{i}")).await;
    }
    let switches = offline + late;
    // Every switch is either delivered or counted in a `dropped` event; those delivered are
    // the newest, in order.
    let last = format!("button{}", switches - 1);
    let (mut delivered, mut dropped, mut previous) = (0, 0, None);
    let mut pending = Some(first);
    loop {
        let event = match pending.take() {
            Some(event) => event,
            None => json(&client.next_on(EVENTS).await),
        };
        if event["type"] == json!("dropped") {
            dropped += event["count"].as_u64().unwrap() as usize;
            continue;
        }
        let n: usize = event["source"]
            .as_str()
            .unwrap()
            .trim_start_matches("button")
            .parse()
            .unwrap();
        assert!(previous.is_none_or(|p| n > p), "out of order: {n} after {previous:?}");
        previous = Some(n);
        delivered += 1;
        if event["source"] == json!(last) {
            break;
        }
    }
    assert_eq!(delivered + dropped, switches);
    assert!(dropped >= offline - MAX_SPOOLED, "{dropped} dropped");
    assert!(
        !state.path().join("events.spool").exists(),
        "the spool is emptied once sent"
    );
    lamp.stop().await;
}
