//! What each app asked of its lamps and what became of it. Pure: times come in as µs since the
//! run started; nothing here reads a clock or does I/O.
//!
//! - [`PkidMap`] ties a publish to its PUBACK: rumqttc 0.25 tells the packet id only in its
//!   `Outgoing::Publish(pkid)` event, in the order the one publishing task handed it requests.
//! - [`LampLedger`] keeps one lamp's intents (both kinds, in the order sent) and decides at the
//!   end which were reflected in a reported state, superseded by a later one that was, or lost.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

/// The two kinds of message an app sends a lamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A shadow `update` of `desired.light`, seen in `update/documents`' `reported`.
    Desired,
    /// `lamp/set_config`, echoed by its `client` in `lamp/changed`.
    SetConfig,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Desired => "desired",
            Kind::SetConfig => "set_config",
        }
    }

    /// Its place in the `[desired, set_config]` arrays of [`Outcome`].
    pub fn index(self) -> usize {
        match self {
            Kind::Desired => 0,
            Kind::SetConfig => 1,
        }
    }

    /// Which kind message `n` (0-based) of a stream is, so that `desired_share` of any prefix
    /// of the stream is desired (to within one message).
    pub fn nth(n: u64, desired_share: f64) -> Kind {
        let before = (n as f64 * desired_share).floor();
        let after = ((n + 1) as f64 * desired_share).floor();
        if after > before { Kind::Desired } else { Kind::SetConfig }
    }
}

/// A light as the apps ask for it and the lamp reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Light {
    pub on: bool,
    pub hue: f64,
    pub saturation: f64,
    pub brightness: f64,
}

impl Light {
    /// Values no other intent of the same lamp within 9000 has: a desired update cannot carry a
    /// tag (the shadow's schema refuses unknown fields), so its values are its tag. The kinds
    /// differ in saturation, so one kind is never taken for the other.
    pub fn for_intent(kind: Kind, seq: u64) -> Light {
        Light {
            on: true,
            hue: ((seq * 7919) % 1000) as f64 / 1000.0,
            saturation: match kind {
                Kind::Desired => 1.0,
                Kind::SetConfig => 0.5,
            },
            brightness: 0.1 + (seq % 900) as f64 / 1000.0,
        }
    }

    pub fn same(&self, other: &Light) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        self.on == other.on
            && close(self.hue, other.hue)
            && close(self.saturation, other.saturation)
            && close(self.brightness, other.brightness)
    }

    /// The shadow's form, `{"on", "hue", "saturation", "brightness"}` (`reported.light`, and
    /// `desired.light`).
    pub fn shadow_json(&self) -> Value {
        json!({"on": self.on, "hue": self.hue, "saturation": self.saturation, "brightness": self.brightness})
    }

    pub fn from_shadow(light: &Value) -> Option<Light> {
        Some(Light {
            on: light.get("on")?.as_bool()?,
            hue: light.get("hue")?.as_f64()?,
            saturation: light.get("saturation")?.as_f64()?,
            brightness: light.get("brightness")?.as_f64()?,
        })
    }

    /// LAMPI's form (`lamp/set_config`, `lamp/changed`): `{"on", "color": {"h", "s"}, "brightness"}`.
    pub fn lampi_json(&self) -> Value {
        json!({"on": self.on, "color": {"h": self.hue, "s": self.saturation}, "brightness": self.brightness})
    }

    pub fn from_lampi(changed: &Value) -> Option<Light> {
        let color = changed.get("color")?;
        Some(Light {
            on: changed.get("on")?.as_bool()?,
            hue: color.get("h")?.as_f64()?,
            saturation: color.get("s")?.as_f64()?,
            brightness: changed.get("brightness")?.as_f64()?,
        })
    }
}

/// `a{app}-{lamp}-{seq}`: the `client` of a set_config and the `clientToken` of a desired
/// update, which the answers echo.
pub fn tag(app: u64, lamp: u64, seq: u64) -> String {
    format!("a{app}-{lamp}-{seq}")
}

