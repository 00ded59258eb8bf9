//! What the touchscreen shows, decided without Slint: the lamp's state in, ready-made text,
//! colours and rows out. Pure, so every screen's content is unit-tested, and the same code
//! serves the live screen and `lampi screenshot`.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::core::alarm::{Action, Alarm, DEFAULT_RAMP_MINUTES};
use crate::core::colour::duty_for;
use crate::core::natural::NaturalLight;
use crate::core::pairing::CODE_LIFE;
use crate::core::report::{self, AlarmState};
use crate::core::schedule::zone_setting;
use crate::core::schema::MAX_ALARMS;
use crate::core::sun::{self, Daylight};

/// Everything the screen depends on. The live UI builds it from the lamp's watch channels;
/// `lampi screenshot --state` reads it as JSON over [`ViewInput::example`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewInput {
    /// The lamp's wall clock.
    pub now: DateTime<Utc>,
    pub clock_synchronised: bool,
    /// The person's light setting (what the sliders show).
    pub light: LightView,
    /// The shadow's sections: settings come from `desired` where set there (a change the lamp
    /// is about to make), else `reported`; the alarm state and owner from `reported`.
    pub desired: Map<String, Value>,
    pub reported: Map<String, Value>,
    pub pairing: PairingInput,
    pub cloud_connected: bool,
    pub prefs: Prefs,
    pub status: StatusInput,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightView {
    pub on: bool,
    pub hue: f64,
    pub saturation: f64,
    pub brightness: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingInput {
    pub code: Option<String>,
    /// How long the code has left.
    pub left_s: f64,
    /// The last code ran out without being used.
    pub expired: bool,
}

/// The screen's own settings, changed on the screen and kept by the UI.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prefs {
    pub clock_24h: bool,
    pub night_dimming: bool,
    /// Backlight level while in use, 0.0–1.0.
    pub screen_brightness: f64,
}

impl Default for Prefs {
    fn default() -> Prefs {
        Prefs {
            clock_24h: true,
            night_dimming: true,
            screen_brightness: 1.0,
        }
    }
}

/// Facts for the settings screen that are not lamp state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusInput {
    pub device_id: String,
    pub firmware: String,
    pub addresses: Vec<String>,
    /// `host:port`, or empty when MQTT is off.
    pub broker: String,
    /// `device`, `aws` or `off`.
    pub shadow_service: String,
    pub has_backlight: bool,
}

impl ViewInput {
    /// A lamp in use on a winter morning: the default for screenshots, which `--state` edits.
    pub fn example() -> ViewInput {
        let desired = json!({});
        let reported = json!({
            "timezone": "America/New_York",
            "mode": "manual",
            "natural_light": {"latitude": 42.36, "longitude": -71.06},
            "alarms": {
                "work": {"time": "06:45", "days": ["mon", "tue", "wed", "thu", "fri"], "action": "sunrise",
                         "ramp_minutes": 30, "label": "Work"},
                "weekend": {"time": "09:00", "days": ["sat", "sun"], "action": "sunrise", "ramp_minutes": 45},
                "pills": {"time": "21:30", "action": "blink", "enabled": false, "label": "Pills"}
            },
            "alarm": {"state": "idle", "next": {"id": "work", "label": "Work", "at": "2026-11-27T06:45:00-05:00"}},
            "owner": {"id": "u-1", "name": "Ada"},
            "clock": {"synchronised": true, "require_sync": true},
            "connected_since": 1_795_000_000
        });
        ViewInput {
            now: "2026-11-26T12:42:00Z".parse().expect("a valid instant"),
            clock_synchronised: true,
            light: LightView {
                on: true,
                hue: 0.08,
                saturation: 0.55,
                brightness: 0.7,
            },
            desired: as_map(desired),
            reported: as_map(reported),
            pairing: PairingInput::default(),
            cloud_connected: true,
            prefs: Prefs::default(),
            status: StatusInput {
                device_id: "lampi-b827eb123456".into(),
                firmware: env!("CARGO_PKG_VERSION").into(),
                addresses: vec!["192.168.1.42".into(), "fe80::ba27:ebff:fe12:3456".into()],
                broker: "mqtt.example.net:8883".into(),
                shadow_service: "device".into(),
                has_backlight: true,
            },
        }
    }

