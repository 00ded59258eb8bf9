//! What the lamp's shadow may contain, checked field by field so a bad value is refused with
//! its path (`desired.light.brightness: 1.5 is outside 0.0–1.0`) and unknown fields are never
//! silently kept. docs/PROTOCOL.md describes the same schema for people.

use serde_json::{Map, Value};

use super::light::{LightChange, LightState, Unit};

pub const MAX_ALARMS: usize = 20;
pub const MAX_LABEL_CHARS: usize = 64;
pub const MAX_TRANSITION_MS: u64 = 60_000;
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

type Checked = Result<(), String>;

fn object<'a>(path: &str, value: &'a Value) -> Result<&'a Map<String, Value>, String> {
    value.as_object().ok_or_else(|| format!("{path}: must be an object"))
}

fn only_keys(path: &str, map: &Map<String, Value>, allowed: &[&str]) -> Checked {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!("{path}.{key}: unknown field (allowed: {})", allowed.join(", "))),
        None => Ok(()),
    }
}

fn unit(path: &str, value: &Value) -> Checked {
    match value.as_f64() {
        Some(v) if (0.0..=1.0).contains(&v) => Ok(()),
        Some(v) => Err(format!("{path}: {v} is outside 0.0–1.0")),
        None => Err(format!("{path}: must be a number from 0.0 to 1.0")),
    }
}

fn number_in(path: &str, value: &Value, low: f64, high: f64) -> Checked {
    match value.as_f64() {
        Some(v) if (low..=high).contains(&v) => Ok(()),
        _ => Err(format!("{path}: must be a number from {low} to {high}")),
    }
}

fn integer_in(path: &str, value: &Value, low: u64, high: u64) -> Checked {
    match value.as_u64() {
        Some(v) if (low..=high).contains(&v) => Ok(()),
        _ => Err(format!("{path}: must be a whole number from {low} to {high}")),
    }
}

fn boolean(path: &str, value: &Value) -> Checked {
    value
        .is_boolean()
        .then_some(())
        .ok_or_else(|| format!("{path}: must be true or false"))
}

fn one_of(path: &str, value: &Value, choices: &[&str]) -> Checked {
    match value.as_str() {
        Some(s) if choices.contains(&s) => Ok(()),
        _ => Err(format!("{path}: must be one of {}", choices.join(", "))),
    }
}

fn timezone(path: &str, value: &Value) -> Checked {
    match value.as_str() {
        Some(name) if name.parse::<chrono_tz::Tz>().is_ok() => Ok(()),
        Some(name) => Err(format!(
            "{path}: {name:?} is not an IANA time zone (e.g. \"Europe/London\")"
        )),
        None => Err(format!("{path}: must be an IANA time zone name")),
    }
}

fn clock_time(path: &str, value: &Value) -> Checked {
    let valid = value.as_str().is_some_and(|s| {
        let bytes = s.as_bytes();
        bytes.len() == 5
            && bytes[2] == b':'
            && s[..2].parse::<u8>().is_ok_and(|h| h < 24)
            && s[3..].parse::<u8>().is_ok_and(|m| m < 60)
            && bytes[..2].iter().chain(&bytes[3..]).all(u8::is_ascii_digit)
    });
    valid
        .then_some(())
        .ok_or_else(|| format!("{path}: must be \"HH:MM\", 24-hour"))
}

fn light(path: &str, value: &Value) -> Checked {
    let map = object(path, value)?;
    only_keys(path, map, &["on", "hue", "saturation", "brightness", "transition_ms"])?;
    for (key, value) in map {
        let path = format!("{path}.{key}");
        match key.as_str() {
            "on" => boolean(&path, value)?,
            "transition_ms" => integer_in(&path, value, 0, MAX_TRANSITION_MS)?,
            _ => unit(&path, value)?,
        }
    }
    Ok(())
}