/// The inverse of [`tag`]: `(lamp, seq)` if `text` is one of app `app`'s tags.
pub fn parse_tag(app: u64, text: &str) -> Option<(u64, u64)> {
    let rest = text.strip_prefix('a')?;
    let (a, rest) = rest.split_once('-')?;
    let (lamp, seq) = rest.split_once('-')?;
    if a.parse::<u64>().ok()? != app {
        return None;
    }
    Some((lamp.parse().ok()?, seq.parse().ok()?))
}

/// Publishes waiting for their PUBACK, by packet id.
#[derive(Debug)]
pub struct PkidMap<T> {
    /// Handed to the client, packet id not known yet; in publish order.
    queued: VecDeque<T>,
    inflight: HashMap<u16, T>,
    /// Given a packet id still in flight (rumqttc's "collision"): sent once that one's PUBACK
    /// frees it.
    collided: HashMap<u16, T>,
    /// Publishes sent again (after a reconnect with the session kept).
    pub resent: u64,
}

impl<T> Default for PkidMap<T> {
    fn default() -> Self {
        Self {
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            collided: HashMap::new(),
            resent: 0,
        }
    }
}

impl<T> PkidMap<T> {
    /// Just before the QoS ≥ 1 publish is handed to the client.
    pub fn queued(&mut self, tag: T) {
        self.queued.push_back(tag);
    }

    /// `Outgoing::Publish(pkid)`.
    pub fn outgoing(&mut self, pkid: u16) {
        if pkid == 0 {
            return; // QoS 0: never queued here
        }
        if let Some(tag) = self.collided.remove(&pkid) {
            self.inflight.insert(pkid, tag);
        } else if self.inflight.contains_key(&pkid) {
            // The same publish again, with its packet id: it keeps its first send time.
            self.resent += 1;
        } else if let Some(tag) = self.queued.pop_front() {
            self.inflight.insert(pkid, tag);
        }
    }

    /// `Outgoing::AwaitAck(pkid)`: the next queued publish waits for `pkid` to be acknowledged.
    pub fn collision(&mut self, pkid: u16) {
        if let Some(tag) = self.queued.pop_front() {
            self.collided.insert(pkid, tag);
        }
    }

    /// `Incoming::PubAck(pkid)`: the publish it acknowledges.
    pub fn acked(&mut self, pkid: u16) -> Option<T> {
        self.inflight.remove(&pkid)
    }

    /// A CONNACK without the session: the client dropped what was in flight and the `unsent`
    /// publishes it had set aside at the last failure (the oldest queued here), so they never
    /// will be acknowledged; returned to be counted as such. Publishes queued since are still
    /// to go out, and keep their tags.
    pub fn session_lost(&mut self, unsent: usize) -> Vec<T> {
        let mut dropped: Vec<T> = self.inflight.drain().map(|(_, t)| t).collect();
        dropped.extend(self.collided.drain().map(|(_, t)| t));
        dropped.extend(self.queued.drain(..unsent.min(self.queued.len())));
        dropped
    }

    pub fn pending(&self) -> usize {
        self.queued.len() + self.inflight.len() + self.collided.len()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    pub seq: u64,
    pub kind: Kind,
    pub values: Light,
    pub sent_us: u64,
    pub sent_unix_ms: u64,
    pub acked: bool,
    pub rejected: bool,
    pub reflected: bool,
}

/// What became of one lamp's intents, decided by [`LampLedger::settle`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub reflected: [u64; 2],
    pub superseded: [u64; 2],
    pub rejected: [u64; 2],
    /// Acknowledged (QoS 1), not rejected, and neither reflected nor superseded.
    pub lost: Vec<Intent>,
    /// Sent, never acknowledged (or QoS 0), and neither reflected nor superseded.
    pub unresolved: [u64; 2],
}

/// A reported state that matched an intent: the latency to record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seen {
    /// The first time: `latency_us` since the app's publish call.
    Reflected { kind: Kind, latency_us: u64 },
    /// Again (QoS 1 redelivery, or the lamp's republish at a reconnect).
    Duplicate(Kind),
    /// Nothing of ours.
    Other,
}

