//! The alarms as the screen lists and edits them, and the next one due.

use chrono::{DateTime, NaiveTime, Timelike};
use serde_json::{Map, Value, json};

use super::{ViewInput, joined_clock_text};
use crate::core::alarm::{Action, Alarm, DEFAULT_RAMP_MINUTES};
use crate::core::report;

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
pub(super) fn next_alarm_text(input: &ViewInput, today: chrono::NaiveDate, clock_24h: bool) -> String {
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

pub(super) fn alarm_count(input: &ViewInput) -> usize {
    input.setting("alarms").and_then(Value::as_object).map_or(0, Map::len)
}

pub(super) fn alarm_lines(input: &ViewInput, clock_24h: bool) -> Vec<AlarmLine> {
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

pub(super) fn days_text(mask: u8) -> String {
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
