//! Home Assistant's MQTT discovery and JSON-schema light, against a real Mosquitto.

mod common;

use std::time::Duration;

use common::{Broker, Client, RunningLamp, json};
use lampi::core::colour::duty_for;
use serde_json::json;

const DISCOVERY: &str = "homeassistant/light/lamp1/lamp/config";
const COMMAND: &str = "lampi/lamp1/light/set";
const STATE: &str = "lampi/lamp1/light/state";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_controlled_and_rediscovered() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let mut lamp = RunningLamp::start(broker.port, state.path()).await;
    let mut ha = Client::connect(broker.port, "home-assistant").await;
    ha.subscribe(DISCOVERY).await;
    ha.subscribe(STATE).await;
    ha.subscribe(&format!("{COMMAND}/rejected")).await;

    let doc = json(&ha.next_on(DISCOVERY).await);
    assert_eq!(doc["schema"], json!("json"));
    assert_eq!(doc["command_topic"], json!(COMMAND));
    assert_eq!(doc["state_topic"], json!(STATE));
    assert_eq!(doc["availability_topic"], json!("lamp/connection/lamp_service/state"));
    assert_eq!(doc["device"]["identifiers"], json!(["lampi_lamp1"]));
    assert_eq!(json(&ha.next_on(STATE).await)["state"], json!("ON"));

    ha.publish(
        COMMAND,
        r#"{"state":"ON","brightness":51,"color":{"h":240,"s":100},"transition":0}"#,
    )
    .await;
    let state_doc = json(&ha.next_matching(STATE, |j| j["brightness"] == json!(51.0)).await);
    assert_eq!(state_doc["color"], json!({"h": 240.0, "s": 100.0}));
    lamp.output_settles_at(duty_for(true, 2.0 / 3.0, 1.0, 0.2)).await;
    // A Home Assistant change is a local change: it reaches the shadow's desired too.
    let mut saved = lamp.handle.saved.clone();
    let in_desired = saved.wait_for(|s| {
        s.shadow
            .desired
            .get("light")
            .is_some_and(|l| l["brightness"] == json!(0.2))
    });
    assert!(tokio::time::timeout(common::TIMEOUT, in_desired).await.is_ok());
    assert_eq!(lamp.handle.changes.borrow().client, "homeassistant");

    ha.publish(COMMAND, r#"{"state":"DIM"}"#).await;
    let rejected = json(&ha.next_on(&format!("{COMMAND}/rejected")).await);
    assert!(
        rejected["error"]
            .as_str()
            .unwrap()
            .contains("neither \"ON\" nor \"OFF\""),
        "{rejected}"
    );

    // Discovery is retained, so a Home Assistant started later finds the lamp too.
    let mut late = Client::connect(broker.port, "late-home-assistant").await;
    late.subscribe(DISCOVERY).await;
    assert!(late.next_on(DISCOVERY).await.retain);

    // Home Assistant restarts and asks everyone to announce themselves again.
    ha.publish("homeassistant/status", "online").await;
    let again = ha.next_on(DISCOVERY).await;
    assert_eq!(json(&again)["unique_id"], json!("lampi_lamp1_lamp"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_be_turned_off_in_config() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let mut ha = Client::connect(broker.port, "home-assistant").await;
    ha.subscribe("homeassistant/#").await;
    ha.subscribe("lamp/changed").await;
    let lamp = RunningLamp::start_with(broker.port, state.path(), |c| c.homeassistant.enabled = false).await;
    ha.next_on("lamp/changed").await;
    assert!(ha.drain(DISCOVERY, Duration::from_millis(300)).await.is_empty());
    lamp.stop().await;
}
