//! The lamp core's one way in ([`Input`], with [`Now`]) and one way out ([`Output`], with the
//! next [`Wake`]). A new input source (BLE, a fleet simulator) is a new [`Input`] variant and
//! the outputs it needs, not a new method on [`super::Lamp`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::core::alarm::{self, AlarmMemory};
use crate::core::colour::Rgb;
use crate::core::firmware::{FirmwareRequest, UpdateStatus};
use crate::core::light::{LightChange, LightState};
use crate::core::pairing::{self, Owner};
use crate::core::shadow::Shadow;

/// The one shape of time the core takes: the monotonic clock (fades, timeouts) and the wall
/// clock in whole seconds (shadow metadata, alarms), read together by the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    mono: Instant,
    wall: DateTime<Utc>,
}

impl Now {
    /// The wall clock is kept to whole seconds, as the shadow's metadata has it.
    pub fn new(mono: Instant, wall: DateTime<Utc>) -> Now {
        Now::at(mono, u64::try_from(wall.timestamp()).unwrap_or(0))
    }

    /// From epoch seconds.
    pub fn at(mono: Instant, timestamp: u64) -> Now {
        let wall = DateTime::from_timestamp(i64::try_from(timestamp).unwrap_or(i64::MAX), 0).unwrap_or_default();
        Now { mono, wall }
    }

    pub fn mono(self) -> Instant {
        self.mono
    }

    pub fn wall(self) -> DateTime<Utc> {
        self.wall
    }

    /// Epoch seconds, for shadow metadata and analytics.
    pub fn timestamp(self) -> u64 {
        u64::try_from(self.wall.timestamp()).unwrap_or(0)
    }
}

/// When the lamp next needs [`Input::Tick`]: at a monotonic instant (fades, coalescing,
/// pairing expiry) or a wall-clock time (alarms, natural light samples); `None` for never.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wake {
    pub mono: Option<Instant>,
    pub wall: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadowOp {
    Update,
    Get,
    Delete,
}

/// Who keeps the shadow document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShadowRole {
    /// The lamp is the shadow service (a plain broker such as Mosquitto): it answers requests.
    #[default]
    Host,
    /// A cloud service (AWS IoT) keeps the document: the lamp sends requests and follows deltas.
    Client,
}

/// Shadow topics, relative to the shadow's topic prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadowTopic {
    /// Requests, which the lamp sends as a client of a cloud shadow service.
    Update,
    Get,
    UpdateAccepted,
    UpdateRejected,
    UpdateDelta,
    UpdateDocuments,
    GetAccepted,
    GetRejected,
    DeleteAccepted,
    DeleteRejected,
}

impl ShadowTopic {
    pub fn suffix(self) -> &'static str {
        match self {
            ShadowTopic::Update => "update",
            ShadowTopic::Get => "get",
            ShadowTopic::UpdateAccepted => "update/accepted",
            ShadowTopic::UpdateRejected => "update/rejected",
            ShadowTopic::UpdateDelta => "update/delta",
            ShadowTopic::UpdateDocuments => "update/documents",
            ShadowTopic::GetAccepted => "get/accepted",
            ShadowTopic::GetRejected => "get/rejected",
            ShadowTopic::DeleteAccepted => "delete/accepted",
            ShadowTopic::DeleteRejected => "delete/rejected",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ShadowMessage {
    pub topic: ShadowTopic,
    pub payload: Value,
}

/// A remote or touchscreen command for the ringing alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmCommand {
    Snooze,
    Dismiss,
}

/// Who asked to forget the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnpairSource {
    /// The touchscreen.
    Lamp,
    /// The cloud portal.
    Cloud,
}

/// What the lamp knows about its wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockStatus {
    /// The kernel says the clock is synchronised (NTP).
    pub synchronised: bool,
    /// Alarms ring only on a synchronised clock.
    pub require_sync: bool,
}

/// What a lamp remembers across restarts besides its light and shadow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub alarm_clock: AlarmMemory,
    pub owner: Option<Owner>,
    /// The last firmware update asked for, and how it went.
    pub firmware_update: Option<UpdateStatus>,
}

