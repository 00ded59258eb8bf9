//! The screen's own bookkeeping between lamp updates: the slider throttle, notices, when the
//! preferences are due to be saved, the last touch, and whether a pairing code ran out. Time is
//! tokio's, so paused-time tests drive it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::super::bridge::Action;
use super::super::prefs;
use super::super::view::{self, PairingInput, Prefs, ViewInput};
use crate::core::lamp::{AlarmCommand, PairingView, Refusal, UnpairSource};
use crate::core::light::{LightChange, Unit};
use crate::core::pairing::Owner;
use crate::lamp_task::Command;

/// A finger on a slider makes 60–120 events a second; the lamp gets at most ~30 changes a
/// second (the last one always), and fades between them.
pub(super) const MIN_COMMAND_GAP: Duration = Duration::from_millis(33);
/// How long a notice (a refused change) stays up.
const NOTICE_TIME: Duration = Duration::from_secs(5);
/// The day the demo toggle squeezes into, in seconds.
const DEMO_PERIOD_S: u64 = 120;

/// Slider moves, merged, let through at most once per [`MIN_COMMAND_GAP`]; the last one
/// always goes, so the lamp ends where the finger stopped.
#[derive(Debug, Default)]
struct Throttle {
    pending: Option<LightChange>,
    last_sent: Option<Instant>,
}

impl Throttle {
    fn offer(&mut self, change: LightChange) {
        let pending = self.pending.get_or_insert_with(LightChange::default);
        pending.on = change.on.or(pending.on);
        pending.hue = change.hue.or(pending.hue);
        pending.saturation = change.saturation.or(pending.saturation);
        pending.brightness = change.brightness.or(pending.brightness);
    }

    /// When the pending change may go; `None` when there is none.
    fn due(&self) -> Option<Instant> {
        self.pending?;
        Some(self.last_sent.map_or_else(Instant::now, |last| last + MIN_COMMAND_GAP))
    }

    fn take(&mut self, now: Instant) -> Option<LightChange> {
        self.pending?;
        if self.last_sent.is_some_and(|last| now < last + MIN_COMMAND_GAP) {
            return None;
        }
        self.last_sent = Some(now);
        self.pending.take()
    }

    /// A change that could not be sent waits for the next turn, under anything newer.
    fn put_back(&mut self, change: LightChange) {
        let newer = self.pending.replace(change);
        if let Some(newer) = newer {
            self.offer(newer);
        }
    }
}

pub(super) struct ScreenSession {
    commands: mpsc::Sender<Command>,
    light: Throttle,
    notice: Option<(String, Instant)>,
    prefs_due: Option<Instant>,
    last_touch: Instant,
    backlight_level: Option<f64>,
    /// The code last shown and the owner at the time, to tell a code that expired from one that
    /// was used.
    shown_code: Option<(String, Option<Owner>)>,
}

impl ScreenSession {
    pub(super) fn new(commands: mpsc::Sender<Command>) -> ScreenSession {
        ScreenSession {
            commands,
            light: Throttle::default(),
            notice: None,
            prefs_due: None,
            last_touch: Instant::now(),
            backlight_level: None,
            shown_code: None,
        }
    }

    pub(super) fn last_touch(&self) -> Instant {
        self.last_touch
    }

    /// Records the backlight's level; whether it changed.
    pub(super) fn backlight_changed(&mut self, level: f64) -> bool {
        self.backlight_level.replace(level) != Some(level)
    }

