//! Every topic one lamp uses, and what an incoming topic is for this lamp: pure, no I/O.

use crate::config::{Config, Resolved, ShadowService};
use crate::core::lamp::{ShadowOp, ShadowRole, ShadowTopic};
use crate::protocol::homeassistant::Entity;
use crate::protocol::lampi;
use crate::protocol::pairing::PairingTopics;

/// Every topic the lamp uses, with the configured prefixes applied.
#[derive(Clone, Debug)]
pub struct Topics {
    pub(super) set_config: String,
    pub(super) set_config_rejected: String,
    pub(super) changed: String,
    pub(super) connection_state: String,
    /// Analytics events, QoS 1.
    pub(super) events: String,
    /// Snooze or dismiss the ringing alarm; the answer goes to `alarm_result`.
    pub(super) alarm: String,
    pub(super) alarm_result: String,
    pub(super) pairing: PairingTopics,
    /// LAMPI's retained association state.
    pub(super) associated: String,
    /// Whether `associated` also shows the code (`pairing.code_on_lamp_topic`).
    pub(super) code_on_lamp_topic: bool,
    /// `$aws/things/<thing>/shadow/` when the lamp has a shadow, hosted or in the cloud.
    pub(super) shadow: Option<String>,
    shadow_role: ShadowRole,
    pub(super) homeassistant: Option<HomeAssistant>,
}

#[derive(Clone, Debug)]
pub(super) struct HomeAssistant {
    pub(super) entity: Entity,
    /// Home Assistant says "online" here when it (re)starts; discovery is then sent again.
    pub(super) status: String,
}

/// What an incoming topic is for this lamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// LAMPI's `set_config`.
    SetConfig,
    /// Snooze or dismiss the ringing alarm.
    Alarm,
    PairingRequest,
    PairingAssociate,
    PairingUnpair,
    /// As host: a request for the lamp to answer.
    ShadowRequest(ShadowOp),
    /// As client: a message from the cloud's shadow service.
    Cloud(ShadowTopic),
    /// Home Assistant's birth and will.
    HomeAssistantStatus,
    HomeAssistantCommand,
    /// A command that arrived retained: MQTT would replay it at every subscribe, so it would
    /// act again at every reconnect (a delete, an unpairing...).
    RetainedCommand,
}

/// What a lamp following a cloud shadow listens to. The documents and `delete/accepted` tell it
/// of deletions, for which AWS sends no delta.
const CLOUD_MESSAGES: [ShadowTopic; 7] = [
    ShadowTopic::UpdateDelta,
    ShadowTopic::UpdateDocuments,
    ShadowTopic::DeleteAccepted,
    ShadowTopic::UpdateAccepted,
    ShadowTopic::UpdateRejected,
    ShadowTopic::GetAccepted,
    ShadowTopic::GetRejected,
];

const SHADOW_REQUESTS: [(&str, ShadowOp); 3] = [
    ("update", ShadowOp::Update),
    ("get", ShadowOp::Get),
    ("delete", ShadowOp::Delete),
];

impl Topics {
    pub fn new(config: &Config, resolved: &Resolved) -> Topics {
        let device_id = resolved.device_id();
        let prefix = &config.mqtt.topic_prefix;
        let connection_state = format!("{prefix}lamp/connection/{}/state", config.mqtt.client_id);
        let homeassistant = config.homeassistant.enabled.then(|| {
            let discovery = &config.homeassistant.discovery_prefix;
            HomeAssistant {
                entity: Entity::new(discovery, device_id, env!("CARGO_PKG_VERSION"), &connection_state),
                status: format!("{discovery}/status"),
            }
        });
        Topics {
            set_config: format!("{prefix}lamp/set_config"),
            set_config_rejected: format!("{prefix}lamp/set_config/rejected"),
            changed: format!("{prefix}lamp/changed"),
            connection_state,
            events: format!("lampi/{device_id}/events"),
            alarm: lampi::alarm_topic(device_id),
            alarm_result: format!("{}/result", lampi::alarm_topic(device_id)),
            pairing: PairingTopics::new(device_id),
            associated: format!("{prefix}lamp/associated"),
            code_on_lamp_topic: config.pairing.code_on_lamp_topic,
            shadow: (config.shadow.service != ShadowService::Off).then(|| resolved.shadow_prefix().to_owned()),
            shadow_role: resolved.shadow_role(),
            homeassistant,
        }
    }

    /// What a message on `topic`, retained or not, is for this lamp; `None` for topics it does
    /// not act on.
    pub(super) fn route(&self, topic: &str, retain: bool) -> Option<Route> {
        if retain && !self.is_announcement(topic) {
            return Some(Route::RetainedCommand);
        }
        let fixed = [
            (&self.set_config, Route::SetConfig),
            (&self.alarm, Route::Alarm),
            (&self.pairing.request, Route::PairingRequest),
            (&self.pairing.associate, Route::PairingAssociate),
            (&self.pairing.unpair, Route::PairingUnpair),
        ];
        if let Some((_, route)) = fixed.into_iter().find(|(name, _)| *name == topic) {
            return Some(route);
        }
        if let Some(op) = self.shadow_request(topic) {
            return Some(Route::ShadowRequest(op));
        }
        if let Some(message) = self.cloud_message(topic) {
            return Some(Route::Cloud(message));
        }
        let ha = self.homeassistant.as_ref()?;
        if topic == ha.status {
            Some(Route::HomeAssistantStatus)
        } else {
            (topic == ha.entity.command_topic).then_some(Route::HomeAssistantCommand)
        }
    }

    /// Whether `topic` announces a state rather than asking the lamp to do something; only such
    /// messages are taken when they arrive retained.
    fn is_announcement(&self, topic: &str) -> bool {
        self.homeassistant.as_ref().is_some_and(|ha| ha.status == topic)
    }

    fn shadow_request(&self, topic: &str) -> Option<ShadowOp> {
        if self.shadow_role != ShadowRole::Host {
            return None;
        }
        let operation = topic.strip_prefix(self.shadow.as_deref()?)?;
        SHADOW_REQUESTS
            .iter()
            .find(|(name, _)| *name == operation)
            .map(|(_, op)| *op)
    }

    fn cloud_message(&self, topic: &str) -> Option<ShadowTopic> {
        if self.shadow_role != ShadowRole::Client {
            return None;
        }
        let suffix = topic.strip_prefix(self.shadow.as_deref()?)?;
        CLOUD_MESSAGES.into_iter().find(|t| t.suffix() == suffix)
    }

    /// Everything [`Topics::route`] routes when not retained, to subscribe to.
    pub(super) fn subscriptions(&self) -> Vec<String> {
        let suffixes: Vec<&str> = match self.shadow_role {
            ShadowRole::Host => SHADOW_REQUESTS.iter().map(|(name, _)| *name).collect(),
            ShadowRole::Client => CLOUD_MESSAGES.iter().map(|t| t.suffix()).collect(),
        };
        let shadow = self
            .shadow
            .iter()
            .flat_map(|prefix| suffixes.iter().map(move |s| format!("{prefix}{s}")));
        let homeassistant = self
            .homeassistant
            .iter()
            .flat_map(|ha| [ha.entity.command_topic.clone(), ha.status.clone()]);
        [
            self.set_config.clone(),
            self.alarm.clone(),
            self.pairing.request.clone(),
            self.pairing.associate.clone(),
            self.pairing.unpair.clone(),
        ]
        .into_iter()
        .chain(shadow)
        .chain(homeassistant)
        .collect()
    }
}

#[cfg(test)]
#[path = "topics_tests.rs"]
mod tests;
