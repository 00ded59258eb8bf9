//! What `reported` says: the truth about the lamp, and local changes (LAMPI, the
//! touchscreen) coalesced into one shadow update within [`LOCAL_REPORT_DELAY`].

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Lamp, ShadowMessage, ShadowRole, ShadowTopic};
use crate::core::colour::Rgb;
use crate::core::light::LightChange;
use crate::core::schema;
use crate::core::shadow::{self, SectionUpdate, UpdateRequest};

/// While the light fades, `reported.output` is updated at most this often (and always with
/// the final value), so watching the shadow does not cost a message per fade frame.
pub const OUTPUT_REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// Local changes reach the shadow after at most this long, together: a slider drag or a flood
/// of `set_config` becomes a few shadow updates instead of one per message. A shadow request
/// flushes them first, so it always sees them.
pub const LOCAL_REPORT_DELAY: Duration = Duration::from_millis(100);

impl Lamp {
    /// The `desired` patch that local changes are collecting, due within
    /// [`LOCAL_REPORT_DELAY`].
    pub(super) fn pending_patch(&mut self, now: Instant) -> &mut Map<String, Value> {
        &mut self
            .pending_local
            .get_or_insert_with(|| (Map::new(), now + LOCAL_REPORT_DELAY))
            .0
    }

    /// A change made on the lamp itself (LAMPI topic, touchscreen): applied at once; within
    /// [`LOCAL_REPORT_DELAY`] it is reported and written to `desired` too, so the cloud does not
    /// push the old value back.
    pub(super) fn local_change(
        &mut self,
        change: LightChange,
        transition: Option<Duration>,
        now: Instant,
        timestamp: u64,
    ) {
        let left_natural = self.person_takes_over(now, timestamp);
        let transition = transition.unwrap_or(Duration::from_millis(self.transition_ms));
        self.fader.apply(change, transition, now);
        let state = self.fader.state();
        let patch = self.pending_patch(now);
        if left_natural {
            patch.insert("mode".into(), json!("manual"));
        }
        let desired_light = patch
            .entry("light")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("the light patch is an object");
        if change.on.is_some() || left_natural {
            desired_light.insert("on".into(), json!(state.on));
        }
        for (key, value, given) in [
            ("hue", state.hue, change.hue),
            ("saturation", state.saturation, change.saturation),
            ("brightness", state.brightness, change.brightness),
        ] {
            if given.is_some() || left_natural {
                desired_light.insert(key.into(), json!(value.get()));
            }
        }
    }

    /// Puts pending local changes into the shadow.
    pub(super) fn flush_local(&mut self, timestamp: u64) -> Vec<ShadowMessage> {
        let Some((mut patch, _)) = self.pending_local.take() else {
            return Vec::new();
        };
        patch.retain(|_, v| v.as_object().is_none_or(|o| !o.is_empty()));
        if patch.contains_key("mode") || patch.contains_key("alarms") {
            self.settings_changed = true;
        }
        let desired = (!patch.is_empty()).then_some(SectionUpdate::Merge(patch));
        self.report_with(desired, timestamp)
    }

    /// The patch that makes `reported` tell the truth about the lamp.
    pub(super) fn report_patch(&self) -> Option<SectionUpdate> {
        let mut truth = self.settings();
        truth.insert("alarm".into(), self.scheduler.alarms().report(self.wall));
        truth.insert(
            "clock".into(),
            json!({"synchronised": self.clock.synchronised, "require_sync": self.clock.require_sync}),
        );
        if let Some(owner) = self.pairing.owner() {
            truth.insert("owner".into(), crate::core::report::to_value(owner));
        }
        truth.insert(
            "light".into(),
            schema::light_value(&self.fader.state(), self.transition_ms),
        );
        let Rgb { r, g, b } = self.reported_output;
        truth.insert("output".into(), json!({"r": r, "g": g, "b": b}));
        truth.insert("firmware".into(), self.firmware.report());
        if let Some(serving) = self.ble_serving {
            truth.insert("ble".into(), json!({ "serving": serving }));
        }
        if let Some(since) = self.connected_since {
            truth.insert("connected_since".into(), json!(since));
        }
        if let Some(broker) = self.broker {
            truth.insert("broker".into(), json!(broker));
        }
        let patch = shadow::diff_patch(&self.shadow.reported, &truth);
        (!patch.is_empty()).then_some(SectionUpdate::Merge(patch))
    }

    /// Sends `reported` whatever is not already true in it.
    pub(super) fn report(&mut self, timestamp: u64) -> Vec<ShadowMessage> {
        self.report_with(None, timestamp)
    }

    /// [`Lamp::report`], in one update with a change to `desired`.
    pub(super) fn report_with(&mut self, desired: Option<SectionUpdate>, timestamp: u64) -> Vec<ShadowMessage> {
        self.report_due = false;
        let reported = self.report_patch();
        self.internal_update(desired, reported, timestamp)
    }

    pub(super) fn internal_update(
        &mut self,
        desired: Option<SectionUpdate>,
        reported: Option<SectionUpdate>,
        timestamp: u64,
    ) -> Vec<ShadowMessage> {
        if desired.is_none() && reported.is_none() {
            return Vec::new();
        }
        if self.identity.role == ShadowRole::Client {
            return vec![self.update_request(desired, reported, timestamp)];
        }
        let request = UpdateRequest {
            desired,
            reported,
            client_token: None,
            version: None,
        };
        match self.shadow.update(request, timestamp, schema::validate) {
            Ok(accepted) => accepted_messages(accepted),
            // Only a bug can make the lamp's own report invalid; say so where it is visible.
            Err(e) => vec![ShadowMessage {
                topic: ShadowTopic::UpdateRejected,
                payload: e.document(timestamp),
            }],
        }
    }
}

pub(super) fn accepted_messages(accepted: shadow::Accepted) -> Vec<ShadowMessage> {
    let mut messages = vec![
        ShadowMessage {
            topic: ShadowTopic::UpdateAccepted,
            payload: accepted.accepted,
        },
        ShadowMessage {
            topic: ShadowTopic::UpdateDocuments,
            payload: accepted.documents,
        },
    ];
    if let Some(delta) = accepted.delta {
        messages.push(ShadowMessage {
            topic: ShadowTopic::UpdateDelta,
            payload: delta,
        });
    }
    messages
}