/// Everything that must survive a restart: what the store writes and a lamp starts from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Saved {
    pub light: LightState,
    pub shadow: Arc<Shadow>,
    pub memory: Memory,
}

/// The pairing state the screen and the cloud see.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairingView {
    /// The active code and when it expires (epoch seconds).
    pub code: Option<(String, u64)>,
    /// The monotonic expiry, for a countdown on screen.
    pub expires: Option<Instant>,
    pub owner: Option<Owner>,
}

/// The light as LAMPI reports it: after every accepted `set_config` (even one that changes
/// nothing, so every sender gets its echo) and whenever the shadow changes the light.
#[derive(Clone, Debug, PartialEq)]
pub struct Echo {
    pub state: LightState,
    /// Who made the last change; `shadow` for changes through the device shadow.
    pub client: String,
}

/// Everything that happens to a lamp.
#[derive(Debug)]
pub enum Input {
    /// A wake-up, or the shell's look at the clocks: what the wall clock is worth now.
    Tick(ClockStatus),
    /// The wall clock was set (NTP stepped it, or a person did).
    ClockStepped,
    /// A partial change from a named client (LAMPI's `client` field, the touchscreen), with its
    /// own fade or the lamp's default.
    Set {
        change: LightChange,
        transition: Option<Duration>,
        client: String,
    },
    /// A request on the shadow's `update`, `get` or `delete` topic (the lamp hosts the shadow).
    Shadow { op: ShadowOp, payload: Vec<u8> },
    /// A message from a cloud shadow service (the lamp is its client).
    Cloud { topic: ShadowTopic, payload: Vec<u8> },
    /// The broker connection came up, to the `broker`th of the configured brokers (from 1):
    /// `reported.broker`, so a lamp that failed over says where it is.
    Connected { broker: usize },
    /// Bluetooth LE started (`true`) or stopped serving: the adapter or BlueZ came or went.
    /// `reported.ble.serving` follows it; a lamp that never says has no `reported.ble`.
    BleServing(bool),
    /// A change to the settings in `desired` (alarms, mode, natural light) made on the lamp;
    /// answered with [`Answer::Settings`].
    Settings(Map<String, Value>),
    /// Snooze or dismiss the ringing alarm; answered with [`Answer::Alarm`].
    Alarm(AlarmCommand),
    /// Show a new pairing code, drawn from `seed` (the shell's randomness: the core reads none).
    RequestPairingCode { seed: [u8; 32] },
    /// The cloud matched `code` to this lamp for `owner`; answered with [`Answer::Associate`].
    Associate { code: String, owner: Owner },
    /// Forget the owner; answered with [`Answer::Unpair`].
    Unpair(UnpairSource),
    /// How the privileged updater is getting on.
    FirmwareStatus(UpdateStatus),
    /// The lamp stops: local changes still waiting for the shadow go into it now.
    Flush,
}

/// Why the lamp refused a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The settings break the shadow's schema (the schema's message says where).
    InvalidSettings(String),
    Alarm(alarm::NotRinging),
    Pairing(pairing::Refusal),
    NotPaired,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InvalidSettings(message) => f.write_str(message),
            Refusal::Alarm(refusal) => refusal.fmt(f),
            Refusal::Pairing(refusal) => refusal.fmt(f),
            Refusal::NotPaired => f.write_str("the lamp is not paired"),
        }
    }
}

impl std::error::Error for Refusal {}

/// The answer to an input that asked a question.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Settings(Result<(), Refusal>),
    Alarm(Result<(), Refusal>),
    Associate(Result<Owner, Refusal>),
    Unpair(Result<Owner, Refusal>),
}

/// Everything a lamp does to the world, drained with [`super::Lamp::poll_output`] after each
/// input.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// The duty cycles to show on the LED.
    Led(Rgb),
    /// A shadow message to publish.
    Shadow(ShadowMessage),
    /// An analytics event.
    Event(Value),
    /// A firmware version for the privileged updater.
    FirmwareRequest(FirmwareRequest),
    /// The light for LAMPI's `changed` topic.
    Echo(Echo),
    /// The pairing state changed.
    Pairing(PairingView),
    /// What must survive a restart changed.
    Saved(Saved),
    Answer(Answer),
}
