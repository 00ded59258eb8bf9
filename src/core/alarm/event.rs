//! What the alarm clock says happened: ring, merge, miss, snooze, dismiss; and why a snooze or
//! dismiss did nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::analytics::Event;

/// How a ring ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dismissal {
    /// Dismissed by a person (touchscreen, remote command).
    User,
    /// The light was changed by hand while it rang.
    Manual,
    /// `ring_minutes` passed.
    Auto,
    /// The alarm was deleted or disabled.
    Removed,
}

/// What happened, for analytics and for the device to act on.
#[derive(Clone, Debug, PartialEq)]
pub enum AlarmEvent {
    Ringing {
        id: String,
    },
    /// Due while another rang or was snoozed: rings with it.
    Merged {
        id: String,
        into: String,
    },
    Missed {
        id: String,
        at: DateTime<Utc>,
    },
    Snoozed {
        ids: Vec<String>,
        until: DateTime<Utc>,
    },
    Dismissed {
        ids: Vec<String>,
        how: Dismissal,
    },
    /// A one-off alarm has rung: the device disables it in the shadow.
    Disable {
        id: String,
    },
}

impl AlarmEvent {
    /// The analytics event, or `None` for internal ones.
    pub fn analytics(&self) -> Option<Event> {
        Some(match self.clone() {
            AlarmEvent::Ringing { id } => Event::AlarmRinging { alarm: id },
            AlarmEvent::Merged { id, into } => Event::AlarmMerged { alarm: id, into },
            AlarmEvent::Missed { id, at } => Event::AlarmMissed {
                alarm: id,
                due: at.timestamp(),
            },
            AlarmEvent::Snoozed { ids, until } => Event::AlarmSnoozed {
                alarms: ids,
                until: until.timestamp(),
            },
            AlarmEvent::Dismissed { ids, how } => Event::AlarmDismissed { alarms: ids, how },
            AlarmEvent::Disable { .. } => return None,
        })
    }
}

/// Why snooze or dismiss did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRinging {
    /// Snooze needs a ringing alarm.
    Snooze,
    /// Dismiss needs a ringing or snoozed one.
    Dismiss,
}

impl std::fmt::Display for NotRinging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotRinging::Snooze => "no alarm is ringing",
            NotRinging::Dismiss => "no alarm is ringing or snoozed",
        })
    }
}