fn alarm(path: &str, value: &Value) -> Checked {
    let map = object(path, value)?;
    only_keys(
        path,
        map,
        &[
            "time",
            "days",
            "timezone",
            "enabled",
            "action",
            "ramp_minutes",
            "snooze_minutes",
            "ring_minutes",
            "label",
            "brightness",
        ],
    )?;
    if !map.contains_key("time") {
        return Err(format!("{path}.time: required"));
    }
    for (key, value) in map {
        let path = format!("{path}.{key}");
        match key.as_str() {
            "time" => clock_time(&path, value)?,
            "days" => {
                let days = value
                    .as_array()
                    .ok_or_else(|| format!("{path}: must be a list of {}", DAYS.join(", ")))?;
                for (i, day) in days.iter().enumerate() {
                    one_of(&format!("{path}[{i}]"), day, &DAYS)?;
                    if days[..i].contains(day) {
                        return Err(format!("{path}[{i}]: {day} is listed twice"));
                    }
                }
            }
            "timezone" => timezone(&path, value)?,
            "enabled" => boolean(&path, value)?,
            "action" => one_of(&path, value, &["blink", "sunrise"])?,
            "ramp_minutes" => integer_in(&path, value, 1, 90)?,
            "snooze_minutes" => integer_in(&path, value, 1, 60)?,
            "ring_minutes" => integer_in(&path, value, 1, 180)?,
            "brightness" => unit(&path, value)?,
            _ => match value.as_str() {
                Some(label) if label.chars().count() <= MAX_LABEL_CHARS => {}
                _ => {
                    return Err(format!("{path}: must be text of at most {MAX_LABEL_CHARS} characters"));
                }
            },
        }
    }
    Ok(())
}

fn alarms(path: &str, value: &Value) -> Checked {
    let map = object(path, value)?;
    if map.len() > MAX_ALARMS {
        return Err(format!("{path}: at most {MAX_ALARMS} alarms"));
    }
    for (id, value) in map {
        let valid_id =
            !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_id {
            return Err(format!("{path}.{id}: alarm ids are 1–32 letters, digits, '-' or '_'"));
        }
        alarm(&format!("{path}.{id}"), value)?;
    }
    Ok(())
}

fn natural_light(path: &str, value: &Value) -> Checked {
    let map = object(path, value)?;
    only_keys(
        path,
        map,
        &[
            "latitude",
            "longitude",
            "night",
            "night_brightness",
            "cloud_cover",
            "demo_period_s",
        ],
    )?;
    for (key, value) in map {
        let path = format!("{path}.{key}");
        match key.as_str() {
            "latitude" => number_in(&path, value, -90.0, 90.0)?,
            "longitude" => number_in(&path, value, -180.0, 180.0)?,
            "night" => one_of(&path, value, &["off", "dim"])?,
            "night_brightness" | "cloud_cover" => unit(&path, value)?,
            _ => match value.as_u64() {
                Some(0) | Some(10..=86_400) => {}
                _ => {
                    return Err(format!("{path}: must be 0 (off) or a whole number from 10 to 86400"));
                }
            },
        }
    }
    Ok(())
}

/// Fields both the cloud and the lamp may set.
const SETTINGS: [&str; 6] = ["light", "mode", "timezone", "alarms", "natural_light", "firmware"];
/// Fields only the lamp reports.
const REPORTED_ONLY: [&str; 5] = ["output", "connected_since", "alarm", "clock", "owner"];

/// `desired.firmware`: the version the cloud wants running.
fn desired_firmware(path: &str, value: &Value) -> Checked {
    let map = object(path, value)?;
    only_keys(path, map, &["version", "allow_downgrade"])?;
    match map.get("version").and_then(Value::as_str) {
        Some(v) if super::firmware::Version::parse(v).is_some() => {}
        _ => return Err(format!("{path}.version: required, as \"major.minor.patch\"")),
    }
    match map.get("allow_downgrade") {
        Some(flag) => boolean(&format!("{path}.allow_downgrade"), flag),
        None => Ok(()),
    }
}

