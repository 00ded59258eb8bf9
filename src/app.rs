//! The `lampi run` process around one lamp: its tokio runtime, systemd's readiness and watchdog,
//! SIGTERM and SIGINT, and the touchscreen. Slint owns the main thread (some backends insist);
//! the lamp runs on a thread of its own, and whichever ends first ends the other.

use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::WallClock;
use crate::daemon::{self, LampSetup};
use crate::lamp_task::LampHandle;
use crate::ui::bridge::{self, Action, Touchscreen};
use crate::ui::live::{self, ScreenSetup};

/// An event loop that must own the thread it runs on: the touchscreen's, or a stand-in.
pub trait UiLoop {
    type Error: std::fmt::Display;

    /// Ends [`UiLoop::run`] from any thread.
    fn quitter(&self) -> Box<dyn Fn() + Send>;

    /// Runs until quit, or until the person closes it, which calls `on_close` first.
    fn run(self, on_close: Box<dyn Fn()>) -> Result<(), Self::Error>;
}

impl UiLoop for Touchscreen {
    type Error = slint::PlatformError;

    fn quitter(&self) -> Box<dyn Fn() + Send> {
        Box::new(bridge::quit)
    }

    fn run(self, on_close: Box<dyn Fn()>) -> Result<(), slint::PlatformError> {
        Touchscreen::run(self, on_close)
    }
}

/// The lamp's tasks on a tokio runtime until a signal; `with_lamp` starts whatever else needs
/// the lamp (the screen).
pub fn run_lamp(
    setup: LampSetup,
    shutdown: CancellationToken,
    with_lamp: impl FnOnce(&LampHandle, Box<dyn WallClock>),
) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        daemon::run(setup, shutdown, |handle, clock| {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            let mut usec = 0;
            if sd_notify::watchdog_enabled(false, &mut usec) {
                // Ping at twice the rate systemd needs, so one late tick is not fatal.
                let interval = Duration::from_micros(usec) / 2;
                tokio::spawn(daemon::watchdog(handle.clone(), interval));
            }
            with_lamp(handle, clock);
        })
        .await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    });
    ExitCode::SUCCESS
}

/// The lamp on its own thread and `screen` on this one, until either ends.
pub fn run_with_screen(
    setup: LampSetup,
    shutdown: CancellationToken,
    screen: Touchscreen,
    actions: mpsc::UnboundedReceiver<Action>,
    screen_setup: ScreenSetup,
) -> ExitCode {
    let window = screen.handle();
    let lamp = move |shutdown: CancellationToken| {
        let stop = shutdown.clone();
        run_lamp(setup, shutdown, move |handle, clock| {
            tokio::spawn(live::drive(window, handle.clone(), clock, actions, screen_setup, stop));
        })
    };
    beside_ui(screen, shutdown, lamp).unwrap_or(ExitCode::FAILURE)
}

/// Runs `lamp` on a thread of its own and `ui` on this one: the lamp ending quits the UI, the
/// UI ending (closed, or failed) cancels `shutdown`, which `lamp` is given. `None` when the lamp
/// thread could not start or panicked.
pub fn beside_ui<T: Send + 'static>(
    ui: impl UiLoop,
    shutdown: CancellationToken,
    lamp: impl FnOnce(CancellationToken) -> T + Send + 'static,
) -> Option<T> {
    let quit = ui.quitter();
    let lamp_shutdown = shutdown.clone();
    let lamp = std::thread::Builder::new().name("lamp".into()).spawn(move || {
        let ended = lamp(lamp_shutdown);
        // The lamp has stopped: so does the screen.
        quit();
        ended
    });
    let lamp = match lamp {
        Ok(lamp) => lamp,
        Err(e) => {
            eprintln!("lampi: cannot start the lamp thread: {e}");
            return None;
        }
    };
    let closed = shutdown.clone();
    if let Err(e) = ui.run(Box::new(move || closed.cancel())) {
        tracing::error!("touchscreen UI: {e}");
    }
    shutdown.cancel();
    lamp.join().ok()
}

pub fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("lampi: cannot start the async runtime: {e}"))
        .ok()
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let Some(stop) = signalled().await else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the lamp with SIGKILL");
        return;
    };
    tracing::info!("{}: shutting down", stop.name());
    shutdown.cancel();
}

/// A signal asking the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Term,
    Int,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Term => "SIGTERM",
            Stop::Int => "SIGINT",
        }
    }

    /// What a shell reports for a process the signal ended: 128 + its number.
    pub fn exit_status(self) -> u8 {
        let number = match self {
            Stop::Term => libc::SIGTERM,
            Stop::Int => libc::SIGINT,
        };
        128 + number as u8
    }
}

/// The first SIGTERM or SIGINT; listened for from the call (in a runtime's context), so one that
/// comes while the caller still sets up counts too. `None` if either cannot be listened for
/// (then the other may no longer end the process by default either: say so).
pub fn signalled() -> impl Future<Output = Option<Stop>> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        let (Ok(mut term), Ok(mut int)) = signals else {
            return None;
        };
        tokio::select! {
            _ = term.recv() => Some(Stop::Term),
            _ = int.recv() => Some(Stop::Int),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;
    use std::time::Instant;

    use super::*;

    /// How long a test waits for the other side before calling it stuck.
    const STUCK: Duration = Duration::from_secs(10);

    /// A UI loop without a window: it runs until quit, or closes by itself after `close_after`.
    struct StandIn {
        quit: std_mpsc::Sender<()>,
        quitted: std_mpsc::Receiver<()>,
        close_after: Option<Duration>,
    }

    impl StandIn {
        fn new(close_after: Option<Duration>) -> StandIn {
            let (quit, quitted) = std_mpsc::channel();
            StandIn {
                quit,
                quitted,
                close_after,
            }
        }
    }

    impl UiLoop for StandIn {
        type Error = &'static str;

        fn quitter(&self) -> Box<dyn Fn() + Send> {
            let quit = self.quit.clone();
            Box::new(move || {
                let _ = quit.send(());
            })
        }

        fn run(self, on_close: Box<dyn Fn()>) -> Result<(), &'static str> {
            match self.close_after {
                Some(after) => {
                    if self.quitted.recv_timeout(after).is_err() {
                        on_close();
                    }
                    Ok(())
                }
                None => {
                    let quitted = self.quitted.recv_timeout(STUCK);
                    assert!(quitted.is_ok(), "the lamp ended but the UI was never quit");
                    Ok(())
                }
            }
        }
    }

    #[test]
    fn the_lamp_stopping_quits_the_ui() {
        let shutdown = CancellationToken::new();
        let ended = beside_ui(StandIn::new(None), shutdown.clone(), |_| "lamp stopped");
        assert_eq!(ended, Some("lamp stopped"));
        assert!(
            shutdown.is_cancelled(),
            "whatever the lamp left running is told to stop"
        );
    }

    #[test]
    fn the_ui_closing_shuts_the_lamp_down() {
        let started = Instant::now();
        let ended = beside_ui(
            StandIn::new(Some(Duration::from_millis(50))),
            CancellationToken::new(),
            move |shutdown| {
                while !shutdown.is_cancelled() {
                    assert!(started.elapsed() < STUCK, "the lamp was never told to stop");
                    std::thread::sleep(Duration::from_millis(5));
                }
                "lamp shut down"
            },
        );
        assert_eq!(ended, Some("lamp shut down"));
    }
}
