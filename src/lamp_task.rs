//! The one owner of the lamp's state: a task that feeds the pure [`Lamp`] its inputs with the
//! real clocks, drains its outputs onto channels, and sleeps until its next wake-up.
//!
//! Everything else (MQTT, the UI, and later BLE) holds a [`LampHandle`] and sends [`Command`]s.
//! The task never awaits anything but its inputs and its next wake-up, so no slow peer can
//! stall the light: shadow replies go out through a bounded queue that it never waits on.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::{self, WallClock, timestamp};
use crate::core::colour::Rgb;
use crate::core::firmware::{FirmwareRequest, UpdateStatus};
use crate::core::lamp::{
    AlarmCommand, Answer, ClockStatus, Echo, Identity, Input, Lamp, Now, Output, PairingView, Refusal, Saved,
    ShadowMessage, ShadowOp, ShadowTopic, UnpairSource,
};
use crate::core::light::LightChange;
use crate::core::pairing::Owner;

/// Room for a burst of commands; beyond it senders wait, which pushes back to the broker
/// instead of growing memory.
const COMMAND_QUEUE: usize = 256;
/// Shadow replies waiting for the MQTT publisher. Each request makes at most five, so this
/// absorbs a full command queue's worth; past it replies are dropped and logged.
const SHADOW_QUEUE: usize = 2048;
/// Analytics events waiting for the MQTT side (which spools them to disk while offline).
const EVENT_QUEUE: usize = 256;
/// While alarms wait for the clock to be synchronised, how often to look.
const SYNC_POLL: Duration = Duration::from_secs(30);

/// A shadow reply as it goes on the wire. Queued as bytes, not as the core's JSON value: a
/// document's tree of maps takes several times its text, and under a flood the queue is full.
#[derive(Debug)]
pub struct ShadowReply {
    pub topic: ShadowTopic,
    pub payload: Vec<u8>,
}

