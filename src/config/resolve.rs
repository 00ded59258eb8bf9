//! What the config leaves to the machine, worked out once at start: the device id (from
//! `/sys/class/net`), the state directory (from the environment), the shadow's role. The only
//! code that reads either; everything else asks the [`Resolved`] it is given.

use std::path::{Path, PathBuf};

use super::{Config, Display, ShadowService};
use crate::core::lamp::ShadowRole;

/// Where the state lives when neither the command line, the config nor systemd says.
const SYSTEM_STATE_DIR: &str = "/var/lib/lampi";

/// The command line's say over the config, applied by [`Resolved::new`].
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    device_id: Option<String>,
    state_dir: Option<PathBuf>,
    sim: bool,
    no_ui: bool,
}

impl Overrides {
    /// Another lamp's id (`lampi ctl --thing`).
    pub fn device_id(mut self, id: Option<String>) -> Overrides {
        self.device_id = id;
        self
    }

    /// `lampi run --state-dir`.
    pub fn state_dir(mut self, dir: Option<PathBuf>) -> Overrides {
        self.state_dir = dir;
        self
    }

    /// `lampi run --sim`: a developer's run, whose state goes to their own state directory when
    /// nothing else names one (they have no /var/lib/lampi).
    pub fn sim(mut self, sim: bool) -> Overrides {
        self.sim = sim;
        self
    }

    /// `lampi run --no-ui`: no touchscreen whatever the config says.
    pub fn no_ui(mut self, no_ui: bool) -> Overrides {
        self.no_ui = no_ui;
        self
    }
}

/// The settings the config leaves open, settled once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    device_id: String,
    state_dir: PathBuf,
    shadow_role: ShadowRole,
    shadow_prefix: String,
    display: Display,
}

impl Resolved {
    /// Settles `config` with `overrides` on this machine: reads `/sys/class/net` when no device
    /// id is given, and the environment when no state directory is.
    pub fn new(config: &Config, overrides: Overrides) -> Resolved {
        let env = |name| std::env::var_os(name).map(PathBuf::from);
        let device_id = overrides
            .device_id
            .or_else(|| config.device.id.clone())
            .unwrap_or_else(|| mac_device_id(Path::new("/sys/class/net")).unwrap_or_else(|| "lampi".into()));
        let state_dir = overrides
            .state_dir
            .or_else(|| config.device.state_dir.clone())
            .or_else(|| env("STATE_DIRECTORY"))
            .or_else(|| {
                overrides.sim.then(|| {
                    env("XDG_STATE_HOME")
                        .or_else(|| env("HOME").map(|home| home.join(".local/state")))
                        .map(|base| base.join("lampi"))
                })?
            })
            .unwrap_or_else(|| PathBuf::from(SYSTEM_STATE_DIR));
        let shadow_prefix = config
            .shadow
            .topic_prefix
            .clone()
            .unwrap_or_else(|| format!("$aws/things/{device_id}/shadow/"));
        Resolved {
            device_id,
            state_dir,
            shadow_role: config.shadow.service.role(),
            shadow_prefix,
            display: if overrides.no_ui {
                Display::None
            } else {
                config.ui.display
            },
        }
    }

    /// The lamp's id: configured, or derived from this machine's network hardware.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn shadow_role(&self) -> ShadowRole {
        self.shadow_role
    }

    /// Where the touchscreen shows, if anywhere.
    pub fn display(&self) -> Display {
        self.display
    }

    /// `$aws/things/<device id>/shadow/` unless configured.
    pub fn shadow_prefix(&self) -> &str {
        &self.shadow_prefix
    }
}

impl ShadowService {
    /// The lamp's part in the shadow protocol. Without a shadow service the lamp still keeps
    /// its own document, as a host would, for the screen and the state file.
    pub fn role(self) -> ShadowRole {
        match self {
            ShadowService::Aws => ShadowRole::Client,
            ShadowService::Device | ShadowService::Off => ShadowRole::Host,
        }
    }

    /// The config's name for it, which the settings screen shows.
    pub fn name(self) -> &'static str {
        match self {
            ShadowService::Device => "device",
            ShadowService::Aws => "aws",
            ShadowService::Off => "off",
        }
    }
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