    /// The earliest of the throttle's, the notice's and the preferences' deadlines.
    pub(super) fn next_due(&self) -> Option<Instant> {
        [
            self.light.due(),
            self.notice.as_ref().map(|(_, until)| *until),
            self.prefs_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether the preferences should be saved now: their delay is over, or the screen is
    /// `ending` with a change unsaved.
    pub(super) fn take_prefs_due(&mut self, now: Instant, ending: bool) -> bool {
        let due = self.prefs_due.is_some_and(|due| ending || due <= now);
        if due {
            self.prefs_due = None;
        }
        due
    }

    /// Sends the slider's change when the throttle lets it through. A full queue (the lamp
    /// busy with a burst from the broker) keeps it for the next turn instead of stalling.
    pub(super) fn send_light(&mut self) {
        let Some(change) = self.light.take(Instant::now()) else {
            return;
        };
        let command = Command::Set {
            change,
            transition: None,
            client: "touchscreen".into(),
        };
        if self.commands.try_send(command).is_err() {
            self.light.put_back(change);
        }
    }

    pub(super) fn notice(&mut self, now: Instant) -> String {
        match &self.notice {
            Some((_, until)) if *until <= now => {
                self.notice = None;
                String::new()
            }
            Some((text, _)) => text.clone(),
            None => String::new(),
        }
    }

    fn show_notice(&mut self, text: String) {
        self.notice = Some((text, Instant::now() + NOTICE_TIME));
    }

    pub(super) fn pairing_input(&mut self, view: &PairingView) -> PairingInput {
        let code = view.code.as_ref().map(|(code, _)| code.clone());
        let left_s = view.expires.map_or(0.0, |expires| {
            expires
                .saturating_duration_since(Instant::now().into_std())
                .as_secs_f64()
        });
        if let Some(code) = &code {
            self.shown_code = Some((code.clone(), view.owner.clone()));
        }
        // A code went away and nobody new owns the lamp: it ran out.
        let expired = code.is_none()
            && self
                .shown_code
                .as_ref()
                .is_some_and(|(_, owner_then)| *owner_then == view.owner);
        if code.is_none() && !expired {
            self.shown_code = None;
        }
        PairingInput { code, left_s, expired }
    }

    pub(super) async fn act(&mut self, action: Action, input: &mut ViewInput) {
        self.last_touch = Instant::now();
        let unit = |v: f64| Unit::try_from(v.clamp(0.0, 1.0)).ok();
        match action {
            Action::Touched | Action::Woken => {}
            Action::Power(on) => self.light.offer(LightChange {
                on: Some(on),
                ..LightChange::default()
            }),
            Action::Hue(v) => self.light.offer(LightChange {
                hue: unit(v),
                ..LightChange::default()
            }),
            Action::Saturation(v) => self.light.offer(LightChange {
                saturation: unit(v),
                ..LightChange::default()
            }),
            Action::Brightness(v) => self.light.offer(LightChange {
                brightness: unit(v),
                ..LightChange::default()
            }),
            Action::Snooze | Action::Dismiss => {
                let command = if action == Action::Snooze {
                    AlarmCommand::Snooze
                } else {
                    AlarmCommand::Dismiss
                };
                let (reply, answer) = oneshot::channel();
                self.ask(Command::Alarm { command, reply }, answer).await;
            }
            Action::SaveAlarm(line) => {
                let alarms = input.setting("alarms").and_then(Value::as_object);
                let id = if line.id.is_empty() {
                    view::new_alarm_id(alarms)
                } else {
                    line.id.clone()
                };
                self.settings(json!({"alarms": {id: view::alarm_patch(&line)}})).await;
            }
            Action::DeleteAlarm(id) => self.settings(json!({"alarms": {id: null}})).await,
            Action::AlarmEnabled(id, on) => self.settings(json!({"alarms": {id: {"enabled": on}}})).await,
            Action::Natural(on) => {
                self.settings(json!({"mode": if on { "natural" } else { "manual" }}))
                    .await;
            }
            Action::Demo(on) => {
                let period = if on { DEMO_PERIOD_S } else { 0 };
                self.settings(json!({"natural_light": {"demo_period_s": period}})).await;
            }
            Action::RequestPairingCode => self.send(Command::RequestPairingCode).await,
            Action::Unpair => {
                let (reply, answer) = oneshot::channel();
                self.ask(
                    Command::Unpair {
                        source: UnpairSource::Lamp,
                        reply,
                    },
                    answer,
                )
                .await;
            }
            Action::Clock24h(on) => self.prefs(input, |p| p.clock_24h = on),
            Action::ScreenBrightness(v) => {
                self.prefs(input, |p| p.screen_brightness = prefs::screen_brightness(v));
            }
            Action::NightDimming(on) => self.prefs(input, |p| p.night_dimming = on),
        }
    }

    fn prefs(&mut self, input: &mut ViewInput, change: impl FnOnce(&mut Prefs)) {
        change(&mut input.prefs);
        self.prefs_due = Some(Instant::now() + prefs::SAVE_DELAY);
    }

    async fn settings(&mut self, patch: Value) {
        let Value::Object(patch) = patch else {
            unreachable!("settings patches are objects");
        };
        let (reply, answer) = oneshot::channel();
        self.ask(Command::Settings { patch, reply }, answer).await;
    }

    async fn send(&mut self, command: Command) {
        if self.commands.send(command).await.is_err() {
            self.show_notice("The lamp is shutting down".into());
        }
    }

    /// Sends a command and shows the lamp's refusal, if it refuses.
    async fn ask<T>(&mut self, command: Command, answer: oneshot::Receiver<Result<T, Refusal>>) {
        self.send(command).await;
        if let Ok(Err(refusal)) = answer.await {
            self.show_notice(refusal.to_string());
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
