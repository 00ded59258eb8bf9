//! `lampi ble`: a Bluetooth LE central for LAMPI lamps through btleplug (BlueZ over D-Bus on
//! Linux). It finds lamps by the Lamp Service UUID (an advertised name does not always reach a
//! central), and reads, writes and watches them with the encodings of [`protocol::ble`], the
//! same the lamp serves with. Everything it learns is printed as JSON.

use std::collections::HashMap;
use std::time::Duration;

use btleplug::api::{Central, CentralEvent, Characteristic, Manager as _, Peripheral as _, ScanFilter, WriteType};
use btleplug::platform::{Adapter, Manager, Peripheral};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout, timeout_at};
use uuid::Uuid;

use crate::core::light::{LightChange, LightState};
use crate::protocol::ble::{self, LampCharacteristic};

/// How long one exchange with the lamp through BlueZ (a connection, a read, a write) may take.
const EXCHANGE: Duration = Duration::from_secs(10);

/// What `lampi ble` was asked to talk to.
#[derive(Clone, Debug)]
pub struct Options {
    /// The BlueZ adapter (`hci0`); none for the lowest-numbered one.
    pub adapter: Option<String>,
    /// The lamp: its address, its advertised name or the device id in `LAMPI <device id>`;
    /// none for the only lamp in range.
    pub id: Option<String>,
    /// How long to look for lamps.
    pub scan: Duration,
}

/// Why `lampi ble` failed; each kind has its own exit status (sysexits.h).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no Bluetooth: {0}")]
    NoBluetooth(String),
    #[error("no LAMPI lamp in range{0}")]
    NoLamp(String),
    #[error("several LAMPI lamps in range, choose one with --id: {}", .0.join(", "))]
    SeveralLamps(Vec<String>),
    #[error("the lamp refused {what}: {why}")]
    Refused { what: String, why: String },
    #[error("lost the lamp: {0}")]
    Lost(String),
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NoBluetooth(_) => 69,  // EX_UNAVAILABLE
            ClientError::NoLamp(_) => 68,       // EX_NOHOST
            ClientError::SeveralLamps(_) => 64, // EX_USAGE
            ClientError::Refused { .. } => 65,  // EX_DATAERR
            ClientError::Lost(_) => 74,         // EX_IOERR
            ClientError::Other(_) => 1,
        }
    }
}

/// The D-Bus error BlueZ answered with, as (name, message), if that is what `e` is.
fn bluez_error(e: &btleplug::Error) -> Option<(String, String)> {
    let btleplug::Error::Other(inner) = e else {
        return None;
    };
    match inner.downcast_ref::<bluez_async::BluetoothError>()? {
        bluez_async::BluetoothError::DbusError(e) => Some((
            e.name().unwrap_or_default().to_owned(),
            e.message().unwrap_or_default().to_owned(),
        )),
        _ => None,
    }
}

/// A failed exchange with a connected lamp: a lamp gone is told apart from other failures.
fn failed(e: btleplug::Error) -> ClientError {
    match (&e, bluez_error(&e)) {
        (btleplug::Error::NotConnected | btleplug::Error::DeviceNotFound, _) => ClientError::Lost(e.to_string()),
        (_, Some((name, message)))
            if name == "org.bluez.Error.NotConnected" || name == "org.freedesktop.DBus.Error.UnknownObject" =>
        {
            ClientError::Lost(format!("{message} ({name})"))
        }
        _ => ClientError::Other(e.to_string()),
    }
}

/// `exchange` within [`EXCHANGE`].
async fn bounded<T>(what: &str, exchange: impl Future<Output = btleplug::Result<T>>) -> Result<T, ClientError> {
    timeout(EXCHANGE, exchange)
        .await
        .map_err(|_| ClientError::Lost(format!("{what} took over {} s", EXCHANGE.as_secs())))?
        .map_err(failed)
}

fn lamp_service() -> Uuid {
    Uuid::from_u128(ble::LAMP_SERVICE)
}

