//! Home Assistant's MQTT discovery and JSON-schema light, against a real Mosquitto.

mod common;

use std::time::Duration;

use common::{Broker, Client, RunningLamp, json};
use lampi::core::colour::duty_for;
use lampi::core::light::{LightState, Unit};
use lampi::protocol::homeassistant::{Entity, state};
use serde_json::{Value, json};

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
    for release in [ha_schema::release_2023, ha_schema::current] {
        release(&doc).unwrap();
    }
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

/// What Home Assistant's MQTT JSON light (`homeassistant/components/mqtt/light/schema_json.py`
/// in home-assistant/core) does with a discovery document and a state, for the keys the lamp
/// sends: each function returns the colour modes the entity ends up with, or the error Home
/// Assistant logs when it refuses the document. Encoded by hand from two versions of that file
/// (Home Assistant is too heavy to install for a test):
/// - 2023 (the version that removed `white_value` in 2022.9): `color_mode` (default false) and
///   `supported_color_modes` in one `vol.Inclusive` group "color_mode", checked on the document
///   as sent; `valid_color_configuration` refuses `color_mode` with any of `color_temp`, `hs`,
///   `rgb`, `xy`; without `color_mode` the entity takes its modes from the legacy flags
///   (`brightness: true` alone makes it brightness-only).
/// - current (legacy handling removed in 2025.3): `cv.removed(..., raise_if_present=False)` for
///   `color_mode`, `color_temp`, `hs`, `rgb`, `xy` (dropped with a warning), `supported_color_modes`
///   optional; unknown keys dropped (`extra=vol.REMOVE_EXTRA`).
///
/// Both: `supported_color_modes` is a list of unique modes from `VALID_COLOR_MODES` that
/// `valid_supported_color_modes` (light/__init__.py) accepts; `brightness` a boolean,
/// `brightness_scale` an integer ≥ 1, `qos` 0–2, `command_topic` required.
mod ha_schema {
    use serde_json::Value;

    const VALID_COLOR_MODES: [&str; 9] = [
        "onoff",
        "brightness",
        "color_temp",
        "hs",
        "xy",
        "rgb",
        "rgbw",
        "rgbww",
        "white",
    ];
    const LEGACY_FLAGS: [&str; 4] = ["color_temp", "hs", "rgb", "xy"];

    fn common(doc: &Value) -> Result<(), String> {
        if doc["schema"] != "json" {
            return Err("not the json schema".into());
        }
        if !doc["command_topic"].is_string() {
            return Err("required key not provided @ data['command_topic']".into());
        }
        // Optional keys: refused only when present and invalid.
        let invalid = |key: &str, valid: fn(&Value) -> bool| doc.get(key).is_some_and(|v| !valid(v));
        if invalid("brightness", Value::is_boolean) {
            return Err("expected a boolean for dictionary value @ data['brightness']".into());
        }
        if invalid("brightness_scale", |v| v.as_u64().is_some_and(|n| n >= 1)) {
            return Err("value must be at least 1 @ data['brightness_scale']".into());
        }
        if invalid("qos", |v| v.as_u64().is_some_and(|n| n <= 2)) {
            return Err("value must be one of [0, 1, 2] @ data['qos']".into());
        }
        Ok(())
    }

    fn supported_color_modes(value: &Value) -> Result<Vec<String>, String> {
        let list: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        let mut modes: Vec<String> = Vec::new();
        for mode in list {
            match mode.as_str() {
                Some(m) if VALID_COLOR_MODES.contains(&m) && !modes.iter().any(|seen| seen == m) => {
                    modes.push(m.into())
                }
                _ => return Err(format!("invalid supported_color_modes entry {mode}")),
            }
        }
        let has = |m: &str| modes.iter().any(|seen| seen == m);
        let colour = ["hs", "xy", "rgb", "rgbw", "rgbww"].iter().any(|m| has(m));
        if modes.is_empty() || ((has("brightness") || has("onoff")) && modes.len() > 1) || (has("white") && !colour) {
            return Err(format!("Invalid supported_color_modes {modes:?}"));
        }
        Ok(modes)
    }

