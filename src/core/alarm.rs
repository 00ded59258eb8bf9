//! The alarm clock: when alarms ring, what the light does while they do, snooze and dismiss.
//!
//! LAMPI has no speaker, so alarms wake people with light: `blink` flashes full white in a
//! pattern no ordinary use of the lamp makes ([`BLINK_PATTERN`]); `sunrise` brightens from
//! dark deep red through warm white over `ramp_minutes`, reaching full light *at* the alarm
//! time, then holds.
//!
//! Rules, as docs/PROTOCOL.md states them:
//! - Occurrences are computed in the alarm's zone (default the lamp's). A time that a
//!   spring-forward skips rings at the first instant after the gap; a time a fall-back repeats
//!   rings once, at its first occurrence.
//! - Each alarm remembers the latest occurrence it has dealt with (`settled`); nothing at or
//!   before it rings again. A new or edited alarm, a clock step (NTP after a boot without a
//!   real-time clock) and the clock becoming synchronised all settle every alarm at `now`, so
//!   nothing "missed" across them rings. An occurrence missed by at most [`GRACE`] (the lamp
//!   was restarting) still rings, once; older ones are reported as missed.
//! - While the clock is unsynchronised and synchronisation is required, nothing rings.
//! - Alarms due while another rings ring once, with it; one due while another is snoozed
//!   wakes it, and they ring together. Snooze or dismiss acts on all of them.
//! - Deleting or disabling a ringing alarm stops the ring. An alarm without days rings once
//!   and is disabled when its ring ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::colour::{Rgb, blackbody, dimmed};
use super::schema::DAYS;

/// How late an alarm may still ring, e.g. after a restart across its time.
pub const GRACE: chrono::Duration = chrono::Duration::minutes(5);
/// The blink alarm: three short flashes and a pause, every two seconds — not a pattern a
/// person switching the lamp makes. (on, milliseconds), repeating.
pub const BLINK_PATTERN: [(bool, u64); 6] = [
    (true, 200),
    (false, 200),
    (true, 200),
    (false, 200),
    (true, 200),
    (false, 1000),
];
/// Sunrise ramp: its colour runs from this deep red to warm white.
pub const SUNRISE_START_KELVIN: f64 = 1000.0;
pub const SUNRISE_END_KELVIN: f64 = 2700.0;
/// The ramp is sampled this often (wall time) and each sample fades into the next, so the
/// output moves continuously; the lamp's fades are smooth down to the first duty step.
pub const SUNRISE_STEP: chrono::Duration = chrono::Duration::seconds(5);
const SUNRISE_FADE: Duration = Duration::from_secs(5);
/// Fade for the light coming back at a re-ring after snooze.
const RING_FADE: Duration = Duration::from_secs(1);
/// Longest gap a spring-forward can open (Antarctica/Troll's is two hours).
const MAX_GAP_MINUTES: i64 = 180;

/// A sunrise's length when the alarm does not say.
pub const DEFAULT_RAMP_MINUTES: u32 = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Blink,
    Sunrise { ramp_minutes: u32 },
}

/// One alarm of the shadow's `alarms` object.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    pub id: String,
    pub time: NaiveTime,
    /// Monday first; none set means "the next occurrence only".
    pub days: [bool; 7],
    pub zone: Option<Tz>,
    pub enabled: bool,
    pub action: Action,
    pub snooze_minutes: u32,
    pub ring_minutes: u32,
    pub label: String,
    /// Brightness (L*/100) a sunrise reaches.
    pub brightness: f64,
}