/// The adapter `options` name, or else the lowest-numbered (BlueZ lists them in no fixed order).
async fn adapter(options: &Options) -> Result<Adapter, ClientError> {
    let manager = Manager::new()
        .await
        .map_err(|e| ClientError::NoBluetooth(format!("cannot reach the system bus: {e}")))?;
    let adapters = manager
        .adapters()
        .await
        .map_err(|e| ClientError::NoBluetooth(format!("BlueZ does not answer on the system bus: {e}")))?;
    let mut named = Vec::new();
    for adapter in adapters {
        // "hci0 (usb:v1D6Bp0245d050A)"
        let info = adapter.adapter_info().await.unwrap_or_default();
        let name = info.split_whitespace().next().unwrap_or_default().to_owned();
        if options.adapter.as_ref() == Some(&name) {
            return Ok(adapter);
        }
        named.push((name, adapter));
    }
    // hci2 before hci10.
    named.sort_by(|(a, _), (b, _)| (a.len(), a).cmp(&(b.len(), b)));
    let names: Vec<String> = named.iter().map(|(name, _)| name.clone()).collect();
    match (&options.adapter, named.into_iter().next()) {
        (None, Some((_, adapter))) => Ok(adapter),
        (None, None) => Err(ClientError::NoBluetooth("BlueZ has no adapter".into())),
        (Some(wanted), None) => Err(ClientError::NoBluetooth(format!(
            "no adapter {wanted}: BlueZ has no adapter"
        ))),
        (Some(wanted), Some(_)) => Err(ClientError::NoBluetooth(format!(
            "no adapter {wanted} (BlueZ has {})",
            names.join(", ")
        ))),
    }
}

/// A lamp found by its advertisement.
#[derive(Clone, Debug)]
pub struct Found {
    peripheral: Peripheral,
    pub address: String,
    pub name: Option<String>,
    pub rssi: Option<i16>,
}

impl Found {
    pub fn to_json(&self) -> Value {
        json!({"address": self.address, "name": self.name, "rssi": self.rssi})
    }

    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{} ({name})", self.address),
            None => self.address.clone(),
        }
    }

    fn is(&self, id: &str) -> bool {
        self.address.eq_ignore_ascii_case(id)
            || self
                .name
                .as_deref()
                .is_some_and(|name| name == id || name.strip_prefix("LAMPI ") == Some(id))
    }
}

/// Lamps advertising the Lamp Service, each given to `found` as it is found, for `window` or
/// until `enough` says so.
async fn discover(
    adapter: &Adapter,
    window: Duration,
    mut found: impl FnMut(&Found),
    enough: impl Fn(&Found) -> bool,
) -> Result<Vec<Found>, ClientError> {
    // The events first: BlueZ then reports the devices it knows already as discovered too.
    let mut events = adapter.events().await.map_err(failed)?;
    adapter
        .start_scan(ScanFilter {
            services: vec![lamp_service()],
        })
        .await
        .map_err(|e| ClientError::NoBluetooth(format!("cannot scan: {e}")))?;
    let deadline = Instant::now() + window;
    let mut lamps: Vec<Found> = Vec::new();
    while let Ok(Some(event)) = timeout_at(deadline, events.next()).await {
        let id = match event {
            CentralEvent::DeviceDiscovered(id)
            | CentralEvent::DeviceUpdated(id)
            | CentralEvent::ServicesAdvertisement { id, .. } => id,
            _ => continue,
        };
        if lamps.iter().any(|lamp| lamp.peripheral.id() == id) {
            continue;
        }
        let Ok(peripheral) = adapter.peripheral(&id).await else {
            continue;
        };
        let Ok(Some(properties)) = peripheral.properties().await else {
            continue;
        };
        // BlueZ's discovery filter is only a hint: it merges every client's.
        if !properties.services.contains(&lamp_service()) {
            continue;
        }
        // BlueZ reports every lamp it remembers as discovered, in range or not; one heard in
        // this scan has a signal strength, and one connected (another client's `watch`) does
        // not advertise but is there. The others are looked at again if they are heard.
        if properties.rssi.is_none() && !peripheral.is_connected().await.unwrap_or(false) {
            continue;
        }
        let lamp = Found {
            peripheral,
            address: properties.address.to_string(),
            name: properties.local_name,
            rssi: properties.rssi,
        };
        found(&lamp);
        let done = enough(&lamp);
        lamps.push(lamp);
        if done {
            break;
        }
    }
    let _ = adapter.stop_scan().await;
    Ok(lamps)
}

