//! Home Assistant's MQTT light, JSON schema: discovery document, state and commands.
//!
//! Home Assistant speaks in its own units (brightness 0–255, hue in degrees, saturation in
//! percent, transitions in seconds); this module converts at the edge so the lamp keeps LAMPI's
//! 0–1 values everywhere else.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Refused;
use crate::core::light::{LightChange, LightState, Unit};

/// A command is a few dozen bytes; refuse anything much larger before parsing.
pub const MAX_COMMAND_BYTES: usize = 1024;
const BRIGHTNESS_SCALE: f64 = 255.0;

/// Where one lamp's Home Assistant entity lives.
#[derive(Clone, Debug)]
pub struct Entity {
    pub device_id: String,
    pub firmware: String,
    pub discovery_topic: String,
    pub command_topic: String,
    pub state_topic: String,
    /// LAMPI's connection topic doubles as availability ("1" / "0"): one connection has only one
    /// last will.
    pub availability_topic: String,
}

impl Entity {
    pub fn new(discovery_prefix: &str, device_id: &str, firmware: &str, availability_topic: &str) -> Entity {
        Entity {
            device_id: device_id.into(),
            firmware: firmware.into(),
            discovery_topic: format!("{discovery_prefix}/light/{device_id}/lamp/config"),
            command_topic: format!("lampi/{device_id}/light/set"),
            state_topic: format!("lampi/{device_id}/light/state"),
            availability_topic: availability_topic.into(),
        }
    }

    /// The retained discovery document that makes the lamp appear in Home Assistant.
    pub fn discovery(&self) -> Value {
        json!({
            "schema": "json",
            "name": null,
            "unique_id": format!("lampi_{}_lamp", self.device_id),
            "command_topic": self.command_topic,
            "state_topic": self.state_topic,
            "availability_topic": self.availability_topic,
            "payload_available": "1",
            "payload_not_available": "0",
            "brightness": true,
            "brightness_scale": BRIGHTNESS_SCALE as u32,
            // Older releases (early 2024 and before) refuse `supported_color_modes` without
            // `color_mode` (one inclusion group); newer ones deprecate, then drop it.
            "color_mode": true,
            "supported_color_modes": ["hs"],
            "qos": 1,
            "device": {
                "identifiers": [format!("lampi_{}", self.device_id)],
                "name": format!("LAMPI {}", self.device_id),
                "manufacturer": "LAMPI",
                "model": "LAMPI smart lamp",
                "sw_version": self.firmware,
            },
        })
    }
}

/// The entity's state document.
pub fn state(light: &LightState) -> Value {
    json!({
        "state": if light.on { "ON" } else { "OFF" },
        "brightness": (light.brightness.get() * BRIGHTNESS_SCALE).round(),
        "color_mode": "hs",
        "color": {"h": light.hue.get() * 360.0, "s": light.saturation.get() * 100.0},
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    state: Option<String>,
    brightness: Option<f64>,
    color: Option<RawColor>,
    transition: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColor {
    h: Option<f64>,
    s: Option<f64>,
}

/// A command from Home Assistant: the change and, if given, its fade.
pub fn parse_command(payload: &[u8]) -> Result<(LightChange, Option<Duration>), Refused> {
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(Refused::new(format!(
            "payload is {} bytes; the limit is {MAX_COMMAND_BYTES}",
            payload.len()
        )));
    }
    let raw: RawCommand =
        serde_json::from_slice(payload).map_err(|e| Refused::new(format!("not a light command: {e}")))?;
    let scaled = |name: &str, value: Option<f64>, full: f64| -> Result<Option<Unit>, Refused> {
        value
            .map(|v| Unit::try_from(v / full).map_err(|_| Refused::new(format!("{name}: {v} is outside 0–{full}"))))
            .transpose()
    };
    let on = match raw.state.as_deref() {
        None => None,
        Some("ON") => Some(true),
        Some("OFF") => Some(false),
        Some(other) => return Err(Refused::new(format!("state: {other:?} is neither \"ON\" nor \"OFF\""))),
    };
    let (h, s) = raw.color.map_or((None, None), |c| (c.h, c.s));
    let change = LightChange {
        on,
        // Home Assistant sends 360 for red as readily as 0.
        hue: scaled("color.h", h.map(|h| if h == 360.0 { 0.0 } else { h }), 360.0)?,
        saturation: scaled("color.s", s, 100.0)?,
        brightness: scaled("brightness", raw.brightness, BRIGHTNESS_SCALE)?,
    };
    let transition = match raw.transition {
        None => None,
        Some(t) if (0.0..=60.0).contains(&t) => Some(Duration::from_secs_f64(t)),
        Some(t) => return Err(Refused::new(format!("transition: {t} s is outside 0–60"))),
    };
    Ok((change, transition))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_convert_to_lampi_units() {
        let (change, transition) =
            parse_command(br#"{"state":"ON","brightness":51,"color":{"h":120,"s":50},"transition":2.5}"#).unwrap();
        assert_eq!(change.on, Some(true));
        assert_eq!(change.brightness.unwrap().get(), 0.2);
        assert!((change.hue.unwrap().get() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(change.saturation.unwrap().get(), 0.5);
        assert_eq!(transition, Some(Duration::from_millis(2500)));
        let (off, none) = parse_command(br#"{"state":"OFF"}"#).unwrap();
        assert_eq!((off.on, off.brightness, none), (Some(false), None, None));
        assert_eq!(
            parse_command(br#"{"color":{"h":360}}"#).unwrap().0.hue,
            Some(Unit::ZERO)
        );
    }

    #[test]
    fn bad_commands_say_why() {
        for (payload, reason) in [
            (&br#"{"state":"on"}"#[..], "neither"),
            (br#"{"brightness":300}"#, "brightness: 300 is outside 0–255"),
            (br#"{"color":{"h":-1}}"#, "color.h"),
            (br#"{"transition":1000}"#, "transition"),
            (br#"{"effect":"rainbow"}"#, "unknown field `effect`"),
            (b"ON", "not a light command"),
        ] {
            let error = parse_command(payload).unwrap_err();
            assert!(error.reason().contains(reason), "{error}");
        }
    }

    #[test]
    fn state_and_discovery_documents() {
        let light = LightState {
            on: true,
            hue: Unit::try_from(0.5).unwrap(),
            saturation: Unit::ONE,
            brightness: Unit::try_from(0.2).unwrap(),
        };
        assert_eq!(
            state(&light),
            json!({"state": "ON", "brightness": 51.0, "color_mode": "hs", "color": {"h": 180.0, "s": 100.0}})
        );
        let entity = Entity::new(
            "homeassistant",
            "b827eb000001",
            "0.1.0",
            "lamp/connection/lamp_service/state",
        );
        assert_eq!(entity.discovery_topic, "homeassistant/light/b827eb000001/lamp/config");
        let doc = entity.discovery();
        assert_eq!(doc["command_topic"], json!("lampi/b827eb000001/light/set"));
        assert_eq!(doc["supported_color_modes"], json!(["hs"]));
        assert_eq!(doc["color_mode"], json!(true));
        assert_eq!(doc["availability_topic"], json!("lamp/connection/lamp_service/state"));
    }
}
