//! Natural-light mode: the lamp's colour and brightness follow the sun outside.
//!
//! The sun's elevation at the lamp's place ([`super::sun`]) sets both: a low sun gives a warm
//! 2000 K, a high one a neutral 6500 K and full brightness; through civil twilight (sun 0° to
//! 6° below the horizon) the light dims to the night setting (a dim warm glow, or off). Every
//! function of elevation here is continuous, so the light never jumps, and elevation is
//! continuous in time, so neither does the lamp. Cloud cover dims and cools the light.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::colour::{Rgb, blackbody, dimmed};

/// The warmest and coolest colour temperatures of the day.
pub const LOW_SUN_KELVIN: f64 = 2000.0;
pub const HIGH_SUN_KELVIN: f64 = 6500.0;
/// Elevation at and above which the light is at its coolest and brightest.
const FULL_DAY_ELEVATION: f64 = 50.0;
/// End of civil twilight: below this it is night.
const NIGHT_ELEVATION: f64 = -6.0;
/// Brightness (L*/100) with the sun on the horizon.
const HORIZON_BRIGHTNESS: f64 = 0.45;
/// The default night light.
pub const DEFAULT_NIGHT_BRIGHTNESS: f64 = 0.05;
/// Overcast sky (cloud cover 1) takes away this much brightness and moves the colour this
/// far towards an overcast sky's cool 6500 K.
const CLOUD_DIMMING: f64 = 0.4;
const CLOUD_COOLING: f64 = 0.5;

/// How often the real-time curve is sampled (wall time). Each sample is where the sun will be
/// one step later, reached by a fade lasting the step: the light moves continuously, and the
/// lamp's frames come only as often as that movement is worth one (about once a minute at
/// noon, a few dozen times at dawn).
pub const STEP: chrono::Duration = chrono::Duration::seconds(60);
/// Samples per simulated day in demo mode, each fading into the next.
pub const DEMO_STEPS_PER_DAY: u32 = 720;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Night {
    Off,
    Dim,
}

/// The `natural_light` settings of the shadow.
#[derive(Clone, Debug, PartialEq)]
pub struct NaturalLight {
    pub latitude: f64,
    pub longitude: f64,
    pub night: Night,
    pub night_brightness: f64,
    pub cloud_cover: f64,
    /// A whole day in this much time (demo mode), or real time.
    pub demo_period: Option<Duration>,
}

impl NaturalLight {
    /// From a `natural_light` object the schema has accepted; `None` without a location.
    pub fn from_json(value: &Value) -> Option<NaturalLight> {
        let number = |key: &str| value.get(key).and_then(Value::as_f64);
        Some(NaturalLight {
            latitude: number("latitude")?,
            longitude: number("longitude")?,
            night: match value.get("night").and_then(Value::as_str) {
                Some("off") => Night::Off,
                _ => Night::Dim,
            },
            night_brightness: number("night_brightness").unwrap_or(DEFAULT_NIGHT_BRIGHTNESS),
            cloud_cover: number("cloud_cover").unwrap_or(0.0),
            demo_period: value
                .get("demo_period_s")
                .and_then(Value::as_u64)
                .filter(|&s| s > 0)
                .map(Duration::from_secs),
        })
    }

    /// Colour temperature and brightness (L*/100) for a sun at `elevation` degrees.
    pub fn curve(&self, elevation: f64) -> (f64, f64) {
        let night = match self.night {
            Night::Off => 0.0,
            Night::Dim => self.night_brightness,
        };
        let (kelvin, brightness) = if elevation >= 0.0 {
            // Eases out: changes fastest just after sunrise, as daylight does, and settles
            // towards noon.
            let day = 1.0 - (1.0 - (elevation / FULL_DAY_ELEVATION).min(1.0)).powi(2);
            (
                LOW_SUN_KELVIN + (HIGH_SUN_KELVIN - LOW_SUN_KELVIN) * day,
                HORIZON_BRIGHTNESS + (1.0 - HORIZON_BRIGHTNESS) * day,
            )
        } else {
            let dusk = ((elevation - NIGHT_ELEVATION) / -NIGHT_ELEVATION).max(0.0);
            (LOW_SUN_KELVIN, night + (HORIZON_BRIGHTNESS - night) * dusk)
        };
        let cloud = self.cloud_cover.clamp(0.0, 1.0);
        (
            kelvin + (HIGH_SUN_KELVIN - kelvin) * CLOUD_COOLING * cloud,
            brightness * (1.0 - CLOUD_DIMMING * cloud),
        )
    }

    /// The duty cycles for the sun as it is at `at`.
    pub fn output(&self, at: DateTime<Utc>) -> Rgb {
        let (kelvin, brightness) = self.curve(super::sun::elevation(at, self.latitude, self.longitude));
        dimmed(blackbody(kelvin), brightness)
    }

    /// Demo mode: the instant of the simulated day `elapsed` into the demo, which started at
    /// `started` (wall time). The day runs from the lamp's local midnight of the start day.
    pub fn demo_time(&self, started: DateTime<Utc>, zone: Tz, elapsed: Duration) -> DateTime<Utc> {
        let period = self.demo_period.unwrap_or(Duration::from_secs(86_400));
        let fraction = (elapsed.as_secs_f64() / period.as_secs_f64()).fract();
        let local_day = started.with_timezone(&zone).date_naive();
        let midnight = zone
            .from_local_datetime(&local_day.and_time(NaiveTime::MIN))
            .earliest()
            .map_or(started, |t| t.with_timezone(&Utc));
        midnight + chrono::Duration::milliseconds((fraction * 86_400_000.0) as i64)
    }