impl Alarm {
    /// From an alarm object the schema has accepted.
    pub fn from_json(id: &str, value: &Value) -> Alarm {
        let text = |key| value.get(key).and_then(Value::as_str);
        let whole = |key, default| value.get(key).and_then(Value::as_u64).map_or(default, |v| v as u32);
        let mut days = [false; 7];
        for day in value.get("days").and_then(Value::as_array).into_iter().flatten() {
            if let Some(i) = DAYS.iter().position(|d| Some(*d) == day.as_str()) {
                days[i] = true;
            }
        }
        Alarm {
            id: id.to_owned(),
            time: text("time")
                .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
                .unwrap_or(NaiveTime::MIN),
            days,
            zone: text("timezone").and_then(|z| z.parse().ok()),
            enabled: value.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            action: match text("action") {
                Some("blink") => Action::Blink,
                _ => Action::Sunrise {
                    ramp_minutes: whole("ramp_minutes", DEFAULT_RAMP_MINUTES),
                },
            },
            snooze_minutes: whole("snooze_minutes", 9),
            ring_minutes: whole("ring_minutes", 30),
            label: text("label").unwrap_or_default().to_owned(),
            brightness: value.get("brightness").and_then(Value::as_f64).unwrap_or(1.0),
        }
    }

    pub fn repeats(&self) -> bool {
        self.days.contains(&true)
    }

    /// How long before its time the alarm starts: a sunrise's ramp.
    pub fn lead(&self) -> chrono::Duration {
        match self.action {
            Action::Blink => chrono::Duration::zero(),
            Action::Sunrise { ramp_minutes } => chrono::Duration::minutes(ramp_minutes.into()),
        }
    }

    /// The first time this alarm is due strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>, lamp_zone: Tz) -> Option<DateTime<Utc>> {
        let zone = self.zone.unwrap_or(lamp_zone);
        let first = after.with_timezone(&zone).date_naive().checked_sub_days(Days::new(1))?;
        (0..9)
            .filter_map(|i| first.checked_add_days(Days::new(i)))
            .filter(|date| !self.repeats() || self.days[date.weekday().num_days_from_monday() as usize])
            .filter_map(|date| local_instant(zone, date, self.time))
            .find(|&at| at > after)
    }
}

/// The instant a wall-clock time on a date happens in a zone: the earlier one when a
/// fall-back repeats it; when a spring-forward skips it, the first minute after the gap, which
/// is the transition itself since zones change on whole minutes.
fn local_instant(zone: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    (0..=MAX_GAP_MINUTES).find_map(|minutes| {
        match zone.from_local_datetime(&(local + chrono::Duration::minutes(minutes))) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
            LocalResult::None => None,
        }
    })
}

/// How a ring ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dismissal {
    /// Dismissed by a person (touchscreen, remote command).
    User,
    /// The light was changed by hand while it rang.
    Manual,
    /// `ring_minutes` passed.
    Auto,
    /// The alarm was deleted or disabled.
    Removed,
}

impl Dismissal {
    fn name(self) -> &'static str {
        match self {
            Dismissal::User => "user",
            Dismissal::Manual => "manual",
            Dismissal::Auto => "auto",
            Dismissal::Removed => "removed",
        }
    }
}

/// What happened, for analytics and for the device to act on.
#[derive(Clone, Debug, PartialEq)]
pub enum AlarmEvent {
    Ringing {
        id: String,
    },
    /// Due while another rang or was snoozed: rings with it.
    Merged {
        id: String,
        into: String,
    },
    Missed {
        id: String,
        at: DateTime<Utc>,
    },
    Snoozed {
        ids: Vec<String>,
        until: DateTime<Utc>,
    },
    Dismissed {
        ids: Vec<String>,
        how: Dismissal,
    },
    /// A one-off alarm has rung: the device disables it in the shadow.
    Disable {
        id: String,
    },
}

impl AlarmEvent {
    /// The analytics event, or `None` for internal ones.
    pub fn analytics(&self, timestamp: u64) -> Option<Value> {
        let event = match self {
            AlarmEvent::Ringing { id } => json!({"type": "alarm_ringing", "alarm": id}),
            AlarmEvent::Merged { id, into } => json!({"type": "alarm_merged", "alarm": id, "into": into}),
            AlarmEvent::Missed { id, at } => json!({"type": "alarm_missed", "alarm": id, "due": at.timestamp()}),
            AlarmEvent::Snoozed { ids, until } => {
                json!({"type": "alarm_snoozed", "alarms": ids, "until": until.timestamp()})
            }
            AlarmEvent::Dismissed { ids, how } => json!({"type": "alarm_dismissed", "alarms": ids, "how": how.name()}),
            AlarmEvent::Disable { .. } => return None,
        };
        let mut event = event;
        event["timestamp"] = json!(timestamp);
        Some(event)
    }
}

