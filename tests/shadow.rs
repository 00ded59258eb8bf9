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
        Fixture::start_with(|_| {}).await
    }

    async fn start_with(tune: impl FnOnce(&mut lampi::config::Config)) -> Fixture {
        let broker = Broker::start();
        let state = tempfile::tempdir().unwrap();
        let lamp = RunningLamp::start_with(broker.port, state.path(), tune).await;
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

    /// A desired update the lamp must accept.
    async fn desire(&mut self, desired: Value) {
        let (topic, answer) = self.request("update", json!({"state": {"desired": desired}})).await;
        assert_eq!(topic, "update/accepted", "{desired}: {answer}");
    }

    /// Fetches the document until `reported` satisfies `done`, and returns it.
    async fn until_reported(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + common::TIMEOUT;
        loop {
            // (A deleted document answers 404 until the lamp reports again.)
            let (topic, doc) = self.request("get", json!({})).await;
            if topic == "get/accepted" && done(&doc["state"]["reported"]) {
                return doc;
            }
            assert!(tokio::time::Instant::now() < deadline, "never {what}: {}", doc["state"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
    assert!(
        doc["state"]["reported"].get("alarms").is_none(),
        "clearing desired ends the settings it held: {doc}"
    );
    f.lamp.stop().await;
}

/// The person's dim blue, which no alarm or night shows.
const BLUE: [f64; 3] = [0.6667, 1.0, 0.3];

fn blue_light() -> Value {
    json!({"on": true, "hue": BLUE[0], "saturation": BLUE[1], "brightness": BLUE[2]})
}

fn no_alarms(reported: &Value) -> bool {
    reported.get("alarms").is_none() && reported["alarm"] == json!({"state": "idle"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_only_alarm_while_it_rings_stops_it_and_reports_it_gone() {
    let mut f = Fixture::start_with(|c| c.clock.start = Some("2026-11-27T06:59:58Z".into())).await;
    let every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    f.desire(json!({"light": blue_light(),
        "alarms": {"acc1": {"time": "07:00", "action": "blink", "days": every_day}}}))
        .await;
    f.until_reported("rang", |r| r["alarm"]["state"] == json!("ringing"))
        .await;

    f.desire(json!({"alarms": {"acc1": null}})).await;
    let doc = f.until_reported("stopped ringing", no_alarms).await;
    assert!(doc["state"].get("desired").is_some_and(|d| d.get("alarms").is_none()));
    assert!(doc["state"].get("delta").is_none(), "{doc}");
    f.lamp
        .output_settles_at(duty_for(true, BLUE[0], BLUE[1], BLUE[2]))
        .await;
    // And it stays gone: no ring, no next alarm, a second later.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let doc = f.get().await;
    assert!(no_alarms(&doc["state"]["reported"]), "{}", doc["state"]);
    f.lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_alarms_deleted_one_then_the_other() {
    let mut f = Fixture::start().await;
    let alarms = json!({"a": {"time": "07:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
        "b": {"time": "08:00", "days": ["sat", "sun"]}});
    f.desire(json!({"alarms": alarms})).await;
    f.until_reported("both alarms", |r| r["alarms"] == alarms).await;

    f.desire(json!({"alarms": {"a": null}})).await;
    let doc = f
        .until_reported("alarm a deleted", |r| r["alarms"].get("a").is_none())
        .await;
    assert_eq!(doc["state"]["reported"]["alarm"]["next"]["id"], json!("b"));

    f.desire(json!({"alarms": {"b": null}})).await;
    f.until_reported("alarm b deleted", no_alarms).await;
    f.lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_deletion_takes_effect_on_the_lamp_and_in_reported() {
    // Night in London: natural light is dark, the person's light is blue.
    let mut f = Fixture::start_with(|c| c.clock.start = Some("2026-11-27T02:00:00Z".into())).await;
    let blue = duty_for(true, BLUE[0], BLUE[1], BLUE[2]);
    let place = json!({"latitude": 51.5, "longitude": -0.12, "night": "off"});
    let alarm = json!({"a": {"time": "07:00"}});
    f.desire(json!({"light": blue_light(), "alarms": alarm})).await;
    f.until_reported("the alarm", |r| r["alarm"]["next"]["id"] == json!("a"))
        .await;

    // All alarms at once.
    f.desire(json!({"alarms": null})).await;
    f.until_reported("all alarms deleted", no_alarms).await;

    // The time zone: the alarms go back to UTC.
    f.desire(json!({"timezone": "Europe/Paris", "alarms": alarm})).await;
    f.until_reported("the alarm in Paris", |r| {
        r["alarm"]["next"]["at"] == json!("2026-11-27T07:00:00+01:00")
    })
    .await;
    f.desire(json!({"timezone": null})).await;
    f.until_reported("the zone deleted", |r| {
        r.get("timezone").is_none() && r["alarm"]["next"]["at"] == json!("2026-11-27T07:00:00+00:00")
    })
    .await;

    // Natural light, with its place: the person's light comes back.
    f.desire(json!({"mode": "natural", "natural_light": place})).await;
    f.lamp.output_settles_at(lampi::core::colour::Rgb::OFF).await;
    f.desire(json!({"mode": null, "natural_light": null})).await;
    f.lamp.output_settles_at(blue).await;
    f.until_reported("natural light deleted", |r| {
        r.get("mode").is_none() && r.get("natural_light").is_none()
    })
    .await;

    // The whole desired section.
    f.desire(json!({"mode": "natural", "natural_light": place, "timezone": "Europe/Paris"}))
        .await;
    f.lamp.output_settles_at(lampi::core::colour::Rgb::OFF).await;
    let (topic, _) = f.request("update", json!({"state": {"desired": null}})).await;
    assert_eq!(topic, "update/accepted");
    f.lamp.output_settles_at(blue).await;
    let doc = f
        .until_reported("desired cleared", |r| {
            no_alarms(r)
                && ["mode", "natural_light", "timezone"]
                    .iter()
                    .all(|k| r.get(*k).is_none())
        })
        .await;
    assert!(doc["state"].get("desired").is_none(), "{doc}");

    // The whole document: the lamp acts on it and reports, which recreates the document.
    f.desire(json!({"mode": "natural", "natural_light": place, "alarms": alarm}))
        .await;
    f.lamp.output_settles_at(lampi::core::colour::Rgb::OFF).await;
    let (topic, _) = f.request("delete", json!({})).await;
    assert_eq!(topic, "delete/accepted");
    f.lamp.output_settles_at(blue).await;
    let doc = f
        .until_reported("the document deleted", |r| {
            no_alarms(r) && r.get("mode").is_none() && r["connected_since"].is_u64()
        })
        .await;
    assert!(doc["state"].get("desired").is_none(), "{doc}");
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
