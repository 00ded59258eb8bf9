//! The sections of `reported` that the core writes and the touchscreen reads, as types: a
//! rename on one side no longer compiles while silently blanking the other.
//!
//! Times are RFC 3339 text in the alarm's zone, exactly as published. Reading is lenient
//! (missing fields take their defaults): `reported` is a shared document an app may have
//! written to before the lamp corrects it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::firmware::UpdateStatus;
use super::pairing::Owner;

/// `reported.alarm`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlarmReport {
    pub state: AlarmState,
    /// What rings (or rises towards its time), when something does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ringing: Option<Ringing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<String>,
    /// The next alarm due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<NextAlarm>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    #[default]
    Idle,
    Ringing,
    Snoozed,
}

/// `reported.alarm.ringing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ringing {
    pub id: String,
    /// The alarm that rings, then those merged into it.
    pub alarms: Vec<String>,
    pub label: String,
    pub action: RingAction,
    /// When full light is reached.
    pub at: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingAction {
    #[default]
    Blink,
    Sunrise,
}

/// `reported.alarm.next`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NextAlarm {
    pub id: String,
    pub label: String,
    pub at: String,
}

/// `reported.firmware`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareReport {
    /// The version running.
    pub version: String,
    /// The last update asked for, and how it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateStatus>,
}

/// A section as the shadow holds it.
pub fn to_value(section: &impl Serialize) -> Value {
    serde_json::to_value(section).expect("report sections always serialise")
}

fn section<T: for<'de> Deserialize<'de>>(reported: &Map<String, Value>, key: &str) -> Option<T> {
    T::deserialize(reported.get(key)?).ok()
}

/// `reported.alarm`, if it reads as one.
pub fn alarm(reported: &Map<String, Value>) -> Option<AlarmReport> {
    section(reported, "alarm")
}

/// `reported.owner`: whom the lamp belongs to, if anyone.
pub fn owner(reported: &Map<String, Value>) -> Option<Owner> {
    section(reported, "owner")
}

/// `reported.firmware`.
pub fn firmware(reported: &Map<String, Value>) -> Option<FirmwareReport> {
    section(reported, "firmware")
}
