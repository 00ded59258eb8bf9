//! The whole lamp as one pure state machine: the light ([`Lamp`]) and its device shadow
//! ([`Shadow`]) kept in step.
//!
//! Every input — a LAMPI `set_config`, a shadow request, a clock tick — goes in with the
//! monotonic `now` (fades) and the wall-clock `timestamp` (shadow metadata, epoch seconds);
//! out come the shadow messages to publish. Desired changes act on the light at once, and the
//! lamp reports its real state back, so the shadow converges without a round trip.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::alarm::{AlarmEvent, AlarmMemory, Dismissal};
use super::colour::{Rgb, state_for};
use super::firmware::{Firmware, FirmwareRequest, UpdateStatus};
use super::lamp::Lamp;
use super::light::{LightChange, LightState, Unit};
use super::pairing::{Owner, Pairing};
use super::schedule::{Scheduler, Show};
use super::schema;
use super::shadow::{self, SectionUpdate, Shadow, ShadowError, UpdateRequest};

/// While the light fades, `reported.output` is updated at most this often (and always with
/// the final value), so watching the shadow does not cost a message per fade frame.
pub const OUTPUT_REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// Local changes reach the shadow after at most this long, together: a slider drag or a flood
/// of `set_config` becomes a few shadow updates instead of one per message. A shadow request
/// flushes them first, so it always sees them.
pub const LOCAL_REPORT_DELAY: Duration = Duration::from_millis(100);

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

/// What a device remembers across restarts besides its light and shadow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub alarm_clock: AlarmMemory,
    pub owner: Option<Owner>,
    /// The last firmware update asked for, and how it went.
    pub firmware_update: Option<UpdateStatus>,
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

/// A remote or touchscreen command for the ringing alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmCommand {
    Snooze,
    Dismiss,
}

/// What the lamp knows about its wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockStatus {
    /// The kernel says the clock is synchronised (NTP).
    pub synchronised: bool,
    /// Alarms ring only on a synchronised clock.
    pub require_sync: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ShadowMessage {
    pub topic: ShadowTopic,
    pub payload: Value,
}

/// What a device is that does not change while it runs.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The thing name in the shadow topics and 404 messages.
    pub thing: String,
    pub firmware: String,
    pub role: ShadowRole,
}

#[derive(Debug)]
pub struct Device {
    lamp: Lamp,
    shadow: Shadow,
    identity: Identity,
    transition_ms: u64,
    /// The output value the shadow shows, and when it may next be updated during a fade.
    reported_output: Rgb,
    next_output_report: Instant,
    connected_since: Option<u64>,
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
    /// Analytics events the core made, for the shell to send.
    events: Vec<Value>,
    pairing: Pairing,
    /// The active code's expiry in wall time, as registered with the cloud.
    code_expires_wall: u64,
    firmware: Firmware,
    /// Requests for the privileged updater, for the shell to pass on.
    update_requests: Vec<FirmwareRequest>,
}

fn rounded(duty: Rgb) -> Rgb {
    duty.map(|d| (d * 1e6).round() / 1e6)
}

impl Device {
    pub fn new(
        light: LightState,
        shadow: Shadow,
        memory: Memory,
        identity: Identity,
        transition: Duration,
        now: Instant,
    ) -> Device {
        let mut shadow = shadow;
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
        Device {
            lamp: Lamp::new(light, Duration::from_millis(transition_ms), now),
            shadow,
            identity,
            transition_ms,
            reported_output: Rgb::OFF,
            next_output_report: now,
            connected_since: None,
            pending_local: None,
            requests: 0,
            cloud_version: 0,
            scheduler: Scheduler::new(memory.alarm_clock),
            settings_changed: true,
            report_due: true,
            wall: DateTime::default(),
            clock: ClockStatus {
                synchronised: true,
                require_sync: false,
            },
            events: Vec::new(),
            pairing: Pairing::new(memory.owner),
            code_expires_wall: 0,
            firmware: Firmware::new(&identity_firmware, memory.firmware_update),
            update_requests: Vec::new(),
        }
    }

    /// Firmware versions to ask the updater for, made since the last call.
    pub fn take_update_requests(&mut self) -> Vec<FirmwareRequest> {
        std::mem::take(&mut self.update_requests)
    }

    /// The updater's progress with the version asked of it.
    pub fn firmware_progress(&mut self, status: UpdateStatus) {
        if self.firmware.progress(status) {
            self.report_due = true;
        }
    }

    /// What must be remembered across a restart besides the light and shadow.
    pub fn memory(&self) -> Memory {
        Memory {
            alarm_clock: self.scheduler.alarms.memory().clone(),
            owner: self.pairing.owner().cloned(),
            firmware_update: self.firmware.status().cloned(),
        }
    }

    pub fn pairing(&self) -> PairingView {
        PairingView {
            code: self
                .pairing
                .active()
                .map(|(code, _)| (code.to_owned(), self.code_expires_wall)),
            expires: self.pairing.next_wake(),
            owner: self.pairing.owner().cloned(),
        }
    }

    /// A new pairing code to show, replacing any other; it lives a minute.
    pub fn request_code(&mut self, rng: &mut impl rand::CryptoRng, now: Instant, timestamp: u64) -> String {
        let code = self.pairing.new_code(rng, now);
        self.code_expires_wall = timestamp + super::pairing::CODE_LIFE.as_secs();
        code
    }

    /// The cloud's association of this lamp with `owner`, for the code the owner typed.
    pub fn associate(&mut self, code: &str, owner: Owner, now: Instant, timestamp: u64) -> Result<Owner, String> {
        match self.pairing.associate(code, owner.clone(), now) {
            Ok(()) => {
                self.report_due = true;
                self.events
                    .push(json!({"type": "paired", "owner": owner.id, "timestamp": timestamp}));
                Ok(owner)
            }
            Err(refusal) => {
                let reason = refusal.to_string();
                self.events
                    .push(json!({"type": "pairing_refused", "reason": reason, "timestamp": timestamp}));
                Err(reason)
            }
        }
    }

    /// Forgets the owner (`source`: `lamp` or `cloud`).
    pub fn unpair(&mut self, source: &str, timestamp: u64) -> Result<Owner, String> {
        let owner = self.pairing.unpair().ok_or("the lamp is not paired")?;
        self.report_due = true;
        self.events
            .push(json!({"type": "unpaired", "owner": owner.id, "source": source, "timestamp": timestamp}));
        Ok(owner)
    }