    /// The example with what makes `screen` worth a picture: a ringing alarm, a fresh code.
    pub fn example_for(screen: super::Screen) -> ViewInput {
        let mut input = ViewInput::example();
        match screen {
            super::Screen::Alarm => {
                input.now = "2026-11-27T11:45:10Z".parse().expect("a valid instant");
                input.reported.insert(
                    "alarm".into(),
                    json!({"state": "ringing", "ringing": {"id": "work", "alarms": ["work"], "label": "Work",
                           "action": "sunrise", "at": "2026-11-27T06:45:00-05:00"}}),
                );
            }
            super::Screen::Pairing => {
                input.reported.remove("owner");
                input.pairing = PairingInput {
                    code: Some("K7QP-M4XD".into()),
                    left_s: 42.0,
                    expired: false,
                };
            }
            _ => {}
        }
        input
    }

    /// A setting as the lamp will have it: `desired` first.
    pub fn setting(&self, key: &str) -> Option<&Value> {
        self.desired.get(key).or_else(|| self.reported.get(key))
    }

    pub fn zone(&self) -> Tz {
        zone_setting(self.setting("timezone"))
    }
}

fn as_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PairingPhase {
    #[default]
    Idle,
    Showing,
    Expired,
    Paired,
}

/// One alarm as the list and the editor show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlarmLine {
    pub id: String,
    pub label: String,
    pub hour: u32,
    pub minute: u32,
    /// Bit 0 is Monday.
    pub day_mask: u8,
    pub enabled: bool,
    pub sunrise: bool,
    pub ramp_minutes: u32,
    pub time_text: String,
    pub days_text: String,
    pub action_text: String,
}

/// Everything on every screen, ready to show.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    pub time_text: String,
    pub meridiem: String,
    pub date_text: String,
    pub next_alarm_text: String,

    pub power: bool,
    pub hue: f32,
    pub saturation: f32,
    pub brightness: f32,
    pub preview: [u8; 3],
    /// Evenly spaced gradient stops, left to right.
    pub hue_track: Vec<[u8; 3]>,
    pub saturation_track: Vec<[u8; 3]>,
    pub brightness_track: Vec<[u8; 3]>,

    pub cloud_connected: bool,
    pub paired: bool,
    pub natural_mode: bool,

    pub ringing: bool,
    pub snoozed: bool,
    pub ringing_label: String,
    pub ringing_time: String,

    pub alarms: Vec<AlarmLine>,
    pub can_add_alarm: bool,

    pub natural_available: bool,
    pub demo_mode: bool,
    pub natural_text: String,
    pub sun_path: String,
    pub sun_now_minute: f32,
    pub sun_now_elevation: f32,
    pub sunrise_text: String,
    pub sunset_text: String,

    pub pairing_phase: PairingPhase,
    pub pairing_code: String,
    pub pairing_left: f32,
    pub pairing_seconds: i32,
    pub owner_name: String,

    pub info: Vec<(String, String)>,
    pub clock_24h: bool,
    pub night_dimming: bool,
    pub screen_brightness: f32,
    pub has_backlight: bool,
}

/// Stops per slider track (as many as ui/api.slint's gradients have): the hue track passes
/// through every primary and secondary colour; five follow the brightness curve closely.
const HUE_STOPS: usize = 7;
const TRACK_STOPS: usize = 5;
/// The sun curve's resolution in minutes.
const SUN_STEP_MINUTES: u32 = 10;

