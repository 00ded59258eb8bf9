//! A lamp with an ordered list of brokers (`mqtt.brokers`), against two real Mosquittos that are
//! not bridged: it fails over when its broker dies, stays with the one that answers, and is a
//! whole lamp on each (announcements, subscriptions, answers).

mod common;

use std::time::{Duration, Instant};

use common::{Broker, Client, RunningLamp, json};
use lampi::config::BrokerAddr;
use serde_json::json;

const CHANGED: &str = "lamp/changed";
const SET: &str = "lamp/set_config";
const CONNECTION: &str = "lamp/connection/lamp_service/state";
/// With the test's backoff (50–300 ms) a failover takes well under a second; this is the bound.
const FAILOVER_WITHIN: Duration = Duration::from_secs(5);

/// A client on `broker` that has seen the lamp announce itself online there within `limit`.
async fn lamp_online_on(broker: &Broker, id: &str, limit: Duration) -> Client {
    let mut client = Client::connect(broker.port, id).await;
    client.subscribe("lamp/#").await;
    client
        .next_within(limit, |p| p.topic == CONNECTION && &p.payload[..] == b"1")
        .await;
    client
}

/// The lamp answers a `set_config` sent through `client`'s broker.
async fn answers_set_config(client: &mut Client, sender: &str) {
    client
        .publish(SET, format!(r#"{{"brightness":0.4,"on":true,"client":"{sender}"}}"#))
        .await;
    client.next_matching(CHANGED, |j| j["client"] == json!(sender)).await;
}

/// Which of its brokers the lamp's shadow says it is on, asked through `client`'s broker.
async fn reported_broker(client: &mut Client) -> serde_json::Value {
    client.subscribe("$aws/things/lamp1/shadow/get/accepted").await;
    client.publish("$aws/things/lamp1/shadow/get", "{}").await;
    let document = client.next_on("$aws/things/lamp1/shadow/get/accepted").await;
    json(&document)["state"]["reported"]["broker"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lamp_fails_over_in_order_and_stays_with_the_broker_that_answers() {
    let mut first = Broker::start();
    let mut second = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let mut on_second = Client::connect(second.port, "watcher-2").await;
    on_second.subscribe("lamp/#").await;
    let brokers = [&first, &second]
        .map(|b| BrokerAddr {
            host: "127.0.0.1".into(),
            port: b.port,
        })
        .to_vec();
    let lamp = RunningLamp::start_with(first.port, state.path(), |config| {
        config.mqtt.brokers = Some(brokers);
    })
    .await;

    // The first broker in the list is the one used while it answers.
    let mut on_first = lamp_online_on(&first, "watcher-1", common::TIMEOUT).await;
    answers_set_config(&mut on_first, "on-first").await;
    assert_eq!(reported_broker(&mut on_first).await, json!(1));
    assert!(
        on_second.drain_all(Duration::from_millis(300)).await.is_empty(),
        "the lamp is on the second broker too"
    );

    // The first dies: the lamp moves to the second and is a whole lamp there.
    drop(on_first);
    let killed = Instant::now();
    first.stop();
    on_second
        .next_within(FAILOVER_WITHIN, |p| p.topic == CONNECTION && &p.payload[..] == b"1")
        .await;
    let changed = on_second.next_on(CHANGED).await;
    assert_eq!(
        json(&changed)["client"],
        json!("on-first"),
        "its state is announced there"
    );
    println!("failed over to the second broker in {:?}", killed.elapsed());
    answers_set_config(&mut on_second, "on-second").await;
    assert_eq!(
        reported_broker(&mut on_second).await,
        json!(2),
        "the shadow says where it is"
    );
    on_second.drain_all(Duration::from_millis(100)).await;

    // The first comes back: the lamp stays where it is, working.
    first.restart();
    let mut back = Client::connect(first.port, "watcher-1b").await;
    back.subscribe("lamp/#").await;
    assert!(
        back.drain_all(Duration::from_millis(1000)).await.is_empty(),
        "the lamp left a working broker for the first"
    );

    // The second dies: the list wraps around, back to the first.
    drop(on_second);
    let killed = Instant::now();
    second.stop();
    back.next_within(FAILOVER_WITHIN, |p| p.topic == CONNECTION && &p.payload[..] == b"1")
        .await;
    let changed = back.next_on(CHANGED).await;
    assert_eq!(json(&changed)["client"], json!("on-second"));
    println!("failed back to the first broker in {:?}", killed.elapsed());
    answers_set_config(&mut back, "back-on-first").await;
    assert_eq!(reported_broker(&mut back).await, json!(1));
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lamp_whose_first_broker_is_down_at_start_uses_the_next() {
    let second = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let nobody = common::free_port();
    let brokers = [nobody, second.port]
        .map(|port| BrokerAddr {
            host: "127.0.0.1".into(),
            port,
        })
        .to_vec();
    let lamp = RunningLamp::start_with(nobody, state.path(), |config| {
        config.mqtt.brokers = Some(brokers);
    })
    .await;
    let mut on_second = lamp_online_on(&second, "watcher", FAILOVER_WITHIN).await;
    answers_set_config(&mut on_second, "on-second").await;
    lamp.stop().await;
}
