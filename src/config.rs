//! The daemon's configuration: one TOML file, every key optional, validated up front.
//!
//! A bad file stops the daemon at start with the file, key and reason; a key it does not know
//! is only warned about, so a config written for a newer firmware still starts an older one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_PATH: &str = "/etc/lampi/lampi.toml";

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub device: DeviceConfig,
    pub mqtt: MqttConfig,
    pub led: LedConfig,
    pub light: LightConfig,
    pub shadow: ShadowConfig,
    pub homeassistant: HomeAssistantConfig,
    pub clock: ClockConfig,
    pub update: UpdateConfig,
    pub ui: UiConfig,
    pub pairing: PairingConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PairingConfig {
    /// Also put the code in LAMPI's retained `lamp/associated`, as the course's web page
    /// expects. Off by default: whoever may read that topic (every app) can claim the lamp first.
    pub code_on_lamp_topic: bool,
}

/// Where the touchscreen UI is shown.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Display {
    /// The Pi's screen without a desktop when built with `linuxkms`; a window when a desktop
    /// is running and the build has `winit`; otherwise none.
    #[default]
    Auto,
    Linuxkms,
    Winit,
    None,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct UiConfig {
    pub display: Display,
    /// The clock's format until changed on the screen.
    pub clock_24h: bool,
    /// The screen's size in pixels (the official 7" touchscreen is 800 × 480).
    pub width: u32,
    pub height: u32,
    /// Seconds without a touch before the screen dims.
    pub idle_dim_s: u64,
    /// The dimmed backlight level, 0.0–1.0.
    pub dim_level: f64,
    /// When the idle screen goes dark instead of dim, "HH:MM" local time.
    pub night_start: String,
    pub night_end: String,
    /// "auto" (the first device in /sys/class/backlight), a device directory, or "none".
    pub backlight: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            display: Display::Auto,
            clock_24h: true,
            width: 800,
            height: 480,
            idle_dim_s: 30,
            dim_level: 0.15,
            night_start: "22:00".into(),
            night_end: "07:00".into(),
            backlight: "auto".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct UpdateConfig {
    /// Where the privileged `lampi-update` reports progress (it must match the updater's).
    pub status_file: PathBuf,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            status_file: PathBuf::from("/var/lib/lampi-update/status.json"),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClockConfig {
    /// Ring alarms only while the kernel says the clock is synchronised (NTP). Default: on
    /// with the `rpi` LED backend (a Pi has no real-time clock), off in simulation (containers
    /// and VMs report an unsynchronised clock even when it is right).
    pub require_sync: Option<bool>,
    /// Run on a virtual clock that starts at this time (RFC 3339), for demonstrations and
    /// tests, instead of the system clock.
    pub start: Option<String>,
    /// How many times faster than real time the virtual clock runs.
    pub speed: Option<f64>,
}

impl Config {
    /// Whether alarms wait for a synchronised clock, after the backend-dependent default.
    pub fn require_sync(&self) -> bool {
        self.clock
            .require_sync
            .unwrap_or(self.led.backend == LedBackendName::Rpi)
    }

    /// The start of the virtual clock, if one is configured.
    pub fn virtual_clock_start(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.clock.start.as_deref().and_then(|s| s.parse().ok())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct HomeAssistantConfig {
    /// Announce the lamp to Home Assistant through MQTT discovery.
    pub enabled: bool,
    pub discovery_prefix: String,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        HomeAssistantConfig {
            enabled: true,
            discovery_prefix: "homeassistant".into(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeviceConfig {
    /// Defaults to the MAC address of the first Ethernet or Wi-Fi interface, without colons.
    pub id: Option<String>,
    /// Defaults to `$STATE_DIRECTORY` (set by systemd), else `/var/lib/lampi`.
    pub state_dir: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct MqttConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    /// Put before every topic, e.g. `devices/b827eb123456/`, to talk to a cloud broker directly.
    pub topic_prefix: String,
    pub keep_alive_secs: u64,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
    /// TLS to the broker (rustls); needs `ca_file`.
    pub tls: bool,
    /// PEM CA certificate(s) the broker's certificate must chain to (AWS IoT: Amazon Root CA 1).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and private key, for brokers that require them (AWS IoT does).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// A value that never appears in logs or `check-config` output.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"(secret)\"")
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: true,
            host: "localhost".into(),
            port: 1883,
            // LAMPI's service was "lamp_service"; its UI watches that client's connection topic.
            client_id: "lamp_service".into(),
            topic_prefix: String::new(),
            keep_alive_secs: 30,
            reconnect_initial_ms: 500,
            reconnect_max_ms: 30_000,
            tls: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
        }
    }
}

impl MqttConfig {
    pub fn reconnect_initial(&self) -> Duration {
        Duration::from_millis(self.reconnect_initial_ms)
    }

    pub fn reconnect_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_ms)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedBackendName {
    Sim,
    Rpi,
}

impl Default for LedBackendName {
    /// The real LED in a build made for the Pi (`--features rpi`), the simulated one otherwise,
    /// so one config file serves both.
    fn default() -> Self {
        if cfg!(feature = "rpi") {
            LedBackendName::Rpi
        } else {
            LedBackendName::Sim
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnShutdown {
    /// Leave the LED showing what it showed, so restarting the daemon does not flicker.
    #[default]
    Keep,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    pub red: u8,
    pub green: u8,
    pub blue: u8,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct LedConfig {
    pub backend: LedBackendName,
    /// BCM GPIO numbers, LAMPI's wiring by default.
    pub pins: Pins,
    pub frequency_hz: f64,
    /// For common-anode LEDs and inverting drivers: a 0 % duty then means fully on.
    pub active_low: bool,
    /// Use the SoC's PWM channel for pins that have one (needs the `pwm-2chan` overlay).
    pub hardware_pwm: bool,
    pub on_shutdown: OnShutdown,
    /// The simulated LED draws its colour as a swatch below the log when stderr is a terminal.
    pub swatch: bool,
}

impl Default for LedConfig {
    fn default() -> Self {
        LedConfig {
            backend: LedBackendName::default(),
            pins: Pins {
                red: 19,
                green: 26,
                blue: 13,
            },
            frequency_hz: 1000.0,
            active_low: false,
            hardware_pwm: true,
            on_shutdown: OnShutdown::Keep,
            swatch: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct LightConfig {
    pub transition_ms: u64,
}

impl Default for LightConfig {
    fn default() -> Self {
        LightConfig { transition_ms: 400 }
    }
}

impl LightConfig {
    pub fn transition(&self) -> Duration {
        Duration::from_millis(self.transition_ms)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShadowService {
    /// The lamp hosts its own shadow on a plain broker (Mosquitto), answering as AWS IoT would.
    #[default]
    Device,
    /// AWS IoT Core keeps the document; the lamp follows its deltas and reports to it.
    Aws,
    /// No shadow topics at all; only the LAMPI protocol.
    Off,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ShadowConfig {
    pub service: ShadowService,
    /// Defaults to `$aws/things/<device id>/shadow/`, as AWS IoT names a thing's classic shadow.
    pub topic_prefix: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: `{key}`: {reason}")]
    Invalid {
        file: PathBuf,
        key: &'static str,
        reason: String,
    },
}

impl ConfigError {
    fn invalid(file: &Path, key: &'static str, reason: String) -> ConfigError {
        ConfigError::Invalid {
            file: file.to_owned(),
            key,
            reason,
        }
    }
}

/// A config, the dotted names of the keys in it that nothing reads, and what is risky about it
/// without being wrong.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub unknown_keys: Vec<String>,
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads `path`; a missing file at the default path means "all defaults", but a missing
    /// file someone named explicitly is an error.
    pub fn load(path: &Path, must_exist: bool) -> Result<Loaded, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => Ok(Loaded {
                config: Config::default(),
                unknown_keys: Vec::new(),
                warnings: Vec::new(),
            }),
            Err(source) => Err(ConfigError::Read {
                file: path.to_owned(),
                source,
            }),
        }
    }

    pub fn parse(text: &str, file: &Path) -> Result<Loaded, ConfigError> {
        let mut unknown_keys = Vec::new();
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_ignored::deserialize(deserializer, |path| {
            unknown_keys.push(path.to_string());
        })
        .map_err(|e| ConfigError::Parse {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(file)?;
        let warnings = config.warnings();
        Ok(Loaded {
            config,
            unknown_keys,
            warnings,
        })
    }

    /// Settings that work but put something at risk.
    fn warnings(&self) -> Vec<String> {
        let mqtt = &self.mqtt;
        let mut warnings = Vec::new();
        if mqtt.enabled && mqtt.password.is_some() && !mqtt.tls && !is_loopback(&mqtt.host) {
            warnings.push(format!(
                "`mqtt.password` is sent in clear text to {} (not this machine): set `mqtt.tls = true`",
                mqtt.host
            ));
        }
        warnings
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
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

    /// The device id: configured, or derived from this machine's network hardware.
    pub fn device_id(&self) -> String {
        self.device
            .id
            .clone()
            .unwrap_or_else(|| mac_device_id(Path::new("/sys/class/net")).unwrap_or_else(|| "lampi".into()))
    }

    pub fn shadow_topic_prefix(&self) -> String {
        self.shadow
            .topic_prefix
            .clone()
            .unwrap_or_else(|| format!("$aws/things/{}/shadow/", self.device_id()))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.device.state_dir.clone().unwrap_or_else(|| {
            std::env::var_os("STATE_DIRECTORY")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/lib/lampi"))
        })
    }
}

/// Whether `host` names this machine without a lookup: `localhost` or a loopback address. A
/// name that resolves to loopback is not trusted to stay so.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// LAMPI's device id: the MAC of the first Ethernet or Wi-Fi interface, colons removed.
/// Physical interfaces (those with a `device` link) come first, in name order, so the id does
/// not change when a VPN or bridge appears.
pub fn mac_device_id(sys_class_net: &Path) -> Option<String> {
    let mut candidates: Vec<(bool, String, String)> = std::fs::read_dir(sys_class_net)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_lan = ["eth", "en", "wlan", "wl"].iter().any(|p| name.starts_with(p));
            if !is_lan {
                return None;
            }
            let mac = std::fs::read_to_string(entry.path().join("address")).ok()?;
            let mac = mac.trim().replace(':', "").to_ascii_lowercase();
            let valid = mac.len() == 12 && mac.chars().all(|c| c.is_ascii_hexdigit()) && mac != "000000000000";
            let physical = entry.path().join("device").exists();
            valid.then_some((!physical, name, mac))
        })
        .collect();
    candidates.sort();
    candidates.into_iter().next().map(|(_, _, mac)| mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Loaded, ConfigError> {
        Config::parse(text, Path::new("/etc/lampi/lampi.toml"))
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let loaded = parse("").unwrap();
        assert_eq!(loaded.config.mqtt.port, 1883);
        assert_eq!(
            loaded.config.led.pins,
            Pins {
                red: 19,
                green: 26,
                blue: 13
            }
        );
        assert_eq!(loaded.config.led.frequency_hz, 1000.0);
        assert!(loaded.unknown_keys.is_empty());
    }

    #[test]
    fn unknown_keys_are_named_not_fatal() {
        let loaded = parse("[mqtt]\nhots = \"x\"\n[ledd]\na = 1\n").unwrap();
        assert_eq!(loaded.unknown_keys, vec!["mqtt.hots".to_string(), "ledd".to_string()]);
    }

    #[test]
    fn wrong_type_names_file_and_key() {
        let err = parse("[mqtt]\nport = \"eighteen\"\n").unwrap_err().to_string();
        assert!(err.starts_with("/etc/lampi/lampi.toml"), "{err}");
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn out_of_range_names_key_and_reason() {
        let err = parse("[led]\nfrequency_hz = 0\n").unwrap_err().to_string();
        assert!(err.contains("`led.frequency_hz`") && err.contains("1–100000"), "{err}");
        let err = parse("[led.pins]\nred = 1\ngreen = 1\nblue = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`led.pins`"), "{err}");
        let err = parse("[mqtt]\ntopic_prefix = \"a/#/\"\n").unwrap_err().to_string();
        assert!(err.contains("`mqtt.topic_prefix`"), "{err}");
        let err = parse("[shadow]\ntopic_prefix = \"things/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`shadow.topic_prefix`"), "{err}");
        let err = parse("[device]\nid = \"a/b\"\n").unwrap_err().to_string();
        assert!(err.contains("`device.id`"), "{err}");
        let err = parse("[ui]\nnight_start = \"10pm\"\n").unwrap_err().to_string();
        assert!(err.contains("`ui.night_start`") && err.contains("HH:MM"), "{err}");
        let err = parse("[ui]\ndim_level = 1.5\n").unwrap_err().to_string();
        assert!(err.contains("`ui.dim_level`"), "{err}");
        let err = parse("[ui]\nwidth = 0\n").unwrap_err().to_string();
        assert!(err.contains("`ui.width`"), "{err}");
        let err = parse("[ui]\ndisplay = \"x11\"\n").unwrap_err().to_string();
        assert!(err.contains("display") && err.contains("linuxkms"), "{err}");
    }

    #[test]
    fn clock_sync_requirement_follows_the_backend_and_a_virtual_clock_is_checked() {
        assert_eq!(parse("").unwrap().config.require_sync(), cfg!(feature = "rpi"));
        assert!(parse("[led]\nbackend = \"rpi\"\n").unwrap().config.require_sync());
        let explicit = parse("[led]\nbackend = \"rpi\"\n[clock]\nrequire_sync = false\n").unwrap();
        assert!(!explicit.config.require_sync());
        let virtual_clock = parse("[clock]\nstart = \"2026-11-27T06:58:00Z\"\nspeed = 60\n").unwrap();
        assert!(virtual_clock.config.virtual_clock_start().is_some());
        let err = parse("[clock]\nstart = \"tomorrow\"\n").unwrap_err().to_string();
        assert!(err.contains("`clock.start`"), "{err}");
        let err = parse("[clock]\nspeed = 60\n").unwrap_err().to_string();
        assert!(err.contains("`clock.speed`") && err.contains("virtual"), "{err}");
        let err = parse("[clock]\nstart = \"2026-11-27T06:58:00Z\"\nspeed = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`clock.speed`"), "{err}");
    }

    #[test]
    fn the_shipped_config_documents_valid_defaults() {
        let shipped = parse(include_str!("../config/lampi.toml")).unwrap();
        assert!(shipped.unknown_keys.is_empty(), "{:?}", shipped.unknown_keys);
    }

    #[test]
    fn tls_settings_must_be_complete_and_readable_and_secrets_stay_hidden() {
        let err = parse("[mqtt]\ntls = true\n").unwrap_err().to_string();
        assert!(err.contains("`mqtt.ca_file`: required"), "{err}");
        let err = parse("[mqtt]\ntls = true\nca_file = \"/nonexistent/ca.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`mqtt.ca_file`: cannot read /nonexistent/ca.pem"), "{err}");
        let err = parse("[mqtt]\npassword = \"hunter2\"\n").unwrap_err().to_string();
        assert!(err.contains("`mqtt.username`"), "{err}");
        let loaded = parse("[mqtt]\nusername = \"lamp\"\npassword = \"hunter2\"\n").unwrap();
        let shown = format!("{:?}", loaded.config);
        assert!(!shown.contains("hunter2") && shown.contains("(secret)"), "{shown}");
    }

    #[test]
    fn explicit_missing_file_is_an_error_default_one_is_not() {
        let missing = Path::new("/nonexistent/lampi.toml");
        assert!(Config::load(missing, true).is_err());
        assert!(Config::load(missing, false).is_ok());
    }

    #[test]
    fn device_id_from_first_physical_lan_interface() {
        let dir = tempfile::tempdir().unwrap();
        let add = |name: &str, mac: &str, physical: bool| {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("address"), format!("{mac}\n")).unwrap();
            if physical {
                std::fs::create_dir(path.join("device")).unwrap();
            }
        };
        add("lo", "00:00:00:00:00:00", false);
        add("docker0", "02:42:ac:11:00:02", false);
        add("enx0", "02:00:00:00:00:01", false);
        add("wlan0", "B8:27:EB:12:34:56", true);
        add("eth0", "b8:27:eb:ab:cd:ef", true);
        assert_eq!(mac_device_id(dir.path()).as_deref(), Some("b827ebabcdef"));
    }

    #[test]
    fn a_password_sent_off_this_machine_without_tls_is_warned_about() {
        let creds = "username = \"lamp\"\npassword = \"hunter2\"\n";
        for host in ["broker.example.com", "192.168.1.10", "localhost.example.com"] {
            let loaded = parse(&format!("[mqtt]\nhost = \"{host}\"\n{creds}")).unwrap();
            assert_eq!(loaded.warnings.len(), 1, "{host}");
            assert!(
                loaded.warnings[0].contains("`mqtt.password`")
                    && loaded.warnings[0].contains(host)
                    && !loaded.warnings[0].contains("hunter2"),
                "{:?}",
                loaded.warnings
            );
        }
        for quiet in [
            format!("[mqtt]\n{creds}"),
            format!("[mqtt]\nhost = \"127.0.0.2\"\n{creds}"),
            format!("[mqtt]\nhost = \"::1\"\n{creds}"),
            "[mqtt]\nhost = \"broker.example.com\"\nusername = \"lamp\"\n".to_owned(),
            format!("[mqtt]\nenabled = false\nhost = \"broker.example.com\"\n{creds}"),
            format!(
                "[mqtt]\nhost = \"broker.example.com\"\ntls = true\nca_file = \"{}/Cargo.toml\"\n{creds}",
                env!("CARGO_MANIFEST_DIR")
            ),
        ] {
            assert_eq!(parse(&quiet).unwrap().warnings, Vec::<String>::new(), "{quiet}");
        }
    }
}
