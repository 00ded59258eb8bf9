//! The touchscreen against a real lamp task, through Slint's testing backend: controls are
//! found by their accessible labels and worked as a screen reader would, and every check looks
//! at the lamp's own state, not the screen's.
//!
//! Slint's testing backend allows one event loop per process, so this file has one test: the
//! event loop runs on the test's thread, the lamp on a tokio runtime, and the scenario on a
//! thread of its own that reaches the window through `invoke_from_event_loop`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use i_slint_backend_testing::ElementHandle;
use lampi::clock::VirtualClock;
use lampi::config::UiConfig;
use lampi::core::lamp::{Identity, Memory, Saved, ShadowOp};
use lampi::core::light::LightState;
use lampi::lamp_task::{Command, LampHandle, LampTask, Timekeeping};
use lampi::ui::backlight::Backlight;
use lampi::ui::bridge::{self, Action};
use lampi::ui::live::{self, ScreenSetup};
use lampi::ui::view::StatusInput;
use lampi::ui::{Api, AppWindow, Screen};
use slint::platform::WindowEvent;
use slint::{ComponentHandle, Model};
use tokio_util::sync::CancellationToken;

/// Runs `f` on the UI thread and returns what it returns.
fn on_ui<R: Send + 'static>(f: impl FnOnce(&AppWindow) -> R + Send + 'static, weak: &slint::Weak<AppWindow>) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    weak.upgrade_in_event_loop(move |window| {
        let _ = tx.send(f(&window));
    })
    .expect("the event loop runs");
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the UI thread answered")
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn element(window: &AppWindow, label: &str) -> ElementHandle {
    let found: Vec<_> = ElementHandle::find_by_accessible_label(window, label).collect();
    assert_eq!(found.len(), 1, "exactly one control labelled {label:?} on screen");
    found.into_iter().next().unwrap()
}

fn press(weak: &slint::Weak<AppWindow>, label: &'static str) {
    on_ui(move |w| element(w, label).invoke_accessible_default_action(), weak);
}

fn value_of(weak: &slint::Weak<AppWindow>, label: &'static str) -> Option<String> {
    on_ui(
        move |w| {
            ElementHandle::find_by_accessible_label(w, label)
                .next()
                .and_then(|e| e.accessible_value())
                .map(|v| v.to_string())
        },
        weak,
    )
}

/// A real touch: pointer events at `fraction` across the control, through Slint's hit testing
/// (unlike the accessible actions, which reach the control whatever lies on top of it).
fn touch_at(window: &AppWindow, label: &str, fractions: &[f32]) {
    let control = element(window, label);
    let (origin, size) = (control.absolute_position(), control.size());
    let at =
        |fraction: f32| slint::LogicalPosition::new(origin.x + size.width * fraction, origin.y + size.height / 2.0);
    let button = slint::platform::PointerEventButton::Left;
    let (first, last) = (at(fractions[0]), at(*fractions.last().unwrap()));
    let events = std::iter::once(WindowEvent::PointerMoved { position: first })
        .chain(std::iter::once(WindowEvent::PointerPressed {
            position: first,
            button,
        }))
        .chain(fractions.iter().map(|&f| WindowEvent::PointerMoved { position: at(f) }))
        .chain(std::iter::once(WindowEvent::PointerReleased { position: last, button }));
    for event in events {
        window.window().dispatch_event(event);
    }
}

/// A touch on an awake screen, so it reaches the control: a sleeping screen is woken first.
fn touch_awake(weak: &slint::Weak<AppWindow>, label: &'static str, fractions: &'static [f32]) {
    until("the touch lands on an awake screen", || {
        let touched = on_ui(
            move |w| {
                let awake = !w.global::<Api>().get_asleep();
                if awake {
                    touch_at(w, label, fractions);
                }
                awake
            },
            weak,
        );
        if !touched {
            press(weak, "Wake screen");
        }
        touched
    });
}

fn go_to(weak: &slint::Weak<AppWindow>, screen: Screen) {
    on_ui(move |w| w.global::<Api>().set_screen(screen), weak);
}

