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
    pub alarms: AlarmClock,
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

    pub fn zone(&self) -> Tz {
        self.zone
    }

    pub fn is_natural(&self) -> bool {
        self.natural.is_some()
    }

    /// Takes the lamp's (validated) settings: `timezone`, `alarms`, `mode`, `natural_light`.
    pub fn configure(&mut self, settings: &Map<String, Value>, now: Instant, wall: DateTime<Utc>) -> Vec<AlarmEvent> {
        self.zone = settings
            .get("timezone")
            .and_then(Value::as_str)
            .and_then(|z| z.parse().ok())
            .unwrap_or(Tz::UTC);
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
            (Source::Natural, _, Some(sky)) => match (sky.demo_step(), self.demo_started) {
                (Some(step), Some((started_mono, started_wall))) => {
                    let ahead = (now + step).saturating_duration_since(started_mono);
                    self.next_sample_mono = Some(now + step);
                    self.next_sample_wall = None;
                    let sun_time = sky.demo_time(started_wall, self.zone, ahead);
                    Show::Output(sky.output(sun_time), step)
                }
                _ => {
                    self.next_sample_mono = None;
                    self.next_sample_wall = Some(wall + natural::STEP);
                    let fade = natural::STEP.to_std().unwrap_or_default();
                    Show::Output(sky.output(wall + natural::STEP), fade)
                }
            },
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
