//! What the lamp's shadow may contain, checked field by field so a bad value is refused with
//! its path (`desired.light.brightness: 1.5 is outside 0.0–1.0`) and unknown fields are never
//! silently kept. docs/PROTOCOL.md describes the same schema for people.

use serde_json::{Map, Value};

use super::firmware::MAX_ERROR_BYTES;
use super::light::{LightChange, LightState, Unit};
use super::pairing::Owner;
use super::shadow::{Invalid, MAX_STATE_BYTES};

#[path = "schema_fit.rs"]
mod fit;

pub use fit::{cut_text, fit_settings};

/// The largest MQTT packet the lamp sends (AWS IoT's message limit, 128 KiB). Every limit below
/// is chosen so that no document this schema accepts makes a message larger; the tests build
/// the largest documents and check every answer against it.
pub const MAX_PACKET_BYTES: usize = 128 * 1024;
pub const MAX_ALARMS: usize = 20;
/// Labels are counted in UTF-8 bytes: 64 ASCII letters or 16 emoji.
pub const MAX_LABEL_BYTES: usize = 64;
/// Room in `reported` (8 KiB, as AWS counts it) for what the lamp reports besides the settings
/// it mirrors: light, output, clock, alarm (up to 20 merged ids and two labels), owner (two
/// 256-byte texts), firmware (a 256-byte error). The largest such report is under 2.8 KiB.
pub const LAMP_REPORT_BYTES: usize = 3 * 1024;
/// The settings the lamp mirrors from `desired` into `reported`, serialised, so the lamp's own
/// report always fits in its section.
pub const MAX_MIRRORED_BYTES: usize = MAX_STATE_BYTES - LAMP_REPORT_BYTES;
/// Settings that the cloud sets in `desired` and the lamp mirrors in `reported`.
pub const MIRRORED: [&str; 4] = ["mode", "timezone", "alarms", "natural_light"];
/// The longest `mqtt.brokers`: a cluster's nodes or a few sites, not a scan; a round of dead
/// brokers stays short. `reported.broker` counts in it.
pub const MAX_BROKERS: usize = 16;
/// Versions and times the lamp reports are short; this bounds what an app may write there.
const MAX_SHORT_TEXT_BYTES: usize = 64;
pub const MAX_TRANSITION_MS: u64 = 60_000;
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The checks build their message as they go; [`validate`] hands the first out as [`Invalid`].
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
            _ => text(&path, value, MAX_LABEL_BYTES)?,
        }
    }
    Ok(())
}

/// Text without control characters, of at most `max_bytes` bytes of UTF-8.
fn text(path: &str, value: &Value, max_bytes: usize) -> Checked {
    match value.as_str() {
        Some(s) if s.len() <= max_bytes && !s.chars().any(char::is_control) => Ok(()),
        _ => Err(format!(
            "{path}: must be text of at most {max_bytes} bytes (UTF-8), without control characters"
        )),
    }
}

fn alarm_id(path: &str, id: &str) -> Checked {
    let valid =
        !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid
        .then_some(())
        .ok_or_else(|| format!("{path}: alarm ids are 1–32 letters, digits, '-' or '_'"))
}

/// An RFC 3339 time, as the lamp reports them.
fn time_stamp(path: &str, value: &Value) -> Checked {
    match value.as_str() {
        Some(s) if s.len() <= MAX_SHORT_TEXT_BYTES && chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(()),
        _ => Err(format!("{path}: must be an RFC 3339 time")),
    }
}

/// `reported.alarm.ringing` and `.next`: which alarm, as the lamp reports it.
fn alarm_reference(path: &str, value: &Value, ringing: bool) -> Checked {
    let map = object(path, value)?;
    let allowed: &[&str] = if ringing {
        &["id", "alarms", "label", "action", "at"]
    } else {
        &["id", "label", "at"]
    };
    only_keys(path, map, allowed)?;
    for (key, value) in map {
        let path = format!("{path}.{key}");
        match key.as_str() {
            "id" => alarm_id(
                &path,
                value.as_str().ok_or_else(|| format!("{path}: must be an alarm id"))?,
            )?,
            "alarms" => {
                let ids = value
                    .as_array()
                    .filter(|ids| ids.len() <= MAX_ALARMS)
                    .ok_or_else(|| format!("{path}: must be a list of at most {MAX_ALARMS} alarm ids"))?;
                for (i, id) in ids.iter().enumerate() {
                    let path = format!("{path}[{i}]");
                    alarm_id(
                        &path,
                        id.as_str().ok_or_else(|| format!("{path}: must be an alarm id"))?,
                    )?;
                    if ids[..i].contains(id) {
                        return Err(format!("{path}: {id} is listed twice"));
                    }
                }
            }
            "label" => text(&path, value, MAX_LABEL_BYTES)?,
            "action" => one_of(&path, value, &["blink", "sunrise"])?,
            _ => time_stamp(&path, value)?,
        }
    }
    Ok(())
}

