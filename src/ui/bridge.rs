//! The only code that touches the window: it puts a [`View`] into the UI's `Api` global and
//! turns the UI's callbacks into [`Action`]s.

use slint::{Color, ComponentHandle, ModelRc, SharedString, VecModel};
use tokio::sync::mpsc;

use super::view::{AlarmLine, PairingPhase, View};
use super::{AlarmRow, Api, AppWindow, InfoLine, Screen};

/// What a person did on the screen.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Power(bool),
    Hue(f64),
    Saturation(f64),
    Brightness(f64),
    Snooze,
    Dismiss,
    SaveAlarm(AlarmLine),
    DeleteAlarm(String),
    AlarmEnabled(String, bool),
    Natural(bool),
    Demo(bool),
    RequestPairingCode,
    Unpair,
    Clock24h(bool),
    ScreenBrightness(f64),
    NightDimming(bool),
    /// The touch that woke a sleeping screen (and did nothing else).
    Woken,
    /// Any deliberate touch: the screen is in use.
    Touched,
}

/// The UI on a real display (a desktop window, or the Pi's screen), owned by the thread that
/// opened it, which must be the main thread.
pub struct Touchscreen {
    window: AppWindow,
}

impl Touchscreen {
    /// Opens the UI on Slint's `backend` (`winit`, `linuxkms`) with the software renderer;
    /// what people do on it arrives on the returned channel.
    pub fn open(
        backend: &str,
        width: u32,
        height: u32,
    ) -> anyhow::Result<(Touchscreen, mpsc::UnboundedReceiver<Action>)> {
        slint::BackendSelector::new()
            .backend_name(backend.into())
            .renderer_name("software".into())
            .select()?;
        let window = AppWindow::new()?;
        window.window().set_size(slint::PhysicalSize::new(width, height));
        let (actions, received) = mpsc::unbounded_channel();
        connect(&window, move |action| {
            // Closed only while shutting down.
            let _ = actions.send(action);
        });
        Ok((Touchscreen { window }, received))
    }

    /// For other threads to reach the UI (`upgrade_in_event_loop`).
    pub fn handle(&self) -> slint::Weak<AppWindow> {
        self.window.as_weak()
    }

    /// Shows the UI and runs its event loop until [`quit`] is called (from any thread) or the
    /// window is closed, which calls `on_close` first.
    pub fn run(self, on_close: impl Fn() + 'static) -> Result<(), slint::PlatformError> {
        self.window.window().on_close_requested(move || {
            on_close();
            slint::CloseRequestResponse::HideWindow
        });
        self.window.show()?;
        slint::run_event_loop_until_quit()
    }
}

/// Ends [`Touchscreen::run`]; callable from any thread, and harmless when no UI runs.
pub fn quit() {
    let _ = slint::quit_event_loop();
}

/// Sends every UI callback to `act`, which must not block: it runs on the UI thread.
pub fn connect(window: &AppWindow, act: impl Fn(Action) + Clone + 'static) {
    let api = window.global::<Api>();
    macro_rules! forward {
        ($on:ident, || $action:expr) => {{
            let act = act.clone();
            api.$on(move || act($action));
        }};
        ($on:ident, |$($arg:ident: $ty:ty),*| $action:expr) => {{
            let act = act.clone();
            api.$on(move |$($arg: $ty),*| act($action));
        }};
    }
    forward!(on_set_power, |on: bool| Action::Power(on));
    forward!(on_set_hue, |v: f32| Action::Hue(v.into()));
    forward!(on_set_saturation, |v: f32| Action::Saturation(v.into()));
    forward!(on_set_brightness, |v: f32| Action::Brightness(v.into()));
    forward!(on_snooze, || Action::Snooze);
    forward!(on_dismiss, || Action::Dismiss);
    forward!(on_save_alarm, |row: AlarmRow| Action::SaveAlarm(line(&row)));
    forward!(on_delete_alarm, |id: SharedString| Action::DeleteAlarm(id.into()));
    forward!(on_set_alarm_enabled, |id: SharedString, on: bool| Action::AlarmEnabled(
        id.into(),
        on
    ));
    forward!(on_set_natural, |on: bool| Action::Natural(on));
    forward!(on_set_demo, |on: bool| Action::Demo(on));
    forward!(on_request_pairing_code, || Action::RequestPairingCode);
    forward!(on_unpair, || Action::Unpair);
    forward!(on_set_clock_24h, |on: bool| Action::Clock24h(on));
    forward!(on_set_screen_brightness, |v: f32| Action::ScreenBrightness(v.into()));
    forward!(on_set_night_dimming, |on: bool| Action::NightDimming(on));
    forward!(on_woken, || Action::Woken);
    forward!(on_touched, || Action::Touched);
}

