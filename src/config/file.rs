//! The file's contents: every key, its default, and reading and parsing the TOML.

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
    pub ble: BleConfig,
}

/// The lamp as a Bluetooth LE peripheral (builds with the `ble` feature).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct BleConfig {
    pub enabled: bool,
    /// The BlueZ adapter to serve on ("hci0"); none for BlueZ's default one.
    pub adapter: Option<String>,
    /// The advertised name; none for `LAMPI <device id>`.
    pub name: Option<String>,
    /// The Device Information Service's Manufacturer Name.
    pub manufacturer: String,
    /// Serve the pairing code the screen shows as a characteristic too. Off by default: anyone
    /// in radio range can read it while it is shown.
    pub pairing_code: bool,
}

impl Default for BleConfig {
    fn default() -> Self {
        BleConfig {
            enabled: false,
            adapter: None,
            name: None,
            manufacturer: "LAMPI".into(),
            pairing_code: false,
        }
    }
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
    /// Brokers to fail over between, in order, instead of `host` and `port`.
    pub brokers: Option<Vec<BrokerAddr>>,
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
            brokers: None,
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

/// One broker of `mqtt.brokers`. TLS, credentials and the client id are the same for all.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl MqttConfig {
    /// The brokers in the order they are tried: `brokers`, or `host` and `port` alone.
    pub fn brokers(&self) -> Vec<BrokerAddr> {
        self.brokers.clone().unwrap_or_else(|| {
            vec![BrokerAddr {
                host: self.host.clone(),
                port: self.port,
            }]
        })
    }

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
    pub(super) fn invalid(file: &Path, key: &'static str, reason: String) -> ConfigError {
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
}