/// What the lamp's peers ask of it. Most become one [`Input`]; the task answers the rest.
#[derive(Debug)]
pub enum Command {
    /// A partial change from a named client (LAMPI's `client` field), with its own fade or the
    /// lamp's default.
    Set {
        change: LightChange,
        transition: Option<Duration>,
        client: String,
    },
    /// A request on the shadow's `update`, `get` or `delete` topic (the lamp hosts the shadow).
    Shadow { op: ShadowOp, payload: Vec<u8> },
    /// A message from a cloud shadow service (the lamp is its client).
    Cloud { topic: ShadowTopic, payload: Vec<u8> },
    /// The broker connection came up, to the `broker`th of the configured brokers (from 1).
    Connected { broker: usize },
    /// The broker connection was lost.
    Disconnected,
    /// Bluetooth LE started or stopped serving.
    BleServing(bool),
    /// A change to the settings in `desired` (alarms, mode, natural light) made on the lamp.
    Settings {
        patch: Map<String, Value>,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// Snooze or dismiss the ringing alarm; the answer says why not when there is none.
    Alarm {
        command: AlarmCommand,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// Show a new pairing code (it appears on the `pairing` watch channel).
    RequestPairingCode,
    /// The cloud matched `code` to this lamp for `owner`.
    Associate {
        code: String,
        owner: Owner,
        reply: oneshot::Sender<Result<Owner, Refusal>>,
    },
    /// Forget the owner.
    Unpair {
        source: UnpairSource,
        reply: oneshot::Sender<Result<Owner, Refusal>>,
    },
    /// How the privileged updater is getting on.
    FirmwareStatus(UpdateStatus),
    /// Answered as soon as the task gets to it: proof of life for the systemd watchdog.
    Ping(oneshot::Sender<()>),
}

#[derive(Clone, Debug)]
pub struct LampHandle {
    pub commands: mpsc::Sender<Command>,
    /// The light for LAMPI's `changed` topic.
    pub changes: watch::Receiver<Echo>,
    /// The duty cycles being shown, every fade frame.
    pub output: watch::Receiver<Rgb>,
    pub saved: watch::Receiver<Saved>,
    /// The active pairing code and the owner.
    pub pairing: watch::Receiver<PairingView>,
    /// Whether the broker connection is up.
    pub online: watch::Receiver<bool>,
}

pub struct LampTask {
    lamp: Lamp,
    clock: Box<dyn WallClock>,
    require_sync: bool,
    commands: mpsc::Receiver<Command>,
    changes: watch::Sender<Echo>,
    output: watch::Sender<Rgb>,
    saved: watch::Sender<Saved>,
    pairing: watch::Sender<PairingView>,
    online: watch::Sender<bool>,
    shadow_out: mpsc::Sender<ShadowReply>,
    dropped_replies: u64,
    events_out: mpsc::Sender<Value>,
    dropped_events: u64,
    updates_out: mpsc::Sender<FirmwareRequest>,
}

/// What the lamp task sends out besides its watch channels: for the MQTT side.
#[derive(Debug)]
pub struct Outbox {
    pub shadow: mpsc::Receiver<ShadowReply>,
    /// Analytics events (`crate::events`).
    pub events: mpsc::Receiver<Value>,
    /// Firmware versions for the privileged updater (`crate::updater`).
    pub updates: mpsc::Receiver<FirmwareRequest>,
}

/// What woke the lamp task.
enum Woken {
    Shutdown,
    Command(Command),
    CommandsClosed,
    Timer,
    Clock(clock::Wake),
}

/// Where the answer to a command goes.
enum Reply {
    Done(oneshot::Sender<Result<(), Refusal>>),
    Owner(oneshot::Sender<Result<Owner, Refusal>>),
}

/// How the lamp keeps time: its wall clock, and whether alarms need it synchronised.
pub struct Timekeeping {
    pub clock: Box<dyn WallClock>,
    pub require_sync: bool,
}

impl LampTask {
    /// A lamp task and its handle, plus the queue of shadow messages it will produce.
    pub fn new(
        saved: Saved,
        identity: Identity,
        transition: Duration,
        time: Timekeeping,
    ) -> (LampTask, LampHandle, Outbox) {
        let now = Now::new(Instant::now().into_std(), time.clock.now());
        let lamp = Lamp::new(saved.clone(), identity, transition, now);
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (changes_tx, changes_rx) = watch::channel(Echo {
            state: saved.light,
            client: String::new(),
        });
        let (output_tx, output_rx) = watch::channel(Rgb::OFF);
        let (pairing_tx, pairing_rx) = watch::channel(PairingView {
            owner: saved.memory.owner.clone(),
            ..PairingView::default()
        });
        let (saved_tx, saved_rx) = watch::channel(saved);
        let (online_tx, online_rx) = watch::channel(false);
        let (shadow_tx, shadow_rx) = mpsc::channel(SHADOW_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        // One request at a time: the lamp asks for a version only once.
        let (updates_tx, updates_rx) = mpsc::channel(4);
        let task = LampTask {
            lamp,
            clock: time.clock,
            require_sync: time.require_sync,
            commands: command_rx,
            changes: changes_tx,
            output: output_tx,
            saved: saved_tx,
            pairing: pairing_tx,
            online: online_tx,
            shadow_out: shadow_tx,
            dropped_replies: 0,
            events_out: events_tx,
            dropped_events: 0,
            updates_out: updates_tx,
        };
        let handle = LampHandle {
            commands: command_tx,
            changes: changes_rx,
            output: output_rx,
            saved: saved_rx,
            pairing: pairing_rx,
            online: online_rx,
        };
        let outbox = Outbox {
            shadow: shadow_rx,
            events: events_rx,
            updates: updates_rx,
        };
        (task, handle, outbox)
    }

    fn now(&self) -> Now {
        Now::new(Instant::now().into_std(), self.clock.now())
    }

    /// Runs until `shutdown` fires, even when no handle is left (a lamp with MQTT disabled
    /// still fades in and keeps its light); returns what must be saved.
    pub async fn run(mut self, shutdown: CancellationToken) -> Saved {
        let mut commands_open = true;
        loop {
            let synchronised = self.clock.synchronised();
            let status = ClockStatus {
                synchronised,
                require_sync: self.require_sync,
            };
            self.handle(Input::Tick(status), None);
            let wake = self.lamp.next_wake();
            let mut mono = wake.mono.map(Instant::from_std);
            if self.require_sync && !synchronised {
                // The kernel does not announce synchronisation: look now and then.
                let poll = Instant::now() + SYNC_POLL;
                mono = Some(mono.map_or(poll, |w| w.min(poll)));
            }
            let woken = tokio::select! {
                biased;
                () = shutdown.cancelled() => Woken::Shutdown,
                command = self.commands.recv(), if commands_open => match command {
                    Some(command) => Woken::Command(command),
                    None => Woken::CommandsClosed,
                },
                () = sleep_until(mono) => Woken::Timer,
                woke = self.clock.sleep_until(wake.wall) => Woken::Clock(woke),
            };
            match woken {
                Woken::Shutdown => break,
                Woken::Command(command) => self.command(command),
                Woken::CommandsClosed => commands_open = false,
                Woken::Timer | Woken::Clock(clock::Wake::Due) => {}
                Woken::Clock(clock::Wake::Stepped) => {
                    let wall = self.clock.now();
                    tracing::info!(%wall, "the wall clock was set; alarms are planned again");
                    self.handle(Input::ClockStepped, None);
                }
            }
        }
        // Local changes still waiting for the shadow are saved with it.
        self.handle(Input::Flush, None);
        self.saved.borrow().clone()
    }

    fn command(&mut self, command: Command) {
        let (input, reply) = match command {
            Command::Set {
                change,
                transition,
                client,
            } => (
                Input::Set {
                    change,
                    transition,
                    client,
                },
                None,
            ),
            Command::Shadow { op, payload } => (Input::Shadow { op, payload }, None),
            Command::Cloud { topic, payload } => (Input::Cloud { topic, payload }, None),
            Command::Connected { broker } => {
                self.online.send_replace(true);
                (Input::Connected { broker }, None)
            }
            Command::Disconnected => {
                self.online.send_replace(false);
                return;
            }
            Command::BleServing(serving) => (Input::BleServing(serving), None),
            Command::Settings { patch, reply } => (Input::Settings(patch), Some(Reply::Done(reply))),
            Command::Alarm { command, reply } => (Input::Alarm(command), Some(Reply::Done(reply))),
            Command::RequestPairingCode => {
                let mut seed = [0; 32];
                rand::RngCore::fill_bytes(&mut rand::TryRngCore::unwrap_err(rand::rngs::OsRng), &mut seed);
                (Input::RequestPairingCode { seed }, None)
            }
            Command::Associate { code, owner, reply } => (Input::Associate { code, owner }, Some(Reply::Owner(reply))),
            Command::Unpair { source, reply } => (Input::Unpair(source), Some(Reply::Owner(reply))),
            Command::FirmwareStatus(status) => (Input::FirmwareStatus(status), None),
            Command::Ping(reply) => {
                let _ = reply.send(());
                return;
            }
        };
        self.handle(input, reply);
    }

    /// Feeds the lamp one input and sends everything it made where it goes.
    fn handle(&mut self, input: Input, mut reply: Option<Reply>) {
        let now = self.now();
        self.lamp.handle(input, now);
        while let Some(output) = self.lamp.poll_output() {
            match output {
                Output::Led(duty) => {
                    self.output.send_replace(duty);
                }
                Output::Shadow(message) => self.send_shadow(message),
                Output::Event(event) => self.send_event(event),
                Output::FirmwareRequest(request) => {
                    // Closed: no updater runs (tests, a lamp without a state directory to share).
                    if let Err(TrySendError::Full(request)) = self.updates_out.try_send(request) {
                        tracing::warn!(version = %request.version, "firmware update queue full; request dropped");
                    }
                }
                Output::Echo(echo) => {
                    self.changes.send_replace(echo);
                }
                Output::Pairing(view) => {
                    self.pairing.send_replace(view);
                }
                Output::Saved(saved) => {
                    self.saved.send_replace(saved);
                }
                Output::Answer(answer) => match (answer, reply.take()) {
                    (Answer::Settings(result) | Answer::Alarm(result), Some(Reply::Done(reply))) => {
                        let _ = reply.send(result);
                    }
                    (Answer::Associate(result) | Answer::Unpair(result), Some(Reply::Owner(reply))) => {
                        let _ = reply.send(result);
                    }
                    (answer, _) => tracing::error!(?answer, "an answer nobody asked for"),
                },
            }
        }
    }

    /// Queues an analytics event; when the queue is full it is dropped and counted, and the count
    /// goes out as a `dropped` event once there is room again.
    fn send_event(&mut self, event: Value) {
        if self.dropped_events > 0 {
            let dropped = crate::events::dropped_event(self.dropped_events, timestamp(self.clock.now()));
            if self.events_out.try_send(dropped).is_ok() {
                self.dropped_events = 0;
            }
        }
        // Closed means MQTT is disabled: nobody wants events.
        if let Err(TrySendError::Full(_)) = self.events_out.try_send(event) {
            self.dropped_events += 1;
        }
    }

    fn send_shadow(&mut self, message: ShadowMessage) {
        // A place first, then the bytes: under a flood the queue is full, and a reply serialised
        // only to be dropped would cost the lamp task what it is short of.
        match self.shadow_out.try_reserve() {
            Ok(place) => place.send(ShadowReply {
                topic: message.topic,
                payload: serde_json::to_vec(&message.payload).expect("JSON values always serialise"),
            }),
            // No MQTT side (tests, a lamp without a broker): nobody to answer.
            Err(TrySendError::Closed(())) => {}
            Err(TrySendError::Full(())) => {
                // One line per thousand, so a flood of requests cannot flood the journal too.
                if self.dropped_replies.is_multiple_of(1000) {
                    tracing::warn!(
                        dropped = self.dropped_replies + 1,
                        "shadow reply queue full; replies dropped"
                    );
                }
                self.dropped_replies += 1;
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

    fn identity() -> Identity {
        Identity {
            thing: "t".into(),
            firmware: "f".into(),
            role: Default::default(),
        }
    }

    fn system_time() -> Timekeeping {
        Timekeeping {
            clock: Box::new(crate::clock::SystemClock::default()),
            require_sync: false,
        }
    }

    fn fresh() -> Saved {
        Saved::default()
    }

    fn set(brightness: f64) -> Command {
        Command::Set {
            change: LightChange {
                brightness: Some(Unit::try_from(brightness).unwrap()),
                ..Default::default()
            },
            transition: None,
            client: "test".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fades_in_then_sleeps_until_told_otherwise() {
        let (task, mut handle, _outbox) = LampTask::new(fresh(), identity(), Duration::from_millis(400), system_time());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(task.run(shutdown.clone()));
        let mut frames = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::time::timeout_at(deadline, handle.output.changed()).await.is_ok() {
            frames += 1;
        }
        // 400 ms at one frame per 10 ms, and then nothing for the remaining seconds.
        assert!((39..=41).contains(&frames), "{frames} frames");
        assert_eq!(*handle.output.borrow(), Rgb { r: 1.0, g: 1.0, b: 1.0 });

        handle.commands.send(set(0.5)).await.unwrap();
        handle.changes.changed().await.unwrap();
        assert_eq!(handle.changes.borrow().state.brightness.get(), 0.5);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!((handle.output.borrow().g - 0.184_186).abs() < 1e-6);

        shutdown.cancel();
        assert_eq!(running.await.unwrap().light.brightness.get(), 0.5);
    }

    #[tokio::test(start_paused = true)]
    async fn shadow_changes_to_the_light_reach_lampi_clients_as_shadow() {
        let (task, mut handle, mut outbox) = LampTask::new(fresh(), identity(), Duration::ZERO, system_time());
        tokio::spawn(task.run(CancellationToken::new()));
        let payload = br#"{"state":{"desired":{"light":{"on":false}}}}"#.to_vec();
        handle
            .commands
            .send(Command::Shadow {
                op: ShadowOp::Update,
                payload,
            })
            .await
            .unwrap();
        handle.changes.changed().await.unwrap();
        assert_eq!(handle.changes.borrow().client, "shadow");
        assert!(!handle.changes.borrow().state.on);
        let first = outbox.shadow.recv().await.unwrap();
        let event = outbox.events.recv().await.unwrap();
        assert_eq!(
            (event["type"].as_str(), event["source"].as_str()),
            (Some("power"), Some("shadow"))
        );
        assert_eq!(first.topic, crate::core::lamp::ShadowTopic::UpdateAccepted);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_pings() {
        let (task, handle, _outbox) = LampTask::new(fresh(), identity(), Duration::ZERO, system_time());
        tokio::spawn(task.run(CancellationToken::new()));
        let (tx, rx) = oneshot::channel();
        handle.commands.send(Command::Ping(tx)).await.unwrap();
        rx.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn persists_once_per_interval_and_the_last_state_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::new(dir.path());
        let (task, handle, _outbox) = LampTask::new(fresh(), identity(), Duration::ZERO, system_time());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(task.run(shutdown.clone()));
        let persisting = tokio::spawn(crate::store::persist(store.clone(), handle.saved.clone()));
        // A 60 Hz slider drag for two seconds.
        for i in 0..120 {
            handle.commands.send(set(f64::from(i) / 200.0)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(16)).await;
        }
        let mid_drag = store.load().light;
        // At 1.92 s the drag had reached 0.6; what is on disk is at most a second old.
        assert!(
            mid_drag.brightness.get() > 0.25,
            "on disk within a second: {mid_drag:?}"
        );
        shutdown.cancel();
        running.await.unwrap();
        drop(handle);
        persisting.await.unwrap();
        let saved = store.load();
        assert_eq!(saved.light.brightness.get(), 119.0 / 200.0);
        assert_eq!(
            saved.shadow.reported["light"]["brightness"],
            serde_json::json!(119.0 / 200.0)
        );
    }
}
