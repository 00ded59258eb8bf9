//! The alarm clock's state machine: what rings when, snooze and dismiss, what it remembers
//! and what it reports.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::*;
use crate::core::colour::Rgb;
use crate::core::report;

/// How late an alarm may still ring, e.g. after a restart across its time.
pub const GRACE: chrono::Duration = chrono::Duration::minutes(5);
const SUNRISE_FADE: Duration = Duration::from_secs(5);
/// Fade for the light coming back at a re-ring after snooze.
const RING_FADE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    /// Rising (a sunrise before its time) or ringing, until `ends` (epoch seconds).
    Ringing {
        ends: i64,
    },
    Snoozed {
        until: i64,
    },
}

/// The ring in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRing {
    /// The alarm that rings, then those merged into it.
    pub ids: Vec<String>,
    /// When full light is reached (epoch seconds): the alarm's time, or the end of a snooze.
    pub at: i64,
    pub phase: Phase,
}

/// What the alarm clock must remember across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmMemory {
    /// Per alarm, the latest instant (epoch seconds) up to which it has been dealt with.
    pub settled: BTreeMap<String, i64>,
    pub active: Option<ActiveRing>,
}

pub(super) fn epoch(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

pub(super) fn instant(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// The alarm clock's state machine. Pure: every call takes the wall time (`wall`) and, where
/// the blink pattern needs it, the monotonic `now`.
#[derive(Debug)]
pub struct AlarmClock {
    alarms: Vec<Alarm>,
    zone: Tz,
    memory: AlarmMemory,
    /// Nothing rings while this is false (unsynchronised clock, synchronisation required).
    trusted: bool,
    /// When the blink pattern started, so it runs on the monotonic clock whatever the wall
    /// clock does.
    blink_started: Option<Instant>,
    /// The earliest time an alarm starts, cached so idle ticks cost nothing.
    next_start: Option<DateTime<Utc>>,
    /// False until the first [`AlarmClock::configure`], which brings the alarms the saved
    /// memory belongs to: only alarms new since then are settled at `now`.
    configured: bool,
}

impl AlarmClock {
    pub fn new(memory: AlarmMemory, trusted: bool) -> AlarmClock {
        AlarmClock {
            alarms: Vec::new(),
            zone: Tz::UTC,
            memory,
            trusted,
            blink_started: None,
            next_start: None,
            configured: false,
        }
    }

    pub fn memory(&self) -> &AlarmMemory {
        &self.memory
    }

    pub fn active(&self) -> Option<&ActiveRing> {
        self.memory.active.as_ref()
    }

    fn alarm(&self, id: &str) -> Option<&Alarm> {
        self.alarms.iter().find(|a| a.id == id)
    }

    /// The alarm whose action the light shows.
    fn primary(&self) -> Option<&Alarm> {
        self.memory.active.as_ref().and_then(|a| self.alarm(&a.ids[0]))
    }

    /// True while an alarm rises or rings (not while snoozed).
    pub fn is_ringing(&self) -> bool {
        matches!(
            self.memory.active,
            Some(ActiveRing {
                phase: Phase::Ringing { .. },
                ..
            })
        )
    }

    fn settle_all(&mut self, wall: DateTime<Utc>) {
        for alarm in &self.alarms {
            let settled = self.memory.settled.entry(alarm.id.clone()).or_insert(i64::MIN);
            *settled = (*settled).max(epoch(wall));
        }
        self.next_start = None;
    }

    /// New alarm settings or lamp zone. New and edited alarms start from `wall`; a ringing
    /// alarm that was deleted or disabled stops.
    pub fn configure(&mut self, alarms: Vec<Alarm>, zone: Tz, wall: DateTime<Utc>) -> Vec<AlarmEvent> {
        for alarm in &alarms {
            let remembered = !self.configured && self.memory.settled.contains_key(&alarm.id);
            if self.alarm(&alarm.id) != Some(alarm) && !remembered {
                let settled = self.memory.settled.entry(alarm.id.clone()).or_insert(i64::MIN);
                *settled = (*settled).max(epoch(wall));
            }
        }
        self.configured = true;
        self.memory.settled.retain(|id, _| alarms.iter().any(|a| &a.id == id));
        self.alarms = alarms;
        self.zone = zone;
        self.next_start = None;
        let gone = self
            .memory
            .active
            .as_ref()
            .is_some_and(|active| active.ids.iter().any(|id| !self.alarm(id).is_some_and(|a| a.enabled)));
        if gone {
            return self.end(Dismissal::Removed);
        }
        Vec::new()
    }

    /// Whether the wall clock may be trusted; when it becomes so, nothing before it rings.
    pub fn set_trusted(&mut self, trusted: bool, wall: DateTime<Utc>) {
        if trusted && !self.trusted {
            self.settle_all(wall);
        }
        self.trusted = trusted;
    }

    /// The wall clock was set (not slewed): nothing between the old and new time rings.
    pub fn clock_stepped(&mut self, wall: DateTime<Utc>) {
        self.settle_all(wall);
    }

    /// Starts alarms that are due, re-rings snoozed ones, auto-stops long rings.
    pub fn tick(&mut self, now: Instant, wall: DateTime<Utc>) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        match self.memory.active.as_ref().map(|a| a.phase) {
            Some(Phase::Ringing { ends }) if epoch(wall) >= ends => events.extend(self.end(Dismissal::Auto)),
            Some(Phase::Snoozed { until }) if epoch(wall) >= until => {
                let ring = self.primary().map_or(30, |a| a.ring_minutes);
                if let Some(active) = self.memory.active.as_mut() {
                    active.at = until;
                    active.phase = Phase::Ringing {
                        ends: until + i64::from(ring) * 60,
                    };
                    events.push(AlarmEvent::Ringing {
                        id: active.ids[0].clone(),
                    });
                }
                self.blink_started = Some(now);
            }
            _ => {}
        }
        if !self.trusted || self.next_start.is_some_and(|start| wall < start) {
            return events;
        }
        for i in 0..self.alarms.len() {
            let alarm = &self.alarms[i];
            if !alarm.enabled {
                continue;
            }
            let settled = instant(*self.memory.settled.get(&alarm.id).unwrap_or(&epoch(wall)));
            let mut missed = None;
            let mut due = None;
            let mut after = settled;
            // Bounded: each step moves a day or more, and a long-missed alarm is settled at
            // its latest missed occurrence.
            for _ in 0..400 {
                let Some(at) = alarm.next_after(after, self.zone) else {
                    break;
                };
                if at - alarm.lead() > wall {
                    break;
                }
                after = at;
                if wall > at + GRACE {
                    missed = Some(at);
                } else {
                    due = Some(at);
                    break;
                }
            }
            let id = alarm.id.clone();
            self.memory.settled.insert(id.clone(), epoch(after));
            if let Some(at) = missed {
                events.push(AlarmEvent::Missed { id: id.clone(), at });
            }
            if let Some(at) = due {
                events.extend(self.start(i, at, now));
            }
        }
        self.next_start = self
            .alarms
            .iter()
            .filter(|a| a.enabled)
            .filter_map(|a| {
                let settled = instant(*self.memory.settled.get(&a.id)?);
                Some(a.next_after(settled, self.zone)? - a.lead())
            })
            .min();
        events
    }

    fn start(&mut self, index: usize, at: DateTime<Utc>, now: Instant) -> Vec<AlarmEvent> {
        let alarm = &self.alarms[index];
        let ends = epoch(at) + i64::from(alarm.ring_minutes) * 60;
        let id = alarm.id.clone();
        match self.memory.active.as_mut() {
            None => {
                self.memory.active = Some(ActiveRing {
                    ids: vec![id.clone()],
                    at: epoch(at),
                    phase: Phase::Ringing { ends },
                });
                self.blink_started = Some(now);
                vec![AlarmEvent::Ringing { id }]
            }
            Some(active) => {
                let into = active.ids[0].clone();
                if !active.ids.contains(&id) {
                    active.ids.push(id.clone());
                }
                match active.phase {
                    Phase::Ringing { ends: current } => {
                        active.phase = Phase::Ringing {
                            ends: current.max(ends),
                        }
                    }
                    Phase::Snoozed { .. } => {
                        // The new alarm wakes the snoozed one and leads the ring.
                        active.ids.retain(|i| i != &id);
                        active.ids.insert(0, id.clone());
                        active.at = epoch(at);
                        active.phase = Phase::Ringing { ends };
                        self.blink_started = Some(now);
                    }
                }
                vec![AlarmEvent::Merged { id, into }]
            }
        }
    }

    /// Snooze: the light goes back to what it was; the alarm rings again after its
    /// `snooze_minutes`.
    pub fn snooze(&mut self, wall: DateTime<Utc>) -> Result<Vec<AlarmEvent>, NotRinging> {
        let minutes = self.primary().map_or(DEFAULT_SNOOZE_MINUTES, |a| a.snooze_minutes);
        match self.memory.active.as_mut() {
            Some(active) if matches!(active.phase, Phase::Ringing { .. }) => {
                let until = wall + chrono::Duration::minutes(minutes.into());
                active.phase = Phase::Snoozed { until: epoch(until) };
                Ok(vec![AlarmEvent::Snoozed {
                    ids: active.ids.clone(),
                    until,
                }])
            }
            _ => Err(NotRinging::Snooze),
        }
    }

    /// Dismiss a ringing or snoozed alarm: the light goes back to what it was.
    pub fn dismiss(&mut self, how: Dismissal) -> Result<Vec<AlarmEvent>, NotRinging> {
        match self.memory.active {
            Some(_) => Ok(self.end(how)),
            None => Err(NotRinging::Dismiss),
        }
    }

    fn end(&mut self, how: Dismissal) -> Vec<AlarmEvent> {
        let Some(active) = self.memory.active.take() else {
            return Vec::new();
        };
        self.blink_started = None;
        let once = active
            .ids
            .iter()
            .filter(|id| self.alarm(id).is_some_and(|a| a.enabled && !a.repeats()))
            .map(|id| AlarmEvent::Disable { id: id.clone() });
        let mut events = vec![AlarmEvent::Dismissed {
            ids: active.ids.clone(),
            how,
        }];
        events.extend(once);
        events
    }

    /// What the light shows for the ring at `wall`, and the fade to it; `None` when no alarm
    /// rings.
    pub fn output(&self, now: Instant, wall: DateTime<Utc>) -> Option<(Rgb, Duration)> {
        let active = self.memory.active.as_ref()?;
        if !matches!(active.phase, Phase::Ringing { .. }) {
            return None;
        }
        let alarm = self.primary()?;
        Some(match alarm.action {
            Action::Blink => {
                let (on, _) = blink_phase(now.saturating_duration_since(self.blink_started.unwrap_or(now)));
                let white = Rgb { r: 1.0, g: 1.0, b: 1.0 };
                (if on { white } else { Rgb::OFF }, Duration::ZERO)
            }
            Action::Sunrise { ramp_minutes } => {
                let ramp = chrono::Duration::minutes(ramp_minutes.into());
                let at = instant(active.at);
                if wall >= at {
                    (sunrise(1.0, alarm.brightness), RING_FADE)
                } else {
                    // Aim where the ramp will be one step later, fading there over the step.
                    let ahead = (wall + SUNRISE_STEP).min(at);
                    let progress = 1.0 - (at - ahead).num_milliseconds() as f64 / ramp.num_milliseconds() as f64;
                    (sunrise(progress.clamp(0.0, 1.0), alarm.brightness), SUNRISE_FADE)
                }
            }
        })
    }

    /// When the clock must be consulted next: a monotonic time for the blink pattern, a wall
    /// time for everything else.
    pub fn next_wake(&self, now: Instant, wall: DateTime<Utc>) -> (Option<Instant>, Option<DateTime<Utc>>) {
        let mut wall_wake = if self.trusted { self.next_start } else { None };
        let mut mono_wake = None;
        let mut earliest = |at: DateTime<Utc>| wall_wake = Some(wall_wake.map_or(at, |w: DateTime<Utc>| w.min(at)));
        match &self.memory.active {
            Some(ActiveRing {
                phase: Phase::Snoozed { until },
                ..
            }) => earliest(instant(*until)),
            Some(
                active @ ActiveRing {
                    phase: Phase::Ringing { ends },
                    ..
                },
            ) => {
                earliest(instant(*ends));
                match self.primary().map(|a| a.action) {
                    Some(Action::Blink) => {
                        let elapsed = now.saturating_duration_since(self.blink_started.unwrap_or(now));
                        mono_wake = Some(now + blink_phase(elapsed).1);
                    }
                    Some(Action::Sunrise { .. }) if epoch(wall) < active.at => {
                        earliest((wall + SUNRISE_STEP).min(instant(active.at)));
                    }
                    _ => {}
                }
            }
            None => {}
        }
        (mono_wake, wall_wake)
    }

    /// `reported.alarm`: `state` (idle, ringing, snoozed), and when there is one: what rings,
    /// until when it is snoozed, and what rings next.
    pub fn report(&self, wall: DateTime<Utc>) -> Value {
        let local = |alarm: &Alarm, at: DateTime<Utc>| at.with_timezone(&alarm.zone.unwrap_or(self.zone)).to_rfc3339();
        let ringing = self.memory.active.as_ref().and_then(|active| {
            let alarm = self.alarm(&active.ids[0])?;
            Some(report::Ringing {
                id: alarm.id.clone(),
                alarms: active.ids.clone(),
                label: alarm.label.clone(),
                action: match alarm.action {
                    Action::Blink => report::RingAction::Blink,
                    Action::Sunrise { .. } => report::RingAction::Sunrise,
                },
                at: local(alarm, instant(active.at)),
            })
        });
        let snoozed_until = match &self.memory.active {
            Some(ActiveRing {
                ids,
                phase: Phase::Snoozed { until },
                ..
            }) => self.alarm(&ids[0]).map(|a| local(a, instant(*until))),
            _ => None,
        };
        let next = self
            .alarms
            .iter()
            .filter(|a| a.enabled)
            .filter_map(|a| {
                let settled = instant(*self.memory.settled.get(&a.id).unwrap_or(&epoch(wall)));
                a.next_after(settled.max(wall - GRACE), self.zone).map(|at| (at, a))
            })
            .min_by_key(|(at, _)| *at)
            .map(|(at, a)| report::NextAlarm {
                id: a.id.clone(),
                label: a.label.clone(),
                at: local(a, at),
            });
        let state = match &self.memory.active {
            None => report::AlarmState::Idle,
            Some(ActiveRing {
                phase: Phase::Snoozed { .. },
                ..
            }) => report::AlarmState::Snoozed,
            Some(_) => report::AlarmState::Ringing,
        };
        // Absent, never null: in a shadow, null means "delete this key".
        report::to_value(&report::AlarmReport {
            state,
            ringing,
            snoozed_until,
            next,
        })
    }
}
