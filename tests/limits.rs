//! What one message can do to the lamp: the largest documents the schema accepts, a request
//! built to make huge answers, and retained commands the broker replays at every reconnect.
//! The real daemon and a real Mosquitto with the documented `max_packet_size`; after each, the
//! lamp must still act on a desired change and must never have dropped its connection.

mod common;

use std::time::Duration;

use common::{Broker, Client, RunningLamp, json};
use rumqttc::QoS;
use serde_json::{Value, json};

const SHADOW: &str = "$aws/things/lamp1/shadow/";
const CONNECTION: &str = "lamp/connection/lamp_service/state";
const EVENTS: &str = "lampi/lamp1/events";
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The broker as docs/PROTOCOL.md recommends it.
fn documented_broker() -> Broker {
    Broker::start_custom(false, "max_packet_size 131072\n", String::new())
}

/// An app watching the shadow's answers and the lamp's events.
async fn shadow_app(broker: &Broker, id: &str) -> Client {
    let app = Client::connect(broker.port, id).await;
    app.subscribe(&format!("{SHADOW}#")).await;
    app.subscribe(EVENTS).await;
    app
}

/// A client that sees every message on the lamp's connection topic.
async fn connection_watch(broker: &Broker) -> Client {
    let watch = Client::connect(broker.port, "connection-watch").await;
    watch.subscribe(CONNECTION).await;
    watch
}

/// Starts the lamp and waits until it is subscribed: its connection state says "1" after its
/// subscriptions, so a retained message has reached it by then, and a request sent now is heard.
async fn start(broker: &Broker, state: &std::path::Path, watch: &mut Client) -> RunningLamp {
    let lamp = RunningLamp::start(broker.port, state).await;
    watch
        .next_where(|m| m.topic == CONNECTION && &m.payload[..] == b"1")
        .await;
    lamp
}

/// The documented broker, a lamp on it, an app watching its shadow and a watch on its
/// connection: where most tests here begin.
struct Scene {
    broker: Broker,
    state: tempfile::TempDir,
    watch: Client,
    app: Client,
    lamp: RunningLamp,
}

impl Scene {
    async fn start() -> Scene {
        let broker = documented_broker();
        let state = tempfile::tempdir().unwrap();
        let mut watch = connection_watch(&broker).await;
        let app = shadow_app(&broker, "app").await;
        let lamp = start(&broker, state.path(), &mut watch).await;
        Scene {
            broker,
            state,
            watch,
            app,
            lamp,
        }
    }
}

async fn restart(lamp: RunningLamp, broker: &Broker, state: &std::path::Path, watch: &mut Client) -> RunningLamp {
    lamp.stop().await;
    start(broker, state, watch).await
}

/// Fails if the lamp's connection state went "0" or was announced again (a reconnect) since
/// [`start`] saw it come up.
async fn assert_never_dropped(watch: &mut Client) {
    let states: Vec<String> = watch
        .drain(CONNECTION, Duration::from_millis(500))
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert!(states.is_empty(), "the lamp's connection dropped: {states:?}");
}

/// Sends a shadow update and waits for its answer: `Ok(accepted)` or `Err(rejection)`.
async fn update(app: &mut Client, token: &str, state: Value) -> Result<Value, Value> {
    let request = json!({"state": state, "clientToken": token}).to_string();
    app.publish(&format!("{SHADOW}update"), request).await;
    let answer = app
        .next_where(|m| {
            (m.topic.ends_with("update/accepted") || m.topic.ends_with("update/rejected"))
                && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|j| j["clientToken"] == json!(token))
        })
        .await;
    if answer.topic.ends_with("accepted") {
        Ok(json(&answer))
    } else {
        Err(json(&answer))
    }
}

/// Waits for the lamp's own report (an `update/documents` without a client token) for which
/// `wanted` holds of `reported`.
async fn reported(app: &mut Client, wanted: impl Fn(&Value) -> bool) -> Value {
    let message = app
        .next_matching(&format!("{SHADOW}update/documents"), |doc| {
            doc.get("clientToken").is_none() && wanted(&doc["current"]["state"]["reported"])
        })
        .await;
    json(&message)["current"]["state"]["reported"].clone()
}