fn setting(path: &str, key: &str, value: &Value) -> Checked {
    match key {
        "light" => light(path, value),
        "mode" => one_of(path, value, &["manual", "natural"]),
        "timezone" => timezone(path, value),
        "alarms" => alarms(path, value),
        "firmware" => desired_firmware(path, value),
        _ => natural_light(path, value),
    }
}

/// Validates the shadow's sections as they would be after an update.
pub fn validate(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Checked {
    only_keys("desired", desired, &SETTINGS)?;
    for (key, value) in desired {
        setting(&format!("desired.{key}"), key, value)?;
    }
    if desired.get("mode") == Some(&Value::from("natural")) {
        let place = desired.get("natural_light");
        let located = ["latitude", "longitude"]
            .iter()
            .all(|k| place.is_some_and(|p| p.get(k).is_some()));
        if !located {
            return Err("desired.mode: natural light needs desired.natural_light.latitude and .longitude".into());
        }
    }
    let all: Vec<&str> = SETTINGS.iter().chain(&REPORTED_ONLY).copied().collect();
    only_keys("reported", reported, &all)?;
    for (key, value) in reported {
        let path = format!("reported.{key}");
        match key.as_str() {
            "output" => {
                let map = object(&path, value)?;
                only_keys(&path, map, &["r", "g", "b"])?;
                map.iter().try_for_each(|(k, v)| unit(&format!("{path}.{k}"), v))?;
            }
            "firmware" => {
                let map = object(&path, value)?;
                only_keys(&path, map, &["version", "update"])?;
            }
            "connected_since" => integer_in(&path, value, 0, u64::MAX)?,
            "alarm" => {
                let map = object(&path, value)?;
                only_keys(&path, map, &["state", "ringing", "snoozed_until", "next"])?;
            }
            "owner" => {
                let map = object(&path, value)?;
                only_keys(&path, map, &["id", "name"])?;
                if !map.values().all(Value::is_string) {
                    return Err(format!("{path}: id and name must be text"));
                }
            }
            "clock" => {
                let map = object(&path, value)?;
                only_keys(&path, map, &["synchronised", "require_sync"])?;
                map.iter().try_for_each(|(k, v)| boolean(&format!("{path}.{k}"), v))?;
            }
            _ => setting(&path, key, value)?,
        }
    }
    Ok(())
}

/// The light change a (validated) `light` object asks for, and its transition if given.
pub fn light_change(light: &Map<String, Value>) -> (LightChange, Option<u64>) {
    let unit = |key: &str| {
        light
            .get(key)
            .and_then(Value::as_f64)
            .and_then(|v| Unit::try_from(v).ok())
    };
    let change = LightChange {
        on: light.get("on").and_then(Value::as_bool),
        hue: unit("hue"),
        saturation: unit("saturation"),
        brightness: unit("brightness"),
    };
    (change, light.get("transition_ms").and_then(Value::as_u64))
}

/// The `light` object describing a state.
pub fn light_value(state: &LightState, transition_ms: u64) -> Value {
    serde_json::json!({
        "on": state.on,
        "hue": state.hue.get(),
        "saturation": state.saturation.get(),
        "brightness": state.brightness.get(),
        "transition_ms": transition_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(desired: Value) -> Checked {
        validate(desired.as_object().unwrap(), &Map::new())
    }

    #[test]
    fn accepts_a_full_document() {
        check(json!({
            "light": {"on": true, "hue": 0.1, "saturation": 1, "brightness": 0.5, "transition_ms": 300},
            "mode": "natural",
            "timezone": "Europe/London",
            "alarms": {"weekday": {"time": "06:45", "days": ["mon", "fri"], "action": "sunrise", "ramp_minutes": 20,
                                   "enabled": true, "snooze_minutes": 9, "ring_minutes": 30, "label": "Work",
                                   "timezone": "America/New_York"}},
            "natural_light": {"latitude": 51.5, "longitude": -0.1, "night": "dim", "night_brightness": 0.05,
                              "cloud_cover": 0.3, "demo_period_s": 120}
        }))
        .unwrap();
        validate(
            &Map::new(),
            json!({"output": {"r": 0, "g": 0.5, "b": 1}, "firmware": {"version": "0.1.0"}, "connected_since": 1795712902})
                .as_object()
                .unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn names_the_field_and_reason() {
        let cases = [
            (
                json!({"light": {"brightness": 1.5}}),
                "desired.light.brightness: 1.5 is outside 0.0–1.0",
            ),
            (
                json!({"light": {"on": "yes"}}),
                "desired.light.on: must be true or false",
            ),
            (json!({"light": {"colour": 1}}), "desired.light.colour: unknown field"),
            (
                json!({"light": {"transition_ms": 70000}}),
                "desired.light.transition_ms: must be a whole number from 0 to 60000",
            ),
            (json!({"lights": {}}), "desired.lights: unknown field"),
            (json!({"mode": "disco"}), "desired.mode: must be one of manual, natural"),
            (
                json!({"timezone": "Mars/Olympus"}),
                "desired.timezone: \"Mars/Olympus\" is not an IANA time zone",
            ),
            (
                json!({"alarms": {"a": {"days": ["mon"]}}}),
                "desired.alarms.a.time: required",
            ),
            (
                json!({"alarms": {"a": {"time": "24:00"}}}),
                "desired.alarms.a.time: must be \"HH:MM\"",
            ),
            (
                json!({"alarms": {"a": {"time": "7:00"}}}),
                "desired.alarms.a.time: must be \"HH:MM\"",
            ),
            (
                json!({"alarms": {"a": {"time": "07:00", "days": ["mon", "mon"]}}}),
                "desired.alarms.a.days[1]: \"mon\" is listed twice",
            ),
            (
                json!({"alarms": {"a": {"time": "07:00", "days": ["monday"]}}}),
                "desired.alarms.a.days[0]: must be one of",
            ),
            (
                json!({"alarms": {"a": {"time": "07:00", "ramp_minutes": 91}}}),
                "desired.alarms.a.ramp_minutes",
            ),
            (
                json!({"alarms": {"a b": {"time": "07:00"}}}),
                "desired.alarms.a b: alarm ids",
            ),
            (
                json!({"natural_light": {"latitude": 91}}),
                "desired.natural_light.latitude",
            ),
            (
                json!({"natural_light": {"demo_period_s": 5}}),
                "desired.natural_light.demo_period_s",
            ),
            (json!({"output": {"r": 1}}), "desired.output: unknown field"),
            (
                json!({"firmware": {"version": "latest"}}),
                "desired.firmware.version: required",
            ),
            (
                json!({"firmware": {"version": "1.2.3", "channel": "beta"}}),
                "desired.firmware.channel: unknown field",
            ),
            (json!({"alarm": {}}), "desired.alarm: unknown field"),
            (json!({"mode": "natural"}), "desired.mode: natural light needs"),
            (
                json!({"alarms": {"a": {"time": "07:00", "brightness": 2}}}),
                "desired.alarms.a.brightness: 2 is outside",
            ),
        ];
        for (desired, expected) in cases {
            let err = check(desired.clone()).expect_err(&desired.to_string());
            assert!(err.starts_with(expected), "{desired}: {err}");
        }
    }

    #[test]
    fn too_many_alarms() {
        let many: Map<String, Value> = (0..=MAX_ALARMS)
            .map(|i| (format!("a{i}"), json!({"time": "07:00"})))
            .collect();
        assert!(check(json!({"alarms": many})).unwrap_err().contains("at most 20"));
    }

    #[test]
    fn light_round_trips_through_the_schema() {
        let state = LightState {
            on: false,
            hue: Unit::try_from(0.25).unwrap(),
            saturation: Unit::ONE,
            brightness: Unit::try_from(0.5).unwrap(),
        };
        let value = light_value(&state, 250);
        check(json!({ "light": value })).unwrap();
        let (change, transition) = light_change(value.as_object().unwrap());
        assert_eq!(LightState::default().with(change), state);
        assert_eq!(transition, Some(250));
    }
}
