//! Pairing end to end: the real daemon and Mosquitto, `lampi ctl pair-code` asking for a code,
//! `lampi ctl portal-associate` playing the cloud portal, and the lamp's refusals.

mod common;

use std::time::Duration;

use common::{Broker, Client, RunningLamp, ctl_command, json};
use serde_json::{Value, json};

const ASSOCIATED: &str = "lamp/associated";
const CODE: &str = "lampi/lamp1/pairing/code";
const ASSOCIATE: &str = "lampi/lamp1/pairing/associate";
const RESULT: &str = "lampi/lamp1/pairing/result";

/// `lampi ctl … ARGS` against lamp1 on the test broker, off the async threads; its JSON output
/// on success, its error text otherwise.
async fn ctl(port: u16, args: &[&str]) -> Result<Value, String> {
    let mut command = ctl_command(port, args);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("ctl prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Sends an association straight to the lamp, as a portal would, and returns the answer.
async fn associate(client: &mut Client, code: &str, token: &str) -> Value {
    let association = json!({"code": code, "owner": "alice", "name": "Alice", "token": token});
    client.publish(ASSOCIATE, association.to_string()).await;
    json(&client.next_matching(RESULT, |r| r["token"] == json!(token)).await)
}

/// A watcher of the pairing topics, subscribed before the lamp starts, and the lamp.
async fn watched_lamp(broker: &Broker, state: &std::path::Path) -> (Client, RunningLamp) {
    watched_lamp_with(broker, state, false).await
}

async fn watched_lamp_with(
    broker: &Broker,
    state: &std::path::Path,
    code_on_lamp_topic: bool,
) -> (Client, RunningLamp) {
    let mut watcher = Client::connect(broker.port, "watcher").await;
    for topic in [ASSOCIATED, CODE, RESULT] {
        watcher.subscribe(topic).await;
    }
    let lamp = started_with(broker, state, &mut watcher, code_on_lamp_topic).await;
    (watcher, lamp)
}

async fn started(broker: &Broker, state: &std::path::Path, watcher: &mut Client) -> RunningLamp {
    started_with(broker, state, watcher, false).await
}

async fn started_with(
    broker: &Broker,
    state: &std::path::Path,
    watcher: &mut Client,
    code_on_lamp_topic: bool,
) -> RunningLamp {
    let lamp = RunningLamp::start_with(broker.port, state, |c| {
        c.pairing.code_on_lamp_topic = code_on_lamp_topic
    })
    .await;
    watcher.next_on(ASSOCIATED).await;
    // Subscribed once the retained state is out; a moment more for the lamp's subscriptions.
    tokio::time::sleep(Duration::from_millis(200)).await;
    lamp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_pairs_the_lamp_once_and_the_owner_survives_a_restart() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let (mut watcher, lamp) = watched_lamp(&broker, state.path()).await;

    let shown = ctl(broker.port, &["pair-code"]).await.unwrap();
    let code = shown["code"].as_str().unwrap().to_owned();
    assert!(
        code.len() == 9 && code.as_bytes()[4] == b'-',
        "shown as ABCD-EFGH: {code}"
    );
    // The cloud's registration first, then LAMPI's topic, which by default keeps the code
    // from the apps that read it.
    let registered = json(&watcher.next_matching(CODE, |j| j["code"].is_string()).await);
    let lampi = json(&watcher.next_on(ASSOCIATED).await);
    assert_eq!(lampi, json!({"associated": false}));
    assert_eq!(registered["code"], json!(code.replace('-', "")));
    assert!(registered["expires"].as_u64().unwrap() > lampi::clock::timestamp(std::time::SystemTime::now().into()));

    // A wrong code is refused with the tries left; the portal cannot find a lamp for it.
    let wrong = associate(&mut watcher, "ZZZZ-ZZZZ", "w1").await;
    assert_eq!(
        wrong,
        json!({"ok": false, "token": "w1", "error": "wrong code (4 tries left)"})
    );
    let nobody = ctl(
        broker.port,
        &[
            "portal-associate",
            "--code",
            "ZZZZ-ZZZZ",
            "--owner",
            "eve",
            "--name",
            "Eve",
        ],
    )
    .await;
    assert!(
        nobody.unwrap_err().contains("no lamp"),
        "the portal finds no lamp for a wrong code"
    );

    // The right code, typed in lower case.
    let answer = ctl(
        broker.port,
        &[
            "portal-associate",
            "--code",
            &code.to_lowercase(),
            "--owner",
            "alice",
            "--name",
            "Alice",
        ],
    )
    .await
    .unwrap();
    assert_eq!(answer["ok"], json!(true));
    assert_eq!(answer["owner"], json!({"id": "alice", "name": "Alice"}));
    assert_eq!(answer["device"], json!("lamp1"));
    let withdrawn = watcher.next_where(|m| m.topic == CODE).await;
    assert!(withdrawn.payload.is_empty(), "the code is withdrawn once used");
    watcher
        .next_matching(ASSOCIATED, |j| *j == json!({"associated": true}))
        .await;

    // The same association again is a replay.
    let replay = associate(&mut watcher, &code, "r1").await;
    assert_eq!(replay["error"], json!("the code was already used"));

    let mut saved = lamp.handle.saved.clone();
    saved
        .wait_for(|s| s.shadow.reported.get("owner") == Some(&json!({"id": "alice", "name": "Alice"})))
        .await
        .unwrap();
    lamp.stop().await;

    let lamp = started(&broker, state.path(), &mut watcher).await;
    assert_eq!(
        lamp.handle.pairing.borrow().owner.as_ref().map(|o| o.name.as_str()),
        Some("Alice")
    );
    let answer = ctl(broker.port, &["portal-unpair"]).await.unwrap();
    assert_eq!(answer["owner"]["id"], json!("alice"));
    watcher
        .next_matching(ASSOCIATED, |j| *j == json!({"associated": false}))
        .await;
    let again = ctl(broker.port, &["portal-unpair"]).await.unwrap_err();
    assert!(again.contains("the lamp is not paired"), "{again}");
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_is_refused_and_withdrawn() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let (mut watcher, lamp) = watched_lamp(&broker, state.path()).await;
    let code = ctl(broker.port, &["pair-code"]).await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    // The code's minute runs out: the lamp withdraws it (the test waits the real minute).
    let shown = tokio::time::Instant::now();
    watcher
        .next_within(Duration::from_secs(70), |m| m.topic == CODE && m.payload.is_empty())
        .await;
    let life = shown.elapsed();
    assert!(
        life > Duration::from_secs(58) && life < Duration::from_secs(62),
        "{life:?}"
    );
    let late = associate(&mut watcher, &code, "late").await;
    assert_eq!(late["ok"], json!(false));
    assert!(
        late["error"].as_str().unwrap().starts_with("the code has expired"),
        "{late}"
    );
    let malformed = {
        watcher.publish(ASSOCIATE, r#"{"code": "ABCD", "token": "m1"}"#).await;
        json(&watcher.next_matching(RESULT, |r| r["token"] == json!("m1")).await)
    };
    assert_eq!(malformed["error"], json!("owner: required text"));
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lampis_topic_shows_the_code_only_when_configured_to() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let (mut watcher, lamp) = watched_lamp_with(&broker, state.path(), true).await;
    let code = ctl(broker.port, &["pair-code"]).await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let lampi = json(&watcher.next_matching(ASSOCIATED, |j| j.get("code").is_some()).await);
    assert_eq!(lampi, json!({"code": code, "associated": false}));
    lamp.stop().await;
}
