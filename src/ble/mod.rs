//! The lamp as a Bluetooth LE peripheral: the LAMPI GATT service ([`crate::protocol::ble`])
//! served through BlueZ with bluer, and an advertisement. One task per lamp, [`run`].
//!
//! BlueZ, the adapter or both may be missing, powered off, unplugged or restarted at any time:
//! the task says so once in the log and to the lamp (`reported.ble.serving`), leaves everything
//! else alone, and serves again when the adapter is back.
//!
//! - `gatt`: the application (reads, writes, notifications).

mod gatt;

use std::collections::BTreeSet;
use std::time::Duration;

use bluer::adv::{Advertisement, Type};
use bluer::{AdapterEvent, AdapterProperty, Session, SessionEvent, Uuid};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::gatt::CLIENT;
use crate::core::backoff::Backoff;
use crate::lamp_task::{Command, LampHandle};
use crate::protocol::ble::{DeviceInfo, LAMP_SERVICE};

/// Retries after BlueZ or the adapter went away: soon at first (a BlueZ restart takes a second),
/// then every few seconds.
const RETRY_INITIAL: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Subscriptions waiting for the notifier task.
const SUBSCRIPTIONS: usize = 8;

/// What one lamp serves over BLE, from its config.
#[derive(Clone, Debug)]
pub struct BleSetup {
    /// The adapter ("hci0"); `None` for BlueZ's default.
    pub adapter: Option<String>,
    /// The advertised name.
    pub name: String,
    pub info: DeviceInfo,
}

/// Serves the lamp over BLE until `shutdown`, through every outage of BlueZ or the adapter.
pub async fn run(setup: BleSetup, lamp: LampHandle, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX);
    let mut last_reason = None;
    loop {
        let outcome = tokio::select! {
            () = shutdown.cancelled() => break,
            outcome = serve(&setup, &lamp, &mut backoff) => outcome,
        };
        let _ = lamp.commands.send(Command::BleServing(false)).await;
        // One line per kind of outage, not one per retry.
        if last_reason.as_ref() != Some(&outcome) {
            tracing::warn!("Bluetooth LE not serving: {outcome}; retrying");
            last_reason = Some(outcome);
        }
        let delay = backoff.next_delay(&mut rand::rng());
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    let _ = lamp.commands.send(Command::BleServing(false)).await;
}