    /// Analytics events made since the last call.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// What the wall clock is worth. Nothing rings on an unsynchronised clock when
    /// synchronisation is required; when it becomes synchronised, nothing it missed rings.
    pub fn set_clock(&mut self, clock: ClockStatus, timestamp: u64) {
        if clock != self.clock {
            self.clock = clock;
            self.scheduler
                .alarms
                .set_trusted(clock.synchronised || !clock.require_sync, wall_time(timestamp));
            self.report_due = true;
        }
    }

    /// The wall clock was set (NTP stepped it, or a person did): alarms it skipped do not ring.
    pub fn clock_stepped(&mut self, timestamp: u64) {
        self.scheduler.alarms.clock_stepped(wall_time(timestamp));
        self.report_due = true;
    }

    /// Snooze or dismiss the ringing alarm; the reason when there is none.
    pub fn alarm_command(&mut self, command: AlarmCommand, now: Instant, timestamp: u64) -> Result<(), String> {
        let events = match command {
            AlarmCommand::Snooze => self.scheduler.alarms.snooze(wall_time(timestamp))?,
            AlarmCommand::Dismiss => self.scheduler.alarms.dismiss(Dismissal::User)?,
        };
        self.alarm_events(events, now, timestamp);
        Ok(())
    }

    /// Acts on what the alarm clock says: analytics, and one-off alarms disabling themselves.
    fn alarm_events(&mut self, events: Vec<AlarmEvent>, now: Instant, timestamp: u64) {
        if events.is_empty() {
            return;
        }
        for event in events {
            if let AlarmEvent::Disable { id } = &event {
                let alarms = self.pending_patch(now).entry("alarms").or_insert_with(|| json!({}));
                alarms[id.as_str()] = json!({"enabled": false});
            }
            self.events.extend(event.analytics(timestamp));
        }
        self.scheduler.resample();
        self.report_due = true;
    }

    pub fn light(&self) -> LightState {
        self.lamp.state()
    }

    pub fn shadow(&self) -> &Shadow {
        &self.shadow
    }

    pub fn output(&self, now: Instant) -> Rgb {
        self.lamp.output(now)
    }

    /// The `desired` patch that local changes are collecting, due within
    /// [`LOCAL_REPORT_DELAY`].
    fn pending_patch(&mut self, now: Instant) -> &mut Map<String, Value> {
        &mut self
            .pending_local
            .get_or_insert_with(|| (Map::new(), now + LOCAL_REPORT_DELAY))
            .0
    }

    /// A person changed the light (here or through the shadow): a ringing alarm counts as
    /// dismissed, and natural light gives way to manual, starting from the colour it showed.
    /// True when natural light ended, so the caller records `mode: manual` in `desired`.
    fn person_takes_over(&mut self, now: Instant, timestamp: u64) -> bool {
        if self.scheduler.alarms.is_ringing() {
            let events = self.scheduler.alarms.dismiss(Dismissal::Manual).unwrap_or_default();
            self.alarm_events(events, now, timestamp);
        }
        if !self.scheduler.person_takes_over() {
            return false;
        }
        let shown = self.lamp.output(now);
        let (hue, saturation, brightness) = state_for(shown);
        let unit = |v: f64| Unit::try_from(v.clamp(0.0, 1.0)).ok();
        let natural_colour = LightChange {
            on: Some(shown != Rgb::OFF),
            hue: unit(hue),
            saturation: unit(saturation),
            brightness: unit(brightness),
        };
        self.lamp.apply(natural_colour, Duration::ZERO, now);
        self.report_due = true;
        true
    }

