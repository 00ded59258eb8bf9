//! The one owner of the lamp's state: a task that takes commands on a channel, drives the core
//! with tokio's clock, and publishes what changed on watch channels.
//!
//! Everything else (MQTT, and later the UI, BLE and the schedulers) holds a [`LampHandle`].
//! The task never awaits anything but its inputs and its next wake-up, so no slow peer can
//! stall the light.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::colour::Rgb;
use crate::core::lamp::Lamp;
use crate::core::light::{LightChange, LightState};

/// Room for a burst of commands; beyond it senders wait, which pushes back to the broker
/// instead of growing memory.
const COMMAND_QUEUE: usize = 256;

#[derive(Debug)]
pub enum Command {
    /// A partial change from a named client (LAMPI's `client` field).
    Set { change: LightChange, client: String },
    /// Answered as soon as the task gets to it: proof of life for the systemd watchdog.
    Ping(oneshot::Sender<()>),
}

/// What the lamp is set to, published after every accepted change (even one that changes
/// nothing, so every sender gets its echo, as in LAMPI).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub state: LightState,
    /// Who made the last change.
    pub client: String,
}

#[derive(Clone, Debug)]
pub struct LampHandle {
    pub commands: mpsc::Sender<Command>,
    pub changes: watch::Receiver<Snapshot>,
    /// The duty cycles being shown, every fade frame.
    pub output: watch::Receiver<Rgb>,
}

pub struct LampTask {
    lamp: Lamp,
    commands: mpsc::Receiver<Command>,
    changes: watch::Sender<Snapshot>,
    output: watch::Sender<Rgb>,
}

impl LampTask {
    pub fn new(initial: LightState, transition: Duration) -> (LampTask, LampHandle) {
        let lamp = Lamp::new(initial, transition, Instant::now().into_std());
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (changes_tx, changes_rx) = watch::channel(Snapshot {
            state: initial,
            client: String::new(),
        });
        let (output_tx, output_rx) = watch::channel(Rgb::OFF);
        let task = LampTask {
            lamp,
            commands: command_rx,
            changes: changes_tx,
            output: output_tx,
        };
        let handle = LampHandle {
            commands: command_tx,
            changes: changes_rx,
            output: output_rx,
        };
        (task, handle)
    }

    /// Runs until `shutdown` fires, even when no handle is left (a lamp with MQTT disabled
    /// still fades in and keeps its light); returns the final state.
    pub async fn run(mut self, shutdown: CancellationToken) -> LightState {
        let mut commands_open = true;
        loop {
            let now = Instant::now().into_std();
            let output = self.lamp.tick(now);
            self.output
                .send_if_modified(|shown| std::mem::replace(shown, output) != output);
            let wake = self.lamp.next_wake(now).map(Instant::from_std);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                command = self.commands.recv(), if commands_open => match command {
                    Some(command) => self.handle(command),
                    None => commands_open = false,
                },
                () = sleep_until(wake) => {}
            }
        }
        self.lamp.state()
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Set { change, client } => {
                self.lamp.apply(change, Instant::now().into_std());
                let state = self.lamp.state();
                self.changes.send_replace(Snapshot { state, client });
            }
            Command::Ping(reply) => {
                let _ = reply.send(());
            }
        }
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::light::Unit;

    fn set(brightness: f64) -> Command {
        Command::Set {
            change: LightChange {
                brightness: Some(Unit::try_from(brightness).unwrap()),
                ..Default::default()
            },
            client: "test".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fades_in_then_sleeps_until_told_otherwise() {
        let (task, mut handle) = LampTask::new(LightState::default(), Duration::from_millis(400));
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(task.run(shutdown.clone()));
        let mut frames = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::time::timeout_at(deadline, handle.output.changed())
            .await
            .is_ok()
        {
            frames += 1;
        }
        // 400 ms at one frame per 10 ms, and then nothing for the remaining seconds.
        assert!((39..=41).contains(&frames), "{frames} frames");
        assert_eq!(
            *handle.output.borrow(),
            Rgb {
                r: 1.0,
                g: 1.0,
                b: 1.0
            }
        );

        handle.commands.send(set(0.5)).await.unwrap();
        handle.changes.changed().await.unwrap();
        assert_eq!(handle.changes.borrow().state.brightness.get(), 0.5);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!((handle.output.borrow().g - 0.184_186).abs() < 1e-6);

        shutdown.cancel();
        assert_eq!(running.await.unwrap().brightness.get(), 0.5);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_pings() {
        let (task, handle) = LampTask::new(LightState::default(), Duration::ZERO);
        tokio::spawn(task.run(CancellationToken::new()));
        let (tx, rx) = oneshot::channel();
        handle.commands.send(Command::Ping(tx)).await.unwrap();
        rx.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn persists_once_per_interval_and_the_last_state_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::new(dir.path());
        let (task, handle) = LampTask::new(LightState::default(), Duration::ZERO);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(task.run(shutdown.clone()));
        let persisting = tokio::spawn(crate::store::persist(store.clone(), handle.changes.clone()));
        // A 60 Hz slider drag for two seconds.
        for i in 0..120 {
            handle
                .commands
                .send(set(f64::from(i) / 200.0))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(16)).await;
        }
        let mid_drag = store.load();
        // At 1.92 s the drag had reached 0.6; what is on disk is at most a second old.
        assert!(
            mid_drag.brightness.get() > 0.25,
            "on disk within a second: {mid_drag:?}"
        );
        shutdown.cancel();
        running.await.unwrap();
        drop(handle);
        persisting.await.unwrap();
        assert_eq!(store.load().brightness.get(), 119.0 / 200.0);
    }
}
