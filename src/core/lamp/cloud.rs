//! The lamp as a client of a cloud shadow service (AWS IoT Core): it asks instead of
//! answering — client tokens, `get/accepted`, deltas and documents, a refetch when refused.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{Lamp, ShadowMessage, ShadowTopic};
use crate::core::schema;
use crate::core::shadow::{self, SectionUpdate, UpdateRequest};

impl Lamp {
    pub(super) fn next_token(&mut self) -> String {
        self.requests += 1;
        format!("lampi-{}-{}", self.identity.thing, self.requests)
    }

    pub(super) fn is_own(&self, token: &Value) -> bool {
        token
            .as_str()
            .is_some_and(|t| t.starts_with(&format!("lampi-{}-", self.identity.thing)))
    }

    pub(super) fn get_request(&mut self) -> ShadowMessage {
        ShadowMessage {
            topic: ShadowTopic::Get,
            payload: json!({ "clientToken": self.next_token() }),
        }
    }

    /// An update request for the cloud. The lamp's view of the document takes the change at
    /// once, so the next report only sends what changed since. No `version` is sent: the lamp's
    /// reports are the truth, and a local change is meant to win over an older remote one.
    pub(super) fn update_request(
        &mut self,
        desired: Option<SectionUpdate>,
        reported: Option<SectionUpdate>,
        timestamp: u64,
    ) -> ShadowMessage {
        let section = |update: &Option<SectionUpdate>| match update {
            Some(SectionUpdate::Merge(patch)) => Some(Value::Object(patch.clone())),
            Some(SectionUpdate::Clear) => Some(Value::Null),
            None => None,
        };
        let mut state = Map::new();
        if let Some(value) = section(&desired) {
            state.insert("desired".into(), value);
        }
        if let Some(value) = section(&reported) {
            state.insert("reported".into(), value);
        }
        let payload = json!({ "state": state, "clientToken": self.next_token() });
        let mirror = UpdateRequest {
            desired,
            reported,
            client_token: None,
            version: None,
        };
        let _ = self.shadow.update(mirror, timestamp, |_, _| Ok(()));
        ShadowMessage {
            topic: ShadowTopic::Update,
            payload,
        }
    }

    /// A message from the cloud's shadow service (`get/accepted`, `update/delta`, ...).
    pub(super) fn cloud_message(
        &mut self,
        topic: ShadowTopic,
        payload: &[u8],
        now: Instant,
        timestamp: u64,
    ) -> Vec<ShadowMessage> {
        let Ok(doc) = serde_json::from_slice::<Value>(payload) else {
            return Vec::new();
        };

        let mut messages = self.flush_local(timestamp);
        match topic {
            ShadowTopic::GetAccepted if self.is_own(&doc["clientToken"]) => {
                let section = |name: &str| doc["state"][name].as_object().cloned().unwrap_or_default();
                self.take_desired(section("desired"), now, timestamp);
                self.shadow.reported = section("reported");
                self.shadow.exists = true;
                self.cloud_version = doc["version"].as_u64().unwrap_or_default();
            }
            // AWS sends no delta when a desired key is deleted; the documents show it, as the
            // change from `previous` to `current`, which is applied as a delta is.
            ShadowTopic::UpdateDocuments => {
                let version = doc["current"]["version"].as_u64().unwrap_or_default();
                if version <= self.cloud_version {
                    return messages;
                }
                self.cloud_version = version;
                let desired = |document: &Value| document["state"]["desired"].as_object().cloned().unwrap_or_default();
                let change = shadow::diff_patch(&desired(&doc["previous"]), &desired(&doc["current"]));
                if change.is_empty() {
                    return messages;
                }
                let mut desired = self.shadow.desired.clone();
                shadow::merge_into(&mut desired, &change);
                self.take_desired(desired, now, timestamp);
            }
            // The document is gone, and every setting with it; the full report recreates it.
            ShadowTopic::DeleteAccepted => {
                self.shadow.reported.clear();
                self.take_desired(Map::new(), now, timestamp);
            }
            ShadowTopic::UpdateDelta => {
                let mut desired = self.shadow.desired.clone();
                if let Some(delta) = doc["state"].as_object() {
                    shadow::merge_into(&mut desired, delta);
                }
                self.take_desired(desired, now, timestamp);
            }
            ShadowTopic::UpdateRejected if self.is_own(&doc["clientToken"]) => {
                // The lamp's view of the document is wrong (a 409 from a service that versions
                // every write, or anything else refused): fetch it and start from there.
                messages.push(self.get_request());
                return messages;
            }
            // No document yet (404): a full report creates it, with the settings the lamp keeps
            // (e.g. from before it followed a cloud) in `desired` too, or the next fetch would
            // find none there and end them.
            ShadowTopic::GetRejected if self.is_own(&doc["clientToken"]) => {
                self.shadow.reported.clear();
                let settings = self.settings();
                let desired = (!settings.is_empty()).then_some(SectionUpdate::Merge(settings));
                messages.extend(self.report_with(desired, timestamp));
                return messages;
            }
            _ => return messages,
        }
        messages.extend(self.report(timestamp));
        messages
    }

    /// Adopts the cloud's desired section when the lamp's schema allows it, and acts on what
    /// differs from reported. A cloud service cannot be answered "400", so an invalid desired
    /// section is logged and the lamp keeps the last valid one.
    pub(super) fn take_desired(&mut self, desired: Map<String, Value>, now: Instant, timestamp: u64) {
        match schema::validate(&desired, &Map::new()) {
            Ok(()) => {
                self.shadow.desired = desired;
                self.act_on_delta(now, timestamp);
            }
            Err(reason) => tracing::warn!("ignoring the cloud's desired state: {reason}"),
        }
    }
}
