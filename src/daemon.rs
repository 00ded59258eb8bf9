//! `lampi run`: one lamp's tasks wired together, until a shutdown token fires.
//!
//! Nothing here is global: a fleet simulator can call [`run`] thousands of times in one process,
//! each with its own config, LED and shutdown token. Talking to systemd is the binary's job.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{SystemClock, VirtualClock, WallClock};
use crate::config::{Config, OnShutdown, Overrides, Resolved};
use crate::core::colour::Rgb;
use crate::core::lamp::Identity;
use crate::lamp_task::{Command, LampHandle, LampTask, Outbox, Timekeeping};
use crate::led::Led;
use crate::store::{self, Store};

/// Everything one lamp needs.
pub struct LampSetup {
    pub config: Config,
    pub state_dir: PathBuf,
    pub led: Box<dyn Led>,
}

/// Runs a lamp until `shutdown` is cancelled, then stops cleanly: state flushed, broker told,
/// LED left as configured. `on_ready` gets the lamp's handle and a replica of its wall clock once
/// it runs (tests watch the LED through it; the binary tells systemd it is ready and starts the
/// screen).
pub async fn run(
    setup: LampSetup,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&LampHandle, Box<dyn WallClock>),
) {
    let LampSetup { config, state_dir, led } = setup;
    let store = Store::new(&state_dir);
    let initial = store.load();
    tracing::info!(state_dir = %state_dir.display(), light = ?initial.light, shadow_version = initial.shadow.version, "lamp starting");
    let resolved = Resolved::new(&config, Overrides::default().state_dir(Some(state_dir.clone())));
    let identity = Identity {
        thing: resolved.device_id().to_owned(),
        firmware: env!("CARGO_PKG_VERSION").into(),
        role: resolved.shadow_role(),
    };
    let time = timekeeping(&config);
    let clock = time.clock.replica();
    let (task, handle, outbox) = LampTask::new(initial, identity, config.light.transition(), time);
    let Outbox {
        shadow,
        events,
        updates,
    } = outbox;

    let tracker = TaskTracker::new();
    let lamp_task = tracker.spawn(task.run(shutdown.clone()));
    let led_task = tracker.spawn(drive_led(led, handle.output.clone()));
    tracker.spawn(store::persist(store, handle.saved.clone()));
    tracker.spawn(crate::updater::run(
        state_dir.clone(),
        config.update.status_file.clone(),
        updates,
        handle.commands.clone(),
        shutdown.clone(),
    ));
    if config.mqtt.enabled {
        let handle = handle.clone();
        let shutdown = shutdown.clone();
        let topics = crate::mqtt::Topics::new(&config, &resolved);
        let mqtt = config.mqtt.clone();
        let spool = crate::events::Spool::open(&state_dir);
        tracker.spawn(async move { crate::mqtt::run(&mqtt, topics, handle, shadow, events, spool, shutdown).await });
    }
    if config.ble.enabled {
        spawn_ble(&tracker, &config, &resolved, &handle, &shutdown);
    }
    tracker.close();
    on_ready(&handle, clock);

    if let Ok(last) = lamp_task.await {
        tracing::info!(light = ?last.light, "lamp stopped");
    }
    tracker.wait().await;
    if let Ok(mut led) = led_task.await {
        let keep_lit = config.led.on_shutdown == OnShutdown::Keep;
        if let Err(e) = led.shut_down(keep_lit) {
            tracing::error!("{e}");
        }
    }
}

/// The lamp's Bluetooth LE task, named and described from this lamp's config.
#[cfg(feature = "ble")]
fn spawn_ble(
    tracker: &TaskTracker,
    config: &Config,
    resolved: &Resolved,
    handle: &LampHandle,
    shutdown: &CancellationToken,
) {
    let ble = &config.ble;
    let setup = crate::ble::BleSetup {
        adapter: ble.adapter.clone(),
        name: ble
            .name
            .clone()
            .unwrap_or_else(|| format!("LAMPI {}", resolved.device_id())),
        info: crate::protocol::ble::DeviceInfo {
            manufacturer: ble.manufacturer.clone(),
            serial: resolved.device_id().to_owned(),
            firmware: env!("CARGO_PKG_VERSION").into(),
        },
        pairing_code: ble.pairing_code,
    };
    tracker.spawn(crate::ble::run(setup, handle.clone(), shutdown.clone()));
}

#[cfg(not(feature = "ble"))]
fn spawn_ble(_: &TaskTracker, _: &Config, _: &Resolved, _: &LampHandle, _: &CancellationToken) {
    tracing::warn!("`ble.enabled` is set, but this build has no Bluetooth LE (the `ble` feature)");
}

/// Applies the newest duty cycles to the LED, skipping frames it cannot keep up with, until
/// the lamp task ends; then hands the LED back for shutdown.
async fn drive_led(mut led: Box<dyn Led>, mut output: watch::Receiver<Rgb>) -> Box<dyn Led> {
    let mut failing = false;
    loop {
        let duty = *output.borrow_and_update();
        match led.set(duty) {
            Ok(()) if failing => {
                tracing::info!("LED output works again");
                failing = false;
            }
            Ok(()) => {}
            // Log once per outage, not once per fade frame.
            Err(e) if !failing => {
                tracing::error!("{e}");
                failing = true;
            }
            Err(_) => {}
        }
        if output.changed().await.is_err() {
            return led;
        }
    }
}

/// Pings systemd's watchdog as long as the lamp task answers, so a wedged lamp is restarted.
/// Ends when the lamp does.
pub async fn watchdog(handle: LampHandle, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        let (reply, answered) = oneshot::channel();
        if handle.commands.send(Command::Ping(reply)).await.is_err() {
            return;
        }
        match tokio::time::timeout(interval, answered).await {
            Ok(Ok(())) => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
            Ok(Err(_)) => return,
            Err(_) => tracing::error!("lamp task did not answer within {interval:?}; not feeding the watchdog"),
        }
    }
}

/// The lamp's wall clock: the system's, or a virtual one when the config asks for it.
fn timekeeping(config: &Config) -> Timekeeping {
    let require_sync = config.require_sync();
    let clock: Box<dyn WallClock> = match config.virtual_clock_start() {
        Some(start) => {
            let speed = config.clock.speed.unwrap_or(1.0);
            tracing::info!(%start, speed, "running on a virtual clock");
            Box::new(VirtualClock::new(start, speed, true))
        }
        None => Box::new(SystemClock::default()),
    };
    tracing::info!(
        require_sync,
        synchronised = clock.synchronised(),
        "alarms {} a synchronised clock",
        if require_sync { "wait for" } else { "do not wait for" }
    );
    Timekeeping { clock, require_sync }
}
