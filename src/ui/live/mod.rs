//! The screen of a running lamp: a tokio task that watches the lamp task's channels, works out
//! what the screen shows ([`view`]), hands it to the UI thread, and turns touches into lamp
//! commands. It owns no lamp state; the lamp task does. Its time is tokio's throughout, so a
//! paused-clock test drives it.
//!
//! - this file: the setup and the drive loop;
//! - `session`: the screen's own bookkeeping (slider throttle, notices, pairing expiry).

mod session;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::session::ScreenSession;
use super::AppWindow;
use super::backlight::Backlight;
use super::bridge::{self, Action};
use super::prefs;
use super::view::{self, LightView, PairingInput, StatusInput, View, ViewInput};
use crate::clock::{Wake, WallClock};
use crate::config::{Config, Resolved, UiConfig};
use crate::core::screen::{ScreenPolicy, ScreenState};
use crate::lamp_task::LampHandle;

/// What the screen needs to know that is not lamp state.
pub struct ScreenSetup {
    pub ui: UiConfig,
    pub status: StatusInput,
    pub prefs_path: PathBuf,
    pub backlight: Option<Backlight>,
}

impl ScreenSetup {
    pub fn new(config: &Config, resolved: &Resolved) -> ScreenSetup {
        let backlight = Backlight::open(&config.ui.backlight);
        ScreenSetup {
            ui: config.ui.clone(),
            status: StatusInput {
                device_id: resolved.device_id().to_owned(),
                firmware: crate::VERSION.into(),
                addresses: Vec::new(),
                brokers: if config.mqtt.enabled {
                    config.mqtt.brokers().iter().map(ToString::to_string).collect()
                } else {
                    Vec::new()
                },
                shadow_service: config.shadow.service.name().into(),
                has_backlight: backlight.is_some(),
            },
            prefs_path: resolved.state_dir().join(prefs::FILE),
            backlight,
        }
    }

    fn policy(&self) -> ScreenPolicy {
        let time = |text: &str| NaiveTime::parse_from_str(text, "%H:%M").unwrap_or(NaiveTime::MIN);
        ScreenPolicy {
            idle_dim: std::time::Duration::from_secs(self.ui.idle_dim_s),
            dim_level: self.ui.dim_level,
            night_start: time(&self.ui.night_start),
            night_end: time(&self.ui.night_end),
        }
    }
}

/// Where the drive loop's frames go: the Slint window on its UI thread, or a stand-in.
pub trait Surface: Send + 'static {
    /// Hands over a frame (what the screens show, replacing `previous`; the notice; whether
    /// the screen sleeps); `false` once the UI is gone.
    fn present(&self, view: View, previous: Option<View>, notice: String, asleep: bool) -> bool;
}

impl Surface for slint::Weak<AppWindow> {
    fn present(&self, view: View, previous: Option<View>, notice: String, asleep: bool) -> bool {
        self.upgrade_in_event_loop(move |window| {
            bridge::show(&window, &view, previous.as_ref());
            bridge::set_overlay(&window, &notice, asleep);
        })
        .is_ok()
    }
}

/// Runs until the lamp stops or `shutdown` fires. `actions` come from [`bridge::connect`].
pub async fn drive(
    window: impl Surface,
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
        prefs: prefs::load(&setup.prefs_path, setup.ui.clock_24h),
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
            last_touch: screen.last_touch().into_std(),
            brightness: input.prefs.screen_brightness,
            dimming: input.prefs.night_dimming && setup.backlight.is_some(),
            ringing: view.ringing,
            local_time: input.clock_synchronised.then(|| local_time(input.now, &input)),
        };
        let backlight = policy.backlight(&light_state, now.into_std());
        if screen.backlight_changed(backlight.level)
            && let Some(device) = &setup.backlight
            && let Err(e) = device.set(backlight.level)
        {
            tracing::warn!("backlight: {e}");
        }
        let notice = screen.notice(now);
        let frame = (view, notice, backlight.asleep);
        if shown.as_ref() != Some(&frame) {
            let previous = shown.take().map(|(view, _, _)| view);
            let (view, notice, asleep) = frame.clone();
            if !window.present(view, previous, notice, asleep) {
                // The event loop is gone: the screen was closed.
                if screen.take_prefs_due(now, true) {
                    prefs::save(&setup.prefs_path, &input.prefs);
                }
                return;
            }
            shown = Some(frame);
        }

        let next_minute = view::next_minute(input.now);
        let wake = [
            view::countdown_tick(&input).map(|wait| now + wait),
            screen.next_due(),
            backlight.next_change.map(Instant::from_std),
        ]
        .into_iter()
        .flatten()
        .min();
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
        if screen.take_prefs_due(Instant::now(), ended) {
            prefs::save(&setup.prefs_path, &input.prefs);
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

fn addresses() -> Vec<String> {
    crate::sys::net::addresses().iter().map(ToString::to_string).collect()
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

#[cfg(test)]
mod tests;