pub fn view(input: &ViewInput) -> View {
    let zone = input.zone();
    let local = input.now.with_timezone(&zone);
    let clock_24h = input.prefs.clock_24h;
    let (time_text, meridiem) = if input.clock_synchronised {
        clock_text(local.time(), clock_24h)
    } else {
        ("--:--".into(), String::new())
    };
    let date_text = if input.clock_synchronised {
        local.format("%A %-d %B").to_string()
    } else {
        "Waiting for the time…".into()
    };
    let alarm = report::alarm(&input.reported).unwrap_or_default();
    let ringing_entry = alarm.ringing.as_ref();
    let light = input.light;
    let track = |stops: usize, f: &dyn Fn(f64) -> (f64, f64, f64)| {
        (0..stops)
            .map(|i| {
                let (h, s, b) = f(i as f64 / (stops - 1) as f64);
                duty_for(true, h, s, b).to_srgb8()
            })
            .collect()
    };
    // The tracks show colour even when the light is off: they say what a touch would do.
    let shown_brightness = light.brightness.max(0.35);
    let (natural_available, natural_text, sun) = natural(input, zone);
    let owner_name = report::owner(&input.reported).map(|o| o.name).unwrap_or_default();
    let left = input.pairing.left_s.max(0.0);
    View {
        time_text,
        meridiem,
        date_text,
        next_alarm_text: next_alarm_text(input, local.date_naive(), clock_24h),
        power: light.on,
        hue: light.hue as f32,
        saturation: light.saturation as f32,
        brightness: light.brightness as f32,
        preview: duty_for(light.on, light.hue, light.saturation, light.brightness).to_srgb8(),
        hue_track: track(HUE_STOPS, &|x| (x, light.saturation, shown_brightness)),
        saturation_track: track(TRACK_STOPS, &|x| (light.hue, x, shown_brightness)),
        brightness_track: track(TRACK_STOPS, &|x| (light.hue, light.saturation, x)),
        cloud_connected: input.cloud_connected,
        paired: !owner_name.is_empty(),
        natural_mode: input.setting("mode").and_then(Value::as_str) == Some("natural"),
        ringing: alarm.state == AlarmState::Ringing,
        snoozed: alarm.state == AlarmState::Snoozed,
        ringing_label: ringing_entry
            .map(|r| r.label.as_str())
            .filter(|l| !l.is_empty())
            .unwrap_or("Alarm")
            .to_owned(),
        ringing_time: ringing_entry
            .and_then(|r| DateTime::parse_from_rfc3339(&r.at).ok())
            .map(|at| joined_clock_text(at.time(), clock_24h))
            .unwrap_or_default(),
        alarms: alarm_lines(input, clock_24h),
        can_add_alarm: alarm_count(input) < MAX_ALARMS,
        natural_available,
        demo_mode: input
            .setting("natural_light")
            .and_then(|n| n.get("demo_period_s"))
            .and_then(Value::as_u64)
            .is_some_and(|p| p > 0),
        natural_text,
        sun_path: sun.path,
        sun_now_minute: sun.now_minute,
        sun_now_elevation: sun.now_elevation,
        sunrise_text: sun.sunrise_text,
        sunset_text: sun.sunset_text,
        pairing_phase: match (&input.pairing.code, input.pairing.expired, owner_name.is_empty()) {
            (Some(_), _, _) => PairingPhase::Showing,
            (None, true, _) => PairingPhase::Expired,
            (None, false, false) => PairingPhase::Paired,
            (None, false, true) => PairingPhase::Idle,
        },
        pairing_code: input.pairing.code.clone().unwrap_or_default(),
        pairing_left: (left / CODE_LIFE.as_secs_f64()).min(1.0) as f32,
        pairing_seconds: left.ceil() as i32,
        owner_name,
        info: info(input, zone, clock_24h),
        clock_24h,
        night_dimming: input.prefs.night_dimming,
        screen_brightness: input.prefs.screen_brightness as f32,
        has_backlight: input.status.has_backlight,
    }
}

/// "07:05" and "", or "7:05" and "AM".
fn clock_text(time: NaiveTime, clock_24h: bool) -> (String, String) {
    if clock_24h {
        return (time.format("%H:%M").to_string(), String::new());
    }
    let (pm, hour) = time.hour12();
    (
        format!("{hour}:{:02}", time.minute()),
        if pm { "PM" } else { "AM" }.into(),
    )
}

fn joined_clock_text(time: NaiveTime, clock_24h: bool) -> String {
    let (time, meridiem) = clock_text(time, clock_24h);
    format!("{time} {meridiem}").trim_end().to_owned()
}

