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
use dbus::message::{MatchRule, MessageType};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::gatt::CLIENT;
use crate::core::backoff::Backoff;
use crate::lamp_task::{Command, LampHandle};
use crate::protocol::ble::{DeviceInfo, LAMP_SERVICE};

/// Retries after BlueZ or the adapter went away wait for a sign of BlueZ on the system bus (it
/// appears, an adapter is added or changes), and at least this backoff: soon at first (an
/// adapter takes a moment to settle), longer after each failed try.
const RETRY_INITIAL: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Without any sign, a retry anyway this often, in case one was missed; and as often when there
/// is no system bus to watch at all.
const RETRY_IDLE: Duration = Duration::from_secs(60);
/// BlueZ's name on the system bus.
const BLUEZ: &str = "org.bluez";
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
    /// Serve the pairing code on the screen as a characteristic too.
    pub pairing_code: bool,
}

/// Serves the lamp over BLE until `shutdown`, through every outage of BlueZ or the adapter.
pub async fn run(setup: BleSetup, lamp: LampHandle, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX);
    let mut last_reason = None;
    loop {
        // Before anything else, so BlueZ leaving or coming at any moment from here on is seen.
        let mut bus = BusWatch::new().await;
        let outcome = match &mut bus {
            Ok(bus) => tokio::select! {
                () = shutdown.cancelled() => break,
                outcome = serve(&setup, &lamp, &mut backoff, bus) => outcome,
            },
            Err(e) => format!("no system bus ({e})"),
        };
        let _ = lamp.commands.send(Command::BleServing(false)).await;
        // One line per kind of outage, not one per retry.
        if last_reason.as_ref() != Some(&outcome) {
            tracing::warn!("Bluetooth LE not serving: {outcome}; retrying");
            last_reason = Some(outcome);
        }
        let earliest = tokio::time::Instant::now() + backoff.next_delay(&mut rand::rng());
        let stirred = async {
            match &mut bus {
                Ok(bus) => bus.stirred().await,
                Err(_) => std::future::pending().await,
            }
            tokio::time::sleep_until(earliest).await;
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = stirred => {}
            () = tokio::time::sleep(RETRY_IDLE) => {}
        }
    }
    let _ = lamp.commands.send(Command::BleServing(false)).await;
}

/// Serves while BlueZ and the adapter are there; returns why it stopped.
async fn serve(setup: &BleSetup, lamp: &LampHandle, backoff: &mut Backoff, bus: &mut BusWatch) -> String {
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
    let (written_tx, written_rx) = mpsc::channel(gatt::WRITES_PENDING);
    let pairing = setup.pairing_code.then(|| lamp.pairing.clone());
    let app = gatt::application(
        lamp.commands.clone(),
        lamp.changes.clone(),
        pairing.clone(),
        &setup.info,
        gatt::ToNotifier {
            subscribed: subscribed_tx,
            written: written_tx,
        },
    );
    let _app = match adapter.serve_gatt_application(app).await {
        Ok(handle) => handle,
        Err(e) => return format!("adapter {name} refused the GATT service ({e})"),
    };
    let _advertisement = match adapter.advertise(advertisement(&setup.name)).await {
        Ok(handle) => handle,
        Err(e) => return format!("adapter {name} refused the advertisement ({e})"),
    };
    let notifying = tokio::spawn(gatt::notify_changes(
        lamp.changes.clone(),
        pairing,
        subscribed_rx,
        written_rx,
        adapter.clone(),
    ));
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
            owner = bus.owner.changed() => match owner {
                Ok(true) => {}
                Ok(false) => break "BlueZ left the system bus".into(),
                Err(reason) => break reason,
            },
            // Taken and dropped while serving, so they do not pile up: only a lamp that is not
            // serving waits for them.
            signal = bus.signals.next() => if signal.is_none() {
                break "the system bus connection closed".into();
            },
        }
    };
    notifying.abort();
    reason
}

/// BlueZ on the system bus, watched where bluer does not: bluetoothd stopped or killed says
/// nothing itself (the bus's NameOwnerChanged does), and while the lamp is not serving, any
/// signal from BlueZ (it appeared, an adapter was added or powered) is worth a retry.
struct BusWatch {
    owner: OwnerWatch,
    _bluez_rule: dbus::nonblock::MsgMatch,
    signals: futures::channel::mpsc::UnboundedReceiver<dbus::Message>,
}

/// Who owns BlueZ's name, over one bus connection.
struct OwnerWatch {
    _rule: dbus::nonblock::MsgMatch,
    changes: futures::channel::mpsc::UnboundedReceiver<dbus::Message>,
    bus: tokio::task::JoinHandle<dbus_tokio::connection::IOResourceError>,
    /// The bus connection ended (`bus` must not be polled again).
    closed: bool,
}

impl BusWatch {
    async fn new() -> Result<BusWatch, dbus::Error> {
        let (resource, connection) = dbus_tokio::connection::new_system_sync()?;
        let bus = tokio::spawn(resource);
        let rules = async {
            let owner =
                MatchRule::new_signal("org.freedesktop.DBus", "NameOwnerChanged").with_sender("org.freedesktop.DBus");
            let owner = connection.add_match(owner).await?.msg_stream();
            let bluez = MatchRule::new().with_type(MessageType::Signal).with_sender(BLUEZ);
            let bluez = connection.add_match(bluez).await?.msg_stream();
            Ok::<_, dbus::Error>((owner, bluez))
        };
        match rules.await {
            Ok(((owner_rule, changes), (bluez_rule, signals))) => Ok(BusWatch {
                owner: OwnerWatch {
                    _rule: owner_rule,
                    changes,
                    bus,
                    closed: false,
                },
                _bluez_rule: bluez_rule,
                signals,
            }),
            Err(e) => {
                bus.abort();
                Err(e)
            }
        }
    }

    /// Resolves at the next sign of BlueZ: any signal from it (an adapter added or changed), its
    /// name changing hands, or the bus connection ending (a new one is then worth trying).
    async fn stirred(&mut self) {
        tokio::select! {
            _ = self.signals.next() => {}
            _ = self.owner.changed() => {}
        }
    }
}

impl OwnerWatch {
    /// The next change of BlueZ's owner (`true`: it arrived), or why there is none.
    async fn changed(&mut self) -> Result<bool, String> {
        while !self.closed {
            tokio::select! {
                message = self.changes.next() => match message {
                    Some(message) => {
                        if let Ok((BLUEZ, _, new)) = message.read3::<&str, &str, &str>() {
                            return Ok(!new.is_empty());
                        }
                    }
                    None => self.closed = true,
                },
                _ = &mut self.bus => self.closed = true,
            }
        }
        Err("the system bus connection closed".into())
    }
}

impl Drop for OwnerWatch {
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
