//! The fleet ACL in docs/mosquitto-acl.conf keeps each lamp to its own topics: a client
//! connected as one lamp cannot change another lamp's shadow, nor read its pairing code.

mod common;

use std::time::Duration;

use common::{Broker, Client, RunningLamp};
use serde_json::json;

const ACL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/mosquitto-acl.conf");

/// Lamp B, configured as the ACL expects: its device id as client id and topic prefix.
async fn start_lamp_b(broker: &Broker, state: &std::path::Path) -> RunningLamp {
    RunningLamp::start_with(broker.port, state, |c| {
        c.device.id = Some("lampB".into());
        c.mqtt.client_id = "lampB".into();
        c.mqtt.topic_prefix = "devices/lampB/".into();
    })
    .await
}

/// Lamp B's shadow version after a client calling itself lamp A tried to change it.
async fn version_after_impostor(broker: &Broker) -> (u64, u64) {
    let state = tempfile::tempdir().unwrap();
    let lamp_b = start_lamp_b(broker, state.path()).await;
    // Let lamp B connect and settle its own reports.
    let mut saved = lamp_b.handle.saved.clone();
    tokio::time::timeout(
        common::TIMEOUT,
        saved.wait_for(|s| s.shadow.reported.contains_key("connected_since")),
    )
    .await
    .expect("lamp B connects")
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = lamp_b.handle.saved.borrow().shadow.version;

    let impostor = Client::connect(broker.port, "lampA").await;
    let attack = json!({"state": {"desired": {"light": {"on": false}}}});
    impostor
        .publish("$aws/things/lampB/shadow/update", attack.to_string())
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = lamp_b.handle.saved.borrow().shadow.version;
    lamp_b.stop().await;
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lamp_cannot_write_another_lamps_shadow_under_the_acl() {
    let guarded = Broker::start_custom(false, "", format!("acl_file {ACL}\n"));
    let (before, after) = version_after_impostor(&guarded).await;
    assert_eq!(before, after, "the ACL let lamp A change lamp B's shadow");

    // The same attempt without the ACL gets through, so it is the ACL that stopped it.
    let open = Broker::start();
    let (before, after) = version_after_impostor(&open).await;
    assert!(after > before, "without the ACL the update should have been applied");
}

/// Whether a client calling itself lamp A sees the pairing code lamp B shows.
async fn code_seen_by_impostor(broker: &Broker) -> bool {
    let state = tempfile::tempdir().unwrap();
    let lamp_b = start_lamp_b(broker, state.path()).await;
    let mut impostor = Client::connect(broker.port, "lampA").await;
    impostor.subscribe("lampi/lampB/pairing/code").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    lamp_b
        .handle
        .commands
        .send(lampi::lamp_task::Command::RequestPairingCode)
        .await
        .unwrap();
    let seen = impostor
        .drain("lampi/lampB/pairing/code", Duration::from_millis(700))
        .await;
    lamp_b.stop().await;
    seen.iter().any(|m| !m.payload.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lamp_cannot_read_another_lamps_pairing_code_under_the_acl() {
    let guarded = Broker::start_custom(false, "", format!("acl_file {ACL}\n"));
    assert!(
        !code_seen_by_impostor(&guarded).await,
        "lamp A read lamp B's pairing code"
    );
    // Without the ACL the code is there to read, so it is the ACL that hid it.
    assert!(code_seen_by_impostor(&Broker::start()).await);
}