/// Puts `view` on the screen. Properties that did not change cause no redraw (Slint compares
/// them); lists are replaced only when they differ from `previous`, since a new model rebuilds
/// its rows.
pub fn show(window: &AppWindow, view: &View, previous: Option<&View>) {
    let api = window.global::<Api>();
    let changed = |differs: &dyn Fn(&View) -> bool| previous.is_none_or(differs);
    api.set_time_text(view.time_text.as_str().into());
    api.set_meridiem(view.meridiem.as_str().into());
    api.set_date_text(view.date_text.as_str().into());
    api.set_next_alarm_text(view.next_alarm_text.as_str().into());

    api.set_power(view.power);
    api.set_hue(view.hue);
    api.set_saturation(view.saturation);
    api.set_brightness(view.brightness);
    api.set_preview(colour(view.preview));
    if changed(&|p| p.hue_track != view.hue_track) {
        api.set_hue_stops(colours(&view.hue_track));
    }
    if changed(&|p| p.saturation_track != view.saturation_track) {
        api.set_saturation_stops(colours(&view.saturation_track));
    }
    if changed(&|p| p.brightness_track != view.brightness_track) {
        api.set_brightness_stops(colours(&view.brightness_track));
    }

    api.set_cloud_connected(view.cloud_connected);
    api.set_paired(view.paired);
    api.set_natural_mode(view.natural_mode);

    api.set_ringing(view.ringing);
    api.set_snoozed(view.snoozed);
    api.set_ringing_label(view.ringing_label.as_str().into());
    api.set_ringing_time(view.ringing_time.as_str().into());
    // A ring takes the screen; when it ends, the clock comes back.
    let started_ringing = view.ringing && !previous.is_some_and(|p| p.ringing);
    if started_ringing {
        api.set_screen(Screen::Alarm);
    } else if !view.ringing && api.get_screen() == Screen::Alarm {
        api.set_screen(Screen::Home);
    }

    if changed(&|p| p.alarms != view.alarms) {
        api.set_alarms(model(view.alarms.iter().map(row)));
    }
    api.set_can_add_alarm(view.can_add_alarm);

    api.set_natural_available(view.natural_available);
    api.set_demo_mode(view.demo_mode);
    api.set_natural_text(view.natural_text.as_str().into());
    api.set_sun_path(view.sun_path.as_str().into());
    api.set_sun_now_minute(view.sun_now_minute);
    api.set_sun_now_elevation(view.sun_now_elevation);
    api.set_sunrise_text(view.sunrise_text.as_str().into());
    api.set_sunset_text(view.sunset_text.as_str().into());

    api.set_pairing_phase(match view.pairing_phase {
        PairingPhase::Idle => super::PairingPhase::Idle,
        PairingPhase::Showing => super::PairingPhase::Showing,
        PairingPhase::Expired => super::PairingPhase::Expired,
        PairingPhase::Paired => super::PairingPhase::Paired,
    });
    api.set_pairing_code(view.pairing_code.as_str().into());
    api.set_pairing_left(view.pairing_left);
    api.set_pairing_seconds(view.pairing_seconds);
    api.set_owner_name(view.owner_name.as_str().into());

    if changed(&|p| p.info != view.info) {
        api.set_info(model(view.info.iter().map(|(name, value)| InfoLine {
            name: name.as_str().into(),
            value: value.as_str().into(),
        })));
    }
    api.set_clock_24h(view.clock_24h);
    api.set_night_dimming(view.night_dimming);
    api.set_screen_brightness(view.screen_brightness);
    api.set_has_backlight(view.has_backlight);
}

/// The screen's transient state, which is the UI's own and not the lamp's.
pub fn set_overlay(window: &AppWindow, notice: &str, asleep: bool) {
    let api = window.global::<Api>();
    api.set_notice(notice.into());
    api.set_asleep(asleep);
}

pub fn set_screen(window: &AppWindow, screen: Screen) {
    window.global::<Api>().set_screen(screen);
}

fn colour([r, g, b]: [u8; 3]) -> Color {
    Color::from_rgb_u8(r, g, b)
}

fn colours(stops: &[[u8; 3]]) -> ModelRc<Color> {
    model(stops.iter().copied().map(colour))
}

fn model<T: Clone + 'static>(items: impl Iterator<Item = T>) -> ModelRc<T> {
    ModelRc::new(VecModel::from(items.collect::<Vec<_>>()))
}

fn row(line: &AlarmLine) -> AlarmRow {
    AlarmRow {
        id: line.id.as_str().into(),
        label: line.label.as_str().into(),
        hour: line.hour as i32,
        minute: line.minute as i32,
        day_mask: line.day_mask.into(),
        enabled: line.enabled,
        sunrise: line.sunrise,
        ramp_minutes: line.ramp_minutes as i32,
        time_text: line.time_text.as_str().into(),
        days_text: line.days_text.as_str().into(),
        action_text: line.action_text.as_str().into(),
    }
}

/// An edited alarm from the editor; the text fields are the view's business, not the edit's.
fn line(row: &AlarmRow) -> AlarmLine {
    AlarmLine {
        id: row.id.to_string(),
        label: row.label.to_string(),
        hour: row.hour.clamp(0, 23) as u32,
        minute: row.minute.clamp(0, 59) as u32,
        day_mask: (row.day_mask & 0x7f) as u8,
        enabled: row.enabled,
        sunrise: row.sunrise,
        ramp_minutes: row.ramp_minutes.clamp(1, 90) as u32,
        ..AlarmLine::default()
    }
}