/// `reported.alarm`, the alarm clock's state.
fn alarm_state(path: &str, value: &Value) -> Checked {
    let map = object(path, value)?;
    only_keys(path, map, &["state", "ringing", "snoozed_until", "next"])?;
    for (key, value) in map {
        let path = format!("{path}.{key}");
        match key.as_str() {
            "state" => one_of(&path, value, &["idle", "ringing", "snoozed"])?,
            "ringing" => alarm_reference(&path, value, true)?,
            "next" => alarm_reference(&path, value, false)?,
            _ => time_stamp(&path, value)?,
        }
    }
    Ok(())
}

/// `reported.firmware`: the running version and the last update.
fn reported_firmware(path: &str, value: &Value) -> Checked {
    let map = object(path, value)?;
    only_keys(path, map, &["version", "update"])?;
    if let Some(version) = map.get("version") {
        text(&format!("{path}.version"), version, MAX_SHORT_TEXT_BYTES)?;
    }
    let Some(update) = map.get("update") else {
        return Ok(());
    };
    let path = format!("{path}.update");
    let update = object(&path, update)?;
    only_keys(&path, update, &["state", "version", "error"])?;
    for (key, value) in update {
        let path = format!("{path}.{key}");
        match key.as_str() {
            "state" => one_of(
                &path,
                value,
                &["requested", "downloading", "installing", "succeeded", "failed"],
            )?,
            "version" => text(&path, value, MAX_SHORT_TEXT_BYTES)?,
            _ => text(&path, value, MAX_ERROR_BYTES)?,
        }
    }
    Ok(())
}

/// The settings in force: what `desired` holds of those the lamp mirrors into `reported`.
pub fn settings(desired: &Map<String, Value>) -> Map<String, Value> {
    MIRRORED
        .iter()
        .filter_map(|&key| Some((key.to_owned(), desired.get(key)?.clone())))
        .collect()
}

/// The mirrored settings as the lamp reports them, in bytes of JSON.
fn settings_bytes(desired: &Map<String, Value>) -> usize {
    serde_json::to_vec(&settings(desired)).map_or(usize::MAX, |v| v.len())
}

/// The settings in force (what `desired` holds; the lamp mirrors them into `reported`) must
/// leave the lamp room for its own report.
fn mirrored_size(desired: &Map<String, Value>) -> Checked {
    let bytes = settings_bytes(desired);
    if bytes > MAX_MIRRORED_BYTES {
        return Err(format!(
            "{}: {bytes} bytes together; at most {MAX_MIRRORED_BYTES}, so the lamp's report fits",
            MIRRORED.join(", ")
        ));
    }
    Ok(())
}

fn alarms(path: &str, value: &Value) -> Checked {
    let map = object(path, value)?;
    if map.len() > MAX_ALARMS {
        return Err(format!("{path}: at most {MAX_ALARMS} alarms"));
    }
    for (id, value) in map {
        let path = format!("{path}.{id}");
        alarm_id(&path, id)?;
        alarm(&path, value)?;
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
const REPORTED_ONLY: [&str; 7] = ["output", "connected_since", "broker", "alarm", "clock", "owner", "ble"];

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

/// Validates the shadow's sections as they would be after an update; the refusal names the
/// first bad field's path.
pub fn validate(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Result<(), Invalid> {
    sections(desired, reported).map_err(Invalid::new)
}

fn sections(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Checked {
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
            "firmware" => reported_firmware(&path, value)?,
            "connected_since" => integer_in(&path, value, 0, u64::MAX)?,
            "broker" => integer_in(&path, value, 1, MAX_BROKERS as u64)?,
            "alarm" => alarm_state(&path, value)?,
            "owner" => {
                let map = object(&path, value)?;
                only_keys(&path, map, &["id", "name"])?;
                let field = |key: &str| map.get(key).map_or(Some(""), Value::as_str);
                let (Some(id), Some(name)) = (field("id"), field("name")) else {
                    return Err(format!("{path}: id and name must be text"));
                };
                Owner::new(id, name).map_err(|e| format!("reported.{e}"))?;
            }
            "clock" => {
                let map = object(&path, value)?;
                only_keys(&path, map, &["synchronised", "require_sync"])?;
                map.iter().try_for_each(|(k, v)| boolean(&format!("{path}.{k}"), v))?;
            }
            "ble" => {
                let map = object(&path, value)?;
                only_keys(&path, map, &["serving"])?;
                map.iter().try_for_each(|(k, v)| boolean(&format!("{path}.{k}"), v))?;
            }
            _ => setting(&path, key, value)?,
        }
    }
    mirrored_size(desired)
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
#[path = "schema_tests.rs"]
mod tests;
