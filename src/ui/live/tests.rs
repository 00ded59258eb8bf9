use std::time::Duration;

use tokio::sync::watch;

use super::session::MIN_COMMAND_GAP;
use super::*;
use crate::clock::VirtualClock;
use crate::core::lamp::PairingView;
use crate::core::lamp::{Echo, Saved};
use crate::core::light::LightState;
use crate::lamp_task::Command;

/// A screen that takes every frame.
struct Headless;

impl Surface for Headless {
    fn present(&self, _: View, _: Option<View>, _: String, _: bool) -> bool {
        true
    }
}

/// The lamp's side of its channels: the commands it got; the rest only kept open.
struct FakeLamp {
    received: mpsc::Receiver<Command>,
    _changes: watch::Sender<Echo>,
    _saved: watch::Sender<Saved>,
    _pairing: watch::Sender<PairingView>,
    _online: watch::Sender<bool>,
}

fn lamp() -> (LampHandle, FakeLamp) {
    let (commands, received) = mpsc::channel(256);
    let light = LightState::default();
    let (changes_tx, changes) = watch::channel(Echo {
        state: light,
        client: String::new(),
    });
    let (saved_tx, saved) = watch::channel(Saved {
        light,
        shadow: Arc::default(),
        memory: Default::default(),
    });
    let (pairing_tx, pairing) = watch::channel(PairingView::default());
    let (online_tx, online) = watch::channel(false);
    let handle = LampHandle {
        commands,
        changes,
        output: watch::channel(crate::core::colour::Rgb::OFF).1,
        saved,
        pairing,
        online,
    };
    let fake = FakeLamp {
        received,
        _changes: changes_tx,
        _saved: saved_tx,
        _pairing: pairing_tx,
        _online: online_tx,
    };
    (handle, fake)
}

#[tokio::test(start_paused = true)]
async fn a_drag_reaches_the_lamp_at_most_every_33_ms_and_ends_where_the_finger_stopped() {
    let (lamp, mut fake) = lamp();
    let (touches, actions) = mpsc::unbounded_channel();
    let dir = tempfile::tempdir().unwrap();
    let setup = ScreenSetup {
        ui: UiConfig::default(),
        status: StatusInput::default(),
        prefs_path: dir.path().join(prefs::FILE),
        backlight: None,
    };
    let clock = VirtualClock::new("2026-11-26T12:00:00Z".parse().unwrap(), 1.0, true);
    let shutdown = CancellationToken::new();
    let screen = tokio::spawn(drive(Headless, lamp, Box::new(clock), actions, setup, shutdown.clone()));
    let sent = tokio::spawn(async move {
        let mut sent = Vec::new();
        while let Some(command) = fake.received.recv().await {
            if let Command::Set { change, .. } = command {
                sent.push((Instant::now(), change.brightness.unwrap().get()));
            }
        }
        sent
    });

    let real = std::time::Instant::now();
    // A finger at ~120 events a second for a second (tokio's timers round to milliseconds).
    for i in 0..120 {
        touches.send(Action::Brightness(f64::from(i) / 119.0)).unwrap();
        tokio::time::sleep(Duration::from_micros(8_333)).await;
    }
    let lifted = Instant::now();
    // On tokio's clock alone: a std clock in the loop would spin through real time instead.
    let real = real.elapsed();
    assert!(
        real < Duration::from_millis(500),
        "a second's drag took {real:?} of real time"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    screen.await.unwrap();
    let sent = sent.await.unwrap();

    // At most one change per gap, yet the lamp follows the finger all along the way.
    for pair in sent.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= MIN_COMMAND_GAP, "{sent:?}");
    }
    assert!(sent.len() >= 25, "{} changes: {sent:?}", sent.len());
    let (last_at, last) = *sent.last().unwrap();
    assert_eq!(last, 1.0, "the last move always goes");
    assert!(last_at <= lifted + MIN_COMMAND_GAP, "{last_at:?} {lifted:?}");
}