    pub fn release_2023(doc: &Value) -> Result<Vec<String>, String> {
        common(doc)?;
        if doc.get("color_mode").is_some() != doc.get("supported_color_modes").is_some() {
            return Err("some but not all values in the same group of inclusion 'color_mode'".into());
        }
        let color_mode = match doc.get("color_mode") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("expected a boolean for dictionary value @ data['color_mode']".into()),
        };
        if color_mode && LEGACY_FLAGS.iter().any(|flag| doc[flag] == true) {
            return Err(format!("color_mode must not be combined with any of {LEGACY_FLAGS:?}"));
        }
        if color_mode {
            supported_color_modes(&doc["supported_color_modes"])
        } else {
            // The legacy path: modes from the flags; a colour flag wins over brightness.
            Ok(vec![if LEGACY_FLAGS[1..].iter().any(|flag| doc[flag] == true) {
                "hs".into()
            } else if doc["brightness"] == true {
                "brightness".into()
            } else {
                "onoff".into()
            }])
        }
    }

    pub fn current(doc: &Value) -> Result<Vec<String>, String> {
        common(doc)?;
        match doc.get("supported_color_modes") {
            Some(modes) => supported_color_modes(modes),
            None => Ok(vec!["onoff".into()]),
        }
    }

    /// Whether a state document sets the colour of an entity with these modes: in colour-mode
    /// handling the state must name a supported `color_mode` and carry its values.
    pub fn state_sets_colour(modes: &[String], state: &Value) -> bool {
        state["color_mode"]
            .as_str()
            .is_some_and(|m| modes.iter().any(|s| s == m))
            && state["color"]["h"].is_number()
            && state["color"]["s"].is_number()
    }
}

#[test]
fn discovery_is_accepted_as_a_colour_light_by_an_older_and_a_current_home_assistant() {
    let doc = Entity::new("homeassistant", "lamp1", "0.1.0", "lamp/connection/lamp_service/state").discovery();
    let shown = state(&LightState {
        on: true,
        hue: Unit::try_from(0.5).unwrap(),
        saturation: Unit::ONE,
        brightness: Unit::ONE,
    });
    for (release, check) in [
        (
            "2023",
            ha_schema::release_2023 as fn(&Value) -> Result<Vec<String>, String>,
        ),
        ("current", ha_schema::current),
    ] {
        let modes = check(&doc).unwrap_or_else(|e| panic!("Home Assistant {release} refuses the discovery: {e}"));
        assert_eq!(modes, ["hs"], "Home Assistant {release}");
        assert!(
            ha_schema::state_sets_colour(&modes, &shown),
            "Home Assistant {release}: {shown}"
        );
    }
}

#[test]
fn the_encoded_schemas_refuse_what_home_assistant_refuses() {
    let valid = Entity::new("homeassistant", "lamp1", "0.1.0", "x").discovery();
    let with = |key: &str, value: Value| {
        let mut doc = valid.clone();
        doc[key] = value;
        doc
    };
    let without = |keys: &[&str]| {
        let mut doc = valid.clone();
        for key in keys {
            doc.as_object_mut().unwrap().remove(*key);
        }
        doc
    };
    let older = ha_schema::release_2023;
    assert!(
        older(&without(&["color_mode"]))
            .unwrap_err()
            .contains("group of inclusion 'color_mode'")
    );
    assert!(older(&without(&["supported_color_modes"])).is_err());
    assert!(older(&with("hs", json!(true))).is_err());
    // Neither key: accepted, but as a light without colour.
    assert_eq!(
        older(&without(&["color_mode", "supported_color_modes"])),
        Ok(vec!["brightness".to_owned()])
    );
    for check in [ha_schema::release_2023, ha_schema::current] {
        assert!(check(&with("supported_color_modes", json!(["hs", "brightness"]))).is_err());
        assert!(check(&with("supported_color_modes", json!(["hs", "hs"]))).is_err());
        assert!(check(&with("supported_color_modes", json!([]))).is_err());
        assert!(check(&with("brightness_scale", json!(0))).is_err());
        assert!(check(&without(&["command_topic"])).is_err());
    }
    assert_eq!(ha_schema::current(&without(&["color_mode"])), Ok(vec!["hs".to_owned()]));
}
