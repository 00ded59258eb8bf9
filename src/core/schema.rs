//! What the lamp's shadow may contain, checked field by field so a bad value is refused with
//! its path (`desired.light.brightness: 1.5 is outside 0.0–1.0`) and unknown fields are never
//! silently kept. docs/PROTOCOL.md describes the same schema for people.

use serde_json::{Map, Value};

use super::firmware::MAX_ERROR_BYTES;
use super::light::{LightChange, LightState, Unit};
use super::pairing::Owner;
use super::shadow::MAX_STATE_BYTES;

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
/// Versions and times the lamp reports are short; this bounds what an app may write there.
const MAX_SHORT_TEXT_BYTES: usize = 64;
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
            _ => text(&path, value, MAX_LABEL_BYTES)?,
        }
    }
    Ok(())
}

/// Cuts `text` to at most `max_bytes` bytes, at a character boundary.
pub fn cut_text(text: &mut String, max_bytes: usize) {
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// Brings settings saved by an older version within today's limits, so that the lamp can go on
/// reporting them: labels were limited to 64 characters (now 64 bytes), and the settings
/// together only by `desired`'s 8 KiB (now [`MAX_MIRRORED_BYTES`]), so a lamp upgraded with
/// more would have every report refused. Labels are cut to 64 bytes, then shorter while the
/// settings are still over; only if that is not enough are the alarms whose ids sort last
/// dropped. Returns what it changed, for the log.
pub fn fit_settings(desired: &mut Map<String, Value>) -> Vec<String> {
    let mut changes = Vec::new();
    let mut limit = MAX_LABEL_BYTES;
    loop {
        let cut = cut_labels(desired, limit);
        if !cut.is_empty() {
            changes.push(format!("labels of alarms {} cut to {limit} bytes", cut.join(", ")));
        }
        if settings_bytes(desired) <= MAX_MIRRORED_BYTES || limit == 0 {
            break;
        }
        limit = limit.saturating_sub(16);
    }
    while settings_bytes(desired) > MAX_MIRRORED_BYTES {
        let Some(Value::Object(alarms)) = desired.get_mut("alarms") else {
            break;
        };
        let Some(last) = alarms.keys().next_back().cloned() else {
            break;
        };
        alarms.remove(&last);
        if alarms.is_empty() {
            desired.remove("alarms");
        }
        changes.push(format!(
            "alarm {last} dropped: the settings were over {MAX_MIRRORED_BYTES} bytes"
        ));
    }
    changes
}

/// Cuts every alarm label to at most `max_bytes`; returns the ids of those it cut.
fn cut_labels(desired: &mut Map<String, Value>, max_bytes: usize) -> Vec<String> {
    let Some(Value::Object(alarms)) = desired.get_mut("alarms") else {
        return Vec::new();
    };
    let mut cut = Vec::new();
    for (id, alarm) in alarms {
        if let Some(Value::String(label)) = alarm.get_mut("label")
            && label.len() > max_bytes
        {
            cut_text(label, max_bytes);
            cut.push(id.clone());
        }
    }
    cut
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
            "firmware" => reported_firmware(&path, value)?,
            "connected_since" => integer_in(&path, value, 0, u64::MAX)?,
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
            (
                json!({"alarms": {"a": {"time": "07:00", "label": "😀".repeat(17)}}}),
                "desired.alarms.a.label: must be text of at most 64 bytes",
            ),
            (
                json!({"alarms": {"a": {"time": "07:00", "label": "a\u{7}"}}}),
                "desired.alarms.a.label: must be text",
            ),
        ];
        for (desired, expected) in cases {
            let err = check(desired.clone()).expect_err(&desired.to_string());
            assert!(err.starts_with(expected), "{desired}: {err}");
        }
    }

    fn check_reported(reported: Value) -> Checked {
        validate(&Map::new(), reported.as_object().unwrap())
    }

    #[test]
    fn reported_only_fields_are_checked_by_type_and_size() {
        let ok = [
            json!({"alarm": {"state": "snoozed", "snoozed_until": "2026-11-27T07:09:00+01:00",
                             "ringing": {"id": "a", "alarms": ["a", "b"], "label": "Work", "action": "sunrise",
                                         "at": "2026-11-27T07:00:00+01:00"},
                             "next": {"id": "b", "label": "", "at": "2026-11-28T07:00:00Z"}}}),
            json!({"firmware": {"version": "0.1.0", "update": {"state": "failed", "version": "0.2.0", "error": "x"}}}),
            json!({"owner": {"id": "acct-1", "name": "Ada"}}),
            json!({"clock": {"synchronised": true, "require_sync": false}}),
        ];
        for reported in ok {
            check_reported(reported.clone()).unwrap_or_else(|e| panic!("{reported}: {e}"));
        }
        let zeros = vec![0; 2650];
        let cases = [
            (
                json!({"alarm": {"next": zeros}}),
                "reported.alarm.next: must be an object",
            ),
            (
                json!({"alarm": {"state": "asleep"}}),
                "reported.alarm.state: must be one of",
            ),
            (
                json!({"alarm": {"snoozed_until": "soon"}}),
                "reported.alarm.snoozed_until: must be an RFC 3339",
            ),
            (
                json!({"alarm": {"ringing": {"alarms": vec!["a"; 21]}}}),
                "reported.alarm.ringing.alarms: must be a list of at most 20",
            ),
            (
                json!({"alarm": {"next": {"label": "x".repeat(65)}}}),
                "reported.alarm.next.label: must be text of at most 64 bytes",
            ),
            (
                json!({"firmware": {"version": "x".repeat(65)}}),
                "reported.firmware.version: must be text",
            ),
            (
                json!({"firmware": {"update": {"state": "failed", "error": "x".repeat(257)}}}),
                "reported.firmware.update.error: must be text of at most 256 bytes",
            ),
            (
                json!({"firmware": {"update": {"log": []}}}),
                "reported.firmware.update.log: unknown field",
            ),
            (json!({"owner": {"id": 5}}), "reported.owner: id and name must be text"),
            (json!({"owner": {"id": "x".repeat(65)}}), "reported.owner: id must be"),
        ];
        for (reported, expected) in cases {
            let err = check_reported(reported.clone()).expect_err(&reported.to_string());
            assert!(err.starts_with(expected), "{reported}: {err}");
        }
    }

    #[test]
    fn labels_saved_by_an_older_version_are_cut_to_fit() {
        let mut desired = json!({"alarms": {"long": {"time": "07:00", "label": "é".repeat(40)},
                                            "short": {"time": "08:00", "label": "ok"}}})
        .as_object()
        .unwrap()
        .clone();
        assert!(check(Value::Object(desired.clone())).is_err());
        assert_eq!(fit_settings(&mut desired), ["labels of alarms long cut to 64 bytes"]);
        assert_eq!(desired["alarms"]["long"]["label"], json!("é".repeat(32)));
        check(Value::Object(desired)).unwrap();
        let mut emoji = "😀".repeat(17);
        cut_text(&mut emoji, 66);
        assert_eq!(emoji, "😀".repeat(16));
    }

    /// What an older version took, under the 8 KiB of `desired` it checked, whose report the
    /// lamp could no longer fit in `reported`: 20 alarms with every field and 64 backslashes as
    /// labels (128 bytes each once escaped), with ids of `id_bytes`.
    fn older_settings(id_bytes: usize) -> Map<String, Value> {
        let alarm = json!({"time": "04:00", "days": DAYS, "label": "\\".repeat(64), "action": "sunrise",
                           "enabled": true, "ramp_minutes": 90, "ring_minutes": 180, "snooze_minutes": 60,
                           "timezone": "America/Argentina/Buenos_Aires", "brightness": 0.5});
        let alarms: Map<String, Value> = (0..MAX_ALARMS)
            .map(|i| (format!("{i:02}{}", "Q".repeat(id_bytes - 2)), alarm.clone()))
            .collect();
        let desired = json!({"alarms": alarms, "timezone": "America/Argentina/Buenos_Aires"});
        assert!(size(&desired) > MAX_MIRRORED_BYTES && size(&desired) <= MAX_STATE_BYTES);
        desired.as_object().unwrap().clone()
    }

    #[test]
    fn settings_saved_by_an_older_version_are_brought_within_the_limit() {
        // Short ids: shorter labels are enough, and no alarm is lost.
        let mut desired = older_settings(8);
        let changes = fit_settings(&mut desired);
        assert!(!changes.is_empty());
        assert!(changes.iter().all(|c| c.starts_with("labels of alarms")), "{changes:?}");
        validate(&desired, &Map::new()).unwrap();
        assert_eq!(desired["alarms"].as_object().unwrap().len(), MAX_ALARMS);

        // 32-byte ids: not even empty labels make room; the alarms that sort last go.
        let mut desired = older_settings(32);
        let changes = fit_settings(&mut desired);
        validate(&desired, &Map::new()).unwrap();
        let kept = desired["alarms"].as_object().unwrap();
        assert!(kept.len() >= MAX_ALARMS - 2, "{changes:?}");
        assert!(kept.contains_key(&format!("00{}", "Q".repeat(30))), "{changes:?}");
        assert!(!kept.contains_key(&format!("19{}", "Q".repeat(30))), "{changes:?}");
        assert!(changes.last().unwrap().contains("dropped"), "{changes:?}");
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

    /// What the bound below leaves for the topic and header of a shadow answer.
    const TOPIC_ROOM: usize = 512;

    /// A number in 0–1 with about the longest form serde_json writes.
    const LONG_UNIT: f64 = 0.000_123_456_789_012_345_67;

    fn longest_zone() -> &'static str {
        chrono_tz::TZ_VARIANTS
            .iter()
            .map(|tz| tz.name())
            .max_by_key(|n| n.len())
            .unwrap()
    }

    fn size(value: &impl serde::Serialize) -> usize {
        serde_json::to_vec(value).unwrap().len()
    }

    /// The largest mirrored settings for the answers: 20 alarms with every field and every day
    /// (the most leaves, each with its metadata), then labels of `"` or `\` (two bytes each once
    /// escaped) filling [`MAX_MIRRORED_BYTES`].
    fn largest_settings(variant: char) -> Map<String, Value> {
        let id = |i: usize| format!("{i}");
        // Two variants with every leaf different: same keys, other values.
        let (time, filler) = if variant == 'a' {
            ("23:59", '"')
        } else {
            ("00:00", '\\')
        };
        let alarm = json!({
            "time": time, "days": DAYS, "timezone": "UTC", "enabled": false, "action": "blink",
            "ramp_minutes": 9, "snooze_minutes": 9, "ring_minutes": 9, "label": "", "brightness": 1,
        });
        let mut settings = json!({
            "mode": "natural",
            "timezone": longest_zone(),
            "natural_light": {"latitude": -89.123_456_789_012_34, "longitude": -179.123_456_789_012_34,
                              "night": "dim", "night_brightness": LONG_UNIT, "cloud_cover": LONG_UNIT,
                              "demo_period_s": 86_400},
            "alarms": (0..MAX_ALARMS).map(|i| (id(i), alarm.clone())).collect::<Map<String, Value>>(),
        });
        // Lengthen the labels a byte at a time until the settings are as large as allowed.
        'fill: for _ in 0..MAX_LABEL_BYTES {
            for i in 0..MAX_ALARMS {
                let label = &mut settings["alarms"][&id(i)]["label"];
                let longer = format!("{}{filler}", label.as_str().unwrap());
                let shorter = std::mem::replace(label, json!(longer));
                if size(&settings) > MAX_MIRRORED_BYTES {
                    settings["alarms"][&id(i)]["label"] = shorter;
                    break 'fill;
                }
            }
        }
        assert!(MAX_MIRRORED_BYTES - size(&settings) < 4, "{}", size(&settings));
        settings.as_object().unwrap().clone()
    }

    /// The largest report the lamp makes besides the settings: two alarms' worth of labels, all
    /// 20 ids merged into the ringing one, the longest owner, firmware error and numbers.
    fn largest_own_report(variant: char) -> Map<String, Value> {
        let id = |i: usize| format!("{variant}{i:0>31}");
        let label = "\"".repeat(MAX_LABEL_BYTES);
        let at = "2026-11-27T07:00:00.123456789+05:45";
        let owner = format!("{variant}{}", "😀".repeat(crate::core::pairing::MAX_OWNER_CHARS - 1));
        let version = "9".repeat(9) + "." + &"9".repeat(9) + "." + &"9".repeat(9);
        json!({
            "light": {"on": false, "hue": LONG_UNIT, "saturation": LONG_UNIT, "brightness": LONG_UNIT,
                      "transition_ms": MAX_TRANSITION_MS},
            "output": {"r": LONG_UNIT, "g": LONG_UNIT, "b": LONG_UNIT},
            "clock": {"synchronised": false, "require_sync": false},
            "connected_since": u64::MAX,
            "alarm": {
                "state": "snoozed", "snoozed_until": at,
                "ringing": {"id": id(0), "alarms": (0..MAX_ALARMS).map(id).collect::<Vec<_>>(), "label": label,
                            "action": "sunrise", "at": at},
                "next": {"id": id(1), "label": label, "at": at},
            },
            "owner": {"id": owner, "name": owner},
            "firmware": {"version": version, "update": {"state": "downloading", "version": version,
                                                        "error": "\"".repeat(MAX_ERROR_BYTES)}},
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn largest_desired(variant: char) -> Map<String, Value> {
        let mut desired = largest_settings(variant);
        desired.insert("light".into(), largest_own_report(variant)["light"].clone());
        let version = "9".repeat(9) + "." + &"9".repeat(9) + "." + &"9".repeat(9);
        desired.insert("firmware".into(), json!({"version": version, "allow_downgrade": false}));
        desired
    }

    fn largest_reported(variant: char) -> Map<String, Value> {
        let mut reported = largest_settings(variant);
        reported.extend(largest_own_report(variant));
        reported
    }

    /// Every answer an accepted update makes, and the `get` after it, fits in a packet.
    fn assert_answers_fit(shadow: &mut Shadow, request: Value) {
        use super::super::shadow::parse_update;
        let payload = request.to_string();
        let request = parse_update(payload.as_bytes()).unwrap();
        let accepted = shadow.update(request, 1_795_712_902, validate).unwrap();
        let get = shadow.get("lamp", Some(&"t".repeat(64)), 1_795_712_902).unwrap();
        let answers = [
            Some(accepted.accepted),
            Some(accepted.documents),
            accepted.delta,
            Some(get),
        ];
        for answer in answers.iter().flatten() {
            let bytes = size(answer);
            assert!(bytes + TOPIC_ROOM <= MAX_PACKET_BYTES, "{bytes} bytes");
        }
        let largest = answers.iter().flatten().map(size).max().unwrap();
        eprintln!("request {} bytes, largest answer {largest} bytes", payload.len());
    }

    use super::super::shadow::{MAX_REQUEST_BYTES, Shadow};

    #[test]
    fn the_lamps_largest_report_fits_its_section() {
        let reported = largest_reported('a');
        assert!(size(&largest_own_report('a')) <= LAMP_REPORT_BYTES);
        validate(&largest_desired('a'), &reported).unwrap();
        assert!(size(&reported) <= MAX_STATE_BYTES, "{}", size(&reported));
    }

    #[test]
    fn no_accepted_document_makes_an_answer_over_the_packet_limit() {
        let mut shadow = Shadow::default();
        // Twice, with every leaf different, so `previous` and `current` are both the largest.
        for variant in ['a', 'b'] {
            let token = "t".repeat(64);
            let request = json!({"state": {"desired": largest_desired(variant), "reported": largest_reported(variant)},
                                 "clientToken": token});
            assert_answers_fit(&mut shadow, request);
        }
        // A request that only deletes: every null gets metadata in `update/accepted`.
        let mut nulls = Map::new();
        let mut i = 0;
        while size(&nulls) + 64 < MAX_REQUEST_BYTES {
            nulls.insert(format!("{i:x}"), Value::Null);
            i += 1;
        }
        assert_answers_fit(&mut shadow, json!({"state": {"desired": nulls, "reported": {}}}));
    }
}
