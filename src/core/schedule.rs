//! What the light shows when the lamp, not a person, decides: a ringing alarm, or natural
//! light, over the person's own light setting (in that order of priority).
//!
//! The schedulers' curves are sampled, and each sample fades into the next, so the light
//! moves continuously with a handful of wake-ups: real-time natural light every minute, a
//! sunrise every few seconds, the demo day in 720 steps, the blink pattern at its edges.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::alarm::{Alarm, AlarmClock, AlarmEvent, AlarmMemory};
use super::colour::Rgb;
use super::natural::{self, NaturalLight};

/// The lamp's time zone from its `timezone` setting; UTC when there is none. The alarms and
/// the screen's clock both read it here, so they never disagree.
pub fn zone_setting(value: Option<&Value>) -> Tz {
    value
        .and_then(Value::as_str)
        .and_then(|z| z.parse().ok())
        .unwrap_or(Tz::UTC)
}

/// How long the light takes to reach natural light when that mode starts or an alarm ends.
const ENTER_FADE: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    Person,
    Alarm,
    Natural,
}

/// What the lamp should do with its light after a tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Show {
    /// Nothing new.
    Same,
    /// Go back to the person's own setting.
    Person,
    /// Fade to this output.
    Output(Rgb, Duration),
}

#[derive(Debug)]
pub struct Scheduler {
    alarms: AlarmClock,
    natural: Option<NaturalLight>,
    /// Demo mode: when (monotonic, wall) the simulated day started.
    demo_started: Option<(Instant, DateTime<Utc>)>,
    zone: Tz,
    source: Source,
    next_sample_mono: Option<Instant>,
    next_sample_wall: Option<DateTime<Utc>>,
    /// Recompute at the next tick even if no sample is due.
    stale: bool,
}

impl Scheduler {
    pub fn new(memory: AlarmMemory) -> Scheduler {
        Scheduler {
            alarms: AlarmClock::new(memory, true),
            natural: None,
            demo_started: None,
            zone: Tz::UTC,
            source: Source::Person,
            next_sample_mono: None,
            next_sample_wall: None,
            stale: true,
        }
    }

    pub fn alarms(&self) -> &AlarmClock {
        &self.alarms
    }

    /// For the user's and the clock's commands to the alarm clock; the schedule's own
    /// configuration goes through [`Scheduler::configure`].
    pub fn alarms_mut(&mut self) -> &mut AlarmClock {
        &mut self.alarms
    }