fn alarm_state(lamp: &LampHandle) -> String {
    let saved = lamp.saved.borrow();
    saved.shadow.reported["alarm"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn scenario(weak: slint::Weak<AppWindow>, lamp: LampHandle, backlight_dir: &Path, prefs_path: &Path) {
    let backlight = || std::fs::read_to_string(backlight_dir.join("brightness")).unwrap_or_default();
    // The alarm set through the shadow rings two seconds after the start; the screen turns to it.
    until("the ringing screen shows", || {
        on_ui(|w| w.global::<Api>().get_screen() == Screen::Alarm, &weak)
    });
    assert_eq!(alarm_state(&lamp), "ringing");
    press(&weak, "Snooze");
    until("the lamp's alarm is snoozed", || alarm_state(&lamp) == "snoozed");
    until("the screen returns to the clock", || {
        on_ui(|w| w.global::<Api>().get_screen() == Screen::Home, &weak)
    });
    let next = value_of(&weak, "Next alarm").unwrap();
    assert!(next.starts_with("Snoozed until 07:"), "{next}");
    assert_eq!(value_of(&weak, "Time").as_deref(), Some("07:00"));
    // A snoozed alarm can be dismissed from the clock.
    press(&weak, "Dismiss snoozed alarm");
    until("the lamp's alarm is dismissed", || alarm_state(&lamp) == "idle");
    until("the clock stops saying snoozed", || {
        value_of(&weak, "Next alarm").is_some_and(|n| !n.starts_with("Snoozed"))
    });

    // The brightness slider moves the lamp.
    on_ui(|w| element(w, "Brightness").set_accessible_value("0.25"), &weak);
    until("the lamp's brightness is 0.25", || {
        lamp.changes.borrow().state.brightness.get() == 0.25
    });
    assert_eq!(lamp.changes.borrow().client, "touchscreen");
    until("the slider shows the lamp's value", || {
        value_of(&weak, "Brightness").as_deref() == Some("0.25")
    });

    // A finger dragging the slider: the lamp ends where the finger stopped.
    touch_awake(&weak, "Brightness", &[0.2, 0.4, 0.6, 0.8, 0.9]);
    let width = on_ui(|w| element(w, "Brightness").size().width, &weak);
    // Where the finger stopped, less the knob's half (ui/widgets.slint: 56 px) at each end.
    let expected = f64::from((0.9 * width - 28.0) / (width - 56.0));
    until("the lamp follows the drag", || {
        (lamp.changes.borrow().state.brightness.get() - expected).abs() < 0.01
    });

    // The power toggle, both ways.
    press(&weak, "Light");
    until("the lamp is off", || !lamp.changes.borrow().state.on);
    until("the toggle shows it", || {
        on_ui(|w| element(w, "Light").accessible_checked(), &weak) == Some(false)
    });
    press(&weak, "Light");
    until("the lamp is on again", || lamp.changes.borrow().state.on);

    // Pairing: the screen asks the lamp for a code, and shows the lamp's code and time left.
    go_to(&weak, Screen::Pairing);
    press(&weak, "Connect to cloud");
    until("the lamp has a code", || lamp.pairing.borrow().code.is_some());
    let code = lamp.pairing.borrow().code.clone().unwrap().0;
    until("the screen shows it", || {
        value_of(&weak, "Pairing code").as_deref() == Some(&code)
    });
    let left: u32 = value_of(&weak, "Time left").unwrap().parse().unwrap();
    assert!((55..=60).contains(&left), "{left} s left of a new code");

    // An alarm added on the screen reaches the lamp's desired settings.
    go_to(&weak, Screen::Alarms);
    press(&weak, "+ Add alarm");
    // The editor fits above the tab bar (480 px less its 64): nothing hides behind the tabs.
    for control in ["Save alarm", "Cancel", "Hour down", "Sun", "Longer sunrise"] {
        let bottom = on_ui(
            move |w| {
                let e = element(w, control);
                e.absolute_position().y + e.size().height
            },
            &weak,
        );
        assert!(bottom <= 416.0, "{control} reaches down to {bottom}");
    }
    press(&weak, "Hour up");
    press(&weak, "Save alarm");
    until("the lamp has the new alarm", || {
        lamp.saved.borrow().shadow.desired["alarms"].get("alarm-1").is_some()
    });
    let added = lamp.saved.borrow().shadow.desired["alarms"]["alarm-1"].clone();
    assert_eq!(added["time"], "08:00");
    assert_eq!(added["days"], serde_json::json!(["mon", "tue", "wed", "thu", "fri"]));
    until("the list shows both alarms", || {
        on_ui(|w| w.global::<Api>().get_alarms().row_count(), &weak) == 2
    });
    // The one-off alarm switched itself off when dismissed; its switch turns it back on.
    let wake_enabled = || lamp.saved.borrow().shadow.desired["alarms"]["wake"]["enabled"].clone();
    assert_eq!(wake_enabled(), false);
    let switch_checked = on_ui(|w| element(w, "Alarm 07:00 enabled").accessible_checked(), &weak);
    assert_eq!(switch_checked, Some(false));
    on_ui(
        |w| element(w, "Alarm 07:00 enabled").invoke_accessible_default_action(),
        &weak,
    );
    until("the lamp enabled the first alarm again", || wake_enabled() == true);

    // Both alarms deleted in the editor, the last one too: gone from the lamp and `reported`.
    press(&weak, "Edit alarm 08:00");
    press(&weak, "Delete alarm");
    until("the lamp deleted the new alarm", || {
        lamp.saved.borrow().shadow.desired["alarms"].get("alarm-1").is_none()
    });
    press(&weak, "Edit alarm 07:00");
    press(&weak, "Delete alarm");
    until("the lamp has no alarm left", || {
        let saved = lamp.saved.borrow();
        let reported = &saved.shadow.reported;
        saved.shadow.desired.get("alarms").is_none()
            && reported.get("alarms").is_none()
            && reported["alarm"] == serde_json::json!({"state": "idle"})
    });
    until("the list is empty", || {
        on_ui(|w| w.global::<Api>().get_alarms().row_count(), &weak) == 0
    });

    // Natural light without a place is refused by the lamp, and the screen says why.
    go_to(&weak, Screen::Natural);
    assert_eq!(
        on_ui(|w| element(w, "Natural light").accessible_enabled(), &weak),
        Some(false)
    );
    on_ui(|w| w.global::<Api>().invoke_set_natural(true), &weak);
    until("the refusal shows", || notice(&weak).contains("latitude"));
    assert_eq!(lamp.saved.borrow().shadow.desired.get("mode"), None);

    // Left alone, the screen dims; the first touch only wakes it, and does not reach the
    // control under the finger.
    go_to(&weak, Screen::Home);
    until("the screen sleeps", || on_ui(|w| w.global::<Api>().get_asleep(), &weak));
    assert_eq!(backlight(), "15", "dimmed to ui.dim_level of 100 steps");
    let light_before = lamp.changes.borrow().state;
    on_ui(|w| touch_at(w, "Light", &[0.9]), &weak);
    until("the screen wakes", || !on_ui(|w| w.global::<Api>().get_asleep(), &weak));
    until("the backlight is up", || backlight() == "100");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        lamp.changes.borrow().state,
        light_before,
        "the waking touch changed nothing"
    );
    touch_awake(&weak, "Light", &[0.9]);
    until("a touch on an awake screen works", || {
        lamp.changes.borrow().state.on != light_before.on
    });

    // The screen's own settings change the screen at once and are kept in the state directory.
    go_to(&weak, Screen::Settings);
    press(&weak, "24-hour clock");
    go_to(&weak, Screen::Home);
    until("the clock is in 12-hour form", || {
        value_of(&weak, "Time").is_some_and(|t| t.starts_with("7:0"))
    });
    until("the choice is saved", || {
        std::fs::read(prefs_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|prefs| prefs["clock_24h"] == false)
    });
}

/// Seconds without a touch before the screen dims: long enough for the steps between touches,
/// short enough to wait for.
const IDLE_DIM_S: u64 = 3;

fn notice(weak: &slint::Weak<AppWindow>) -> String {
    on_ui(|w| w.global::<Api>().get_notice().to_string(), weak)
}

#[test]
fn the_touchscreen_drives_the_lamp_and_shows_its_state() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = AppWindow::new().unwrap();
    let (actions, received) = tokio::sync::mpsc::unbounded_channel::<Action>();
    bridge::connect(&window, move |action| {
        let _ = actions.send(action);
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    // A stand-in for /sys/class/backlight/<device>.
    let backlight_dir = tempfile::tempdir().unwrap();
    std::fs::write(backlight_dir.path().join("max_brightness"), "100\n").unwrap();
    let shutdown = CancellationToken::new();

    let clock = VirtualClock::new("2026-11-26T06:59:58Z".parse().unwrap(), 1.0, true);
    let saved = Saved {
        light: LightState::default(),
        shadow: Arc::default(),
        memory: Memory::default(),
    };
    let identity = Identity {
        thing: "ui-test".into(),
        firmware: "0.0.0".into(),
        role: Default::default(),
    };
    let lamp = runtime.block_on(async {
        let replica = lampi::clock::WallClock::replica(&clock);
        let time = Timekeeping {
            clock: Box::new(clock),
            require_sync: false,
        };
        let (task, lamp, _outbox) = LampTask::new(saved, identity, Duration::from_millis(100), time);
        tokio::spawn(task.run(shutdown.clone()));
        let alarm = br#"{"state": {"desired": {"timezone": "UTC",
            "alarms": {"wake": {"time": "07:00", "action": "blink", "label": "Wake"}}}}}"#;
        let (op, payload) = (ShadowOp::Update, alarm.to_vec());
        lamp.commands.send(Command::Shadow { op, payload }).await.unwrap();
        let setup = ScreenSetup {
            ui: UiConfig {
                idle_dim_s: IDLE_DIM_S,
                ..UiConfig::default()
            },
            status: StatusInput {
                has_backlight: true,
                ..StatusInput::default()
            },
            prefs_path: state_dir.path().join("ui.json"),
            backlight: Some(Backlight::at(backlight_dir.path()).unwrap()),
        };
        let drive = live::drive(
            window.as_weak(),
            lamp.clone(),
            replica,
            received,
            setup,
            shutdown.clone(),
        );
        tokio::spawn(drive);
        lamp
    });

    let weak = window.as_weak();
    let backlight_path = backlight_dir.path().to_owned();
    let prefs_path = state_dir.path().join("ui.json");
    let steps = std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scenario(weak, lamp, &backlight_path, &prefs_path)
        }));
        let _ = slint::quit_event_loop();
        outcome
    });
    window.show().unwrap();
    slint::run_event_loop_until_quit().unwrap();
    shutdown.cancel();
    if let Err(panic) = steps.join().unwrap() {
        std::panic::resume_unwind(panic);
    }
}