/// Why snooze or dismiss did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRinging {
    /// Snooze needs a ringing alarm.
    Snooze,
    /// Dismiss needs a ringing or snoozed one.
    Dismiss,
}

impl std::fmt::Display for NotRinging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotRinging::Snooze => "no alarm is ringing",
            NotRinging::Dismiss => "no alarm is ringing or snoozed",
        })
    }
}

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
#[serde(deny_unknown_fields)]
pub struct AlarmMemory {
    /// Per alarm, the latest instant (epoch seconds) up to which it has been dealt with.
    pub settled: BTreeMap<String, i64>,
    pub active: Option<ActiveRing>,
}

fn epoch(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn instant(secs: i64) -> DateTime<Utc> {
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
        let minutes = self.primary().map_or(9, |a| a.snooze_minutes);
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
            Some(json!({
                "id": alarm.id,
                "alarms": active.ids,
                "label": alarm.label,
                "action": match alarm.action { Action::Blink => "blink", Action::Sunrise { .. } => "sunrise" },
                "at": local(alarm, instant(active.at)),
            }))
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
            .map(|(at, a)| json!({"id": a.id, "label": a.label, "at": local(a, at)}));
        // Absent, never null: in a shadow, null means "delete this key".
        let state = match &self.memory.active {
            None => "idle",
            Some(ActiveRing {
                phase: Phase::Snoozed { .. },
                ..
            }) => "snoozed",
            Some(_) => "ringing",
        };
        let mut report = json!({ "state": state });
        for (key, value) in [
            ("ringing", ringing),
            ("snoozed_until", snoozed_until.map(Value::from)),
            ("next", next),
        ] {
            if let Some(value) = value {
                report[key] = value;
            }
        }
        report
    }
}

/// Whether the blink pattern is lit `elapsed` into it, and how long until it changes.
fn blink_phase(elapsed: Duration) -> (bool, Duration) {
    let period: u64 = BLINK_PATTERN.iter().map(|(_, ms)| ms).sum();
    let mut t = (elapsed.as_millis() % u128::from(period)) as u64;
    for (on, ms) in BLINK_PATTERN {
        if t < ms {
            return (on, Duration::from_millis(ms - t));
        }
        t -= ms;
    }
    (false, Duration::from_millis(1))
}

