//! The lamp's core: one pure state machine for the whole lamp, its light ([`Fader`]), device
//! shadow ([`Shadow`]), schedulers, pairing and firmware kept in step.
//!
//! Sans-IO in the style of quinn-proto's `Connection`: one way in, one way out.
//! - In: [`Lamp::handle`] takes an [`Input`] (a LAMPI `set_config`, a shadow request, a clock
//!   tick, a pairing association ...) with [`Now`], the monotonic and wall clocks read together.
//! - Out: [`Lamp::poll_output`] drains the [`Output`]s the inputs made (shadow messages,
//!   analytics events, the LED's duty cycles, LAMPI echoes, answers ...), and
//!   [`Lamp::next_wake`] says when the lamp next needs an [`Input::Tick`].
//!
//! Desired changes act on the light at once, and the lamp reports its real state back, so the
//! shadow converges without a round trip. The parts: [`io`] (the types in and out), `host` (the
//! lamp as the shadow service), `cloud` (the lamp as a client of a cloud shadow service),
//! `report` (what `reported` says, and local changes coalesced into it).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use serde_json::{Map, Value, json};

use super::analytics;
use super::colour::Rgb;
use super::fade::Fader;
use super::firmware::{Firmware, FirmwareRequest, UpdateStatus};
use super::light::LightChange;
use super::pairing::Pairing;
use super::schedule::Scheduler;
use super::schema;
use super::shadow::Shadow;

mod cloud;
mod host;
pub mod io;
mod pairing;
mod report;
mod schedules;
#[cfg(test)]
mod tests;

pub use io::{
    AlarmCommand, Answer, ClockStatus, Echo, Input, Memory, Now, Output, PairingView, Refusal, Saved, ShadowMessage,
    ShadowOp, ShadowRole, ShadowTopic, UnpairSource, Wake,
};
pub use report::{LOCAL_REPORT_DELAY, OUTPUT_REPORT_INTERVAL};

/// What a lamp is that does not change while it runs.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The thing name in the shadow topics and 404 messages.
    pub thing: String,
    pub firmware: String,
    pub role: ShadowRole,
}

#[derive(Debug)]
pub struct Lamp {
    fader: Fader,
    shadow: Shadow,
    identity: Identity,
    transition_ms: u64,
    /// The output value the shadow shows, and when it may next be updated during a fade.
    reported_output: Rgb,
    next_output_report: Instant,
    connected_since: Option<u64>,
    broker: Option<usize>,
    /// Whether Bluetooth LE serves; `None` on a lamp without it.
    ble_serving: Option<bool>,
    /// Local changes not yet in the shadow: the `desired` patch they make, and when it is due.
    pending_local: Option<(Map<String, Value>, Instant)>,
    /// As a client: a counter for the lamp's own client tokens.
    requests: u64,
    /// As a client: the version of the newest cloud document whose `desired` the lamp has
    /// taken, so a stale `update/documents` never replays an older change.
    cloud_version: u64,
    scheduler: Scheduler,
    /// The settings changed: the scheduler must take them at the next tick.
    settings_changed: bool,
    /// `reported` is out of date beyond the output (alarm state, clock).
    report_due: bool,
    /// The wall clock at the last tick, and what is known of it.
    wall: DateTime<Utc>,
    clock: ClockStatus,
    /// Analytics events the core made, not yet in `outputs`.
    events: Vec<Value>,
    pairing: Pairing,
    /// The active code's expiry in wall time, as registered with the cloud.
    code_expires_wall: u64,
    firmware: Firmware,
    /// Requests for the privileged updater, not yet in `outputs`.
    update_requests: Vec<FirmwareRequest>,
    /// What the last input made, for [`Lamp::poll_output`].
    outputs: VecDeque<Output>,
    /// The time of the last input, from which [`Lamp::next_wake`] counts.
    now: Now,
    /// What the outputs last said, so only changes go out again.
    shown_led: Rgb,
    shown_pairing: PairingView,
    saved_memory: Memory,
}

impl Lamp {
    pub fn new(saved: Saved, identity: Identity, transition: Duration, now: Now) -> Lamp {
        let Saved { light, shadow, memory } = saved;
        let mut shadow = Shadow::clone(&shadow);
        for change in schema::fit_settings(&mut shadow.desired) {
            tracing::warn!("settings saved by an older version, over today's limits: {change}");
        }
        let transition_ms = shadow
            .reported
            .get("light")
            .and_then(|l| l.get("transition_ms"))
            .and_then(Value::as_u64)
            .unwrap_or(transition.as_millis() as u64);
        let identity_firmware = identity.firmware.clone();
        let pairing = Pairing::new(memory.owner.clone());
        let shown_pairing = PairingView {
            owner: memory.owner.clone(),
            ..PairingView::default()
        };
        Lamp {
            fader: Fader::new(light, Duration::from_millis(transition_ms), now.mono()),
            shadow,
            identity,
            transition_ms,
            reported_output: Rgb::OFF,
            next_output_report: now.mono(),
            connected_since: None,
            broker: None,
            ble_serving: None,
            pending_local: None,
            requests: 0,
            cloud_version: 0,
            scheduler: Scheduler::new(memory.alarm_clock.clone()),
            settings_changed: true,
            report_due: true,
            wall: DateTime::default(),
            clock: ClockStatus {
                synchronised: true,
                require_sync: false,
            },
            events: Vec::new(),
            pairing,
            code_expires_wall: 0,
            firmware: Firmware::new(&identity_firmware, memory.firmware_update.clone()),
            update_requests: Vec::new(),
            outputs: VecDeque::new(),
            now,
            shown_led: Rgb::OFF,
            shown_pairing,
            saved_memory: memory,
        }
    }