/// One lamp's intents, in the order its app sent them (seq 0, 1, 2, …).
#[derive(Clone, Debug, Default)]
pub struct LampLedger {
    intents: Vec<Intent>,
    /// The light the lamp last reported, for a lost intent's listing.
    pub last_reported: Option<Light>,
    /// The highest `current.version` seen in `update/documents`.
    last_version: Option<u64>,
}

impl LampLedger {
    /// A new intent of `kind`; its seq, values and tag follow from its place.
    pub fn send(&mut self, kind: Kind, sent_us: u64, sent_unix_ms: u64) -> &Intent {
        let seq = self.intents.len() as u64;
        self.intents.push(Intent {
            seq,
            kind,
            values: Light::for_intent(kind, seq),
            sent_us,
            sent_unix_ms,
            acked: false,
            rejected: false,
            reflected: false,
        });
        &self.intents[seq as usize]
    }

    /// Its PUBACK: its kind and the publish → PUBACK latency.
    pub fn acked(&mut self, seq: u64, now_us: u64) -> Option<(Kind, u64)> {
        let intent = self.intents.get_mut(seq as usize)?;
        intent.acked = true;
        Some((intent.kind, now_us.saturating_sub(intent.sent_us)))
    }

    /// Refused by the lamp (`set_config/rejected`, `update/rejected`): not a loss.
    pub fn rejected(&mut self, seq: u64) -> Option<Kind> {
        let intent = self.intents.get_mut(seq as usize)?;
        intent.rejected = true;
        Some(intent.kind)
    }

    /// `lamp/changed` echoing `client` (parsed to `seq` if it is one of ours).
    pub fn changed(&mut self, seq: Option<u64>, light: Option<Light>, now_us: u64) -> Seen {
        if light.is_some() {
            self.last_reported = light;
        }
        match seq.and_then(|seq| self.intents.get_mut(seq as usize)) {
            Some(intent) if intent.kind == Kind::SetConfig => reflect(intent, now_us),
            _ => Seen::Other,
        }
    }

    /// `update/documents` with `current.version` and `current.state.reported.light`.
    pub fn documents(&mut self, version: u64, light: Option<Light>, now_us: u64) -> Seen {
        if self.last_version.is_some_and(|last| version <= last) {
            return Seen::Duplicate(Kind::Desired);
        }
        self.last_version = Some(version);
        let Some(light) = light else { return Seen::Other };
        self.last_reported = Some(light);
        match self
            .intents
            .iter_mut()
            .rev()
            .find(|i| i.kind == Kind::Desired && i.values.same(&light))
        {
            // Later reports of the same light are no news.
            Some(intent) if intent.reflected => Seen::Other,
            Some(intent) => reflect(intent, now_us),
            None => Seen::Other,
        }
    }

    /// The lamp's light from the final shadow `get`: an intent it shows is reflected, however
    /// its answers went missing (a broker restart drops the answers produced while it was down).
    pub fn final_state(&mut self, light: Light) {
        self.last_reported = Some(light);
        if let Some(intent) = self.intents.iter_mut().rev().find(|i| i.values.same(&light)) {
            intent.reflected = true;
        }
    }

    /// Decides every intent: reflected; superseded when a later one was reflected (the lamp
    /// coalesces a flood); else lost if acknowledged and not rejected; else unresolved.
    pub fn settle(&self) -> Outcome {
        let mut outcome = Outcome::default();
        let mut later_reflected = false;
        for intent in self.intents.iter().rev() {
            let k = intent.kind.index();
            if intent.reflected {
                outcome.reflected[k] += 1;
                later_reflected = true;
            } else if intent.rejected {
                outcome.rejected[k] += 1;
            } else if later_reflected {
                outcome.superseded[k] += 1;
            } else if intent.acked {
                outcome.lost.push(intent.clone());
            } else {
                outcome.unresolved[k] += 1;
            }
        }
        outcome.lost.reverse();
        outcome
    }

    pub fn sent(&self) -> u64 {
        self.intents.len() as u64
    }
}

fn reflect(intent: &mut Intent, now_us: u64) -> Seen {
    if intent.reflected {
        return Seen::Duplicate(intent.kind);
    }
    intent.reflected = true;
    Seen::Reflected {
        kind: intent.kind,
        latency_us: now_us.saturating_sub(intent.sent_us),
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
