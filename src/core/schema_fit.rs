//! Settings saved by an older version, brought within today's limits.

use serde_json::{Map, Value};

use super::{MAX_LABEL_BYTES, MAX_MIRRORED_BYTES, settings_bytes};

/// Cuts `text` to at most `max_bytes` bytes, at a character boundary.
pub fn cut_text(text: &mut String, max_bytes: usize) {
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// Brings settings saved by an older version within today's limits, so that the lamp can go on
/// reporting them: labels were limited to 64 characters (now 64 bytes), and the settings
/// together only by `desired`'s 8 KiB (now [`MAX_MIRRORED_BYTES`]), so a lamp upgraded with
/// more would have every report refused. Labels are cut to 64 bytes, then shorter while the
/// settings are still over; only if that is not enough are the alarms whose ids sort last
/// dropped. Returns what it changed, for the log.
pub fn fit_settings(desired: &mut Map<String, Value>) -> Vec<String> {
    let mut changes = Vec::new();
    let mut limit = MAX_LABEL_BYTES;
    loop {
        let cut = cut_labels(desired, limit);
        if !cut.is_empty() {
            changes.push(format!("labels of alarms {} cut to {limit} bytes", cut.join(", ")));
        }
        if settings_bytes(desired) <= MAX_MIRRORED_BYTES || limit == 0 {
            break;
        }
        limit = limit.saturating_sub(16);
    }
    while settings_bytes(desired) > MAX_MIRRORED_BYTES {
        let Some(Value::Object(alarms)) = desired.get_mut("alarms") else {
            break;
        };
        let Some(last) = alarms.keys().next_back().cloned() else {
            break;
        };
        alarms.remove(&last);
        if alarms.is_empty() {
            desired.remove("alarms");
        }
        changes.push(format!(
            "alarm {last} dropped: the settings were over {MAX_MIRRORED_BYTES} bytes"
        ));
    }
    changes
}

/// Cuts every alarm label to at most `max_bytes`; returns the ids of those it cut.
fn cut_labels(desired: &mut Map<String, Value>, max_bytes: usize) -> Vec<String> {
    let Some(Value::Object(alarms)) = desired.get_mut("alarms") else {
        return Vec::new();
    };
    let mut cut = Vec::new();
    for (id, alarm) in alarms {
        if let Some(Value::String(label)) = alarm.get_mut("label")
            && label.len() > max_bytes
        {
            cut_text(label, max_bytes);
            cut.push(id.clone());
        }
    }
    cut
}
