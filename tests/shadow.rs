//! The lamp-hosted device shadow over a real Mosquitto, spoken to as any AWS IoT shadow client
//! would: requests on `$aws/things/lamp1/shadow/{update,get,delete}`, answers on their
//! `/accepted` and `/rejected` topics.

mod common;

use std::time::Duration;

use common::{Broker, Client, RunningLamp, json};
use lampi::core::colour::duty_for;
use serde_json::{Value, json};

const PREFIX: &str = "$aws/things/lamp1/shadow/";

struct Fixture {
    broker: Broker,
    _state: tempfile::TempDir,
    lamp: RunningLamp,
    client: Client,
    tokens: u32,
}

impl Fixture {
    async fn start() -> Fixture {
        let broker = Broker::start();
        let state = tempfile::tempdir().unwrap();
        let lamp = RunningLamp::start(broker.port, state.path()).await;
        Fixture::attach(broker, state, lamp).await
    }

    /// A client for `lamp`'s shadow, once the lamp answers.
    async fn attach(broker: Broker, state: tempfile::TempDir, lamp: RunningLamp) -> Fixture {
        let client = Client::connect(broker.port, "app").await;
        client.subscribe(&format!("{PREFIX}#")).await;
        client.subscribe("lamp/changed").await;
        let mut fixture = Fixture {
            broker,
            _state: state,
            lamp,
            client,
            tokens: 0,
        };
        fixture.wait_for_lamp().await;
        fixture
    }

    async fn wait_for_lamp(&mut self) {
        let deadline = tokio::time::Instant::now() + common::TIMEOUT;
        loop {
            let (topic, doc) = self.request_within("get", json!({}), Duration::from_millis(300)).await;
            if topic.ends_with("get/accepted") && doc["state"]["reported"]["connected_since"].is_u64() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the lamp never answered");
        }
    }

    /// Sends `payload` (with a fresh clientToken) to `op` and returns the answer's topic suffix
    /// and document.
    async fn request(&mut self, op: &str, payload: Value) -> (String, Value) {
        self.request_within(op, payload, common::TIMEOUT).await
    }

    async fn request_within(&mut self, op: &str, mut payload: Value, within: Duration) -> (String, Value) {
        self.tokens += 1;
        let token = format!("t{}", self.tokens);
        payload["clientToken"] = json!(token);
        self.raw(
            op,
            payload.to_string().into_bytes(),
            |doc| doc["clientToken"] == json!(token),
            within,
        )
        .await
        .unwrap_or_default()
    }