/// Proof the lamp still works: a desired brightness is taken and reported back.
async fn still_acts(app: &mut Client, brightness: f64) {
    let light = json!({"on": true, "brightness": brightness, "transition_ms": 0});
    update(app, "still-acts", json!({"desired": {"light": light}}))
        .await
        .expect("a desired change is accepted");
    reported(app, |r| r["light"]["brightness"] == json!(brightness)).await;
}

/// 20 alarms on every day with `label` and what an alarm editor sets; `full` adds every other
/// field.
fn alarms(label: &str, full: bool) -> Value {
    let alarm = |i: usize| {
        let mut alarm = json!({"time": format!("{:02}:{:02}", i % 24, i), "days": DAYS, "label": label,
                               "action": "sunrise", "enabled": true, "ramp_minutes": 30});
        if full {
            let extra = json!({"timezone": "America/Argentina/Buenos_Aires", "snooze_minutes": 9,
                               "ring_minutes": 60, "brightness": 0.75});
            alarm
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
        }
        alarm
    };
    Value::Object((0..20).map(|i| (format!("alarm-{i:02}"), alarm(i))).collect())
}

/// A label of `bytes` bytes, four-byte emoji first.
fn label(bytes: usize) -> String {
    "😀".repeat(bytes / 4) + &"a".repeat(bytes % 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_alarms_with_the_longest_labels_are_reported_and_keep_the_connection() {
    let Scene {
        broker: _broker,
        state: _state,
        mut watch,
        mut app,
        lamp,
    } = Scene::start().await;
    still_acts(&mut app, 0.25).await;

    // 64 characters of four-byte emoji, then 64 bytes: the longest label the lamp accepts.
    let mut taken = None;
    for bytes in [256, 64] {
        let desired = json!({"desired": {"alarms": alarms(&label(bytes), false)}});
        if update(&mut app, &format!("labels-{bytes}"), desired).await.is_ok() {
            taken = Some(bytes);
            break;
        }
    }
    let taken = taken.expect("20 alarms with 64-byte labels are within the documented limits");
    let want = label(taken);
    reported(&mut app, |r| r["alarms"]["alarm-19"]["label"] == json!(want)).await;
    still_acts(&mut app, 0.5).await;
    assert_never_dropped(&mut watch).await;
    lamp.stop().await;
}

/// Fills the mirrored settings as far as the lamp accepts (to within 20 bytes): the lamp's own
/// report, which adds its light, clock, alarm state and more, must still be taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lamps_own_report_fits_when_desired_is_at_its_limit() {
    let Scene {
        broker: _broker,
        state: _state,
        mut watch,
        mut app,
        lamp,
    } = Scene::start().await;
    still_acts(&mut app, 0.25).await;

    // Label bytes per alarm: the largest accepted, by bisection.
    let (mut low, mut high) = (0, 257);
    let mut attempt = 0;
    while high - low > 1 {
        let mid = (low + high) / 2;
        attempt += 1;
        let desired = json!({"desired": {"alarms": alarms(&label(mid), true)}});
        match update(&mut app, &format!("fill-{attempt}"), desired).await {
            Ok(_) => low = mid,
            Err(e) => {
                assert!([400, 413].contains(&e["code"].as_u64().unwrap()), "{e}");
                high = mid;
            }
        }
    }
    // Desired holds the last accepted, the largest; the lamp's report of it must be taken.
    let want = label(low);
    let mut report = Value::Null;
    for attempt in 0..100 {
        report = get(&mut app, &format!("report-{attempt}")).await.unwrap()["state"]["reported"].take();
        if report["alarms"]["alarm-19"]["label"] == json!(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(report["alarms"]["alarm-19"]["label"], json!(want), "reported froze");
    let bytes = report.to_string().len();
    assert!(bytes <= 8 * 1024, "{bytes} bytes");
    still_acts(&mut app, 0.5).await;
    assert_never_dropped(&mut watch).await;
    lamp.stop().await;
}

/// ~8 KB of zeros in a field only the lamp reports would have made ~106 KB answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amplifying_request_is_refused_and_the_lamp_stays_connected() {
    let Scene {
        broker: _broker,
        state: _state,
        mut watch,
        mut app,
        lamp,
    } = Scene::start().await;
    still_acts(&mut app, 0.25).await;

    let zeros = vec![0; 2650];
    let answer = update(&mut app, "amplify", json!({"reported": {"alarm": {"next": zeros}}})).await;
    let refused = answer.expect_err("refused");
    assert_eq!(refused["code"], json!(400), "{refused}");
    still_acts(&mut app, 0.5).await;
    assert_never_dropped(&mut watch).await;
    lamp.stop().await;
}

/// In `aws` mode a `get/accepted` over the old 64 KiB packet limit (AWS IoT sends up to 128 KB)
/// dropped the connection; after reconnecting the lamp asked again and got the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_cloud_document_does_not_drop_the_connection() {
    let broker = documented_broker();
    let state = tempfile::tempdir().unwrap();
    let mut watch = connection_watch(&broker).await;
    let mut cloud = Client::connect(broker.port, "aws-iot").await;
    cloud.subscribe(&format!("{SHADOW}get")).await;
    cloud.subscribe(&format!("{SHADOW}update")).await;
    let lamp = RunningLamp::start_with(broker.port, state.path(), |c| {
        c.shadow.service = lampi::config::ShadowService::Aws;
    })
    .await;

    let token = json(&cloud.next_on(&format!("{SHADOW}get")).await)["clientToken"].clone();
    // Large, and not what the lamp's schema allows: the lamp ignores this desired state.
    let note = "x".repeat(100 * 1024);
    let document = json!({"state": {"desired": {"note": note}}, "metadata": {}, "version": 1,
                          "timestamp": 1_795_712_902, "clientToken": token});
    cloud
        .publish(&format!("{SHADOW}get/accepted"), document.to_string())
        .await;
    cloud.next_on(&format!("{SHADOW}update")).await;

    let delta = json!({"state": {"light": {"on": true, "brightness": 0.5}}, "metadata": {}, "version": 2,
                       "timestamp": 1_795_712_903});
    cloud.publish(&format!("{SHADOW}update/delta"), delta.to_string()).await;
    cloud
        .next_matching(&format!("{SHADOW}update"), |u| {
            u["state"]["reported"]["light"]["brightness"] == json!(0.5)
        })
        .await;
    let asked_again = cloud.drain(&format!("{SHADOW}get"), Duration::from_millis(300)).await;
    assert!(asked_again.is_empty(), "the lamp reconnected and asked again");
    watch
        .next_where(|m| m.topic == CONNECTION && &m.payload[..] == b"1")
        .await;
    assert_never_dropped(&mut watch).await;
    lamp.stop().await;
}

/// Publishes `payload` retained on `topic`, as a careless or hostile client would.
async fn publish_retained(app: &Client, topic: &str, payload: impl Into<Vec<u8>>) {
    app.client
        .publish(topic, QoS::AtLeastOnce, true, payload)
        .await
        .unwrap();
}

/// The shadow as `get` returns it, `None` when there is none.
async fn get(app: &mut Client, token: &str) -> Option<Value> {
    app.publish(&format!("{SHADOW}get"), json!({"clientToken": token}).to_string())
        .await;
    let answer = app
        .next_where(|m| {
            m.topic.starts_with(&format!("{SHADOW}get/"))
                && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|j| j["clientToken"] == json!(token))
        })
        .await;
    answer.topic.ends_with("accepted").then(|| json(&answer))
}

