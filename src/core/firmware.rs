//! Remote firmware updates, the deciding half: the cloud sets `desired.firmware.version`; the
//! lamp decides whether to ask its privileged updater for it, and reports how it went in
//! `reported.firmware.update`. Installing is the updater's job (`lampi-update`, docs/PROTOCOL.md).
//!
//! A version is asked for once: a failure is reported and not retried until the cloud asks
//! for a different version. A downgrade needs `allow_downgrade: true`.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The end of the reason a downgrade was refused: the cloud may then ask again, allowing it.
const DOWNGRADE_REFUSED: &str = "a downgrade needs allow_downgrade";
/// An update's error is reported cut to this many bytes: the updater's message can be long,
/// and the lamp's report must fit in its shadow section.
pub const MAX_ERROR_BYTES: usize = 256;

/// `major.minor.patch`, as in Cargo.toml.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u64, u64, u64);

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.').map(|p| {
            let digits = !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| p.parse().ok()).flatten()
        });
        let version = Version(parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(version)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateState {
    /// Asked of the updater, not yet started.
    Requested,
    Downloading,
    Installing,
    Succeeded,
    Failed,
}

impl UpdateState {
    /// The name `reported.firmware.update.state` has.
    pub fn name(self) -> &'static str {
        match self {
            UpdateState::Requested => "requested",
            UpdateState::Downloading => "downloading",
            UpdateState::Installing => "installing",
            UpdateState::Succeeded => "succeeded",
            UpdateState::Failed => "failed",
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, UpdateState::Succeeded | UpdateState::Failed)
    }
}

/// Where an update stands: the updater's status file and `reported.firmware.update`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub state: UpdateState,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the lamp asks its updater for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareRequest {
    pub version: String,
    pub allow_downgrade: bool,
}

#[derive(Clone, Debug)]
pub struct Firmware {
    running: String,
    status: Option<UpdateStatus>,
}

impl Firmware {
    /// The running version, and the last update's status as saved. An update that was under
    /// way for the version now running has succeeded: installing it restarted the lamp.
    pub fn new(running: &str, saved: Option<UpdateStatus>) -> Firmware {
        let status = saved.map(|mut status| {
            if status.version == running && !status.state.finished() {
                status.state = UpdateState::Succeeded;
                status.error = None;
            }
            status
        });
        Firmware {
            running: running.to_owned(),
            status,
        }
    }

    pub fn status(&self) -> Option<&UpdateStatus> {
        self.status.as_ref()
    }

    /// Looks at `desired.firmware` (validated); returns the request to send the updater, if
    /// one is due. A refused downgrade is reported as failed.
    pub fn desire(&mut self, desired: Option<&Value>) -> Option<FirmwareRequest> {
        let wanted = desired?.get("version")?.as_str()?;
        let allow_downgrade = desired?.get("allow_downgrade").and_then(Value::as_bool) == Some(true);
        let asked_before = self.status.as_ref().is_some_and(|s| {
            let refused_downgrade = s.error.as_deref().is_some_and(|e| e.ends_with(DOWNGRADE_REFUSED));
            s.version == wanted && !(allow_downgrade && refused_downgrade)
        });
        if wanted == self.running || asked_before {
            return None;
        }
        let order = Version::parse(wanted)
            .zip(Version::parse(&self.running))
            .map(|(wanted, running)| wanted.cmp(&running));
        if order == Some(Ordering::Less) && !allow_downgrade {
            self.status = Some(UpdateStatus {
                state: UpdateState::Failed,
                version: wanted.to_owned(),
                error: Some(format!(
                    "{wanted} is older than the running {}: {DOWNGRADE_REFUSED}",
                    self.running
                )),
            });
            return None;
        }
        self.status = Some(UpdateStatus {
            state: UpdateState::Requested,
            version: wanted.to_owned(),
            error: None,
        });
        Some(FirmwareRequest {
            version: wanted.to_owned(),
            allow_downgrade,
        })
    }

    /// The updater's progress; only for the version asked of it.
    pub fn progress(&mut self, status: UpdateStatus) -> bool {
        let ours = self.status.as_ref().is_some_and(|s| s.version == status.version);
        if ours && self.status.as_ref() != Some(&status) {
            self.status = Some(status);
            return true;
        }
        false
    }

    /// `reported.firmware`.
    pub fn report(&self) -> Value {
        let update = self.status.clone().map(|mut status| {
            if let Some(error) = &mut status.error {
                super::schema::cut_text(error, MAX_ERROR_BYTES);
                error.retain(|c| !c.is_control());
            }
            status
        });
        super::report::to_value(&super::report::FirmwareReport {
            version: self.running.clone(),
            update,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn desired(version: &str, allow_downgrade: bool) -> Value {
        json!({"version": version, "allow_downgrade": allow_downgrade})
    }

    #[test]
    fn versions_parse_strictly_and_compare_numerically() {
        assert!(Version::parse("0.10.0") > Version::parse("0.9.9"));
        for bad in ["1.2", "1.2.3.4", "1.2.x", "", "1..2", "-1.2.3", "1.2.3-rc1", " 1.2.3"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn asks_once_reports_progress_and_never_retries_a_failure() {
        let mut firmware = Firmware::new("0.1.0", None);
        assert_eq!(firmware.desire(Some(&desired("0.1.0", false))), None, "already running");
        let request = firmware.desire(Some(&desired("0.2.0", false))).unwrap();
        assert_eq!(request.version, "0.2.0");
        assert_eq!(firmware.desire(Some(&desired("0.2.0", false))), None, "asked once");
        let failed = UpdateStatus {
            state: UpdateState::Failed,
            version: "0.2.0".into(),
            error: Some("E: Version '0.2.0' for 'lampi' was not found".into()),
        };
        assert!(firmware.progress(failed.clone()));
        assert_eq!(firmware.report()["update"]["state"], json!("failed"));
        assert_eq!(firmware.desire(Some(&desired("0.2.0", false))), None, "not retried");
        // Another version is a new request; progress for any other version is ignored.
        assert!(firmware.desire(Some(&desired("0.2.1", false))).is_some());
        assert!(!firmware.progress(failed));
    }

    #[test]
    fn a_downgrade_needs_to_be_asked_for() {
        let mut firmware = Firmware::new("0.3.0", None);
        assert_eq!(firmware.desire(Some(&desired("0.2.0", false))), None);
        let report = firmware.report();
        assert_eq!(report["update"]["state"], json!("failed"));
        assert!(report["update"]["error"].as_str().unwrap().contains("allow_downgrade"));
        // Asked again, allowing it, it goes ahead — once.
        assert!(firmware.desire(Some(&desired("0.2.0", true))).is_some());
        assert_eq!(firmware.desire(Some(&desired("0.2.0", true))), None);
    }

    #[test]
    fn an_update_in_flight_for_the_running_version_succeeded() {
        let installing = UpdateStatus {
            state: UpdateState::Installing,
            version: "0.2.0".into(),
            error: None,
        };
        let firmware = Firmware::new("0.2.0", Some(installing));
        assert_eq!(
            firmware.report(),
            json!({"version": "0.2.0", "update": {"state": "succeeded", "version": "0.2.0"}})
        );
    }
}
