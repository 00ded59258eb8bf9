//! What makes a config wrong (an error naming the key) or risky (a warning).

use std::path::Path;

use super::{Config, ConfigError};

/// The longest advertised name: what fits a 31-octet advertisement beside its flags and
/// the Lamp Service's 128-bit UUID would not, so BlueZ puts it in the scan response (29 octets
/// of name there); 22 leaves room to spare.
pub const MAX_BLE_NAME_BYTES: usize = 22;
/// The longest Manufacturer Name: a few long reads at the default MTU.
pub const MAX_BLE_MANUFACTURER_BYTES: usize = 64;
pub use crate::core::schema::MAX_BROKERS;

impl Config {
    /// Settings that work but put something at risk.
    pub(super) fn warnings(&self) -> Vec<String> {
        let mqtt = &self.mqtt;
        let mut warnings = Vec::new();
        if mqtt.enabled && mqtt.password.is_some() && !mqtt.tls {
            for broker in mqtt.brokers().iter().filter(|b| !is_loopback(&b.host)) {
                warnings.push(format!(
                    "`mqtt.password` is sent in clear text to {} (not this machine): set `mqtt.tls = true`",
                    broker.host
                ));
            }
        }
        warnings
    }

    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |key, reason| ConfigError::invalid(file, key, reason);
        if let Some(id) = &self.device.id
            && (id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(invalid(
                "device.id",
                format!("{id:?} must be non-empty ASCII letters, digits, '-' or '_' (it becomes part of MQTT topics)"),
            ));
        }
        if self.mqtt.host.is_empty() {
            return Err(invalid("mqtt.host", "must not be empty".into()));
        }
        if let Some(start) = &self.clock.start
            && start.parse::<chrono::DateTime<chrono::Utc>>().is_err()
        {
            return Err(invalid(
                "clock.start",
                format!("{start:?} is not an RFC 3339 time such as \"2026-11-27T06:58:00Z\""),
            ));
        }
        if let Some(speed) = self.clock.speed {
            if !(speed.is_finite() && (0.001..=100_000.0).contains(&speed)) {
                return Err(invalid("clock.speed", format!("{speed} must be from 0.001 to 100000")));
            }
            if self.clock.start.is_none() {
                return Err(invalid(
                    "clock.speed",
                    "only a virtual clock (clock.start) has a speed".into(),
                ));
            }
        }
        for (key, time) in [
            ("ui.night_start", &self.ui.night_start),
            ("ui.night_end", &self.ui.night_end),
        ] {
            if chrono::NaiveTime::parse_from_str(time, "%H:%M").is_err() {
                return Err(invalid(key, format!("{time:?} must be \"HH:MM\", 24-hour")));
            }
        }
        if !(0.0..=1.0).contains(&self.ui.dim_level) {
            return Err(invalid(
                "ui.dim_level",
                format!("{} must be from 0.0 to 1.0", self.ui.dim_level),
            ));
        }
        if !(160..=7680).contains(&self.ui.width) || !(120..=4320).contains(&self.ui.height) {
            return Err(invalid(
                "ui.width",
                format!(
                    "{} × {} is not a screen size (160–7680 × 120–4320)",
                    self.ui.width, self.ui.height
                ),
            ));
        }
        if self.mqtt.port == 0 {
            return Err(invalid("mqtt.port", "must be 1–65535".into()));
        }
        self.validate_brokers(file)?;
        if self.mqtt.client_id.is_empty() || self.mqtt.client_id.contains(['+', '#', '/']) {
            return Err(invalid(
                "mqtt.client_id",
                format!(
                    "{:?} must be non-empty and free of '+', '#' and '/' (it is part of a topic)",
                    self.mqtt.client_id
                ),
            ));
        }
        if self.mqtt.topic_prefix.contains(['+', '#', '\0']) {
            return Err(invalid(
                "mqtt.topic_prefix",
                format!("{:?} must not contain MQTT wildcards", self.mqtt.topic_prefix),
            ));
        }
        if let Some(prefix) = &self.shadow.topic_prefix
            && (prefix.contains(['+', '#', '\0']) || !prefix.ends_with('/'))
        {
            return Err(invalid(
                "shadow.topic_prefix",
                format!("{prefix:?} must end with '/' and contain no MQTT wildcards"),
            ));
        }
        self.validate_credentials(file)?;
        let discovery = &self.homeassistant.discovery_prefix;
        if discovery.is_empty() || discovery.contains(['+', '#', '\0']) || discovery.ends_with('/') {
            return Err(invalid(
                "homeassistant.discovery_prefix",
                format!("{discovery:?} must be a topic level like \"homeassistant\": no wildcards, no trailing '/'"),
            ));
        }
        if !(5..=3600).contains(&self.mqtt.keep_alive_secs) {
            return Err(invalid(
                "mqtt.keep_alive_secs",
                format!("{} must be 5–3600", self.mqtt.keep_alive_secs),
            ));
        }
        if self.mqtt.reconnect_initial_ms == 0 || self.mqtt.reconnect_initial_ms > self.mqtt.reconnect_max_ms {
            return Err(invalid(
                "mqtt.reconnect_initial_ms",
                format!(
                    "{} must be at least 1 and at most mqtt.reconnect_max_ms ({})",
                    self.mqtt.reconnect_initial_ms, self.mqtt.reconnect_max_ms
                ),
            ));
        }
        let pins = self.led.pins;
        if [pins.red, pins.green, pins.blue].iter().any(|&p| p > 27) {
            return Err(invalid("led.pins", "BCM GPIO numbers on the header are 0–27".into()));
        }
        if pins.red == pins.green || pins.green == pins.blue || pins.red == pins.blue {
            return Err(invalid(
                "led.pins",
                "red, green and blue need three different pins".into(),
            ));
        }
        if !(1.0..=100_000.0).contains(&self.led.frequency_hz) {
            return Err(invalid(
                "led.frequency_hz",
                format!("{} must be 1–100000", self.led.frequency_hz),
            ));
        }
        if self.light.transition_ms > 60_000 {
            return Err(invalid(
                "light.transition_ms",
                format!("{} must be at most 60000", self.light.transition_ms),
            ));
        }
        self.validate_ble(file)
    }

    fn validate_brokers(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |reason| Err(ConfigError::invalid(file, "mqtt.brokers", reason));
        let Some(brokers) = &self.mqtt.brokers else {
            return Ok(());
        };
        let defaults = super::MqttConfig::default();
        if self.mqtt.host != defaults.host || self.mqtt.port != defaults.port {
            // Which one the lamp would use must not depend on knowing that the list wins.
            return invalid("replaces mqtt.host and mqtt.port, which must then keep their defaults".into());
        }
        if brokers.is_empty() || brokers.len() > MAX_BROKERS {
            return invalid(format!(
                "lists {} brokers; it takes 1–{MAX_BROKERS} (leave it out to use mqtt.host and mqtt.port)",
                brokers.len()
            ));
        }
        for (i, broker) in brokers.iter().enumerate() {
            if broker.host.is_empty() {
                return invalid(format!("broker {}: host must not be empty", i + 1));
            }
            if broker.port == 0 {
                return invalid(format!("broker {} ({}): port must be 1–65535", i + 1, broker.host));
            }
            if let Some(first) = brokers[..i]
                .iter()
                .position(|b| b.host.eq_ignore_ascii_case(&broker.host) && b.port == broker.port)
            {
                return invalid(format!("broker {} ({broker}) repeats broker {}", i + 1, first + 1));
            }
        }
        Ok(())
    }

    fn validate_ble(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |key, reason| ConfigError::invalid(file, key, reason);
        let ble = &self.ble;
        if let Some(adapter) = &ble.adapter
            && (adapter.is_empty() || !adapter.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            // It becomes part of a D-Bus object path (/org/bluez/hci0).
            return Err(invalid(
                "ble.adapter",
                format!("{adapter:?} must be an adapter name such as \"hci0\""),
            ));
        }
        if let Some(name) = &ble.name
            && (name.is_empty() || name.len() > MAX_BLE_NAME_BYTES)
        {
            return Err(invalid(
                "ble.name",
                format!("{name:?} must be 1–{MAX_BLE_NAME_BYTES} bytes of UTF-8"),
            ));
        }
        // The default name, `LAMPI <device id>`, would not fit: BlueZ refuses the advertisement.
        if ble.enabled
            && ble.name.is_none()
            && let Some(id) = &self.device.id
            && "LAMPI ".len() + id.len() > MAX_BLE_NAME_BYTES
        {
            return Err(invalid(
                "ble.name",
                format!("unset, so \"LAMPI {id}\", over {MAX_BLE_NAME_BYTES} bytes: give a shorter one"),
            ));
        }
        if ble.manufacturer.len() > MAX_BLE_MANUFACTURER_BYTES {
            return Err(invalid(
                "ble.manufacturer",
                format!("must be at most {MAX_BLE_MANUFACTURER_BYTES} bytes of UTF-8"),
            ));
        }
        Ok(())
    }

    fn validate_credentials(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |key, reason| ConfigError::invalid(file, key, reason);
        let mqtt = &self.mqtt;
        if mqtt.tls && mqtt.ca_file.is_none() {
            return Err(invalid("mqtt.ca_file", "required when mqtt.tls is true".into()));
        }
        if !mqtt.tls && (mqtt.ca_file.is_some() || mqtt.cert_file.is_some()) {
            return Err(invalid(
                "mqtt.tls",
                "certificates are configured but tls is false".into(),
            ));
        }
        if mqtt.cert_file.is_some() != mqtt.key_file.is_some() {
            return Err(invalid("mqtt.cert_file", "cert_file and key_file go together".into()));
        }
        if mqtt.password.is_some() && mqtt.username.is_none() {
            return Err(invalid("mqtt.username", "required when a password is given".into()));
        }
        for (key, path) in [
            ("mqtt.ca_file", &mqtt.ca_file),
            ("mqtt.cert_file", &mqtt.cert_file),
            ("mqtt.key_file", &mqtt.key_file),
        ] {
            if let Some(path) = path {
                std::fs::File::open(path).map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
            }
        }
        Ok(())
    }
}

/// Whether `host` names this machine without a lookup: `localhost` or a loopback address. A
/// name that resolves to loopback is not trusted to stay so.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
