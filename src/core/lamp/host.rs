//! The lamp as the shadow service (a plain broker such as Mosquitto): it answers `get`,
//! `update` and `delete` requests itself.

use std::time::Instant;

use serde_json::{Map, Value};

use super::report::accepted_messages;
use super::{Lamp, Refusal, ShadowMessage, ShadowOp, ShadowRole, ShadowTopic};
use crate::core::schema;
use crate::core::shadow::{self, SectionUpdate, ShadowError, UpdateRequest};

impl Lamp {
    /// Settings changed on the lamp itself (the touchscreen's alarms, natural light): checked as
    /// a shadow update would be, then written to `desired` at once — or asked of the cloud
    /// service when the lamp is its client — so every app sees them. A refused change changes
    /// nothing and says why.
    pub(super) fn local_settings(
        &mut self,
        patch: Map<String, Value>,
        now: Instant,
        timestamp: u64,
    ) -> Result<Vec<ShadowMessage>, Refusal> {
        let request = |patch| UpdateRequest {
            desired: Some(SectionUpdate::Merge(patch)),
            reported: None,
            client_token: None,
            version: None,
        };
        let mut trial = self.shadow.clone();
        let accepted = trial
            .update(request(patch.clone()), timestamp, schema::validate)
            .map_err(|e| Refusal::InvalidSettings(e.message))?;
        let mut messages = self.flush_local(timestamp);
        if self.identity.role == ShadowRole::Client {
            messages.push(self.update_request(Some(SectionUpdate::Merge(patch)), None, timestamp));
            return Ok(messages);
        }
        self.shadow = trial;
        messages.extend(accepted_messages(accepted));
        self.act_on_delta(now, timestamp);
        messages.extend(self.report(timestamp));
        Ok(messages)
    }

    /// A request on the shadow's `update`, `get` or `delete` topic.
    pub fn shadow_request(&mut self, op: ShadowOp, payload: &[u8], now: Instant, timestamp: u64) -> Vec<ShadowMessage> {
        let mut messages = self.flush_local(timestamp);
        messages.extend(self.answer(op, payload, now, timestamp));
        messages
    }

    pub(super) fn answer(&mut self, op: ShadowOp, payload: &[u8], now: Instant, timestamp: u64) -> Vec<ShadowMessage> {
        let reply = |topic, payload| vec![ShadowMessage { topic, payload }];
        let rejected = |topic, e: ShadowError| reply(topic, e.document(timestamp));
        match op {
            ShadowOp::Get => match shadow::parse_token_request(payload)
                .and_then(|token| self.shadow.get(&self.identity.thing, token.as_deref(), timestamp))
            {
                Ok(doc) => reply(ShadowTopic::GetAccepted, doc),
                Err(e) => rejected(ShadowTopic::GetRejected, e),
            },
            ShadowOp::Delete => {
                // The settings go with the document. If there were any, the lamp acts on that
                // and reports it, which recreates the document; else it stays deleted until the
                // lamp's next report.
                let had_settings = !self.settings().is_empty();
                match shadow::parse_token_request(payload)
                    .and_then(|token| self.shadow.delete(&self.identity.thing, token.as_deref(), timestamp))
                {
                    Ok(doc) => {
                        self.settings_changed |= had_settings;
                        reply(ShadowTopic::DeleteAccepted, doc)
                    }
                    Err(e) => rejected(ShadowTopic::DeleteRejected, e),
                }
            }
            ShadowOp::Update => {
                let request = match shadow::parse_update(payload) {
                    Ok(request) => request,
                    Err(e) => return rejected(ShadowTopic::UpdateRejected, e),
                };
                let mut messages = match self.shadow.update(request, timestamp, schema::validate) {
                    Ok(accepted) => accepted_messages(accepted),
                    Err(e) => return rejected(ShadowTopic::UpdateRejected, e),
                };
                self.act_on_delta(now, timestamp);
                // The lamp reports what it really is; this also corrects anything an app wrote
                // into `reported` that is not true.
                messages.extend(self.report(timestamp));
                messages
            }
        }
    }
}