    /// A change made on the lamp itself (LAMPI topic, touchscreen): applied at once; within
    /// [`LOCAL_REPORT_DELAY`] it is reported and written to `desired` too, so the cloud does not
    /// push the old value back.
    pub fn local_change(&mut self, change: LightChange, transition: Option<Duration>, now: Instant, timestamp: u64) {
        let left_natural = self.person_takes_over(now, timestamp);
        let transition = transition.unwrap_or(Duration::from_millis(self.transition_ms));
        self.lamp.apply(change, transition, now);
        let state = self.lamp.state();
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

    /// Settings changed on the lamp itself (the touchscreen's alarms, natural light): checked as
    /// a shadow update would be, then written to `desired` at once — or asked of the cloud
    /// service when the lamp is its client — so every app sees them. A refused change changes
    /// nothing and says why.
    pub fn local_settings(
        &mut self,
        patch: Map<String, Value>,
        now: Instant,
        timestamp: u64,
    ) -> Result<Vec<ShadowMessage>, String> {
        let request = |patch| UpdateRequest {
            desired: Some(SectionUpdate::Merge(patch)),
            reported: None,
            client_token: None,
            version: None,
        };
        let mut trial = self.shadow.clone();
        let accepted = trial
            .update(request(patch.clone()), timestamp, schema::validate)
            .map_err(|e| e.message)?;
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

    /// Puts pending local changes into the shadow.
    pub fn flush_local(&mut self, timestamp: u64) -> Vec<ShadowMessage> {
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

    /// A request on the shadow's `update`, `get` or `delete` topic.
    pub fn shadow_request(&mut self, op: ShadowOp, payload: &[u8], now: Instant, timestamp: u64) -> Vec<ShadowMessage> {
        let mut messages = self.flush_local(timestamp);
        messages.extend(self.answer(op, payload, now, timestamp));
        messages
    }

    fn answer(&mut self, op: ShadowOp, payload: &[u8], now: Instant, timestamp: u64) -> Vec<ShadowMessage> {
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

    /// The broker connection came up at `timestamp`.
    pub fn connected(&mut self, timestamp: u64) -> Vec<ShadowMessage> {
        self.connected_since = Some(timestamp);
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
    pub fn tick(&mut self, now: Instant, timestamp: u64) -> Vec<ShadowMessage> {
        self.wall = wall_time(timestamp);
        self.pairing.expire(now);
        self.run_schedules(now, timestamp);
        let output = rounded(self.lamp.tick(now));
        let settled = self.lamp.next_wake(now).is_none();
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

    /// Lets the schedulers decide what the light shows.
    fn run_schedules(&mut self, now: Instant, timestamp: u64) {
        if self.settings_changed {
            self.settings_changed = false;
            self.update_requests
                .extend(self.firmware.desire(self.shadow.desired.get("firmware")));
            let events = self.scheduler.configure(&self.settings(), now, self.wall);
            self.alarm_events(events, now, timestamp);
            self.report_due = true;
        }
        let (events, show) = self.scheduler.tick(now, self.wall);
        self.alarm_events(events, now, timestamp);
        match show {
            Show::Same => {}
            Show::Person => self.lamp.restore(Duration::from_millis(self.transition_ms), now),
            Show::Output(output, fade) => self.lamp.show(output, fade, now),
        }
    }

    /// When the schedulers need [`Device::tick`] at a wall-clock time (an alarm, a sample).
    pub fn next_wall_wake(&self, now: Instant) -> Option<DateTime<Utc>> {
        self.scheduler.next_wake_wall(now, self.wall)
    }

    /// When [`Device::tick`] must run next; `None` when nothing is changing.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        if self.report_due || self.settings_changed {
            return Some(now);
        }
        let scheduled = self.scheduler.next_wake_mono(now, self.wall);
        let pending = self.pending_local.as_ref().map(|(_, due)| *due);
        let pending = [pending, scheduled, self.pairing.next_wake()]
            .into_iter()
            .flatten()
            .min();
        let fade = self.lamp.next_wake(now).map(|fade| {
            let output_due = rounded(self.lamp.output(now)) != self.reported_output;
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
                self.lamp.set_state(change);
            } else {
                self.lamp.apply(change, Duration::from_millis(self.transition_ms), now);
            }
        }
    }

    /// The settings in force: what `desired` holds, and only that. A setting deleted there (the
    /// key, an emptied object, the whole section, the document) ends on the lamp and leaves
    /// `reported`; falling back to the reported copy would keep it for ever.
    fn settings(&self) -> Map<String, Value> {
        schema::settings(&self.shadow.desired)
    }

    /// The patch that makes `reported` tell the truth about the lamp.
    fn report_patch(&self) -> Option<SectionUpdate> {
        let mut truth = self.settings();
        truth.insert("alarm".into(), self.scheduler.alarms.report(self.wall));
        truth.insert(
            "clock".into(),
            json!({"synchronised": self.clock.synchronised, "require_sync": self.clock.require_sync}),
        );
        if let Some(owner) = self.pairing.owner() {
            truth.insert("owner".into(), json!({"id": owner.id, "name": owner.name}));
        }
        truth.insert(
            "light".into(),
            schema::light_value(&self.lamp.state(), self.transition_ms),
        );
        let Rgb { r, g, b } = self.reported_output;
        truth.insert("output".into(), json!({"r": r, "g": g, "b": b}));
        truth.insert("firmware".into(), self.firmware.report());
        if let Some(since) = self.connected_since {
            truth.insert("connected_since".into(), json!(since));
        }
        let patch = shadow::diff_patch(&self.shadow.reported, &truth);
        (!patch.is_empty()).then_some(SectionUpdate::Merge(patch))
    }

    /// Sends `reported` whatever is not already true in it.
    fn report(&mut self, timestamp: u64) -> Vec<ShadowMessage> {
        self.report_with(None, timestamp)
    }

    /// [`Device::report`], in one update with a change to `desired`.
    fn report_with(&mut self, desired: Option<SectionUpdate>, timestamp: u64) -> Vec<ShadowMessage> {
        self.report_due = false;
        let reported = self.report_patch();
        self.internal_update(desired, reported, timestamp)
    }

    fn internal_update(
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

/// The lamp as a client of a cloud shadow service (AWS IoT Core): it asks instead of answering.
impl Device {
    fn next_token(&mut self) -> String {
        self.requests += 1;
        format!("lampi-{}-{}", self.identity.thing, self.requests)
    }

    fn is_own(&self, token: &Value) -> bool {
        token
            .as_str()
            .is_some_and(|t| t.starts_with(&format!("lampi-{}-", self.identity.thing)))
    }

    fn get_request(&mut self) -> ShadowMessage {
        ShadowMessage {
            topic: ShadowTopic::Get,
            payload: json!({ "clientToken": self.next_token() }),
        }
    }

    /// An update request for the cloud. The lamp's view of the document takes the change at
    /// once, so the next report only sends what changed since. No `version` is sent: the lamp's
    /// reports are the truth, and a local change is meant to win over an older remote one.
    fn update_request(
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
    pub fn cloud_message(
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
    fn take_desired(&mut self, desired: Map<String, Value>, now: Instant, timestamp: u64) {
        match schema::validate(&desired, &Map::new()) {
            Ok(()) => {
                self.shadow.desired = desired;
                self.act_on_delta(now, timestamp);
            }
            Err(reason) => tracing::warn!("ignoring the cloud's desired state: {reason}"),
        }
    }
}

/// Shadow timestamps are whole seconds since the epoch.
fn wall_time(timestamp: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::try_from(timestamp).unwrap_or(i64::MAX), 0).unwrap_or_default()
}

fn accepted_messages(accepted: shadow::Accepted) -> Vec<ShadowMessage> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::colour::duty_for;
    use crate::core::light::Unit;

    const FADE: Duration = Duration::from_millis(400);

    fn device(now: Instant) -> Device {
        let identity = Identity {
            thing: "lamp1".into(),
            firmware: "1.2.3".into(),
            role: Default::default(),
        };
        let mut device = Device::new(
            LightState::default(),
            Shadow::default(),
            Memory::default(),
            identity,
            FADE,
            now,
        );
        device.tick(now + FADE, 100);
        device
    }

    fn topics(messages: &[ShadowMessage]) -> Vec<ShadowTopic> {
        messages.iter().map(|m| m.topic).collect()
    }

    fn request(device: &mut Device, op: ShadowOp, payload: Value, now: Instant) -> Vec<ShadowMessage> {
        device.shadow_request(op, payload.to_string().as_bytes(), now, 200)
    }

    #[test]
    fn reports_itself_once_settled() {
        let t0 = Instant::now();
        let device = device(t0);
        let reported = &device.shadow().reported;
        assert_eq!(
            reported["light"],
            json!({"on": true, "hue": 0.0, "saturation": 0.0, "brightness": 1.0, "transition_ms": 400})
        );
        assert_eq!(reported["output"], json!({"r": 1.0, "g": 1.0, "b": 1.0}));
        assert_eq!(reported["firmware"], json!({"version": "1.2.3"}));
    }

    #[test]
    fn desired_light_acts_and_is_reported_leaving_no_delta() {
        let t0 = Instant::now();
        let mut device = device(t0);
        let t1 = t0 + FADE;
        let messages = request(
            &mut device,
            ShadowOp::Update,
            json!({"state": {"desired": {"light": {"brightness": 0.5, "hue": 0.33, "saturation": 1.0}}}, "clientToken": "app"}),
            t1,
        );
        // The app's update: accepted, documents, delta; then the lamp's report: accepted, documents.
        assert_eq!(
            topics(&messages),
            [
                ShadowTopic::UpdateAccepted,
                ShadowTopic::UpdateDocuments,
                ShadowTopic::UpdateDelta,
                ShadowTopic::UpdateAccepted,
                ShadowTopic::UpdateDocuments
            ]
        );
        assert_eq!(
            messages[2].payload["state"],
            json!({"light": {"brightness": 0.5, "hue": 0.33, "saturation": 1.0}})
        );
        assert_eq!(messages[0].payload["clientToken"], json!("app"));
        assert!(device.shadow().delta().is_empty());
        assert_eq!(device.light().brightness.get(), 0.5);

        // During the fade the output is reported at most every 250 ms, and finally exactly.
        let mut reports = 0;
        let mut now = t1;
        while let Some(wake) = device.next_wake(now) {
            now = wake;
            reports += device.tick(now, 201).len() / 2;
        }
        assert!(
            (1..=3).contains(&reports),
            "{reports} output reports during a 400 ms fade"
        );
        let expected = rounded(duty_for(true, 0.33, 1.0, 0.5));
        assert_eq!(
            device.shadow().reported["output"],
            json!({"r": expected.r, "g": expected.g, "b": expected.b})
        );
        assert_eq!(device.next_wake(now), None);
    }

    #[test]
    fn local_change_wins_in_desired_and_reported() {
        let t0 = Instant::now();
        let mut device = device(t0);
        request(
            &mut device,
            ShadowOp::Update,
            json!({"state": {"desired": {"light": {"on": true, "brightness": 0.9}}}}),
            t0,
        );
        let change = LightChange {
            brightness: Some(Unit::try_from(0.2).unwrap()),
            ..Default::default()
        };
        device.tick(t0, 300);
        device.local_change(change, None, t0, 300);
        // Nothing reaches the shadow until the delay is over (or a request needs it).
        assert_eq!(device.next_wake(t0 + FADE), Some(t0 + LOCAL_REPORT_DELAY));
        assert_eq!(device.shadow().reported["light"]["brightness"], json!(0.9));
        let messages = device.tick(t0 + LOCAL_REPORT_DELAY, 300);
        assert_eq!(
            topics(&messages),
            [ShadowTopic::UpdateAccepted, ShadowTopic::UpdateDocuments]
        );
        assert_eq!(device.shadow().desired["light"], json!({"on": true, "brightness": 0.2}));
        assert_eq!(device.shadow().reported["light"]["brightness"], json!(0.2));
        assert!(device.shadow().delta().is_empty());
    }

    #[test]
    fn invalid_desired_is_rejected_naming_the_field_and_changes_nothing() {
        let t0 = Instant::now();
        let mut device = device(t0);
        let before = device.shadow().clone();
        let messages = request(
            &mut device,
            ShadowOp::Update,
            json!({"state": {"desired": {"light": {"brightness": 2}}}, "clientToken": "x"}),
            t0,
        );
        assert_eq!(topics(&messages), [ShadowTopic::UpdateRejected]);
        assert_eq!(messages[0].payload["code"], json!(400));
        assert!(
            messages[0].payload["message"]
                .as_str()
                .unwrap()
                .starts_with("desired.light.brightness")
        );
        assert_eq!(device.shadow(), &before);
        assert_eq!(device.light(), LightState::default());
    }

    #[test]
    fn settings_are_mirrored_and_alarm_deletion_follows() {
        let t0 = Instant::now();
        let mut device = device(t0);
        request(
            &mut device,
            ShadowOp::Update,
            json!({"state": {"desired": {"mode": "manual", "alarms": {"a": {"time": "07:00"}, "b": {"time": "08:00"}}}}}),
            t0,
        );
        assert_eq!(device.shadow().reported["alarms"], device.shadow().desired["alarms"]);
        request(
            &mut device,
            ShadowOp::Update,
            json!({"state": {"desired": {"alarms": {"a": null}}}}),
            t0,
        );
        assert_eq!(device.shadow().reported["alarms"], json!({"b": {"time": "08:00"}}));
        assert!(device.shadow().delta().is_empty());
        // The last one too, though `desired.alarms` then disappears.
        request(
            &mut device,
            ShadowOp::Update,
            json!({"state": {"desired": {"alarms": {"b": null}}}}),
            t0,
        );
        assert!(
            device.shadow().reported.get("alarms").is_none(),
            "{:?}",
            device.shadow().reported
        );
        assert!(device.shadow().delta().is_empty());
    }

    #[test]
    fn false_reports_from_apps_are_corrected() {
        let t0 = Instant::now();
        let mut device = device(t0);
        request(
            &mut device,
            ShadowOp::Update,
            json!({"state": {"reported": {"light": {"on": false}}}}),
            t0,
        );
        assert_eq!(device.shadow().reported["light"]["on"], json!(true));
    }

    #[test]
    fn transition_from_desired_becomes_the_default() {
        let t0 = Instant::now();
        let mut device = device(t0);
        request(
            &mut device,
            ShadowOp::Update,
            json!({"state": {"desired": {"light": {"transition_ms": 0, "on": false}}}}),
            t0,
        );
        assert_eq!(device.output(t0), Rgb::OFF, "a zero transition applies at once");
        assert_eq!(device.shadow().reported["light"]["transition_ms"], json!(0));
    }

    #[test]
    fn as_a_cloud_client_it_fetches_follows_deltas_and_refetches_when_refused() {
        let t0 = Instant::now();
        let identity = Identity {
            thing: "lamp1".into(),
            firmware: "1".into(),
            role: ShadowRole::Client,
        };
        let mut device = Device::new(
            LightState::default(),
            Shadow::default(),
            Memory::default(),
            identity,
            Duration::ZERO,
            t0,
        );
        let hello = device.connected(10);
        assert_eq!(topics(&hello), [ShadowTopic::Get]);
        let token = hello[0].payload["clientToken"].as_str().unwrap().to_owned();

        // No document in the cloud yet: the lamp reports everything.
        let missing = json!({"code": 404, "message": "No shadow exists with name: 'lamp1'", "clientToken": token});
        let report = device.cloud_message(ShadowTopic::GetRejected, missing.to_string().as_bytes(), t0, 11);
        assert_eq!(topics(&report), [ShadowTopic::Update]);
        assert_eq!(report[0].payload["state"]["reported"]["connected_since"], json!(10));
        assert!(report[0].payload.get("version").is_none());

        // A delta is applied and the change reported.
        let delta = json!({"state": {"light": {"brightness": 0.5}}, "version": 3});
        let report = device.cloud_message(ShadowTopic::UpdateDelta, delta.to_string().as_bytes(), t0, 12);
        assert_eq!(device.light().brightness.get(), 0.5);
        assert_eq!(
            report[0].payload["state"]["reported"]["light"],
            json!({"brightness": 0.5})
        );

        // A delta the schema refuses changes nothing and reports nothing.
        let bad = json!({"state": {"light": {"brightness": 5}}, "version": 4});
        assert!(
            device
                .cloud_message(ShadowTopic::UpdateDelta, bad.to_string().as_bytes(), t0, 13)
                .is_empty()
        );
        assert_eq!(device.light().brightness.get(), 0.5);

        // One of its own updates refused: fetch again. Someone else's: not its business.
        let own = report[0].payload["clientToken"].clone();
        let refused = json!({"code": 409, "message": "Version conflict", "clientToken": own});
        let again = device.cloud_message(ShadowTopic::UpdateRejected, refused.to_string().as_bytes(), t0, 14);
        assert_eq!(topics(&again), [ShadowTopic::Get]);
        let other = json!({"code": 400, "message": "Invalid JSON", "clientToken": "app-1"});
        assert!(
            device
                .cloud_message(ShadowTopic::UpdateRejected, other.to_string().as_bytes(), t0, 15)
                .is_empty()
        );

        // A local change shows at once; its report never leaves without its desired half.
        let change = LightChange {
            brightness: Some(Unit::try_from(0.1).unwrap()),
            ..Default::default()
        };
        device.local_change(change, None, t0, 300);
        let sent = device.tick(t0, 16);
        assert_eq!(topics(&sent), [ShadowTopic::Update]);
        assert_eq!(sent[0].payload["state"]["desired"]["light"], json!({"brightness": 0.1}));
        assert_eq!(
            sent[0].payload["state"]["reported"]["light"],
            json!({"brightness": 0.1})
        );
    }

    #[test]
    fn get_and_delete_answer_on_their_topics() {
        let t0 = Instant::now();
        let mut device = device(t0);
        let got = request(&mut device, ShadowOp::Get, json!({"clientToken": "g"}), t0);
        assert_eq!(topics(&got), [ShadowTopic::GetAccepted]);
        assert_eq!(
            got[0].payload["state"]["reported"]["firmware"],
            json!({"version": "1.2.3"})
        );
        let deleted = device.shadow_request(ShadowOp::Delete, b"", t0, 5);
        assert_eq!(topics(&deleted), [ShadowTopic::DeleteAccepted]);
        let missing = device.shadow_request(ShadowOp::Get, b"", t0, 5);
        assert_eq!(topics(&missing), [ShadowTopic::GetRejected]);
        assert_eq!(
            missing[0].payload["message"],
            json!("No shadow exists with name: 'lamp1'")
        );
    }

    /// Epoch seconds of an RFC 3339 time.
    fn at(time: &str) -> u64 {
        time.parse::<DateTime<Utc>>().unwrap().timestamp() as u64
    }

    /// Ticks every 100 ms of both clocks for `seconds`, as the lamp task would.
    fn run_for(device: &mut Device, now: &mut Instant, wall: &mut u64, seconds: u64) {
        for i in 0..seconds * 10 {
            *now += Duration::from_millis(100);
            device.tick(*now, *wall);
            if i % 10 == 9 {
                *wall += 1;
            }
        }
    }

    const LONDON: &str = r#"{"latitude": 51.5, "longitude": -0.12}"#;

    /// A desired update that the lamp must accept.
    fn desire(device: &mut Device, desired: Value, now: Instant) {
        let messages = request(device, ShadowOp::Update, json!({"state": {"desired": desired}}), now);
        assert_eq!(
            messages[0].topic,
            ShadowTopic::UpdateAccepted,
            "{:?}",
            messages[0].payload
        );
    }

    fn natural(device: &mut Device, now: Instant) {
        let place: Value = serde_json::from_str(LONDON).unwrap();
        desire(device, json!({"mode": "natural", "natural_light": place}), now);
    }

    #[test]
    fn natural_light_drives_the_output_until_a_person_takes_over() {
        let mut now = Instant::now();
        let mut device = device(now);
        let mut wall = at("2026-06-21T12:00:00Z");
        natural(&mut device, now);
        // A short fade to where the sun is; a minute later the next sample aims a minute ahead.
        run_for(&mut device, &mut now, &mut wall, 59);
        let sky = super::super::natural::NaturalLight::from_json(&serde_json::from_str(LONDON).unwrap()).unwrap();
        let expected = sky.output(wall_time(at("2026-06-21T12:00:00Z")));
        let shown = device.output(now);
        assert!(
            (shown.b - expected.b).abs() < 1e-3 && (shown.g - expected.g).abs() < 1e-3,
            "{shown:?}"
        );
        let reported = device.shadow().reported["output"]["b"].as_f64().unwrap();
        assert!((reported - expected.b).abs() < 1e-3, "{reported}");

        // The person dims the lamp: the colour stays the sun's, the mode becomes manual.
        let dim = LightChange {
            brightness: Some(Unit::try_from(0.3).unwrap()),
            ..Default::default()
        };
        device.local_change(dim, Some(Duration::ZERO), now, wall);
        run_for(&mut device, &mut now, &mut wall, 1);
        let light = device.light();
        let (hue, saturation, _) = state_for(expected);
        assert!((light.hue.get() - hue).abs() < 1e-4 && (light.saturation.get() - saturation).abs() < 1e-4);
        assert_eq!(light.brightness.get(), 0.3);
        assert_eq!(device.shadow().desired["mode"], json!("manual"));
        assert_eq!(device.shadow().reported["mode"], json!("manual"));
        assert_eq!(device.shadow().desired["light"]["brightness"], json!(0.3));
        // And stays where the person put it as the sun moves.
        let shown = device.output(now);
        wall += 3600;
        run_for(&mut device, &mut now, &mut wall, 61);
        assert_eq!(device.output(now), shown);
    }

    #[test]
    fn natural_light_needs_a_place_and_a_light_change_with_it_does_not_end_it() {
        let t0 = Instant::now();
        let mut device = device(t0);
        let refused = request(
            &mut device,
            ShadowOp::Update,
            json!({"state": {"desired": {"mode": "natural"}}}),
            t0,
        );
        assert_eq!(refused[0].topic, ShadowTopic::UpdateRejected);
        let place: Value = serde_json::from_str(LONDON).unwrap();
        let both =
            json!({"state": {"desired": {"mode": "natural", "natural_light": place, "light": {"brightness": 0.2}}}});
        request(&mut device, ShadowOp::Update, both, t0);
        device.tick(t0, at("2026-06-21T12:00:00Z"));
        assert_eq!(device.shadow().reported["mode"], json!("natural"));
        assert_eq!(device.light().brightness.get(), 0.2, "kept for when natural light ends");
    }

    fn alarm_at_noon(device: &mut Device, now: Instant, spec: Value) {
        desire(device, json!({"alarms": {"noon": spec}}), now);
    }

    #[test]
    fn an_alarm_overrides_natural_light_and_gives_it_back() {
        let mut now = Instant::now();
        let mut device = device(now);
        let mut wall = at("2026-06-21T11:59:00Z");
        natural(&mut device, now);
        alarm_at_noon(
            &mut device,
            now,
            json!({"time": "12:00", "action": "blink", "days": ["sun"]}),
        );
        run_for(&mut device, &mut now, &mut wall, 60);
        let daylight = device.output(now);
        assert_eq!(
            device.shadow().reported["alarm"]["next"]["at"],
            json!("2026-06-21T12:00:00+00:00")
        );

        wall = at("2026-06-21T12:00:00Z");
        device.tick(now, wall);
        assert_eq!(device.output(now), Rgb { r: 1.0, g: 1.0, b: 1.0 }, "the first flash");
        run_for(&mut device, &mut now, &mut wall, 1);
        assert_eq!(device.shadow().reported["alarm"]["state"], json!("ringing"));
        assert_eq!(device.shadow().reported["alarm"]["ringing"]["id"], json!("noon"));
        let events = device.take_events();
        assert!(events.iter().any(|e| e["type"] == json!("alarm_ringing")), "{events:?}");

        device.alarm_command(AlarmCommand::Dismiss, now, wall).unwrap();
        run_for(&mut device, &mut now, &mut wall, 60);
        let back = device.output(now);
        assert!((back.b - daylight.b).abs() < 0.01, "{back:?} {daylight:?}");
        assert_eq!(device.shadow().reported["mode"], json!("natural"));
        assert_eq!(device.shadow().reported["alarm"]["state"], json!("idle"));
        assert_eq!(
            device.alarm_command(AlarmCommand::Snooze, now, wall),
            Err("no alarm is ringing".into())
        );
    }

    #[test]
    fn a_light_change_while_ringing_dismisses_and_a_one_off_alarm_disables_itself() {
        let mut now = Instant::now();
        let mut device = device(now);
        let mut wall = at("2026-06-21T11:59:00Z");
        alarm_at_noon(&mut device, now, json!({"time": "12:00", "action": "blink"}));
        run_for(&mut device, &mut now, &mut wall, 1);
        wall = at("2026-06-21T12:00:00Z");
        run_for(&mut device, &mut now, &mut wall, 1);
        assert!(device.scheduler.alarms.is_ringing());
        let off = LightChange {
            on: Some(false),
            ..Default::default()
        };
        device.local_change(off, None, now, wall);
        run_for(&mut device, &mut now, &mut wall, 1);
        assert!(!device.scheduler.alarms.is_ringing());
        assert_eq!(device.output(now), Rgb::OFF);
        assert_eq!(device.shadow().desired["alarms"]["noon"]["enabled"], json!(false));
        assert_eq!(device.shadow().reported["alarms"]["noon"]["enabled"], json!(false));
        let events = device.take_events();
        assert!(
            events
                .iter()
                .any(|e| e["type"] == json!("alarm_dismissed") && e["how"] == json!("manual")),
            "{events:?}"
        );
    }

    #[test]
    fn snooze_gives_the_light_back_and_the_alarm_rings_again() {
        let mut now = Instant::now();
        let mut device = device(now);
        let mut wall = at("2026-06-21T12:00:00Z");
        let before = device.output(now);
        alarm_at_noon(
            &mut device,
            now,
            json!({"time": "12:10", "action": "sunrise", "snooze_minutes": 1, "brightness": 0.5}),
        );
        // Set ten minutes into its ramp: it starts half-way, deep-warm and dim.
        device.tick(now, wall);
        run_for(&mut device, &mut now, &mut wall, 6);
        let rising = device.output(now);
        assert!(
            rising.r > rising.g && rising.g > rising.b && rising.r < before.r,
            "{rising:?}"
        );
        device.alarm_command(AlarmCommand::Snooze, now, wall).unwrap();
        run_for(&mut device, &mut now, &mut wall, 1);
        assert_eq!(device.output(now), before);
        assert_eq!(device.shadow().reported["alarm"]["state"], json!("snoozed"));
        wall += 60;
        run_for(&mut device, &mut now, &mut wall, 2);
        assert_eq!(device.shadow().reported["alarm"]["state"], json!("ringing"));
        assert_ne!(device.output(now), before);
    }

    #[test]
    fn nothing_rings_while_the_clock_is_unsynchronised_and_that_is_reported() {
        let mut now = Instant::now();
        let mut device = device(now);
        let mut wall = at("2026-06-21T11:59:00Z");
        let unsynchronised = ClockStatus {
            synchronised: false,
            require_sync: true,
        };
        device.set_clock(unsynchronised, wall);
        alarm_at_noon(&mut device, now, json!({"time": "12:00", "action": "blink"}));
        run_for(&mut device, &mut now, &mut wall, 1);
        wall = at("2026-06-21T12:00:00Z");
        run_for(&mut device, &mut now, &mut wall, 1);
        assert!(!device.scheduler.alarms.is_ringing());
        assert_eq!(
            device.shadow().reported["clock"],
            json!({"synchronised": false, "require_sync": true})
        );
    }

    #[test]
    fn pairing_is_reported_and_a_wall_clock_jump_does_not_change_a_codes_life() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let t0 = Instant::now();
        let mut device = device(t0);
        let code = device.request_code(&mut rng, t0, 100_000);
        assert_eq!(device.pairing().code, Some((code.clone(), 100_060)));
        // NTP moves the wall clock back a day and then forward a year: the code still dies
        // 60 s after it was shown, by the monotonic clock.
        device.tick(t0 + Duration::from_secs(30), 100_000 - 86_400);
        device.tick(t0 + Duration::from_secs(59), 100_000 + 365 * 86_400);
        assert!(device.pairing().code.is_some());
        assert_eq!(
            device.next_wake(t0 + Duration::from_secs(59)),
            Some(t0 + Duration::from_secs(60))
        );
        device.tick(t0 + Duration::from_secs(60), 100_000);
        assert_eq!(device.pairing().code, None);
        let alice = Owner::new("alice", "Alice").unwrap();
        let late = device.associate(&code, alice.clone(), t0 + Duration::from_secs(60), 1060);
        assert!(late.unwrap_err().starts_with("the code has expired"));

        let code = device.request_code(&mut rng, t0 + Duration::from_secs(61), 1061);
        assert_eq!(
            device.associate(&code, alice.clone(), t0 + Duration::from_secs(62), 1062),
            Ok(alice.clone())
        );
        device.tick(t0 + Duration::from_secs(62), 1062);
        assert_eq!(
            device.shadow().reported["owner"],
            json!({"id": "alice", "name": "Alice"})
        );
        assert_eq!(device.memory().owner, Some(alice.clone()));
        let events = device.take_events();
        assert!(events.iter().any(|e| e["type"] == json!("pairing_refused")));
        assert!(
            events
                .iter()
                .any(|e| e["type"] == json!("paired") && e["owner"] == json!("alice"))
        );

        assert_eq!(device.unpair("cloud", 1063), Ok(alice));
        device.tick(t0 + Duration::from_secs(63), 1063);
        assert!(device.shadow().reported.get("owner").is_none());
        assert_eq!(device.unpair("cloud", 1064), Err("the lamp is not paired".into()));
    }

    /// Sets a blink alarm at noon on Sundays and runs the lamp until it rings.
    fn ringing_at_noon(device: &mut Device, now: &mut Instant, wall: &mut u64) {
        alarm_at_noon(
            device,
            *now,
            json!({"time": "12:00", "action": "blink", "days": ["sun"]}),
        );
        *wall = at("2026-06-21T11:59:59Z");
        run_for(device, now, wall, 2);
        assert_eq!(device.shadow().reported["alarm"]["state"], json!("ringing"));
        assert!(device.shadow().reported["alarms"].get("noon").is_some());
    }

    /// The alarm is gone from the lamp and from `reported`, and nothing is due.
    fn assert_alarm_gone(device: &mut Device, now: &mut Instant, wall: &mut u64, how: &str) {
        run_for(device, now, wall, 1);
        assert!(!device.scheduler.alarms.is_ringing(), "{how}: still ringing");
        let reported = &device.shadow().reported;
        assert!(reported.get("alarms").is_none(), "{how}: {:?}", reported.get("alarms"));
        assert_eq!(reported["alarm"], json!({"state": "idle"}), "{how}");
        assert_eq!(
            device.output(*now),
            Rgb { r: 1.0, g: 1.0, b: 1.0 },
            "{how}: the light is back"
        );
        assert_eq!(device.next_wall_wake(*now), None, "{how}: nothing scheduled");
    }

    #[test]
    fn every_way_of_deleting_a_ringing_alarm_stops_it_and_drops_it_from_reported() {
        type Deletion = fn(&mut Device, Instant, u64) -> Vec<ShadowMessage>;
        let cases: [(&str, Deletion); 5] = [
            ("the alarm deleted", |d, now, wall| {
                let payload = json!({"state": {"desired": {"alarms": {"noon": null}}}});
                d.shadow_request(ShadowOp::Update, payload.to_string().as_bytes(), now, wall)
            }),
            ("all alarms deleted", |d, now, wall| {
                let payload = json!({"state": {"desired": {"alarms": null}}});
                d.shadow_request(ShadowOp::Update, payload.to_string().as_bytes(), now, wall)
            }),
            ("desired cleared", |d, now, wall| {
                d.shadow_request(ShadowOp::Update, br#"{"state": {"desired": null}}"#, now, wall)
            }),
            ("the shadow deleted", |d, now, wall| {
                d.shadow_request(ShadowOp::Delete, b"", now, wall)
            }),
            ("deleted on the touchscreen", |d, now, wall| {
                let patch = json!({"alarms": {"noon": null}}).as_object().unwrap().clone();
                d.local_settings(patch, now, wall).unwrap()
            }),
        ];
        for (how, delete) in cases {
            let mut now = Instant::now();
            let mut device = device(now);
            let mut wall = 0;
            ringing_at_noon(&mut device, &mut now, &mut wall);
            let answer = delete(&mut device, now, wall);
            assert!(
                answer.iter().all(|m| m.topic != ShadowTopic::UpdateRejected),
                "{how}: {answer:?}"
            );
            assert_alarm_gone(&mut device, &mut now, &mut wall, how);
            let events = device.take_events();
            assert!(
                events
                    .iter()
                    .any(|e| e["type"] == json!("alarm_dismissed") && e["how"] == json!("removed")),
                "{how}: {events:?}"
            );
        }
    }

    #[test]
    fn deleting_the_mode_natural_light_or_the_zone_takes_effect() {
        for deletion in [
            json!({"mode": null}),
            json!({"mode": null, "natural_light": null}),
            json!(null),
        ] {
            let mut now = Instant::now();
            let mut device = device(now);
            let mut wall = at("2026-11-27T02:00:00Z");
            let dark_night = json!({"latitude": 51.5, "longitude": -0.12, "night": "off"});
            desire(
                &mut device,
                json!({"mode": "natural", "natural_light": dark_night}),
                now,
            );
            run_for(&mut device, &mut now, &mut wall, 3);
            assert_eq!(device.output(now), Rgb::OFF, "night in London");
            desire(&mut device, deletion.clone(), now);
            run_for(&mut device, &mut now, &mut wall, 3);
            assert_eq!(
                device.output(now),
                Rgb { r: 1.0, g: 1.0, b: 1.0 },
                "{deletion}: the person's light is back"
            );
            assert!(device.shadow().reported.get("mode").is_none(), "{deletion}");
        }
        // `natural_light` alone cannot go while natural light is on: a clear refusal.
        let t0 = Instant::now();
        let mut lamp = device(t0);
        natural(&mut lamp, t0);
        let refused = request(
            &mut lamp,
            ShadowOp::Update,
            json!({"state": {"desired": {"natural_light": null}}}),
            t0,
        );
        assert_eq!(refused[0].topic, ShadowTopic::UpdateRejected);

        let mut now = Instant::now();
        let mut device = device(now);
        let mut wall = at("2026-06-21T09:00:00Z");
        desire(&mut device, json!({"timezone": "Europe/Paris"}), now);
        alarm_at_noon(&mut device, now, json!({"time": "12:00"}));
        run_for(&mut device, &mut now, &mut wall, 1);
        let next = |d: &Device| d.shadow().reported["alarm"]["next"]["at"].clone();
        assert_eq!(next(&device), json!("2026-06-21T12:00:00+02:00"));
        desire(&mut device, json!({"timezone": null}), now);
        run_for(&mut device, &mut now, &mut wall, 1);
        assert_eq!(next(&device), json!("2026-06-21T12:00:00+00:00"), "back to UTC");
        assert!(device.shadow().reported.get("timezone").is_none());
    }

    #[test]
    fn a_shadow_delete_without_settings_leaves_the_shadow_deleted() {
        let t0 = Instant::now();
        let mut device = device(t0);
        device.shadow_request(ShadowOp::Delete, b"", t0, 5);
        assert!(device.tick(t0, 6).is_empty());
        assert!(!device.shadow().exists);
    }

    fn cloud_client(now: Instant) -> (Device, String) {
        let identity = Identity {
            thing: "lamp1".into(),
            firmware: "1".into(),
            role: ShadowRole::Client,
        };
        let mut device = Device::new(
            LightState::default(),
            Shadow::default(),
            Memory::default(),
            identity,
            Duration::ZERO,
            now,
        );
        let hello = device.connected(10);
        let token = hello[0].payload["clientToken"].as_str().unwrap().to_owned();
        (device, token)
    }

    fn document(desired: Value, version: u64) -> Value {
        json!({"state": {"desired": desired}, "version": version})
    }

    #[test]
    fn as_a_cloud_client_deletions_come_from_the_documents_and_delete_accepted() {
        let mut now = Instant::now();
        let (mut device, token) = cloud_client(now);
        let mut wall = at("2026-06-21T11:00:00Z");
        let alarms = json!({"a": {"time": "12:00"}, "b": {"time": "13:00"}});
        let got = json!({"state": {"desired": {"alarms": alarms.clone(), "timezone": "UTC"}}, "version": 4, "clientToken": token});
        device.cloud_message(ShadowTopic::GetAccepted, got.to_string().as_bytes(), now, wall);
        run_for(&mut device, &mut now, &mut wall, 1);
        assert_eq!(device.shadow().reported["alarms"], alarms);

        // AWS sends no delta for a deletion; the documents show it, whoever asked for it.
        let cloud = |device: &mut Device, topic, doc: Value, now, wall| {
            device.cloud_message(topic, doc.to_string().as_bytes(), now, wall)
        };
        let documents = json!({
            "previous": document(json!({"alarms": alarms.clone(), "timezone": "UTC"}), 5),
            "current": document(json!({"alarms": {"b": {"time": "13:00"}}, "timezone": "UTC"}), 6),
        });
        let sent = cloud(&mut device, ShadowTopic::UpdateDocuments, documents, now, wall);
        run_for(&mut device, &mut now, &mut wall, 1);
        assert_eq!(device.shadow().reported["alarms"], json!({"b": {"time": "13:00"}}));
        assert_eq!(sent[0].payload["state"]["reported"]["alarms"], json!({"a": null}));
        // The last alarm, and the zone; the lamp's own reports change nothing in desired.
        let documents = json!({
            "previous": document(json!({"alarms": {"b": {"time": "13:00"}}, "timezone": "UTC"}), 7),
            "current": {"state": {"reported": {"x": 1}}, "version": 8},
        });
        cloud(&mut device, ShadowTopic::UpdateDocuments, documents, now, wall);
        run_for(&mut device, &mut now, &mut wall, 1);
        assert!(device.shadow().desired.is_empty());
        for key in ["alarms", "timezone"] {
            assert!(device.shadow().reported.get(key).is_none(), "{key}");
        }
        assert_eq!(device.shadow().reported["alarm"], json!({"state": "idle"}));

        // A delete of the cloud's document ends the settings; the lamp reports everything anew.
        let got = json!({"state": {"desired": {"alarms": alarms.clone()}}, "version": 9, "clientToken": token});
        cloud(&mut device, ShadowTopic::GetAccepted, got, now, wall);
        run_for(&mut device, &mut now, &mut wall, 1);
        // A stale copy of an older document (redelivered, say) replays nothing.
        let stale = json!({
            "previous": document(json!({"alarms": alarms.clone()}), 5),
            "current": document(json!({"alarms": {"b": {"time": "13:00"}}}), 6),
        });
        cloud(&mut device, ShadowTopic::UpdateDocuments, stale, now, wall);
        run_for(&mut device, &mut now, &mut wall, 1);
        assert_eq!(device.shadow().reported["alarms"], alarms);
        let sent = cloud(
            &mut device,
            ShadowTopic::DeleteAccepted,
            json!({"version": 9, "timestamp": wall}),
            now,
            wall,
        );
        assert_eq!(topics(&sent), [ShadowTopic::Update]);
        assert!(
            sent[0].payload["state"]["reported"]["firmware"].is_object(),
            "a full report"
        );
        run_for(&mut device, &mut now, &mut wall, 1);
        assert!(device.shadow().reported.get("alarms").is_none());
        assert!(device.scheduler.alarms.report(device.wall).get("next").is_none());

        // Deleted while the lamp was away: the fetched document has them only in a stale
        // `reported`, which is not what the lamp is asked to do.
        let got = json!({"state": {"desired": {"alarms": alarms.clone()}}, "version": 12, "clientToken": token});
        cloud(&mut device, ShadowTopic::GetAccepted, got, now, wall);
        run_for(&mut device, &mut now, &mut wall, 1);
        let got = json!({"state": {"reported": {"alarms": alarms.clone()}}, "version": 14, "clientToken": token});
        let sent = cloud(&mut device, ShadowTopic::GetAccepted, got, now, wall);
        assert_eq!(sent[0].payload["state"]["reported"].get("alarms"), Some(&Value::Null));
        run_for(&mut device, &mut now, &mut wall, 1);
        assert!(device.shadow().reported.get("alarms").is_none());
        assert_eq!(device.shadow().reported["alarm"], json!({"state": "idle"}));
    }

    #[test]
    fn as_a_cloud_client_a_new_document_gets_the_settings_the_lamp_keeps() {
        let now = Instant::now();
        let identity = Identity {
            thing: "lamp1".into(),
            firmware: "1".into(),
            role: ShadowRole::Client,
        };
        // A lamp that kept its own shadow before (`shadow.service = "device"`).
        let shadow = Shadow {
            desired: json!({"alarms": {"a": {"time": "07:00"}}, "light": {"on": true}})
                .as_object()
                .unwrap()
                .clone(),
            ..Shadow::default()
        };
        let mut device = Device::new(
            LightState::default(),
            shadow,
            Memory::default(),
            identity,
            Duration::ZERO,
            now,
        );
        let hello = device.connected(10);
        let token = hello[0].payload["clientToken"].clone();
        let missing = json!({"code": 404, "message": "No shadow exists with name: 'lamp1'", "clientToken": token});
        let sent = device.cloud_message(ShadowTopic::GetRejected, missing.to_string().as_bytes(), now, 11);
        assert_eq!(
            sent[0].payload["state"]["desired"],
            json!({"alarms": {"a": {"time": "07:00"}}}),
            "else the next fetch would delete them"
        );
        assert_eq!(
            sent[0].payload["state"]["reported"]["alarms"],
            json!({"a": {"time": "07:00"}})
        );
    }
}
