//! The screen of a running lamp: a tokio task that watches the lamp task's channels, works out
//! what the screen shows ([`view`]), hands it to the UI thread, and turns touches into lamp
//! commands. It owns no lamp state; the lamp task does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::AppWindow;
use super::backlight::Backlight;
use super::bridge::{self, Action};
use super::view::{self, LightView, PairingInput, Prefs, StatusInput, View, ViewInput};
use crate::clock::{Wake, WallClock};
use crate::config::{Config, Display, ShadowService, UiConfig};
use crate::core::lamp::{AlarmCommand, PairingView, Refusal, UnpairSource};
use crate::core::light::{LightChange, Unit};
use crate::core::pairing::Owner;
use crate::core::screen::{ScreenPolicy, ScreenState};
use crate::lamp_task::{Command, LampHandle};

/// A finger on a slider makes 60–120 events a second; the lamp gets at most ~30 changes a
/// second (the last one always), and fades between them.
const MIN_COMMAND_GAP: Duration = Duration::from_millis(33);
/// How long a notice (a refused change) stays up.
const NOTICE_TIME: Duration = Duration::from_secs(5);
/// Screen preferences are saved this long after the last change (a brightness drag would
/// otherwise write the file at every step).
const PREFS_SAVE_DELAY: Duration = Duration::from_secs(1);
/// The day the demo toggle squeezes into, in seconds.
const DEMO_PERIOD_S: u64 = 120;
/// The darkest the person can set the screen in use: never so dark it looks off.
const MIN_SCREEN_BRIGHTNESS: f64 = 0.05;
/// The screen preferences' file in the state directory.
const PREFS_FILE: &str = "ui.json";

/// The Slint backend to use for `display`, or `None` for no screen.
pub fn backend_for(display: Display) -> Result<Option<&'static str>, String> {
    let desktop = std::env::var_os("WAYLAND_DISPLAY").is_some() || std::env::var_os("DISPLAY").is_some();
    let compiled = |name: &'static str, present: bool| {
        if present {
            Ok(Some(name))
        } else {
            Err(format!(
                "ui.display = \"{name}\" needs a build with the `{name}` feature"
            ))
        }
    };
    match display {
        Display::None => Ok(None),
        Display::Winit => compiled("winit", cfg!(feature = "winit")),
        Display::Linuxkms => compiled("linuxkms", cfg!(feature = "linuxkms")),
        Display::Auto if desktop && cfg!(feature = "winit") => Ok(Some("winit")),
        Display::Auto if !desktop && cfg!(feature = "linuxkms") && has_drm_card() => Ok(Some("linuxkms")),
        Display::Auto => Ok(None),
    }
}

fn has_drm_card() -> bool {
    std::fs::read_dir("/dev/dri")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.file_name().to_string_lossy().starts_with("card"))
}

/// What the screen needs to know that is not lamp state.
pub struct ScreenSetup {
    pub ui: UiConfig,
    pub status: StatusInput,
    pub prefs_path: PathBuf,
    pub backlight: Option<Backlight>,
}

impl ScreenSetup {
    pub fn new(config: &Config, state_dir: &std::path::Path) -> ScreenSetup {
        let backlight = Backlight::open(&config.ui.backlight);
        ScreenSetup {
            ui: config.ui.clone(),
            status: StatusInput {
                device_id: config.device_id(),
                firmware: crate::VERSION.into(),
                addresses: Vec::new(),
                broker: if config.mqtt.enabled {
                    format!("{}:{}", config.mqtt.host, config.mqtt.port)
                } else {
                    String::new()
                },
                shadow_service: match config.shadow.service {
                    ShadowService::Device => "device",
                    ShadowService::Aws => "aws",
                    ShadowService::Off => "off",
                }
                .into(),
                has_backlight: backlight.is_some(),
            },
            prefs_path: state_dir.join(PREFS_FILE),
            backlight,
        }
    }

    fn load_prefs(&self) -> Prefs {
        let defaults = Prefs {
            clock_24h: self.ui.clock_24h,
            ..Prefs::default()
        };
        let mut prefs = match std::fs::read(&self.prefs_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %self.prefs_path.display(), "screen preferences unreadable ({e}); using defaults");
                defaults
            }),
            Err(_) => defaults,
        };
        // A hand-edited file gets the same bounds as the slider.
        prefs.screen_brightness = prefs.screen_brightness.clamp(MIN_SCREEN_BRIGHTNESS, 1.0);
        prefs
    }

    fn policy(&self) -> ScreenPolicy {
        let time = |text: &str| NaiveTime::parse_from_str(text, "%H:%M").unwrap_or(NaiveTime::MIN);
        ScreenPolicy {
            idle_dim: Duration::from_secs(self.ui.idle_dim_s),
            dim_level: self.ui.dim_level,
            night_start: time(&self.ui.night_start),
            night_end: time(&self.ui.night_end),
        }
    }
}