/// The sunrise light `progress` (0–1) through its ramp: colour from deep red to warm white,
/// brightness rising evenly in lightness to `brightness`.
pub fn sunrise(progress: f64, brightness: f64) -> Rgb {
    let kelvin = SUNRISE_START_KELVIN + (SUNRISE_END_KELVIN - SUNRISE_START_KELVIN) * progress;
    dimmed(blackbody(kelvin), brightness * progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn alarm(id: &str, spec: Value) -> Alarm {
        Alarm::from_json(id, &spec)
    }

    fn zone(name: &str) -> Tz {
        name.parse().unwrap()
    }

    #[test]
    fn next_occurrence_across_zones_and_dst() {
        // (zone, time, days, after, expected)
        let cases = [
            // Spring-forward: 02:30 does not exist; the first valid instant is 03:00 EDT.
            (
                "America/New_York",
                "02:30",
                vec![],
                "2026-03-08T05:00:00Z",
                "2026-03-08T07:00:00Z",
            ),
            // Fall-back: 01:30 happens twice; it rings at the first, and next on the next day.
            (
                "America/New_York",
                "01:30",
                vec![],
                "2026-11-01T04:00:00Z",
                "2026-11-01T05:30:00Z",
            ),
            (
                "America/New_York",
                "01:30",
                vec![],
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
            ),
            (
                "Europe/London",
                "01:15",
                vec![],
                "2026-03-29T00:00:00Z",
                "2026-03-29T01:00:00Z",
            ),
            (
                "Europe/London",
                "01:30",
                vec![],
                "2026-10-24T23:00:00Z",
                "2026-10-25T00:30:00Z",
            ),
            (
                "Europe/London",
                "01:30",
                vec![],
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
            ),
            // Lord Howe moves its clocks by 30 minutes.
            (
                "Australia/Lord_Howe",
                "02:15",
                vec![],
                "2026-10-03T12:00:00Z",
                "2026-10-03T15:30:00Z",
            ),
            (
                "Australia/Lord_Howe",
                "01:45",
                vec![],
                "2026-04-04T12:00:00Z",
                "2026-04-04T14:45:00Z",
            ),
            (
                "Australia/Lord_Howe",
                "01:45",
                vec![],
                "2026-04-04T14:45:00Z",
                "2026-04-05T15:15:00Z",
            ),
            // No DST at all.
            (
                "Asia/Kolkata",
                "07:00",
                vec![],
                "2026-11-26T12:00:00Z",
                "2026-11-27T01:30:00Z",
            ),
            (
                "Asia/Kolkata",
                "07:00",
                vec![],
                "2026-11-27T01:29:59Z",
                "2026-11-27T01:30:00Z",
            ),
            // Weekdays: asked on Thursday the 26th after 07:00, a Mon/Fri alarm rings Friday.
            (
                "Europe/London",
                "07:00",
                vec!["mon", "fri"],
                "2026-11-26T08:00:00Z",
                "2026-11-27T07:00:00Z",
            ),
            (
                "Europe/London",
                "07:00",
                vec!["mon"],
                "2026-11-26T08:00:00Z",
                "2026-11-30T07:00:00Z",
            ),
        ];
        for (tz, time, days, after, expected) in cases {
            let a = alarm("a", json!({"time": time, "days": days, "timezone": tz}));
            assert_eq!(
                a.next_after(utc(after), Tz::UTC),
                Some(utc(expected)),
                "{tz} {time} after {after}"
            );
        }
        // Without its own zone an alarm follows the lamp's.
        let lamp_zone = alarm("a", json!({"time": "07:00"}));
        assert_eq!(
            lamp_zone.next_after(utc("2026-11-26T08:00:00Z"), zone("America/New_York")),
            Some(utc("2026-11-26T12:00:00Z"))
        );
    }

    struct Run {
        clock: AlarmClock,
        start: Instant,
        origin: DateTime<Utc>,
        events: Vec<(DateTime<Utc>, AlarmEvent)>,
    }

    impl Run {
        fn new(alarms: Vec<Alarm>, lamp_zone: &str, at: &str) -> Run {
            let origin = utc(at);
            let mut clock = AlarmClock::new(AlarmMemory::default(), true);
            let events = clock.configure(alarms, zone(lamp_zone), origin);
            assert!(events.is_empty());
            Run {
                clock,
                start: Instant::now(),
                origin,
                events: Vec::new(),
            }
        }

        fn mono(&self, wall: DateTime<Utc>) -> Instant {
            self.start + (wall - self.origin).to_std().unwrap_or_default()
        }

        fn tick(&mut self, at: &str) -> Vec<AlarmEvent> {
            self.tick_at(utc(at))
        }

        fn tick_at(&mut self, wall: DateTime<Utc>) -> Vec<AlarmEvent> {
            let events = self.clock.tick(self.mono(wall), wall);
            self.events.extend(events.iter().map(|e| (wall, e.clone())));
            events
        }

        fn ringing_ids(events: &[AlarmEvent]) -> Vec<String> {
            events
                .iter()
                .filter_map(|e| match e {
                    AlarmEvent::Ringing { id } => Some(id.clone()),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn a_week_of_alarms_minute_by_minute() {
        let weekday = alarm(
            "work",
            json!({"time": "07:00", "days": ["mon", "tue", "wed", "thu", "fri"], "action": "blink", "ring_minutes": 10}),
        );
        let weekend = alarm(
            "lie-in",
            json!({"time": "09:30", "days": ["sat", "sun"], "action": "sunrise", "ramp_minutes": 30}),
        );
        // Monday 2026-11-23 00:00 in London, a week of minutes.
        let mut run = Run::new(vec![weekday, weekend], "Europe/London", "2026-11-23T00:00:00Z");
        for minute in 0..7 * 24 * 60 {
            run.tick_at(utc("2026-11-23T00:00:00Z") + chrono::Duration::minutes(minute));
        }
        let rings: Vec<(String, String)> = run
            .events
            .iter()
            .filter_map(|(at, e)| match e {
                AlarmEvent::Ringing { id } => Some((at.format("%a %H:%M").to_string(), id.clone())),
                _ => None,
            })
            .collect();
        let expected = [
            ("Mon 07:00", "work"),
            ("Tue 07:00", "work"),
            ("Wed 07:00", "work"),
            ("Thu 07:00", "work"),
            ("Fri 07:00", "work"),
            ("Sat 09:00", "lie-in"),
            ("Sun 09:00", "lie-in"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(rings, expected);
        let auto_stops = run
            .events
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e,
                    AlarmEvent::Dismissed {
                        how: Dismissal::Auto,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(auto_stops, 7);
        assert!(!run.events.iter().any(|(_, e)| matches!(e, AlarmEvent::Missed { .. })));
    }

    #[test]
    fn a_clock_jump_from_1970_rings_nothing_it_skipped() {
        let daily = alarm("daily", json!({"time": "07:00", "action": "blink"}));
        let mut run = Run::new(vec![daily], "UTC", "1970-01-01T00:00:10Z");
        assert!(run.tick("1970-01-01T00:00:11Z").is_empty());
        // NTP sets the clock a minute after the alarm: within the grace period, but skipped.
        run.clock.clock_stepped(utc("2026-11-26T07:01:00Z"));
        assert!(run.tick("2026-11-26T07:01:00Z").is_empty());
        assert!(run.clock.report(utc("2026-11-26T07:01:00Z"))["next"]["at"] == json!("2026-11-27T07:00:00+00:00"));
        // The next day it rings as usual.
        assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T07:00:00Z")), ["daily"]);
    }

    #[test]
    fn missed_by_a_restart_rings_once_within_grace_and_not_after() {
        let daily = alarm("daily", json!({"time": "07:00", "action": "blink"}));
        let mut run = Run::new(vec![daily.clone()], "UTC", "2026-11-26T06:58:00Z");
        run.tick("2026-11-26T06:58:00Z");
        // The lamp restarts across 07:00 and is back at 07:03 with what it had saved.
        let memory = run.clock.memory().clone();
        let mut restarted = AlarmClock::new(memory.clone(), true);
        restarted.configure(vec![daily.clone()], Tz::UTC, utc("2026-11-26T07:03:00Z"));
        let now = Instant::now();
        let first = restarted.tick(now, utc("2026-11-26T07:03:00Z"));
        assert_eq!(Run::ringing_ids(&first), ["daily"]);
        // Once only, even across another restart.
        let mut again = AlarmClock::new(restarted.memory().clone(), true);
        again.configure(vec![daily.clone()], Tz::UTC, utc("2026-11-26T07:04:00Z"));
        assert!(Run::ringing_ids(&again.tick(now, utc("2026-11-26T07:04:00Z"))).is_empty());
        // Back only at 07:20: missed, reported, not rung.
        let mut late = AlarmClock::new(memory, true);
        late.configure(vec![daily], Tz::UTC, utc("2026-11-26T07:20:00Z"));
        let events = late.tick(now, utc("2026-11-26T07:20:00Z"));
        assert_eq!(
            events,
            [AlarmEvent::Missed {
                id: "daily".into(),
                at: utc("2026-11-26T07:00:00Z")
            }]
        );
    }

    #[test]
    fn nothing_rings_on_an_untrusted_clock_nor_for_what_it_missed() {
        let daily = alarm("daily", json!({"time": "07:00", "action": "blink"}));
        let mut clock = AlarmClock::new(AlarmMemory::default(), false);
        clock.configure(vec![daily], Tz::UTC, utc("2026-11-26T06:00:00Z"));
        let now = Instant::now();
        assert!(clock.tick(now, utc("2026-11-26T07:00:00Z")).is_empty());
        assert_eq!(clock.next_wake(now, utc("2026-11-26T07:00:00Z")), (None, None));
        clock.set_trusted(true, utc("2026-11-26T07:02:00Z"));
        assert!(clock.tick(now, utc("2026-11-26T07:02:00Z")).is_empty());
        assert_eq!(
            clock.next_wake(now, utc("2026-11-26T07:02:00Z")).1,
            Some(utc("2026-11-27T07:00:00Z"))
        );
    }

    #[test]
    fn snooze_rings_again_and_dismiss_ends() {
        let a = alarm(
            "a",
            json!({"time": "07:00", "action": "blink", "snooze_minutes": 5, "days": ["fri"]}),
        );
        let mut run = Run::new(vec![a], "UTC", "2026-11-27T06:00:00Z");
        assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T07:00:00Z")), ["a"]);
        let mono = run.mono(utc("2026-11-27T07:00:00Z"));
        assert!(run.clock.output(mono, utc("2026-11-27T07:00:00Z")).is_some());
        let snoozed = run.clock.snooze(utc("2026-11-27T07:01:00Z")).unwrap();
        assert_eq!(
            snoozed,
            [AlarmEvent::Snoozed {
                ids: vec!["a".into()],
                until: utc("2026-11-27T07:06:00Z")
            }]
        );
        assert_eq!(run.clock.output(mono, utc("2026-11-27T07:02:00Z")), None);
        let report = run.clock.report(utc("2026-11-27T07:02:00Z"));
        assert_eq!(report["snoozed_until"], json!("2026-11-27T07:06:00+00:00"));
        assert!(run.tick("2026-11-27T07:05:59Z").is_empty());
        assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T07:06:00Z")), ["a"]);
        assert!(run.clock.snooze(utc("2026-11-27T07:07:00Z")).is_ok());
        assert!(
            run.clock.snooze(utc("2026-11-27T07:07:00Z")).is_err(),
            "already snoozed"
        );
        let dismissed = run.clock.dismiss(Dismissal::User).unwrap();
        assert_eq!(
            dismissed,
            [AlarmEvent::Dismissed {
                ids: vec!["a".into()],
                how: Dismissal::User
            }]
        );
        assert!(run.clock.dismiss(Dismissal::User).is_err());
        let report = run.clock.report(utc("2026-11-27T07:08:00Z"));
        assert_eq!((report["state"].as_str(), report.get("ringing")), (Some("idle"), None));
    }

    #[test]
    fn alarms_in_the_same_minute_ring_once_and_one_due_while_snoozed_merges() {
        let a = alarm("a", json!({"time": "07:00", "action": "blink"}));
        let b = alarm("b", json!({"time": "07:00", "action": "blink"}));
        let c = alarm("c", json!({"time": "07:05", "action": "blink"}));
        let mut run = Run::new(vec![a, b, c], "UTC", "2026-11-27T06:00:00Z");
        let events = run.tick("2026-11-27T07:00:00Z");
        assert_eq!(
            events,
            [
                AlarmEvent::Ringing { id: "a".into() },
                AlarmEvent::Merged {
                    id: "b".into(),
                    into: "a".into()
                }
            ]
        );
        run.clock.snooze(utc("2026-11-27T07:01:00Z")).unwrap();
        let events = run.tick("2026-11-27T07:05:00Z");
        assert_eq!(
            events,
            [AlarmEvent::Merged {
                id: "c".into(),
                into: "a".into()
            }]
        );
        assert!(run.clock.is_ringing());
        assert_eq!(run.clock.active().unwrap().ids, ["c", "a", "b"]);
        // One dismiss ends all three.
        let ended = run.clock.dismiss(Dismissal::User).unwrap();
        assert!(matches!(&ended[0], AlarmEvent::Dismissed { ids, .. } if ids.len() == 3));
    }

    #[test]
    fn deleting_or_disabling_a_ringing_alarm_stops_it_and_one_offs_disable_themselves() {
        let once = alarm("once", json!({"time": "07:00", "action": "blink"}));
        let mut run = Run::new(vec![once.clone()], "UTC", "2026-11-27T06:00:00Z");
        run.tick("2026-11-27T07:00:00Z");
        let ended = run.clock.dismiss(Dismissal::User).unwrap();
        assert_eq!(ended[1], AlarmEvent::Disable { id: "once".into() });

        let mut run = Run::new(vec![once.clone()], "UTC", "2026-11-27T06:00:00Z");
        run.tick("2026-11-27T07:00:00Z");
        let disabled = Alarm {
            enabled: false,
            ..once.clone()
        };
        let events = run
            .clock
            .configure(vec![disabled], Tz::UTC, utc("2026-11-27T07:01:00Z"));
        assert!(matches!(
            &events[0],
            AlarmEvent::Dismissed {
                how: Dismissal::Removed,
                ..
            }
        ));

        let mut run = Run::new(vec![once], "UTC", "2026-11-27T06:00:00Z");
        run.tick("2026-11-27T07:00:00Z");
        let events = run.clock.configure(vec![], Tz::UTC, utc("2026-11-27T07:01:00Z"));
        assert!(matches!(
            &events[0],
            AlarmEvent::Dismissed {
                how: Dismissal::Removed,
                ..
            }
        ));
        assert!(run.clock.memory().settled.is_empty());
    }

    #[test]
    fn changing_the_lamp_zone_replans() {
        let a = alarm("a", json!({"time": "07:00", "action": "blink"}));
        let mut run = Run::new(vec![a.clone()], "Europe/London", "2026-11-27T06:00:00Z");
        let wall = utc("2026-11-27T06:30:00Z");
        assert_eq!(run.clock.report(wall)["next"]["at"], json!("2026-11-27T07:00:00+00:00"));
        run.clock.configure(vec![a], zone("America/New_York"), wall);
        assert_eq!(run.clock.report(wall)["next"]["at"], json!("2026-11-27T07:00:00-05:00"));
        assert!(run.tick("2026-11-27T07:00:00Z").is_empty());
        assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T12:00:00Z")), ["a"]);
    }

    #[test]
    fn sunrise_rises_from_dark_red_to_full_at_the_alarm_time_without_steps() {
        let a = alarm("a", json!({"time": "07:00", "action": "sunrise", "ramp_minutes": 20}));
        let mut run = Run::new(vec![a], "UTC", "2026-11-27T06:00:00Z");
        assert!(run.tick("2026-11-27T06:39:59Z").is_empty());
        assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T06:40:00Z")), ["a"]);
        let start = utc("2026-11-27T06:40:00Z");
        let mut previous = Rgb::OFF;
        for second in (0..=20 * 60).step_by(5) {
            let wall = start + chrono::Duration::seconds(second);
            let (target, fade) = run.clock.output(run.mono(wall), wall).unwrap();
            if second == 0 {
                assert!(
                    target.r > 0.0 && target.r < 0.01 && target.g < target.r / 10.0 && target.b == 0.0,
                    "{target:?}"
                );
            }
            assert!(
                target.r >= previous.r && target.g >= previous.g,
                "rising at {second}: {target:?}"
            );
            let lightness = super::super::colour::lightness_from_luminance;
            assert!(
                lightness(target.r) - lightness(previous.r) < 0.01,
                "a visible step at {second}"
            );
            assert!(fade > Duration::ZERO);
            previous = target;
        }
        assert_eq!(previous, sunrise(1.0, 1.0));
        assert_eq!(previous.r, 1.0);
        let (wall_wake_mono, wall_wake) = run.clock.next_wake(run.mono(start), start);
        assert_eq!((wall_wake_mono, wall_wake), (None, Some(start + SUNRISE_STEP)));
    }

    #[test]
    fn blink_flashes_three_times_then_pauses() {
        let lit: Vec<bool> = (0..20).map(|i| blink_phase(Duration::from_millis(i * 100)).0).collect();
        assert_eq!(
            lit,
            [
                true, true, false, false, true, true, false, false, true, true, false, false, false, false, false,
                false, false, false, false, false
            ]
        );
        assert_eq!(
            blink_phase(Duration::from_millis(2050)),
            (true, Duration::from_millis(150))
        );
    }
}