/// Serves while BlueZ and the adapter are there; returns why it stopped.
async fn serve(setup: &BleSetup, lamp: &LampHandle, backoff: &mut Backoff) -> String {
    // Before anything else, so BlueZ leaving at any moment from here on is seen.
    let mut bluez = match BlueZWatch::new().await {
        Ok(watch) => watch,
        Err(e) => return format!("no system bus ({e})"),
    };
    let session = match Session::new().await {
        Ok(session) => session,
        Err(e) => return format!("no BlueZ on the system bus ({e})"),
    };
    // Watch first, so an adapter that comes or goes while this starts is not missed.
    let mut session_events = match session.events().await {
        Ok(events) => Box::pin(events),
        Err(e) => return format!("BlueZ: {e}"),
    };
    let adapter = match &setup.adapter {
        Some(name) => session.adapter(name),
        None => session.default_adapter().await,
    };
    let adapter = match adapter {
        Ok(adapter) => adapter,
        Err(e) => return format!("no adapter {} ({e})", setup.adapter.as_deref().unwrap_or("")),
    };
    let name = adapter.name().to_owned();
    match adapter.is_powered().await {
        Ok(true) => {}
        Ok(false) => return format!("adapter {name} is powered off"),
        Err(e) => return format!("no adapter {name} ({e})"),
    }
    let mut adapter_events = match adapter.events().await {
        Ok(events) => Box::pin(events),
        Err(e) => return format!("adapter {name}: {e}"),
    };
    let (subscribed_tx, subscribed_rx) = mpsc::channel(SUBSCRIPTIONS);
    let app = gatt::application(lamp.commands.clone(), lamp.changes.clone(), &setup.info, subscribed_tx);
    let _app = match adapter.serve_gatt_application(app).await {
        Ok(handle) => handle,
        Err(e) => return format!("adapter {name} refused the GATT service ({e})"),
    };
    let _advertisement = match adapter.advertise(advertisement(&setup.name)).await {
        Ok(handle) => handle,
        Err(e) => return format!("adapter {name} refused the advertisement ({e})"),
    };
    let notifying = tokio::spawn(gatt::notify_changes(lamp.changes.clone(), subscribed_rx));
    let _ = lamp.commands.send(Command::BleServing(true)).await;
    tracing::info!(adapter = %name, advertised = %setup.name, "Bluetooth LE serving");
    backoff.reset();
    let reason = loop {
        tokio::select! {
            event = session_events.next() => match event {
                // A restarted BlueZ announces its adapters again, without our registrations.
                Some(SessionEvent::AdapterAdded(added)) if added == name => break format!("adapter {name} reappeared (BlueZ restarted?)"),
                Some(SessionEvent::AdapterRemoved(removed)) if removed == name => break format!("adapter {name} was removed"),
                Some(_) => {}
                None => break "the D-Bus connection to BlueZ closed".into(),
            },
            event = adapter_events.next() => match event {
                Some(AdapterEvent::PropertyChanged(AdapterProperty::Powered(false))) => break format!("adapter {name} was powered off"),
                Some(_) => {}
                None => break format!("adapter {name} went away"),
            },
            reason = bluez.gone() => break reason,
        }
    };
    notifying.abort();
    reason
}

/// Whether BlueZ is on the system bus: bluetoothd stopped or killed says nothing itself, and
/// bluer reports only adapters coming and going, so this watches the bus's NameOwnerChanged.
struct BlueZWatch {
    _rule: dbus::nonblock::MsgMatch,
    owners: futures::channel::mpsc::UnboundedReceiver<dbus::Message>,
    bus: tokio::task::JoinHandle<dbus_tokio::connection::IOResourceError>,
}

impl BlueZWatch {
    async fn new() -> Result<BlueZWatch, dbus::Error> {
        let (resource, connection) = dbus_tokio::connection::new_system_sync()?;
        let bus = tokio::spawn(resource);
        let rule = dbus::message::MatchRule::new_signal("org.freedesktop.DBus", "NameOwnerChanged")
            .with_sender("org.freedesktop.DBus");
        match connection.add_match(rule).await {
            Ok(rule) => {
                let (rule, owners) = rule.msg_stream();
                Ok(BlueZWatch {
                    _rule: rule,
                    owners,
                    bus,
                })
            }
            Err(e) => {
                bus.abort();
                Err(e)
            }
        }
    }

    /// Resolves when BlueZ leaves the bus, or the bus connection ends; says which.
    async fn gone(&mut self) -> String {
        loop {
            tokio::select! {
                message = self.owners.next() => match message {
                    Some(message) => {
                        if let Ok(("org.bluez", _, "")) = message.read3::<&str, &str, &str>() {
                            return "BlueZ left the system bus".into();
                        }
                    }
                    None => return "the system bus connection closed".into(),
                },
                ended = &mut self.bus => return format!("the system bus connection closed ({ended:?})"),
            }
        }
    }
}

impl Drop for BlueZWatch {
    fn drop(&mut self) {
        self.bus.abort();
    }
}

/// Connectable, by name and by the Lamp Service's UUID (the name may only reach a central in the
/// scan response; the UUID is what to look for).
fn advertisement(name: &str) -> Advertisement {
    Advertisement {
        advertisement_type: Type::Peripheral,
        service_uuids: BTreeSet::from([Uuid::from_u128(LAMP_SERVICE)]),
        discoverable: Some(true),
        local_name: Some(name.to_owned()),
        ..Default::default()
    }
}