/// Runs until the lamp stops or `shutdown` fires. `actions` come from [`bridge::connect`].
pub async fn drive(
    window: slint::Weak<AppWindow>,
    lamp: LampHandle,
    mut clock: Box<dyn WallClock>,
    mut actions: mpsc::UnboundedReceiver<Action>,
    mut setup: ScreenSetup,
    shutdown: CancellationToken,
) {
    let LampHandle {
        commands,
        mut changes,
        mut saved,
        mut pairing,
        mut online,
        ..
    } = lamp;
    let policy = setup.policy();
    let mut screen = ScreenSession::new(commands);
    setup.status.addresses = addresses();
    let mut shadow = Arc::clone(&saved.borrow_and_update().shadow);
    let mut input = ViewInput {
        now: clock.now(),
        clock_synchronised: clock.synchronised(),
        light: light_view(&changes.borrow_and_update().state),
        desired: shadow.desired.clone(),
        reported: shadow.reported.clone(),
        pairing: PairingInput::default(),
        cloud_connected: *online.borrow_and_update(),
        prefs: setup.load_prefs(),
        status: setup.status.clone(),
    };
    let mut shown: Option<(View, String, bool)> = None;
    loop {
        // The shadow's sections are copied only when the lamp saved a new shadow, not at every
        // tick, touch or countdown second.
        let current = Arc::clone(&saved.borrow_and_update().shadow);
        if !Arc::ptr_eq(&current, &shadow) {
            input.desired.clone_from(&current.desired);
            input.reported.clone_from(&current.reported);
            shadow = current;
        }
        input.light = light_view(&changes.borrow_and_update().state);
        input.cloud_connected = *online.borrow_and_update();
        input.pairing = screen.pairing_input(&pairing.borrow_and_update());
        input.now = clock.now();
        input.clock_synchronised = clock.synchronised();
        let now = Instant::now();
        let view = view::view(&input);
        let light_state = ScreenState {
            last_touch: screen.last_touch.into_std(),
            brightness: input.prefs.screen_brightness,
            dimming: input.prefs.night_dimming && setup.backlight.is_some(),
            ringing: view.ringing,
            local_time: input.clock_synchronised.then(|| local_time(input.now, &input)),
        };
        let backlight = policy.backlight(&light_state, now.into_std());
        if screen.backlight_level != Some(backlight.level) {
            if let Some(device) = &setup.backlight
                && let Err(e) = device.set(backlight.level)
            {
                tracing::warn!("backlight: {e}");
            }
            screen.backlight_level = Some(backlight.level);
        }
        let notice = screen.notice(now);
        let frame = (view, notice, backlight.asleep);
        if shown.as_ref() != Some(&frame) {
            let previous = shown.take().map(|(view, _, _)| view);
            let (view, notice, asleep) = frame.clone();
            let handed = window.upgrade_in_event_loop(move |window| {
                bridge::show(&window, &view, previous.as_ref());
                bridge::set_overlay(&window, &notice, asleep);
            });
            if handed.is_err() {
                // The event loop is gone: the screen was closed.
                if screen.prefs_due.is_some() {
                    save_prefs(&setup.prefs_path, &input.prefs);
                }
                return;
            }
            shown = Some(frame);
        }

        let next_minute = view::next_minute(input.now);
        let mut wake: Option<Instant> = None;
        for due in [
            view::countdown_tick(&input).map(|wait| now + wait),
            screen.light.due().map(Instant::from_std),
            screen.notice.as_ref().map(|(_, until)| *until),
            screen.prefs_due,
            backlight.next_change.map(Instant::from_std),
        ]
        .into_iter()
        .flatten()
        {
            wake = Some(wake.map_or(due, |w| w.min(due)));
        }
        // The clock's minute comes from the lamp's wall clock, which also wakes this at once
        // when the clock is set, and runs fast on a virtual clock.
        let ended = tokio::select! {
            () = shutdown.cancelled() => true,
            changed = changes.changed() => changed.is_err(),
            changed = saved.changed() => changed.is_err(),
            changed = pairing.changed() => changed.is_err(),
            changed = online.changed() => {
                input.status.addresses = addresses();
                changed.is_err()
            }
            action = actions.recv() => match action {
                Some(action) => {
                    screen.act(action, &mut input).await;
                    false
                }
                None => true,
            },
            woke = clock.sleep_until(Some(next_minute)) => {
                if woke == Wake::Stepped {
                    tracing::debug!("the wall clock was set; the screen's clock follows");
                }
                false
            }
            () = sleep_until(wake) => false,
        };
        screen.send_light();
        let prefs_due = screen.prefs_due.is_some_and(|due| due <= Instant::now());
        if prefs_due || (ended && screen.prefs_due.is_some()) {
            screen.prefs_due = None;
            save_prefs(&setup.prefs_path, &input.prefs);
        }
        if ended {
            return;
        }
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Slider moves, merged, let through at most once per [`MIN_COMMAND_GAP`]; the last one
/// always goes, so the lamp ends where the finger stopped.
#[derive(Debug, Default)]
struct Throttle {
    pending: Option<LightChange>,
    last_sent: Option<std::time::Instant>,
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
    fn due(&self) -> Option<std::time::Instant> {
        self.pending?;
        Some(
            self.last_sent
                .map_or_else(std::time::Instant::now, |last| last + MIN_COMMAND_GAP),
        )
    }

    fn take(&mut self, now: std::time::Instant) -> Option<LightChange> {
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

/// The screen's own bookkeeping between lamp updates.
struct ScreenSession {
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
    fn new(commands: mpsc::Sender<Command>) -> ScreenSession {
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

    /// Sends the slider's change when the throttle lets it through. A full queue (the lamp
    /// busy with a burst from the broker) keeps it for the next turn instead of stalling.
    fn send_light(&mut self) {
        let Some(change) = self.light.take(std::time::Instant::now()) else {
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

    fn notice(&mut self, now: Instant) -> String {
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

    fn pairing_input(&mut self, view: &PairingView) -> PairingInput {
        let code = view.code.as_ref().map(|(code, _)| code.clone());
        let left_s = view.expires.map_or(0.0, |expires| {
            expires
                .saturating_duration_since(std::time::Instant::now())
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

    async fn act(&mut self, action: Action, input: &mut ViewInput) {
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
                self.prefs(input, |p| p.screen_brightness = v.clamp(MIN_SCREEN_BRIGHTNESS, 1.0));
            }
            Action::NightDimming(on) => self.prefs(input, |p| p.night_dimming = on),
        }
    }

    fn prefs(&mut self, input: &mut ViewInput, change: impl FnOnce(&mut Prefs)) {
        change(&mut input.prefs);
        self.prefs_due = Some(Instant::now() + PREFS_SAVE_DELAY);
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

fn light_view(state: &crate::core::light::LightState) -> LightView {
    LightView {
        on: state.on,
        hue: state.hue.get(),
        saturation: state.saturation.get(),
        brightness: state.brightness.get(),
    }
}

fn local_time(now: DateTime<Utc>, input: &ViewInput) -> NaiveTime {
    now.with_timezone(&input.zone()).time()
}

fn save_prefs(path: &std::path::Path, prefs: &Prefs) {
    let written = serde_json::to_vec_pretty(prefs)
        .map_err(std::io::Error::other)
        .and_then(|bytes| crate::store::write_atomic(path, &bytes));
    if let Err(e) = written {
        tracing::warn!(file = %path.display(), "cannot save the screen preferences: {e}");
    }
}

/// The machine's addresses other than loopback, for the settings screen.
fn addresses() -> Vec<String> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that freeifaddrs releases; each
    // entry's address, when not null, points at a sockaddr of the family it names.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut entry = list;
        while let Some(ifa) = entry.as_ref() {
            entry = ifa.ifa_next;
            let Some(addr) = ifa.ifa_addr.as_ref() else {
                continue;
            };
            let ip: std::net::IpAddr = match i32::from(addr.sa_family) {
                libc::AF_INET => {
                    let v4 = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)).into()
                }
                libc::AF_INET6 => {
                    let v6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr).into()
                }
                _ => continue,
            };
            if !ip.is_loopback() {
                found.push(ip.to_string());
            }
        }
        libc::freeifaddrs(list);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brightness(v: f64) -> LightChange {
        LightChange {
            brightness: Unit::try_from(v).ok(),
            ..LightChange::default()
        }
    }

    #[test]
    fn a_drag_sends_at_most_thirty_changes_a_second_and_always_the_last() {
        let mut throttle = Throttle::default();
        let t0 = std::time::Instant::now();
        let mut sent = Vec::new();
        // A finger at 120 events a second for one second, the lamp's loop turning at each.
        for i in 0..120 {
            let now = t0 + Duration::from_micros(8_333 * i);
            throttle.offer(brightness(i as f64 / 119.0));
            sent.extend(throttle.take(now));
        }
        assert!((29..=31).contains(&sent.len()), "{} changes", sent.len());
        let last = throttle.due().expect("the last move is still pending");
        assert!(last <= t0 + Duration::from_secs(1) + MIN_COMMAND_GAP);
        sent.extend(throttle.take(last));
        assert_eq!(sent.last().unwrap().brightness.unwrap().get(), 1.0);
        assert_eq!(throttle.due(), None);
    }

    #[test]
    fn moves_of_different_sliders_merge_and_a_refused_send_is_kept_under_newer_moves() {
        let mut throttle = Throttle::default();
        let t0 = std::time::Instant::now();
        throttle.offer(brightness(0.5));
        let first = throttle.take(t0).unwrap();
        throttle.offer(LightChange {
            hue: Unit::try_from(0.3).ok(),
            ..LightChange::default()
        });
        throttle.offer(LightChange {
            on: Some(false),
            ..LightChange::default()
        });
        assert_eq!(throttle.take(t0 + Duration::from_millis(5)), None, "too soon");
        throttle.put_back(first);
        throttle.offer(brightness(0.7));
        let merged = throttle.take(t0 + MIN_COMMAND_GAP).unwrap();
        assert_eq!(merged.brightness.unwrap().get(), 0.7);
        assert_eq!(merged.hue.unwrap().get(), 0.3);
        assert_eq!(merged.on, Some(false));
    }

    #[test]
    fn screen_preferences_survive_a_bad_file_and_are_kept_in_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let setup = ScreenSetup {
            ui: UiConfig {
                clock_24h: false,
                ..UiConfig::default()
            },
            status: StatusInput::default(),
            prefs_path: dir.path().join(PREFS_FILE),
            backlight: None,
        };
        assert!(!setup.load_prefs().clock_24h, "no file: the config's choice");
        std::fs::write(&setup.prefs_path, "{not json").unwrap();
        assert_eq!(setup.load_prefs().screen_brightness, 1.0);
        std::fs::write(&setup.prefs_path, r#"{"screen_brightness": 7}"#).unwrap();
        assert_eq!(setup.load_prefs().screen_brightness, 1.0);
        std::fs::write(&setup.prefs_path, r#"{"screen_brightness": -1}"#).unwrap();
        assert_eq!(setup.load_prefs().screen_brightness, MIN_SCREEN_BRIGHTNESS);
        save_prefs(
            &setup.prefs_path,
            &Prefs {
                screen_brightness: 0.5,
                ..Prefs::default()
            },
        );
        assert_eq!(setup.load_prefs().screen_brightness, 0.5);
    }

    #[test]
    fn a_code_that_runs_out_shows_as_expired_but_one_that_was_used_does_not() {
        let (commands, _rx) = mpsc::channel(1);
        let mut screen = ScreenSession::new(commands);
        let ada = Owner {
            id: "a".into(),
            name: "Ada".into(),
        };
        let showing = |owner: Option<Owner>| PairingView {
            code: Some(("ABCD-EFGH".into(), 0)),
            expires: Some(std::time::Instant::now() + Duration::from_secs(30)),
            owner,
        };
        let gone = |owner: Option<Owner>| PairingView {
            code: None,
            expires: None,
            owner,
        };
        assert!(!screen.pairing_input(&showing(None)).expired);
        assert!(screen.pairing_input(&gone(None)).expired);
        assert!(
            screen.pairing_input(&gone(None)).expired,
            "until another code is asked for"
        );
        screen.pairing_input(&showing(None));
        assert!(!screen.pairing_input(&gone(Some(ada.clone()))).expired, "used");
        // Pairing again while paired: running out leaves the old owner, and is still expiry.
        screen.pairing_input(&showing(Some(ada.clone())));
        assert!(screen.pairing_input(&gone(Some(ada))).expired);
    }
}
