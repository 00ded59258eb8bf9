//! One alarm as the shadow's `alarms` object holds it: read with the defaults, written back
//! from the touchscreen's editor, and its occurrences across zones and DST.

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::core::schema::DAYS;

/// Longest gap a spring-forward can open (Antarctica/Troll's is two hours).
const MAX_GAP_MINUTES: i64 = 180;

/// A sunrise's length when the alarm does not say.
pub const DEFAULT_RAMP_MINUTES: u32 = 20;
/// How long a snooze lasts when the alarm does not say.
pub const DEFAULT_SNOOZE_MINUTES: u32 = 9;
/// How long an alarm rings, unanswered, when it does not say.
pub const DEFAULT_RING_MINUTES: u32 = 30;

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
            snooze_minutes: whole("snooze_minutes", DEFAULT_SNOOZE_MINUTES),
            ring_minutes: whole("ring_minutes", DEFAULT_RING_MINUTES),
            label: text("label").unwrap_or_default().to_owned(),
            brightness: value.get("brightness").and_then(Value::as_f64).unwrap_or(1.0),
        }
    }

    /// The alarm as the settings want it after an edit on the touchscreen: only the fields the
    /// editor owns (time, days, enabled, action), so a label or snooze time set from the app
    /// survives. The inverse of [`Alarm::from_json`] for those fields.
    pub fn to_patch(&self) -> Value {
        let days: Vec<&str> = (0..7).filter(|&i| self.days[i]).map(|i| DAYS[i]).collect();
        let mut alarm = json!({
            "time": self.time.format("%H:%M").to_string(),
            "days": days,
            "enabled": self.enabled,
            "action": match self.action { Action::Blink => "blink", Action::Sunrise { .. } => "sunrise" },
        });
        if let Action::Sunrise { ramp_minutes } = self.action {
            alarm["ramp_minutes"] = json!(ramp_minutes);
        }
        alarm
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
pub(super) fn local_instant(zone: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    (0..=MAX_GAP_MINUTES).find_map(|minutes| {
        match zone.from_local_datetime(&(local + chrono::Duration::minutes(minutes))) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
            LocalResult::None => None,
        }
    })
}