/// `lampi ble scan`: each lamp in range, as it is found.
pub async fn scan(options: &Options, mut found: impl FnMut(Value)) -> Result<(), ClientError> {
    let adapter = adapter(options).await?;
    let lamps = discover(
        &adapter,
        options.scan,
        |lamp| {
            if options.id.as_deref().is_none_or(|id| lamp.is(id)) {
                found(lamp.to_json());
            }
        },
        |_| false,
    )
    .await?;
    if lamps
        .iter()
        .any(|lamp| options.id.as_deref().is_none_or(|id| lamp.is(id)))
    {
        Ok(())
    } else {
        Err(no_lamp(options))
    }
}

fn no_lamp(options: &Options) -> ClientError {
    let id = options
        .id
        .as_ref()
        .map(|id| format!(" with id {id}"))
        .unwrap_or_default();
    ClientError::NoLamp(format!("{id} (looked for {} s)", options.scan.as_secs_f64()))
}

/// A connected lamp.
pub struct Lamp {
    found: Found,
    /// Whether this client made the connection, and so ends it: BlueZ shares one connection
    /// among its clients, and another's (a `lampi ble watch`) is left as it is.
    connected_here: bool,
    characteristics: HashMap<Uuid, Characteristic>,
}

/// The lamp `options` choose (the only one in range without `--id`), connected.
pub async fn open(options: &Options) -> Result<(Adapter, Lamp), ClientError> {
    let adapter = adapter(options).await?;
    let id = options.id.as_deref();
    let lamps = discover(&adapter, options.scan, |_| {}, |lamp| id.is_some_and(|id| lamp.is(id))).await?;
    let mut lamps: Vec<Found> = lamps
        .into_iter()
        .filter(|lamp| id.is_none_or(|id| lamp.is(id)))
        .collect();
    let found = match lamps.len() {
        0 => return Err(no_lamp(options)),
        1 => lamps.remove(0),
        _ => return Err(ClientError::SeveralLamps(lamps.iter().map(Found::label).collect())),
    };
    let lamp = Lamp::connect(found).await?;
    Ok((adapter, lamp))
}

impl Lamp {
    async fn connect(found: Found) -> Result<Lamp, ClientError> {
        let peripheral = &found.peripheral;
        let connected_here = !bounded("asking BlueZ about the lamp", peripheral.is_connected()).await?;
        if connected_here {
            bounded("connecting", peripheral.connect()).await?;
        }
        bounded("discovering the lamp's services", peripheral.discover_services()).await?;
        let characteristics = peripheral
            .characteristics()
            .into_iter()
            .filter(|c| c.service_uuid == lamp_service() || c.service_uuid == Uuid::from_u128(ble::DEVICE_INFORMATION))
            .map(|c| (c.uuid, c))
            .collect();
        Ok(Lamp {
            found,
            connected_here,
            characteristics,
        })
    }

    fn characteristic(&self, uuid: u128) -> Result<&Characteristic, ClientError> {
        self.characteristics.get(&Uuid::from_u128(uuid)).ok_or_else(|| {
            ClientError::Other(format!(
                "{} has no characteristic {}: not a LAMPI lamp?",
                self.found.label(),
                Uuid::from_u128(uuid)
            ))
        })
    }

    async fn read_raw(&self, uuid: u128) -> Result<Vec<u8>, ClientError> {
        let characteristic = self.characteristic(uuid)?;
        bounded("a read", self.found.peripheral.read(characteristic)).await
    }

    /// What `ch` reads as.
    pub async fn read(&self, ch: LampCharacteristic) -> Result<LightChange, ClientError> {
        let value = self.read_raw(ch.uuid()).await?;
        ch.decode(&value)
            .map_err(|e| ClientError::Other(format!("the lamp's {} reads {value:02X?}: {e}", ch.description())))
    }

    /// The lamp's light, read characteristic by characteristic.
    pub async fn state(&self) -> Result<LightState, ClientError> {
        let mut state = LightState::default();
        for ch in LampCharacteristic::ALL {
            state = state.with(self.read(ch).await?);
        }
        Ok(state)
    }

