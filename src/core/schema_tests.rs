use super::*;
use serde_json::json;

/// The message the sender would get, as [`Invalid`] displays it.
fn check(desired: Value) -> Checked {
    validate(desired.as_object().unwrap(), &Map::new()).map_err(|e| e.to_string())
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
        json!({"output": {"r": 0, "g": 0.5, "b": 1}, "firmware": {"version": "0.1.0"}, "connected_since": 1795712902, "broker": 2})
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
    validate(&Map::new(), reported.as_object().unwrap()).map_err(|e| e.to_string())
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
        (
            json!({"broker": 0}),
            "reported.broker: must be a whole number from 1 to 16",
        ),
        (
            json!({"broker": 17}),
            "reported.broker: must be a whole number from 1 to 16",
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
        "ble": {"serving": false},
        "connected_since": u64::MAX,
        "broker": crate::core::schema::MAX_BROKERS,
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