    /// The length of one demo step.
    pub fn demo_step(&self) -> Option<Duration> {
        self.demo_period.map(|p| p / DEMO_STEPS_PER_DAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> NaturalLight {
        NaturalLight::from_json(&serde_json::json!({"latitude": 51.5, "longitude": -0.12})).unwrap()
    }

    fn luminance(rgb: Rgb) -> f64 {
        rgb.r.max(rgb.g).max(rgb.b)
    }

    #[test]
    fn needs_a_place() {
        assert_eq!(NaturalLight::from_json(&serde_json::json!({"latitude": 51.5})), None);
    }

    #[test]
    fn warm_and_low_at_dawn_cool_and_bright_at_noon_dim_at_night() {
        let sky = london();
        let (noon_k, noon_b) = sky.curve(60.0);
        let (dawn_k, dawn_b) = sky.curve(1.0);
        let (night_k, night_b) = sky.curve(-20.0);
        assert_eq!((noon_k, noon_b), (HIGH_SUN_KELVIN, 1.0));
        assert!(dawn_k < 3000.0 && dawn_b < 0.6, "{dawn_k} {dawn_b}");
        assert_eq!((night_k, night_b), (LOW_SUN_KELVIN, DEFAULT_NIGHT_BRIGHTNESS));
        let off = NaturalLight {
            night: Night::Off,
            ..london()
        };
        assert_eq!(off.curve(-20.0).1, 0.0);
    }

    #[test]
    fn the_curve_has_no_jumps() {
        let sky = london();
        let mut previous = sky.curve(-90.0);
        let mut elevation = -90.0;
        while elevation < 90.0 {
            elevation += 0.01;
            let now = sky.curve(elevation);
            assert!((now.0 - previous.0).abs() < 40.0, "kelvin jumps at {elevation}");
            assert!((now.1 - previous.1).abs() < 0.01, "brightness jumps at {elevation}");
            previous = now;
        }
    }

    #[test]
    fn clouds_dim_and_cool() {
        let overcast = NaturalLight {
            cloud_cover: 1.0,
            ..london()
        };
        let (clear_k, clear_b) = london().curve(20.0);
        let (cloudy_k, cloudy_b) = overcast.curve(20.0);
        assert!(cloudy_k > clear_k && cloudy_b < clear_b);
    }

    #[test]
    fn a_day_in_london_runs_dark_bright_dark_minute_by_minute() {
        let sky = london();
        let midnight: DateTime<Utc> = "2026-06-21T00:00:00Z".parse().unwrap();
        let samples: Vec<f64> = (0..1440)
            .map(|m| luminance(sky.output(midnight + chrono::Duration::minutes(m))))
            .collect();
        let brightest = samples.iter().cloned().fold(0.0, f64::max);
        assert_eq!(brightest, 1.0);
        let night = samples[60];
        assert!(night > 0.0 && night < 0.01, "dim night light: {night}");
        for pair in samples.windows(2) {
            assert!((pair[1] - pair[0]).abs() < 0.02, "a visible jump: {pair:?}");
        }
    }

    #[test]
    fn polar_night_and_day_stay_sensible() {
        let tromso = NaturalLight::from_json(&serde_json::json!({"latitude": 69.65, "longitude": 18.96})).unwrap();
        let winter_noon: DateTime<Utc> = "2026-12-21T11:00:00Z".parse().unwrap();
        let summer_midnight: DateTime<Utc> = "2026-06-21T23:00:00Z".parse().unwrap();
        // Twilight at noon in December: dimmer than a sunrise, brighter than night.
        let winter = luminance(tromso.output(winter_noon));
        assert!(winter > luminance(tromso.output(winter_noon + chrono::Duration::hours(12))));
        assert!(winter < luminance(dimmed(blackbody(2000.0), HORIZON_BRIGHTNESS)));
        // The midnight sun: low and warm but up.
        let (kelvin, brightness) = tromso.curve(super::super::sun::elevation(summer_midnight, 69.65, 18.96));
        assert!(
            kelvin < 3500.0 && brightness >= HORIZON_BRIGHTNESS,
            "{kelvin} {brightness}"
        );
    }

    #[test]
    fn demo_day_starts_at_local_midnight_and_wraps() {
        let sky = NaturalLight {
            demo_period: Some(Duration::from_secs(120)),
            ..london()
        };
        let started: DateTime<Utc> = "2026-06-21T15:30:00Z".parse().unwrap();
        let zone: Tz = "Europe/London".parse().unwrap();
        let at = |s| sky.demo_time(started, zone, Duration::from_secs(s)).to_rfc3339();
        assert_eq!(at(0), "2026-06-20T23:00:00+00:00");
        assert_eq!(at(60), "2026-06-21T11:00:00+00:00");
        assert_eq!(at(120), at(0));
        assert_eq!(sky.demo_step(), Some(Duration::from_secs(120) / 720));
    }
}