    async fn raw(
        &mut self,
        op: &str,
        payload: Vec<u8>,
        ours: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Option<(String, Value)> {
        self.client.publish(&format!("{PREFIX}{op}"), payload).await;
        let accepted = format!("{PREFIX}{op}/accepted");
        let rejected = format!("{PREFIX}{op}/rejected");
        let answer = tokio::time::timeout(
            within,
            self.client.next_where(|m| {
                (m.topic == accepted || m.topic == rejected)
                    && ours(&serde_json::from_slice(&m.payload).unwrap_or_default())
            }),
        )
        .await
        .ok()?;
        let suffix = answer.topic.strip_prefix(PREFIX).unwrap().to_owned();
        Some((suffix, json(&answer)))
    }

    async fn get(&mut self) -> Value {
        let (topic, doc) = self.request("get", json!({})).await;
        assert_eq!(topic, "get/accepted", "{doc}");
        doc
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_light_drives_the_led_and_is_reported_back() {
    let mut f = Fixture::start().await;
    let mut lampi_ui = Client::connect(f.broker.port, "kivy").await;
    lampi_ui.subscribe("lamp/changed").await;
    let light = json!({"on": true, "hue": 0.33, "saturation": 1.0, "brightness": 0.5});
    let (topic, accepted) = f
        .request("update", json!({"state": {"desired": {"light": light}}}))
        .await;
    assert_eq!(topic, "update/accepted", "{accepted}");
    assert_eq!(accepted["state"]["desired"]["light"], light);
    assert_eq!(
        accepted["metadata"]["desired"]["light"]["brightness"]["timestamp"],
        accepted["timestamp"]
    );

    let token = accepted["clientToken"].clone();
    let ours = |j: &Value| j["clientToken"] == token;
    // They arrive in the order AWS sends them: accepted, documents, delta.
    let documents = json(&f.client.next_matching(&format!("{PREFIX}update/documents"), ours).await);
    let delta = f.client.next_matching(&format!("{PREFIX}update/delta"), ours).await;
    assert_eq!(json(&delta)["state"]["light"]["brightness"], json!(0.5));
    assert_eq!(documents["current"]["version"], accepted["version"]);
    assert_eq!(
        documents["previous"]["version"].as_u64().unwrap() + 1,
        accepted["version"].as_u64().unwrap()
    );

    let expected = duty_for(true, 0.33, 1.0, 0.5);
    f.lamp.output_settles_at(expected).await;
    // LAMPI clients hear about it too.
    lampi_ui
        .next_matching("lamp/changed", |j| {
            j["client"] == json!("shadow") && j["brightness"] == json!(0.5)
        })
        .await;

    // The lamp reports what it did; once the fade ends the output is exact and no delta is left.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let doc = f.get().await;
    assert_eq!(doc["state"]["reported"]["light"]["brightness"], json!(0.5));
    assert!(doc["state"].get("delta").is_none(), "{doc}");
    let output = &doc["state"]["reported"]["output"];
    assert!((output["g"].as_f64().unwrap() - expected.g).abs() < 1e-6, "{output}");
    assert_eq!(
        doc["state"]["reported"]["firmware"]["version"],
        json!(env!("CARGO_PKG_VERSION"))
    );
    f.lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_merge_null_deletion_and_clearing_desired() {
    let mut f = Fixture::start().await;
    let alarms = json!({"work": {"time": "06:30", "days": ["mon", "tue"]}, "weekend": {"time": "09:00"}});
    f.request(
        "update",
        json!({"state": {"desired": {"alarms": alarms, "mode": "manual"}}}),
    )
    .await;
    f.request(
        "update",
        json!({"state": {"desired": {"alarms": {"work": {"time": "06:45"}, "weekend": null}}}}),
    )
    .await;
    let doc = f.get().await;
    let expected = json!({"work": {"time": "06:45", "days": ["mon", "tue"]}});
    assert_eq!(doc["state"]["desired"]["alarms"], expected);
    assert_eq!(
        doc["state"]["reported"]["alarms"], expected,
        "the lamp mirrors its settings"
    );
    assert!(doc["metadata"]["desired"]["alarms"]["weekend"].is_null());

    let (topic, accepted) = f.request("update", json!({"state": {"desired": null}})).await;
    assert_eq!(
        (topic.as_str(), &accepted["state"]["desired"]),
        ("update/accepted", &Value::Null)
    );
    let doc = f.get().await;
    assert!(doc["state"].get("desired").is_none(), "{doc}");
    assert_eq!(
        doc["state"]["reported"]["alarms"], expected,
        "clearing desired does not reset the lamp"
    );
    f.lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_request_is_rejected_and_changes_nothing() {
    let mut f = Fixture::start().await;
    let before = f.get().await;
    let version = before["version"].as_u64().unwrap();
    let cases = [
        (
            json!({"state": {"desired": {"light": {"on": false}}}, "version": version + 5}),
            409,
            "Version conflict",
        ),
        (
            json!({"state": {"desired": {"light": {"brightness": 1.5}}}}),
            400,
            "desired.light.brightness: 1.5 is outside",
        ),
        (
            json!({"state": {"desired": {"light": {"on": "yes"}}}}),
            400,
            "desired.light.on: must be true or false",
        ),
        (
            json!({"state": {"desired": {"colour": "red"}}}),
            400,
            "desired.colour: unknown field",
        ),
        (
            json!({"state": {"desired": {"timezone": "Nowhere/Else"}}}),
            400,
            "desired.timezone",
        ),
        (
            json!({"state": {"desired": {"output": {"r": 1}}}}),
            400,
            "desired.output: unknown field",
        ),
        (json!({"nostate": {}}), 400, "Missing required node: state"),
        (json!({"state": []}), 400, "State node must be an object"),
        (json!({"state": {"desired": 1}}), 400, "Desired node must be an object"),
        (
            json!({"state": {"reported": "x"}}),
            400,
            "Reported node must be an object",
        ),
        (json!({"state": {"delta": {}}}), 400, "State contains an invalid node"),
        (json!({"state": {}, "version": "one"}), 400, "Invalid version"),
        (
            json!({"state": {"desired": {"alarms": {"a": {"time": "07:00", "label": {"b": {"c": {"d": {"e": 1}}}}}}}}}),
            400,
            "JSON contains too many levels of nesting; maximum is 6",
        ),
        (
            json!({"state": {"desired": {"alarms": {"a": {"time": "07:00", "label": "x".repeat(9000)}}}}}),
            413,
            "The payload exceeds",
        ),
    ];
    for (payload, code, message) in cases {
        let (topic, error) = f.request("update", payload.clone()).await;
        assert_eq!(topic, "update/rejected", "{payload}: {error}");
        assert_eq!(error["code"], json!(code), "{payload}: {error}");
        assert!(
            error["message"].as_str().unwrap().starts_with(message),
            "{payload}: {error}"
        );
        assert!(error["timestamp"].is_u64());
    }
    // Errors that leave no clientToken to match on.
    for (payload, code, message) in [
        (b"{not json".to_vec(), 400, "Invalid JSON"),
        (vec![0xff, 0xfe], 415, "Unsupported documented encoding"),
        (
            format!(r#"{{"state":{{}},"clientToken":"{}"}}"#, "x".repeat(65)).into_bytes(),
            400,
            "Invalid clientToken",
        ),
        (vec![b' '; 20_000], 413, "The payload exceeds"),
    ] {
        let (topic, error) = f
            .raw("update", payload, |doc| doc["code"] == json!(code), common::TIMEOUT)
            .await
            .unwrap();
        assert_eq!(topic, "update/rejected");
        assert!(error["message"].as_str().unwrap().starts_with(message), "{error}");
    }
    let after = f.get().await;
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["state"], before["state"]);
    f.lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_then_get_is_404_until_the_lamp_reports_again() {
    let mut f = Fixture::start().await;
    let version = f.get().await["version"].as_u64().unwrap();
    let (topic, deleted) = f.request("delete", json!({})).await;
    assert_eq!(
        (topic.as_str(), deleted["version"].as_u64()),
        ("delete/accepted", Some(version))
    );
    let (topic, missing) = f.request("get", json!({})).await;
    assert_eq!(topic, "get/rejected");
    assert_eq!(missing["code"], json!(404));
    assert_eq!(missing["message"], json!("No shadow exists with name: 'lamp1'"));

    f.client
        .publish("lamp/set_config", r#"{"on":false,"client":"me"}"#)
        .await;
    f.client
        .next_matching("lamp/changed", |j| j["on"] == json!(false))
        .await;
    let doc = f.get().await;
    assert!(
        doc["version"].as_u64().unwrap() > version,
        "versions carry on after a delete"
    );
    assert_eq!(doc["state"]["desired"]["light"], json!({"on": false}));
    f.lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_change_is_written_to_desired_so_the_cloud_does_not_undo_it() {
    let mut f = Fixture::start().await;
    f.request(
        "update",
        json!({"state": {"desired": {"light": {"brightness": 0.9, "on": true}}}}),
    )
    .await;
    f.client
        .publish("lamp/set_config", r#"{"brightness":0.2,"client":"wall-switch"}"#)
        .await;
    f.client
        .next_matching("lamp/changed", |j| j["client"] == json!("wall-switch"))
        .await;
    let doc = f.get().await;
    assert_eq!(doc["state"]["desired"]["light"], json!({"brightness": 0.2, "on": true}));
    assert_eq!(doc["state"]["reported"]["light"]["brightness"], json!(0.2));
    assert!(doc["state"].get("delta").is_none(), "{doc}");
    f.lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_survives_a_restart() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let mut client = Client::connect(broker.port, "app").await;
    client.subscribe(&format!("{PREFIX}update/accepted")).await;
    let lamp = RunningLamp::start(broker.port, state.path()).await;
    let alarm = json!({"time": "07:15", "action": "sunrise", "ramp_minutes": 30});
    // Retry until the lamp is subscribed.
    let accepted = loop {
        let payload = json!({"state": {"desired": {"alarms": {"a": alarm}}}, "clientToken": "x"});
        client.publish(&format!("{PREFIX}update"), payload.to_string()).await;
        let answer = tokio::time::timeout(
            Duration::from_millis(300),
            client.next_matching(&format!("{PREFIX}update/accepted"), |j| j["clientToken"] == json!("x")),
        )
        .await;
        if let Ok(answer) = answer {
            break json(&answer);
        }
    };
    let version = accepted["version"].as_u64().unwrap();
    lamp.stop().await;

    let lamp = RunningLamp::start(broker.port, state.path()).await;
    let saved = lamp.handle.saved.borrow().clone();
    assert_eq!(saved.shadow.desired["alarms"]["a"], alarm);
    assert!(saved.shadow.version > version);
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_offline_are_reported_after_reconnecting() {
    let mut broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let lamp = RunningLamp::start(broker.port, state.path()).await;
    broker.stop();
    lamp.set_on(false, "button").await;
    broker.restart();
    let mut f = Fixture::attach(broker, state, lamp).await;
    let doc = f.get().await;
    assert_eq!(doc["state"]["reported"]["light"]["on"], json!(false));
    assert_eq!(doc["state"]["desired"]["light"]["on"], json!(false));
    f.lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_updates_the_broker_acknowledged_survive_its_restart() {
    let broker = Broker::start_with_persistence(true);
    let state = tempfile::tempdir().unwrap();
    // A slow reconnect, so updates sent after the restart reach the broker while the lamp is
    // still away: only its persistent session can deliver them.
    let lamp = RunningLamp::start_with(broker.port, state.path(), |c| {
        c.mqtt.reconnect_initial_ms = 1500;
        c.mqtt.reconnect_max_ms = 1500;
    })
    .await;
    let mut f = Fixture::attach(broker, state, lamp).await;

    let update = |i: u32| json!({"state": {"desired": {"light": {"brightness": f64::from(i) / 100.0}}}}).to_string();
    for i in 1..=50 {
        f.client.publish(&format!("{PREFIX}update"), update(i)).await;
    }
    f.broker.restart();
    let app = Client::connect(f.broker.port, "app-after-restart").await;
    for i in 51..=100 {
        app.publish(&format!("{PREFIX}update"), update(i)).await;
    }
    // Wait for the lamp to come back and work through its queue.
    f.client = Client::connect(f.broker.port, "checker").await;
    f.client.subscribe(&format!("{PREFIX}#")).await;
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        let (topic, doc) = f.request_within("get", json!({}), Duration::from_millis(500)).await;
        if topic == "get/accepted" && doc["state"]["reported"]["light"]["brightness"] == json!(1.0) {
            assert_eq!(doc["state"]["desired"]["light"]["brightness"], json!(1.0));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the last desired brightness never arrived: {doc}"
        );
    }
    f.lamp.stop().await;
}
