//! Usage analytics: the events the core makes, as a type, and the JSON they are published as
//! (the shell only queues and spools that JSON).

use serde::Serialize;
use serde_json::{Value, json};

use super::alarm::Dismissal;
use super::lamp::UnpairSource;
use super::light::LightState;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The light was switched on or off; `source` is the LAMPI client, or `shadow`.
    Power {
        on: bool,
        source: String,
    },
    /// Its colour or brightness changed.
    Light {
        hue: f64,
        saturation: f64,
        brightness: f64,
        source: String,
    },
    Paired {
        owner: String,
    },
    PairingRefused {
        reason: String,
    },
    Unpaired {
        owner: String,
        source: UnpairSource,
    },
    AlarmRinging {
        alarm: String,
    },
    /// Due while another rang or was snoozed: rings with it.
    AlarmMerged {
        alarm: String,
        into: String,
    },
    /// `due` in epoch seconds.
    AlarmMissed {
        alarm: String,
        due: i64,
    },
    /// `until` in epoch seconds.
    AlarmSnoozed {
        alarms: Vec<String>,
        until: i64,
    },
    AlarmDismissed {
        alarms: Vec<String>,
        how: Dismissal,
    },
}

impl Event {
    /// The event as published on the events topic, stamped with when it happened.
    pub fn to_json(&self, timestamp: u64) -> Value {
        let mut event = serde_json::to_value(self).expect("an event always serialises");
        event["timestamp"] = json!(timestamp);
        event
    }
}

/// The events a change of the light makes: `power` when it was switched, `light` when its
/// colour or brightness changed.
pub fn light_events(before: &LightState, after: &LightState, source: &str) -> Vec<Event> {
    let mut events = Vec::new();
    if before.on != after.on {
        events.push(Event::Power {
            on: after.on,
            source: source.to_owned(),
        });
    }
    let colour = |s: &LightState| (s.hue, s.saturation, s.brightness);
    if colour(before) != colour(after) {
        events.push(Event::Light {
            hue: after.hue.get(),
            saturation: after.saturation.get(),
            brightness: after.brightness.get(),
            source: source.to_owned(),
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::light::Unit;

    #[test]
    fn power_and_light_events_name_their_source() {
        let before = LightState::default();
        let after = LightState {
            on: false,
            brightness: Unit::try_from(0.5).unwrap(),
            ..before
        };
        let events: Vec<Value> = light_events(&before, &after, "me")
            .iter()
            .map(|e| e.to_json(7))
            .collect();
        assert_eq!(
            events[0],
            json!({"type": "power", "on": false, "source": "me", "timestamp": 7})
        );
        assert_eq!(events[1]["type"], json!("light"));
        assert_eq!(events[1]["brightness"], json!(0.5));
        assert!(light_events(&after, &after, "me").is_empty());
    }
}