fn next_alarm_text(input: &ViewInput, today: chrono::NaiveDate, clock_24h: bool) -> String {
    let Some(alarm) = report::alarm(&input.reported) else {
        return String::new();
    };
    let at = |value: Option<&String>| value.and_then(|at| DateTime::parse_from_rfc3339(at).ok());
    if let Some(until) = at(alarm.snoozed_until.as_ref()) {
        return format!("Snoozed until {}", joined_clock_text(until.time(), clock_24h));
    }
    let Some(next) = alarm.next else {
        return "No alarm set".into();
    };
    let Some(when) = at(Some(&next.at)) else {
        return String::new();
    };
    let day = match (when.date_naive() - today).num_days() {
        0 => "Today".to_owned(),
        1 => "Tomorrow".to_owned(),
        2..=6 => when.format("%A").to_string(),
        _ => when.format("%a %-d %b").to_string(),
    };
    let label = next.label;
    let time = joined_clock_text(when.time(), clock_24h);
    if label.is_empty() {
        format!("Alarm: {day} {time}")
    } else {
        format!("Alarm: {day} {time} · {label}")
    }
}

fn alarm_count(input: &ViewInput) -> usize {
    input.setting("alarms").and_then(Value::as_object).map_or(0, Map::len)
}

fn alarm_lines(input: &ViewInput, clock_24h: bool) -> Vec<AlarmLine> {
    let Some(alarms) = input.setting("alarms").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut lines: Vec<AlarmLine> = alarms
        .iter()
        .map(|(id, spec)| {
            // Read as the alarm clock reads it, with its defaults.
            let alarm = Alarm::from_json(id, spec);
            let time = alarm.time;
            let day_mask = (0..7).filter(|&i| alarm.days[i]).fold(0u8, |mask, i| mask | 1 << i);
            let (sunrise, ramp_minutes) = match alarm.action {
                Action::Sunrise { ramp_minutes } => (true, ramp_minutes),
                // The editor offers the length the alarm keeps for a sunrise, should it
                // become one.
                Action::Blink => {
                    let kept = spec.get("ramp_minutes").and_then(Value::as_u64);
                    (false, kept.map_or(DEFAULT_RAMP_MINUTES, |m| m as u32))
                }
            };
            AlarmLine {
                id: id.clone(),
                label: alarm.label,
                hour: time.hour(),
                minute: time.minute(),
                day_mask,
                enabled: alarm.enabled,
                sunrise,
                ramp_minutes,
                time_text: joined_clock_text(time, clock_24h),
                days_text: days_text(day_mask),
                action_text: if sunrise {
                    format!("Sunrise over {ramp_minutes} min")
                } else {
                    "Blink".into()
                },
            }
        })
        .collect();
    lines.sort_by(|a, b| (a.hour, a.minute, &a.id).cmp(&(b.hour, b.minute, &b.id)));
    lines
}