    /// Writes `value` to `ch` as it is: a value the lamp does not take is refused by the lamp.
    pub async fn write(&self, ch: LampCharacteristic, value: &[u8]) -> Result<(), ClientError> {
        let characteristic = self.characteristic(ch.uuid())?;
        let written = self
            .found
            .peripheral
            .write(characteristic, value, WriteType::WithResponse);
        match timeout(EXCHANGE, written).await {
            Err(_) => Err(ClientError::Lost(format!("a write took over {} s", EXCHANGE.as_secs()))),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(match bluez_error(&e) {
                // How BlueZ passes on the lamp's ATT error (src/gatt-client.c).
                Some((name, message))
                    if [
                        "InvalidArguments",
                        "Failed",
                        "NotPermitted",
                        "NotAuthorized",
                        "NotSupported",
                    ]
                    .iter()
                    .any(|refusal| name == format!("org.bluez.Error.{refusal}")) =>
                {
                    ClientError::Refused {
                        what: format!("{} {value:02X?}", ch.description()),
                        why: format!("{message} ({name})"),
                    }
                }
                _ => failed(e),
            }),
        }
    }

    /// Asks for `change`, characteristic by characteristic: the colour, then the brightness,
    /// then on or off, so a lamp turned on shows the new colour at once.
    pub async fn set(&self, change: LightChange) -> Result<(), ClientError> {
        let mut target = LightState::default().with(change);
        if change.hue.is_some() || change.saturation.is_some() {
            if change.hue.is_none() || change.saturation.is_none() {
                // Hue and saturation are one value: the half not asked for is the lamp's own,
                // written back as read, which keeps it exactly (see decode_write).
                let now = LightState::default().with(self.read(LampCharacteristic::Hsv).await?);
                target = now.with(change);
            }
            self.write(LampCharacteristic::Hsv, &LampCharacteristic::Hsv.encode(&target))
                .await?;
        }
        if change.brightness.is_some() {
            let ch = LampCharacteristic::Brightness;
            self.write(ch, &ch.encode(&target)).await?;
        }
        if change.on.is_some() {
            let ch = LampCharacteristic::OnOff;
            self.write(ch, &ch.encode(&target)).await?;
        }
        Ok(())
    }

    /// The lamp's address, name, Device Information (its Serial Number is the device id) and
    /// light.
    pub async fn describe(&self) -> Result<Value, ClientError> {
        let mut doc = self.found.to_json();
        for (key, uuid) in [
            ("device", ble::SERIAL_NUMBER),
            ("manufacturer", ble::MANUFACTURER_NAME),
            ("model", ble::MODEL_NUMBER),
            ("firmware", ble::FIRMWARE_REVISION),
        ] {
            doc[key] = json!(String::from_utf8_lossy(&self.read_raw(uuid).await?));
        }
        doc["light"] = serde_json::to_value(self.state().await?).map_err(|e| ClientError::Other(e.to_string()))?;
        Ok(doc)
    }

