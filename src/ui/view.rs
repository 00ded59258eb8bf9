//! What the touchscreen shows, decided without Slint: the lamp's state in, ready-made text,
//! colours and rows out. Pure, so every screen's content is unit-tested, and the same code
//! serves the live screen and `lampi screenshot`.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

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
    /// `host:port` of each configured broker in order, or none when MQTT is off.
    pub brokers: Vec<String>,
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
                brokers: vec!["mqtt.example.net:8883".into(), "mqtt2.example.net:8883".into()],
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
#[path = "view_alarms.rs"]
mod alarms;

pub use alarms::{AlarmLine, alarm_patch, new_alarm_id};
use alarms::{alarm_count, alarm_lines, next_alarm_text};

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
    // The broker the lamp last connected to: after a failover, not the first configured.
    let in_use = reported_u64("broker").and_then(|n| status.brokers.get(usize::try_from(n).ok()?.checked_sub(1)?));
    let broker = match (
        in_use.or(status.brokers.first()).map_or("", String::as_str),
        input.cloud_connected,
    ) {
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
#[path = "view_tests.rs"]
mod tests;