    /// Takes the lamp's (validated) settings: `timezone`, `alarms`, `mode`, `natural_light`.
    pub fn configure(&mut self, settings: &Map<String, Value>, now: Instant, wall: DateTime<Utc>) -> Vec<AlarmEvent> {
        self.zone = zone_setting(settings.get("timezone"));
        let alarms = settings
            .get("alarms")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(id, spec)| Alarm::from_json(id, spec))
            .collect();
        let natural = (settings.get("mode").and_then(Value::as_str) == Some("natural"))
            .then(|| settings.get("natural_light").and_then(NaturalLight::from_json))
            .flatten();
        let demo = natural.as_ref().and_then(|n| n.demo_period);
        if demo.is_none() {
            self.demo_started = None;
        } else if self.demo_started.is_none() || self.natural.as_ref().and_then(|n| n.demo_period) != demo {
            self.demo_started = Some((now, wall));
        }
        if natural != self.natural {
            self.resample();
        }
        self.natural = natural;
        self.alarms.configure(alarms, self.zone, wall)
    }

    /// The person changed the light: the alarm ringing counts as dismissed (the caller does
    /// that) and natural light ends. True if natural light was on.
    pub fn person_takes_over(&mut self) -> bool {
        self.source = Source::Person;
        self.demo_started = None;
        self.natural.take().is_some()
    }

    /// Recompute what to show at the next tick (after a snooze, dismiss or new settings).
    pub fn resample(&mut self) {
        self.stale = true;
    }

    /// Runs the alarm clock and, when a sample is due, says what to show.
    pub fn tick(&mut self, now: Instant, wall: DateTime<Utc>) -> (Vec<AlarmEvent>, Show) {
        let events = self.alarms.tick(now, wall);
        let alarm = self.alarms.output(now, wall);
        let source = if alarm.is_some() {
            Source::Alarm
        } else if self.natural.is_some() {
            Source::Natural
        } else {
            Source::Person
        };
        let due = source != self.source
            || self.stale
            || !events.is_empty()
            || self.next_sample_mono.is_some_and(|at| now >= at)
            || self.next_sample_wall.is_some_and(|at| wall >= at);
        if !due {
            return (events, Show::Same);
        }
        self.stale = false;
        let was = std::mem::replace(&mut self.source, source);
        let show = match (source, alarm, self.natural.as_ref()) {
            (Source::Alarm, Some((output, fade)), _) => {
                (self.next_sample_mono, self.next_sample_wall) = self.alarms.next_wake(now, wall);
                Show::Output(output, fade)
            }
            (Source::Natural, _, Some(sky)) => {
                // Coming from the person's light or an alarm: a short fade to where the sun is
                // now. After that each sample aims one step ahead and fades over the step.
                let entering = was != Source::Natural;
                let (at, fade) = match (sky.demo_step(), self.demo_started) {
                    (Some(step), Some((started_mono, started_wall))) => {
                        self.next_sample_mono = Some(now + step);
                        self.next_sample_wall = None;
                        let ahead = if entering { now } else { now + step };
                        let elapsed = ahead.saturating_duration_since(started_mono);
                        (sky.demo_time(started_wall, self.zone, elapsed), step)
                    }
                    _ => {
                        self.next_sample_mono = None;
                        self.next_sample_wall = Some(wall + natural::STEP);
                        let ahead = if entering { wall } else { wall + natural::STEP };
                        (ahead, natural::STEP.to_std().unwrap_or_default())
                    }
                };
                Show::Output(sky.output(at), if entering { ENTER_FADE } else { fade })
            }
            _ => {
                self.next_sample_mono = None;
                self.next_sample_wall = None;
                if was == Source::Person {
                    Show::Same
                } else {
                    Show::Person
                }
            }
        };
        (events, show)
    }

    /// When [`Scheduler::tick`] must run next on the monotonic clock (blink, demo day).
    pub fn next_wake_mono(&self, now: Instant, wall: DateTime<Utc>) -> Option<Instant> {
        [self.alarms.next_wake(now, wall).0, self.next_sample_mono]
            .into_iter()
            .flatten()
            .min()
    }

    /// When [`Scheduler::tick`] must run next on the wall clock (alarms, samples).
    pub fn next_wake_wall(&self, now: Instant, wall: DateTime<Utc>) -> Option<DateTime<Utc>> {
        [self.alarms.next_wake(now, wall).1, self.next_sample_wall]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::colour::lightness_from_luminance;
    use crate::core::fade::Fader;
    use crate::core::light::LightState;
    use serde_json::json;

    fn brightest(rgb: Rgb) -> f64 {
        lightness_from_luminance(rgb.r.max(rgb.g).max(rgb.b))
    }

    /// Runs the scheduler and a lamp second by second; returns the largest change of
    /// lightness between two consecutive seconds, and the day's darkest and brightest.
    fn a_day(settings: serde_json::Value, start: &str) -> (f64, f64, f64) {
        let mut scheduler = Scheduler::new(AlarmMemory::default());
        let t0 = Instant::now();
        let wall0: DateTime<Utc> = start.parse().unwrap();
        let mut lamp = Fader::new(LightState::default(), Duration::ZERO, t0);
        scheduler.configure(settings.as_object().unwrap(), t0, wall0);
        let (mut worst, mut darkest, mut brightest_seen) = (0.0_f64, 1.0_f64, 0.0_f64);
        let mut previous: Option<f64> = None;
        for second in 0..86_400 {
            let now = t0 + Duration::from_secs(second);
            let wall = wall0 + chrono::Duration::seconds(second as i64);
            if let (_, Show::Output(output, fade)) = scheduler.tick(now, wall) {
                lamp.show(output, fade, now);
            }
            let shown = brightest(lamp.tick(now));
            // The first seconds are the fade from the lamp's own light into natural light.
            if second > 2 {
                if let Some(previous) = previous {
                    worst = worst.max((shown - previous).abs());
                }
                darkest = darkest.min(shown);
                brightest_seen = brightest_seen.max(shown);
            }
            previous = Some(shown);
        }
        (worst, darkest, brightest_seen)
    }

    #[test]
    fn a_real_day_of_natural_light_moves_without_visible_steps() {
        let settings = json!({"mode": "natural", "natural_light": {"latitude": 51.5, "longitude": -0.12}});
        let (worst, darkest, brightest) = a_day(settings, "2026-06-21T00:00:00Z");
        // 0.2 L* in a second is far below what anyone sees change.
        assert!(worst < 0.002, "a step of {worst}");
        assert!(darkest < 0.06 && brightest == 1.0, "{darkest} {brightest}");
    }

    #[test]
    fn polar_night_and_day_have_no_steps_either() {
        for start in ["2026-12-21T00:00:00Z", "2026-06-21T00:00:00Z"] {
            let tromso = json!({"mode": "natural", "natural_light": {"latitude": 69.65, "longitude": 18.96}});
            let (worst, darkest, brightest) = a_day(tromso, start);
            assert!(worst < 0.002, "{start}: a step of {worst}");
            assert!(darkest <= brightest);
        }
    }
}