/// The lamp's event saying it ignored a retained message on `topic`.
async fn ignored_retained(app: &mut Client, topic: &str) {
    app.next_matching(EVENTS, |e| {
        e["type"] == json!("retained_ignored") && e["topic"] == json!(topic)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_shadow_delete_acts_once_and_not_at_every_restart() {
    let Scene {
        broker,
        state,
        mut watch,
        mut app,
        lamp,
    } = Scene::start().await;
    let wake = json!({"desired": {"alarms": {"wake": {"time": "07:00"}}}});
    update(&mut app, "wake-1", wake.clone()).await.unwrap();

    // Delivered live, a retained message arrives without the flag: it is a request like any other.
    let delete = format!("{SHADOW}delete");
    publish_retained(&app, &delete, r#"{"clientToken": "del"}"#).await;
    app.next_matching(&format!("{delete}/accepted"), |d| d["clientToken"] == json!("del"))
        .await;
    update(&mut app, "wake-2", wake).await.unwrap();

    let lamp = restart(lamp, &broker, state.path(), &mut watch).await;
    // The lamp takes messages in order: the replay came before this request.
    let mut reader = shadow_app(&broker, "reader").await;
    let doc = get(&mut reader, "after-restart")
        .await
        .expect("the shadow survives the replay");
    assert!(doc["state"]["desired"]["alarms"]["wake"].is_object(), "{doc}");
    ignored_retained(&mut app, &delete).await;
    still_acts(&mut app, 0.5).await;
    lamp.stop().await;
}

const PAIRING: &str = "lampi/lamp1/pairing/";

/// Pairs the lamp with alice, as the portal would.
async fn pair(app: &mut Client, token: &str) {
    app.publish(&format!("{PAIRING}request"), "{}").await;
    let code = json(
        &app.next_matching(&format!("{PAIRING}code"), |c| c["code"].is_string())
            .await,
    );
    let association = json!({"code": code["code"], "owner": "alice", "name": "Alice", "token": token});
    app.publish(&format!("{PAIRING}associate"), association.to_string())
        .await;
    let result = json(
        &app.next_matching(&format!("{PAIRING}result"), |r| r["token"] == json!(token))
            .await,
    );
    assert_eq!(result["ok"], json!(true), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_unpair_is_not_replayed_at_a_restart() {
    let broker = documented_broker();
    let state = tempfile::tempdir().unwrap();
    let mut watch = connection_watch(&broker).await;
    let mut app = shadow_app(&broker, "app").await;
    app.subscribe(&format!("{PAIRING}#")).await;
    let lamp = start(&broker, state.path(), &mut watch).await;

    pair(&mut app, "pair-1").await;
    let unpair = format!("{PAIRING}unpair");
    publish_retained(&app, &unpair, r#"{"token": "unpair"}"#).await;
    app.next_matching(&format!("{PAIRING}result"), |r| r["token"] == json!("unpair"))
        .await;
    pair(&mut app, "pair-2").await;

    let lamp = restart(lamp, &broker, state.path(), &mut watch).await;
    let replayed = app
        .next_where(|m| {
            let body = serde_json::from_slice::<Value>(&m.payload).unwrap_or_default();
            (m.topic == format!("{PAIRING}result") && body["token"] == json!("unpair"))
                || (m.topic == EVENTS && body["type"] == json!("retained_ignored"))
        })
        .await;
    assert_eq!(
        replayed.topic, EVENTS,
        "the unpairing was replayed: {:?}",
        replayed.payload
    );
    assert_eq!(json(&replayed)["topic"], json!(unpair));
    let owner = lamp.handle.pairing.borrow().owner.clone().expect("still paired");
    assert_eq!(owner.id, "alice");
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_amplifying_request_is_not_replayed_at_a_restart() {
    let Scene {
        broker,
        state,
        mut watch,
        mut app,
        lamp,
    } = Scene::start().await;
    still_acts(&mut app, 0.25).await;

    let update_topic = format!("{SHADOW}update");
    let zeros = vec![0; 2650];
    let request = json!({"state": {"reported": {"alarm": {"next": zeros}}}, "clientToken": "amplify"});
    publish_retained(&app, &update_topic, request.to_string()).await;
    app.next_matching(&format!("{update_topic}/rejected"), |r| {
        r["clientToken"] == json!("amplify")
    })
    .await;

    let lamp = restart(lamp, &broker, state.path(), &mut watch).await;
    ignored_retained(&mut app, &update_topic).await;
    still_acts(&mut app, 0.5).await;
    assert_never_dropped(&mut watch).await;
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_set_config_is_not_replayed_at_a_restart() {
    const SET_CONFIG: &str = "lamp/set_config";
    let broker = documented_broker();
    let state = tempfile::tempdir().unwrap();
    let mut watch = connection_watch(&broker).await;
    let mut app = shadow_app(&broker, "app").await;
    app.subscribe("lamp/changed").await;
    let lamp = start(&broker, state.path(), &mut watch).await;

    publish_retained(&app, SET_CONFIG, r#"{"on": false, "client": "stale"}"#).await;
    app.next_matching("lamp/changed", |c| c["client"] == json!("stale"))
        .await;
    app.publish(SET_CONFIG, r#"{"on": true, "brightness": 0.8, "client": "person"}"#)
        .await;
    app.next_matching("lamp/changed", |c| c["client"] == json!("person"))
        .await;

    let lamp = restart(lamp, &broker, state.path(), &mut watch).await;
    ignored_retained(&mut app, SET_CONFIG).await;
    let light = lamp.handle.changes.borrow().state;
    assert!(light.on, "the retained set_config switched the lamp off again");
    lamp.stop().await;
}

/// Labels were limited to 64 characters: a state file from then may hold 80-byte labels, which
/// today's schema refuses. The lamp cuts them when it starts, so it can still report and act.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_saved_by_an_older_version_do_not_freeze_the_shadow() {
    let Scene {
        broker,
        state,
        mut watch,
        mut app,
        lamp,
    } = Scene::start().await;
    let wake = json!({"desired": {"alarms": {"wake": {"time": "07:00", "label": label(64)}}}});
    update(&mut app, "wake", wake).await.unwrap();
    reported(&mut app, |r| r["alarms"]["wake"]["label"] == json!(label(64))).await;
    lamp.stop().await;

    let file = state.path().join("state.json");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains(&label(64)));
    std::fs::write(&file, saved.replace(&label(64), &label(80))).unwrap();

    let lamp = start(&broker, state.path(), &mut watch).await;
    still_acts(&mut app, 0.5).await;
    let doc = get(&mut app, "cut").await.unwrap();
    assert_eq!(doc["state"]["desired"]["alarms"]["wake"]["label"], json!(label(64)));
    lamp.stop().await;
}

/// An older version took up to 8 KiB of settings (it checked only `desired`), more than the lamp
/// can mirror beside its own report: upgraded with such a state file, the lamp brings it within
/// today's limits and goes on reporting, instead of having every report refused with 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_saved_by_an_older_version_over_the_limit_do_not_freeze_reported() {
    let broker = documented_broker();
    let state = tempfile::tempdir().unwrap();
    let older = json!({"alarms": alarms(&"\\".repeat(64), true), "timezone": "America/Argentina/Buenos_Aires"});
    assert!(older.to_string().len() > 5120 && older.to_string().len() <= 8192);
    let file = json!({"format": 3, "light": {"on": true, "hue": 0.0, "saturation": 0.0, "brightness": 1.0},
                      "shadow": {"desired": older, "reported": {}, "metadata": {"desired": {}, "reported": {}},
                                 "version": 7, "exists": true}});
    std::fs::write(state.path().join("state.json"), file.to_string()).unwrap();
    let mut watch = connection_watch(&broker).await;
    let mut app = shadow_app(&broker, "app").await;
    let lamp = start(&broker, state.path(), &mut watch).await;

    let report = reported(&mut app, |r| r["alarms"]["alarm-19"]["time"] == json!("19:19")).await;
    assert_eq!(report["alarms"].as_object().unwrap().len(), 20, "no alarm lost");
    assert_eq!(report["timezone"], json!("America/Argentina/Buenos_Aires"));
    still_acts(&mut app, 0.5).await;
    let one_fewer = json!({"desired": {"alarms": {"alarm-00": null}}});
    update(&mut app, "delete-one", one_fewer)
        .await
        .expect("a deletion is taken");
    reported(&mut app, |r| r["alarms"].get("alarm-00").is_none()).await;
    assert_never_dropped(&mut watch).await;
    lamp.stop().await;
}
