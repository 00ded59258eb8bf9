//! Usage analytics events the core makes (the shell only queues and spools them).

use serde_json::{Value, json};

use super::light::LightState;

/// The events a change of the light makes: `power` when it was switched, `light` when its
/// colour or brightness changed.
pub fn light_events(before: &LightState, after: &LightState, source: &str, timestamp: u64) -> Vec<Value> {
    let mut events = Vec::new();
    if before.on != after.on {
        events.push(json!({"type": "power", "on": after.on, "source": source, "timestamp": timestamp}));
    }
    let colour = |s: &LightState| (s.hue, s.saturation, s.brightness);
    if colour(before) != colour(after) {
        events.push(json!({
            "type": "light",
            "hue": after.hue.get(),
            "saturation": after.saturation.get(),
            "brightness": after.brightness.get(),
            "source": source,
            "timestamp": timestamp,
        }));
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
        let events = light_events(&before, &after, "me", 7);
        assert_eq!(
            events[0],
            json!({"type": "power", "on": false, "source": "me", "timestamp": 7})
        );
        assert_eq!(events[1]["type"], json!("light"));
        assert_eq!(events[1]["brightness"], json!(0.5));
        assert!(light_events(&after, &after, "me", 8).is_empty());
    }
}