    /// Everything that happens to the lamp goes in here; what it does comes out of
    /// [`Lamp::poll_output`], which the caller drains after each input.
    pub fn handle(&mut self, input: Input, now: Now) {
        self.now = now;
        let (mono, timestamp) = (now.mono(), now.timestamp());
        let light_before = self.fader.state();
        let mut client = None;
        let messages = match input {
            Input::Tick(clock) => {
                self.set_clock(clock, timestamp);
                // The LED first: reporting the output to the shadow can wait a few microseconds.
                let led = self.output(mono);
                if led != self.shown_led {
                    self.shown_led = led;
                    self.outputs.push_back(Output::Led(led));
                }
                let messages = self.tick(mono, timestamp);
                self.emit(messages);
                return;
            }
            Input::ClockStepped => {
                self.clock_stepped(timestamp);
                return;
            }
            Input::Flush => {
                let messages = self.flush_local(timestamp);
                self.emit(messages);
                return;
            }
            Input::Set {
                change,
                transition,
                client: who,
            } => {
                self.local_change(change, transition, mono, timestamp);
                client = Some(who);
                Vec::new()
            }
            Input::Shadow { op, payload } => self.shadow_request(op, &payload, mono, timestamp),
            Input::Cloud { topic, payload } => self.cloud_message(topic, &payload, mono, timestamp),
            Input::Connected { broker } => self.connected(timestamp, broker),
            Input::BleServing(serving) => {
                if self.ble_serving != Some(serving) {
                    self.ble_serving = Some(serving);
                    self.report_due = true;
                }
                Vec::new()
            }
            Input::Settings(patch) => match self.local_settings(patch, mono, timestamp) {
                Ok(messages) => {
                    self.push_answer(Answer::Settings(Ok(())));
                    messages
                }
                Err(refusal) => {
                    self.push_answer(Answer::Settings(Err(refusal)));
                    return;
                }
            },
            Input::Alarm(command) => {
                let result = self.alarm_command(command, mono, timestamp);
                self.push_answer(Answer::Alarm(result));
                Vec::new()
            }
            Input::RequestPairingCode { seed } => {
                self.request_code(&mut rand::rngs::StdRng::from_seed(seed), mono, timestamp);
                Vec::new()
            }
            Input::Associate { code, owner } => {
                let result = self.associate(&code, owner, mono, timestamp);
                self.push_answer(Answer::Associate(result));
                Vec::new()
            }
            Input::Unpair(source) => {
                let result = self.unpair(source, timestamp);
                self.push_answer(Answer::Unpair(result));
                Vec::new()
            }
            Input::FirmwareStatus(status) => {
                self.firmware_progress(status);
                Vec::new()
            }
        };
        let light = self.fader.state();
        // Every LAMPI sender gets its echo; shadow requests only when they changed the light.
        let echo = client.is_some() || light != light_before;
        let source = client.unwrap_or_else(|| "shadow".into());
        for event in analytics::light_events(&light_before, &light, &source) {
            self.outputs.push_back(Output::Event(event.to_json(timestamp)));
        }
        if echo {
            self.outputs.push_back(Output::Echo(Echo {
                state: light,
                client: source,
            }));
        }
        self.emit(messages);
    }

    /// The next thing the lamp does, in order; `None` once all are taken.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the lamp next needs [`Input::Tick`], counted from the last input's `now`.
    pub fn next_wake(&self) -> Wake {
        let mono = self.now.mono();
        Wake {
            mono: self.mono_wake(mono),
            wall: self.scheduler.next_wake_wall(mono, self.wall),
        }
    }

    fn push_answer(&mut self, answer: Answer) {
        self.outputs.push_back(Output::Answer(answer));
    }

    /// Turns what an input did into outputs: the core's analytics events, firmware requests, a
    /// changed pairing state, shadow messages, and what to save when anything worth it changed.
    fn emit(&mut self, messages: Vec<ShadowMessage>) {
        for event in self.take_events() {
            self.outputs.push_back(Output::Event(event));
        }
        for request in std::mem::take(&mut self.update_requests) {
            self.outputs.push_back(Output::FirmwareRequest(request));
        }
        let pairing = self.pairing();
        if pairing != self.shown_pairing {
            self.shown_pairing = pairing.clone();
            self.outputs.push_back(Output::Pairing(pairing));
        }
        let memory = self.memory();
        if messages.is_empty() && self.saved_memory == memory {
            return;
        }
        self.outputs.extend(messages.into_iter().map(Output::Shadow));
        self.saved_memory = memory.clone();
        self.outputs.push_back(Output::Saved(Saved {
            light: self.fader.state(),
            shadow: Arc::new(self.shadow.clone()),
            memory,
        }));
    }