    /// Prints the lamp's light, then each change notified, until the lamp is lost (an error) or
    /// `stop` resolves.
    pub async fn watch(
        &self,
        adapter: &Adapter,
        mut print: impl FnMut(Value),
        stop: impl Future<Output = ()>,
    ) -> Result<(), ClientError> {
        let peripheral = &self.found.peripheral;
        // Both streams before subscribing: neither a change nor a disconnection is missed.
        let mut events = adapter.events().await.map_err(failed)?;
        let mut notifications = peripheral.notifications().await.map_err(failed)?;
        for ch in LampCharacteristic::ALL {
            bounded("subscribing", peripheral.subscribe(self.characteristic(ch.uuid())?)).await?;
        }
        let state = self.state().await?;
        let mut last: HashMap<LampCharacteristic, Vec<u8>> = LampCharacteristic::ALL
            .into_iter()
            .map(|ch| (ch, ch.encode(&state)))
            .collect();
        print(json!({"address": self.found.address, "light": state}));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(()),
                notification = notifications.next() => {
                    let Some(notification) = notification else {
                        return Err(ClientError::Lost("BlueZ ended the notifications".into()));
                    };
                    // BlueZ reports every value read as a notification too, of any
                    // characteristic: only the lamp's, and only a value it did not have.
                    let Some(ch) = LampCharacteristic::ALL
                        .into_iter()
                        .find(|ch| Uuid::from_u128(ch.uuid()) == notification.uuid)
                    else {
                        continue;
                    };
                    if last.get(&ch) == Some(&notification.value) {
                        continue;
                    }
                    print(notified(ch, &notification.value));
                    last.insert(ch, notification.value);
                }
                event = events.next() => match event {
                    Some(CentralEvent::DeviceDisconnected(id)) if id == peripheral.id() => {
                        return Err(ClientError::Lost(format!("{} disconnected", self.found.label())));
                    }
                    Some(_) => {}
                    None => return Err(ClientError::Lost("BlueZ's events ended".into())),
                },
            }
        }
    }

    /// Ends the connection if this client made it.
    pub async fn close(self) {
        if self.connected_here {
            let _ = timeout(EXCHANGE, self.found.peripheral.disconnect()).await;
        }
    }
}

/// A notification as a JSON line: the characteristic, its octets and what they say.
fn notified(ch: LampCharacteristic, value: &[u8]) -> Value {
    let mut line = json!({"characteristic": ch.description(), "value": value});
    match ch.decode(value) {
        Ok(change) => {
            let fields = [
                ("on", change.on.map(Value::from)),
                ("hue", change.hue.map(|u| u.get().into())),
                ("saturation", change.saturation.map(|u| u.get().into())),
                ("brightness", change.brightness.map(|u| u.get().into())),
            ];
            for (key, field) in fields {
                if let Some(field) = field {
                    line[key] = field;
                }
            }
        }
        Err(e) => line["error"] = json!(e.to_string()),
    }
    line
}

/// `lampi ble get`.
pub async fn get(options: &Options) -> Result<Value, ClientError> {
    let (_adapter, lamp) = open(options).await?;
    let described = lamp.describe().await;
    lamp.close().await;
    described
}

/// `lampi ble set`: the lamp as it is afterwards.
pub async fn set(options: &Options, change: LightChange) -> Result<Value, ClientError> {
    let (_adapter, lamp) = open(options).await?;
    let described = match lamp.set(change).await {
        Ok(()) => lamp.describe().await,
        Err(e) => Err(e),
    };
    lamp.close().await;
    described
}

/// `lampi ble watch`, until the lamp is lost or `stop` resolves.
pub async fn watch(
    options: &Options,
    print: impl FnMut(Value),
    stop: impl Future<Output = ()>,
) -> Result<(), ClientError> {
    let (adapter, lamp) = open(options).await?;
    let watched = lamp.watch(&adapter, print, stop).await;
    lamp.close().await;
    watched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ble::from_byte;

    #[test]
    fn a_notification_says_what_its_octets_mean() {
        let line = notified(LampCharacteristic::Hsv, &[0x00, 0x80, 0xff]);
        assert_eq!(line["characteristic"], "HSV");
        assert_eq!(line["value"], json!([0, 128, 255]));
        assert_eq!(line["hue"], json!(0.0));
        assert_eq!(line["saturation"], json!(from_byte(0x80).get()));
        assert!(line.get("on").is_none(), "{line}");
        let bad = notified(LampCharacteristic::OnOff, &[7]);
        assert_eq!(bad["error"], "On / Off takes 0x00 or 0x01, not 0x07");
    }

    #[test]
    fn exit_statuses_tell_the_failures_apart() {
        let codes = [
            ClientError::NoBluetooth(String::new()).exit_code(),
            ClientError::NoLamp(String::new()).exit_code(),
            ClientError::SeveralLamps(Vec::new()).exit_code(),
            ClientError::Refused {
                what: String::new(),
                why: String::new(),
            }
            .exit_code(),
            ClientError::Lost(String::new()).exit_code(),
            ClientError::Other(String::new()).exit_code(),
        ];
        assert_eq!(codes, [69, 68, 64, 65, 74, 1]);
    }
}