fn days_text(mask: u8) -> String {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    match mask {
        0 => "Once".into(),
        0b111_1111 => "Every day".into(),
        0b001_1111 => "Weekdays".into(),
        0b110_0000 => "Weekends".into(),
        _ => (0..7)
            .filter(|i| mask & 1 << i != 0)
            .map(|i| NAMES[i])
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The alarm as the settings want it after an edit on the screen ([`Alarm::to_patch`]).
pub fn alarm_patch(line: &AlarmLine) -> Value {
    let alarm = Alarm {
        id: line.id.clone(),
        time: NaiveTime::from_hms_opt(line.hour, line.minute, 0).unwrap_or(NaiveTime::MIN),
        days: std::array::from_fn(|i| line.day_mask & 1 << i != 0),
        enabled: line.enabled,
        action: if line.sunrise {
            Action::Sunrise {
                ramp_minutes: line.ramp_minutes,
            }
        } else {
            Action::Blink
        },
        ..Alarm::from_json(&line.id, &json!({}))
    };
    alarm.to_patch()
}

/// An id for a new alarm that no alarm has yet.
pub fn new_alarm_id(input_alarms: Option<&Map<String, Value>>) -> String {
    (1..)
        .map(|n| format!("alarm-{n}"))
        .find(|id| input_alarms.is_none_or(|alarms| !alarms.contains_key(id)))
        .expect("fewer alarms than numbers")
}

#[derive(Default)]
struct SunView {
    path: String,
    now_minute: f32,
    now_elevation: f32,
    sunrise_text: String,
    sunset_text: String,
}

fn natural(input: &ViewInput, zone: Tz) -> (bool, String, SunView) {
    let Some(NaturalLight {
        latitude, longitude, ..
    }) = input.setting("natural_light").and_then(NaturalLight::from_json)
    else {
        return (
            false,
            "Natural light needs the lamp's location: set natural_light.latitude and .longitude from the app.".into(),
            SunView::default(),
        );
    };
    let local = input.now.with_timezone(&zone);
    let midnight = zone
        .from_local_datetime(&local.date_naive().and_time(NaiveTime::MIN))
        .earliest()
        .map_or(input.now, |m| m.with_timezone(&Utc));
    let minute_of_day = |at: DateTime<Utc>| (at - midnight).num_seconds() as f32 / 60.0;
    let mut path = String::new();
    for minute in (0..=24 * 60).step_by(SUN_STEP_MINUTES as usize) {
        let at = midnight + chrono::Duration::minutes(minute.into());
        let y = 90.0 - sun::elevation(at, latitude, longitude);
        let command = if minute == 0 { 'M' } else { 'L' };
        path.push_str(&format!("{command}{minute} {y:.1} "));
    }
    let (sunrise_text, sunset_text) = match sun::daylight(input.now.date_naive(), latitude, longitude) {
        Daylight::Rises { sunrise, sunset } => {
            let time = |at: DateTime<Utc>| joined_clock_text(at.with_timezone(&zone).time(), input.prefs.clock_24h);
            (format!("☀↑ {}", time(sunrise)), format!("☀↓ {}", time(sunset)))
        }
        Daylight::PolarDay => ("The sun does not set today".into(), String::new()),
        Daylight::PolarNight => ("The sun does not rise today".into(), String::new()),
    };
    let text = format!(
        "Following the sun at {:.2}° {}, {:.2}° {}.",
        latitude.abs(),
        if latitude >= 0.0 { "N" } else { "S" },
        longitude.abs(),
        if longitude >= 0.0 { "E" } else { "W" }
    );
    let sun = SunView {
        path: path.trim_end().to_owned(),
        now_minute: minute_of_day(input.now),
        now_elevation: sun::elevation(input.now, latitude, longitude) as f32,
        sunrise_text,
        sunset_text,
    };
    (true, text, sun)
}

fn info(input: &ViewInput, zone: Tz, clock_24h: bool) -> Vec<(String, String)> {
    let status = &input.status;
    let reported_u64 = |key| input.reported.get(key).and_then(Value::as_u64);
    let broker = match (status.broker.as_str(), input.cloud_connected) {
        ("", _) => "MQTT off".to_owned(),
        (broker, true) => match reported_u64("connected_since").and_then(|t| Utc.timestamp_opt(t as i64, 0).single()) {
            Some(since) => format!(
                "{broker}, connected since {}",
                joined_clock_text(since.with_timezone(&zone).time(), clock_24h)
            ),
            None => format!("{broker}, connected"),
        },
        (broker, false) => format!("{broker}, offline"),
    };
    let shadow = match status.shadow_service.as_str() {
        "aws" => "AWS IoT (the lamp is its client)".to_owned(),
        "off" => "off".to_owned(),
        _ => "hosted on the lamp".to_owned(),
    };
    let firmware = match report::firmware(&input.reported).and_then(|f| f.update) {
        Some(update) => format!(
            "{} (update to {}: {})",
            status.firmware,
            update.version,
            update.state.name()
        ),
        None => status.firmware.clone(),
    };
    let owner = report::owner(&input.reported).map_or_else(|| "nobody".to_owned(), |o| o.name);
    let addresses = if status.addresses.is_empty() {
        "none".to_owned()
    } else {
        status.addresses.join(", ")
    };
    let clock = if input.clock_synchronised {
        "synchronised"
    } else {
        "not synchronised: alarms wait"
    };
    [
        ("Device", status.device_id.clone()),
        ("Addresses", addresses),
        ("Firmware", firmware),
        ("Broker", broker),
        ("Shadow", shadow),
        ("Owner", owner.to_owned()),
        ("Time zone", zone.name().to_owned()),
        ("Clock", clock.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// When the screen's text next changes by itself: at the next minute of the wall clock (the
/// clock), and, while a pairing code shows, at the countdown's next second (monotonic, so
/// returned as a wait).
pub fn next_minute(now: DateTime<Utc>) -> DateTime<Utc> {
    let minute = now.timestamp().div_euclid(60) + 1;
    DateTime::from_timestamp(minute * 60, 0).unwrap_or(now)
}

/// The wait until the pairing countdown shows one second less; `None` without a code.
pub fn countdown_tick(input: &ViewInput) -> Option<Duration> {
    input.pairing.code.as_ref()?;
    Some(Duration::from_secs_f64(input.pairing.left_s.fract().max(0.05)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> ViewInput {
        ViewInput::example()
    }

    #[test]
    fn the_clock_is_in_the_lamps_zone_in_either_format_and_blank_until_synchronised() {
        let mut input = example();
        // 12:42 UTC is 07:42 in New York.
        assert_eq!(
            (view(&input).time_text.as_str(), view(&input).meridiem.as_str()),
            ("07:42", "")
        );
        assert_eq!(view(&input).date_text, "Thursday 26 November");
        input.prefs.clock_24h = false;
        input.now = "2026-11-26T21:05:00Z".parse().unwrap();
        assert_eq!(
            (view(&input).time_text.as_str(), view(&input).meridiem.as_str()),
            ("4:05", "PM")
        );
        input.desired.insert("timezone".into(), json!("Asia/Kolkata"));
        assert_eq!(view(&input).time_text, "2:35");
        input.clock_synchronised = false;
        assert_eq!(view(&input).time_text, "--:--");
        assert_eq!(view(&input).meridiem, "");
    }

    #[test]
    fn next_alarm_snooze_and_ringing_read_from_the_report() {
        let mut input = example();
        assert_eq!(view(&input).next_alarm_text, "Alarm: Tomorrow 06:45 · Work");
        input.reported["alarm"] =
            json!({"state": "idle", "next": {"id": "w", "label": "", "at": "2026-12-01T09:00:00-05:00"}});
        assert_eq!(view(&input).next_alarm_text, "Alarm: Tuesday 09:00");
        input.reported["alarm"] = json!({"state": "idle"});
        assert_eq!(view(&input).next_alarm_text, "No alarm set");
        input.reported["alarm"] = json!({"state": "snoozed", "snoozed_until": "2026-11-27T06:54:00-05:00"});
        assert_eq!(view(&input).next_alarm_text, "Snoozed until 06:54");
        assert!(!view(&input).ringing && view(&input).snoozed);
        input.reported["alarm"] =
            json!({"state": "ringing", "ringing": {"label": "", "at": "2026-11-27T06:45:00-05:00"}});
        let ringing = view(&input);
        assert!(ringing.ringing);
        assert_eq!(
            (ringing.ringing_label.as_str(), ringing.ringing_time.as_str()),
            ("Alarm", "06:45")
        );
    }

    #[test]
    fn alarms_are_listed_by_time_with_their_days_and_actions() {
        let lines = view(&example()).alarms;
        let summary: Vec<(&str, &str, &str, bool)> = lines
            .iter()
            .map(|l| {
                (
                    l.time_text.as_str(),
                    l.days_text.as_str(),
                    l.action_text.as_str(),
                    l.enabled,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("06:45", "Weekdays", "Sunrise over 30 min", true),
                ("09:00", "Weekends", "Sunrise over 45 min", true),
                ("21:30", "Once", "Blink", false),
            ]
        );
        assert_eq!(days_text(0b000_0101), "Mon, Wed");
        assert_eq!(days_text(0b111_1111), "Every day");
        // A desired change shows before the lamp reports it.
        let mut input = example();
        input.desired.insert("alarms".into(), json!({}));
        assert!(view(&input).alarms.is_empty());
    }

    #[test]
    fn an_edited_alarm_becomes_a_patch_the_schema_accepts() {
        let line = AlarmLine {
            hour: 6,
            minute: 5,
            day_mask: 0b100_0001,
            enabled: true,
            sunrise: true,
            ramp_minutes: 25,
            ..AlarmLine::default()
        };
        let patch = alarm_patch(&line);
        assert_eq!(
            patch,
            json!({"time": "06:05", "days": ["mon", "sun"], "enabled": true, "action": "sunrise", "ramp_minutes": 25})
        );
        let desired = json!({"alarms": {"alarm-1": patch}});
        crate::core::schema::validate(desired.as_object().unwrap(), &Map::new()).unwrap();
        let blink = alarm_patch(&AlarmLine { sunrise: false, ..line });
        assert_eq!(blink.get("ramp_minutes"), None);
        let taken = json!({"alarm-1": {}, "alarm-2": {}});
        assert_eq!(new_alarm_id(taken.as_object()), "alarm-3");
        assert_eq!(new_alarm_id(None), "alarm-1");
    }

    #[test]
    fn slider_tracks_show_what_they_would_produce() {
        let mut input = example();
        let warm = view(&input);
        // Brightness runs from black to the chosen colour at full brightness.
        assert_eq!(warm.brightness_track[0], [0, 0, 0]);
        assert_eq!(
            warm.brightness_track[4],
            duty_for(true, input.light.hue, input.light.saturation, 1.0).to_srgb8()
        );
        // Saturation starts white; the hue track goes round to where it began.
        let first = warm.saturation_track[0];
        assert!(first[0] == first[1] && first[1] == first[2]);
        assert_eq!(warm.hue_track[0], warm.hue_track[6]);
        input.light.on = false;
        let off = view(&input);
        assert_eq!(off.preview, [0, 0, 0]);
        assert_eq!(off.hue_track, warm.hue_track);
    }

    #[test]
    fn pairing_shows_the_code_its_countdown_the_owner_or_that_it_expired() {
        let mut input = example();
        assert_eq!(view(&input).pairing_phase, PairingPhase::Paired);
        assert_eq!(view(&input).owner_name, "Ada");
        input.pairing = PairingInput {
            code: Some("ABCD-EFGH".into()),
            left_s: 29.2,
            expired: false,
        };
        let showing = view(&input);
        assert_eq!(showing.pairing_phase, PairingPhase::Showing);
        assert_eq!(
            (showing.pairing_seconds, showing.pairing_code.as_str()),
            (30, "ABCD-EFGH")
        );
        assert!((showing.pairing_left - 29.2 / 60.0).abs() < 1e-6);
        input.pairing = PairingInput {
            expired: true,
            ..PairingInput::default()
        };
        assert_eq!(view(&input).pairing_phase, PairingPhase::Expired);
        input.pairing.expired = false;
        input.reported.remove("owner");
        assert_eq!(view(&input).pairing_phase, PairingPhase::Idle);
        assert!(!view(&input).paired);
    }

    #[test]
    fn natural_light_needs_a_place_and_draws_todays_sun() {
        let sunny = view(&example());
        assert!(sunny.natural_available);
        assert_eq!(sunny.sun_path.matches('L').count(), 24 * 60 / SUN_STEP_MINUTES as usize);
        // 07:42 local: the sun is up, low, in the morning.
        assert!((sunny.sun_now_minute - 462.0).abs() < 0.01);
        assert!(
            (0.0..20.0).contains(&sunny.sun_now_elevation),
            "{}",
            sunny.sun_now_elevation
        );
        assert_eq!(
            (sunny.sunrise_text.as_str(), sunny.sunset_text.as_str()),
            ("☀↑ 06:48", "☀↓ 16:14")
        );
        let mut input = example();
        input.reported.remove("natural_light");
        let nowhere = view(&input);
        assert!(!nowhere.natural_available && nowhere.sun_path.is_empty());
        assert!(nowhere.natural_text.contains("location"));
    }

    #[test]
    fn status_lines_say_what_the_network_popup_said_and_more() {
        let mut input = example();
        input.cloud_connected = false;
        let info = view(&input).info;
        let line = |name: &str| info.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(line("Broker"), "mqtt.example.net:8883, offline");
        assert_eq!(line("Addresses"), "192.168.1.42, fe80::ba27:ebff:fe12:3456");
        assert_eq!(line("Time zone"), "America/New_York");
        input.status.broker.clear();
        assert_eq!(view(&input).info[3].1, "MQTT off");
    }

    #[test]
    fn the_screen_changes_by_itself_at_the_next_minute_or_countdown_second() {
        let mut input = example();
        input.now = "2026-11-26T12:42:15.5Z".parse().unwrap();
        assert_eq!(
            next_minute(input.now),
            "2026-11-26T12:43:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(countdown_tick(&input), None);
        input.pairing.code = Some("ABCD-EFGH".into());
        input.pairing.left_s = 41.25;
        assert_eq!(countdown_tick(&input), Some(Duration::from_millis(250)));
    }
}