    /// The updater's progress with the version asked of it.
    fn firmware_progress(&mut self, status: UpdateStatus) {
        if self.firmware.progress(status) {
            self.report_due = true;
        }
    }

    /// What must be remembered across a restart besides the light and shadow.
    fn memory(&self) -> Memory {
        Memory {
            alarm_clock: self.scheduler.alarms().memory().clone(),
            owner: self.pairing.owner().cloned(),
            firmware_update: self.firmware.status().cloned(),
        }
    }

    /// Analytics events made since the last call.
    fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    fn output(&self, now: Instant) -> Rgb {
        self.fader.output(now)
    }

    /// The connection to the `broker`th broker came up at `timestamp`.
    fn connected(&mut self, timestamp: u64, broker: usize) -> Vec<ShadowMessage> {
        self.connected_since = Some(timestamp);
        self.broker = Some(broker);
        if self.identity.role == ShadowRole::Client {
            // Fetch first: the cloud may hold desired changes made while the lamp was away. The
            // report follows the answer.
            return vec![self.get_request()];
        }
        let mut messages = self.flush_local(timestamp);
        messages.extend(self.report(timestamp));
        messages
    }

    /// Advances fades; puts due local changes into the shadow; reports the output when it has
    /// settled or the interval has passed.
    fn tick(&mut self, now: Instant, timestamp: u64) -> Vec<ShadowMessage> {
        self.wall = wall_time(timestamp);
        self.pairing.expire(now);
        self.run_schedules(now, timestamp);
        let output = rounded(self.fader.tick(now));
        let settled = self.fader.next_wake(now).is_none();
        let report_output = output != self.reported_output && (settled || now >= self.next_output_report);
        if report_output {
            self.reported_output = output;
            self.next_output_report = now + OUTPUT_REPORT_INTERVAL;
        }
        let local_due = matches!(self.pending_local, Some((_, due)) if due <= now);
        if local_due || ((report_output || self.report_due) && self.pending_local.is_some()) {
            // A local change goes out together with its desired half, never in a report alone:
            // a cloud service would answer such a report with a delta of the old desired value
            // and undo the change.
            return self.flush_local(timestamp);
        }
        if !report_output && !self.report_due {
            return Vec::new();
        }
        self.report(timestamp)
    }

    /// When [`Lamp::tick`] must run next; `None` when nothing is changing.
    fn mono_wake(&self, now: Instant) -> Option<Instant> {
        if self.report_due || self.settings_changed {
            return Some(now);
        }
        let scheduled = self.scheduler.next_wake_mono(now, self.wall);
        let pending = self.pending_local.as_ref().map(|(_, due)| *due);
        let pending = [pending, scheduled, self.pairing.next_wake()]
            .into_iter()
            .flatten()
            .min();
        let fade = self.fader.next_wake(now).map(|fade| {
            let output_due = rounded(self.fader.output(now)) != self.reported_output;
            if output_due {
                fade.min(self.next_output_report.max(now))
            } else {
                fade
            }
        });
        match (pending, fade) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies what `desired` asks and `reported` does not show yet. A light change counts as
    /// a person's, unless the same change turns natural light on.
    fn act_on_delta(&mut self, now: Instant, timestamp: u64) {
        self.settings_changed = true;
        let delta = self.shadow.delta();
        if let Some(Value::Object(light)) = delta.get("light") {
            let (change, transition_ms) = schema::light_change(light);
            if let Some(ms) = transition_ms {
                self.transition_ms = ms;
            }
            let to_natural = delta.get("mode") == Some(&json!("natural"));
            let touched = change != LightChange::default();
            if touched && !to_natural && self.person_takes_over(now, timestamp) {
                self.pending_patch(now).insert("mode".into(), json!("manual"));
            }
            if to_natural {
                self.fader.set_state(change);
            } else {
                self.fader.apply(change, Duration::from_millis(self.transition_ms), now);
            }
        }
    }

    /// The settings in force: what `desired` holds, and only that. A setting deleted there (the
    /// key, an emptied object, the whole section, the document) ends on the lamp and leaves
    /// `reported`; falling back to the reported copy would keep it for ever.
    fn settings(&self) -> Map<String, Value> {
        schema::settings(&self.shadow.desired)
    }
}

/// Shadow timestamps are whole seconds since the epoch.
fn wall_time(timestamp: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::try_from(timestamp).unwrap_or(i64::MAX), 0).unwrap_or_default()
}

fn rounded(duty: Rgb) -> Rgb {
    duty.map(|d| (d * 1e6).round() / 1e6)
}
