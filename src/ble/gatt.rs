//! The LAMPI GATT application as bluer serves it: reads answer from the lamp's state, writes
//! become [`Command::Set`] from client `ble`, and the lamp's changes go out as notifications;
//! with `[ble] pairing_code`, the pairing code on the screen too.
//!
//! A central is not sent back the value it just wrote, the lamp's echo of its own write, while
//! it is the only central connected. BlueZ sends a characteristic's notification to every
//! subscriber alike and cannot leave the writer out, so with other centrals connected, who must
//! learn of the change, the writer gets its value back too.

use std::collections::HashMap;
use std::time::Duration;

use bluer::gatt::local::{
    Application, Characteristic, CharacteristicNotifier, CharacteristicNotify, CharacteristicNotifyMethod,
    CharacteristicRead, CharacteristicWrite, CharacteristicWriteMethod, Descriptor, DescriptorRead, ReqError,
    ReqResult, Service,
};
use bluer::{Adapter, Uuid};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::core::lamp::{Echo, PairingView};
use crate::lamp_task::Command;
use crate::protocol::ble::{
    DEVICE_INFORMATION, DeviceInfo, DeviceInformation, LAMP_SERVICE, LampCharacteristic, PAIRING_CODE,
    PAIRING_CODE_DESCRIPTION, PRESENTATION_FORMAT, STRING_FORMAT, USER_DESCRIPTION, WriteRefusal, pairing_code_value,
};

/// The `client` of a change made over BLE, in `lamp/changed`, analytics and the shadow.
pub const CLIENT: &str = "ble";

/// How long a write waits for the lamp to take it, so that a read right after it sees it.
const WRITE_APPLIED: Duration = Duration::from_secs(1);

/// A characteristic that notifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notifying {
    Light(LampCharacteristic),
    PairingCode,
}

/// A central subscribed to a characteristic: bluer's notifier for it.
pub type Subscription = (Notifying, CharacteristicNotifier);

/// A value a central wrote, told to the notifier before the lamp takes it.
pub type Written = (LampCharacteristic, Vec<u8>);

/// Writes waiting for the notifier; one that finds it full may be echoed to its writer.
pub const WRITES_PENDING: usize = 16;

/// What the application tells the notifier: new subscriptions, and the values centrals wrote.
#[derive(Clone)]
pub struct ToNotifier {
    pub subscribed: mpsc::Sender<Subscription>,
    pub written: mpsc::Sender<Written>,
}

/// The application: the Lamp Service (`commands` takes its writes, `changes` answers its reads;
/// with `pairing`, the Pairing Code characteristic too) and the Device Information Service.
pub fn application(
    commands: mpsc::Sender<Command>,
    changes: watch::Receiver<Echo>,
    pairing: Option<watch::Receiver<PairingView>>,
    info: &DeviceInfo,
    notifier: ToNotifier,
) -> Application {
    let mut lamp: Vec<Characteristic> = LampCharacteristic::ALL
        .into_iter()
        .map(|ch| lamp_characteristic(ch, commands.clone(), changes.clone(), notifier.clone()))
        .collect();
    let subscribed = notifier.subscribed;
    lamp.extend(pairing.map(|pairing| pairing_code_characteristic(pairing, subscribed.clone())));
    let information = DeviceInformation::ALL
        .into_iter()
        .map(|ch| Characteristic {
            uuid: Uuid::from_u128(ch.uuid()),
            read: Some(CharacteristicRead {
                read: true,
                fun: constant(ch.value(info)),
                ..Default::default()
            }),
            descriptors: descriptors(ch.description(), ch.presentation_format()),
            ..Default::default()
        })
        .collect();
    Application {
        services: vec![
            Service {
                uuid: Uuid::from_u128(LAMP_SERVICE),
                primary: true,
                characteristics: lamp,
                ..Default::default()
            },
            Service {
                uuid: Uuid::from_u128(DEVICE_INFORMATION),
                primary: true,
                characteristics: information,
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn lamp_characteristic(
    ch: LampCharacteristic,
    commands: mpsc::Sender<Command>,
    changes: watch::Receiver<Echo>,
    notifier: ToNotifier,
) -> Characteristic {
    let written = notifier.written;
    let reads = changes.clone();
    Characteristic {
        uuid: Uuid::from_u128(ch.uuid()),
        read: Some(CharacteristicRead {
            read: true,
            fun: Box::new(move |request| {
                let value = ch.encode(&reads.borrow().state);
                Box::pin(async move { from_offset(value, request.offset) })
            }),
            ..Default::default()
        }),
        write: Some(CharacteristicWrite {
            // Not write without response: for a characteristic that offers it BlueZ (5.66)
            // answers every write at once, before the lamp does, so a refused write would reach
            // the central as a success (scripts/test-ble-vm.sh saw it). Writes are taken whatever
            // type BlueZ reports.
            write: true,
            method: CharacteristicWriteMethod::Fun(Box::new(move |value, request| {
                let commands = commands.clone();
                let changes = changes.clone();
                let written = written.clone();
                Box::pin(async move { write(ch, &value, request.offset, commands, changes, written).await })
            })),
            ..Default::default()
        }),
        notify: Some(notify(Notifying::Light(ch), notifier.subscribed)),
        descriptors: descriptors(ch.description(), ch.presentation_format()),
        ..Default::default()
    }
}

/// The code the screen shows, for a phone beside the lamp; no octets while there is none.
fn pairing_code_characteristic(
    pairing: watch::Receiver<PairingView>,
    subscribed: mpsc::Sender<Subscription>,
) -> Characteristic {
    Characteristic {
        uuid: Uuid::from_u128(PAIRING_CODE),
        read: Some(CharacteristicRead {
            read: true,
            fun: Box::new(move |request| {
                let value = pairing_code(&pairing.borrow());
                Box::pin(async move { from_offset(value, request.offset) })
            }),
            ..Default::default()
        }),
        notify: Some(notify(Notifying::PairingCode, subscribed)),
        descriptors: descriptors(PAIRING_CODE_DESCRIPTION, STRING_FORMAT),
        ..Default::default()
    }
}

fn pairing_code(view: &PairingView) -> Vec<u8> {
    pairing_code_value(view.code.as_ref().map(|(code, _)| code.as_str()))
}

/// Notifications, by handing each new subscription to the notifier task.
fn notify(what: Notifying, subscribed: mpsc::Sender<Subscription>) -> CharacteristicNotify {
    CharacteristicNotify {
        notify: true,
        method: CharacteristicNotifyMethod::Fun(Box::new(move |notifier| {
            let subscribed = subscribed.clone();
            Box::pin(async move {
                // Closed: the server is stopping, and the subscription with it.
                let _ = subscribed.send((what, notifier)).await;
            })
        })),
        ..Default::default()
    }
}

/// A central's write: refused as [`WriteRefusal`] says, or sent to the lamp, answered once the
/// lamp has taken it.
async fn write(
    ch: LampCharacteristic,
    value: &[u8],
    offset: u16,
    commands: mpsc::Sender<Command>,
    mut changes: watch::Receiver<Echo>,
    written: mpsc::Sender<Written>,
) -> ReqResult<()> {
    let current = changes.borrow_and_update().state;
    let change = ch.decode_write(offset, value, &current).map_err(|refusal| {
        // Debug: any central in range can send these as fast as the link allows, and the
        // central is told why in the ATT error.
        tracing::debug!(
            characteristic = ch.description(),
            ?value,
            "BLE write refused: {refusal}"
        );
        req_error(&refusal)
    })?;
    // Told before the lamp can echo it; a value that changes nothing has no echo to hold back.
    // Full: the writer may get its value back, and nothing worse.
    if ch.encode(&current) != value {
        let _ = written.try_send((ch, value.to_vec()));
    }
    let set = Command::Set {
        change,
        transition: None,
        client: CLIENT.into(),
    };
    commands.send(set).await.map_err(|_| ReqError::Failed)?;
    // Every Set is echoed: answered once it is, so a read right after the write sees the new
    // value. A lamp that has not taken it by then answers "failed", not a success it cannot
    // vouch for; a write names whole values, so the central may simply write again.
    let taken = async {
        while changes.changed().await.is_ok() {
            if changes.borrow_and_update().client == CLIENT {
                return true;
            }
        }
        false
    };
    match tokio::time::timeout(WRITE_APPLIED, taken).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ReqError::Failed),
        Err(_) => {
            tracing::warn!(
                characteristic = ch.description(),
                "BLE write not taken by the lamp within {WRITE_APPLIED:?}; answered as failed"
            );
            Err(ReqError::Failed)
        }
    }
}

/// The org.bluez.Error BlueZ turns into the refusal's ATT error.
fn req_error(refusal: &WriteRefusal) -> ReqError {
    match refusal {
        WriteRefusal::InvalidLength { .. } => ReqError::InvalidValueLength,
        WriteRefusal::InvalidOffset(_) => ReqError::InvalidOffset,
        WriteRefusal::ValueNotAllowed(_) => ReqError::Failed,
    }
}

/// A long read continues at `offset`.
fn from_offset(mut value: Vec<u8>, offset: u16) -> ReqResult<Vec<u8>> {
    let offset = usize::from(offset);
    if offset > value.len() {
        return Err(ReqError::InvalidOffset);
    }
    Ok(value.split_off(offset))
}

fn constant(value: Vec<u8>) -> bluer::gatt::local::CharacteristicReadFun {
    Box::new(move |request| {
        let value = value.clone();
        Box::pin(async move { from_offset(value, request.offset) })
    })
}

/// The user description (0x2901) and presentation format (0x2904), read-only.
fn descriptors(description: &'static str, format: [u8; 7]) -> Vec<Descriptor> {
    [
        (USER_DESCRIPTION, description.as_bytes().to_vec()),
        (PRESENTATION_FORMAT, format.to_vec()),
    ]
    .into_iter()
    .map(|(uuid, value)| Descriptor {
        uuid: Uuid::from_u128(uuid),
        read: Some(DescriptorRead {
            read: true,
            fun: Box::new(move |request| {
                let value = value.clone();
                Box::pin(async move { from_offset(value, request.offset) })
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
    .collect()
}

/// How long a value a central wrote is held back from it, at most: the write waits as long for
/// the lamp to take it. A value the lamp never takes (another change came first) is then
/// forgotten, so a later change to it is notified.
const UNECHOED_FOR: Duration = Duration::from_secs(2);

/// Characteristics' values, as notified.
type Values = Vec<(Notifying, Vec<u8>)>;

/// What the centrals know, and what they wrote that the lamp has not taken yet: decides which
/// changes are notified. No I/O.
#[derive(Default)]
struct Ledger {
    known: HashMap<Notifying, Vec<u8>>,
    unechoed: HashMap<LampCharacteristic, (Vec<u8>, Instant)>,
}

impl Ledger {
    fn written(&mut self, (ch, value): Written, now: Instant) {
        self.unechoed.insert(ch, (value, now));
    }

    /// Of `values`, those that changed: to notify, and the writers' own values.
    fn changed(&mut self, values: Values, now: Instant) -> (Values, Values) {
        self.unechoed
            .retain(|_, (_, at)| now.duration_since(*at) < UNECHOED_FOR);
        let (mut fresh, mut own) = (Vec::new(), Vec::new());
        for (what, value) in values {
            if self.known.get(&what) == Some(&value) {
                continue;
            }
            self.known.insert(what, value.clone());
            match what {
                Notifying::Light(ch) if self.unechoed.get(&ch).is_some_and(|(written, _)| *written == value) => {
                    self.unechoed.remove(&ch);
                    own.push((what, value));
                }
                _ => fresh.push((what, value)),
            }
        }
        (fresh, own)
    }
}

/// Notifies subscribed centrals of the lamp's changes until `changes` closes: each
/// characteristic whose value changed, and each new pairing code and its end when `pairing` is
/// served; a central's own write goes back only to others (see the module's doc). A
/// subscription whose central went away is dropped.
pub async fn notify_changes(
    mut changes: watch::Receiver<Echo>,
    mut pairing: Option<watch::Receiver<PairingView>>,
    mut subscribed: mpsc::Receiver<Subscription>,
    mut written: mpsc::Receiver<Written>,
    adapter: Adapter,
) {
    let mut notifiers: HashMap<Notifying, CharacteristicNotifier> = HashMap::new();
    let mut ledger = Ledger::default();
    ledger.changed(light_values(&changes.borrow_and_update()), Instant::now());
    if let Some(pairing) = &mut pairing {
        let code = pairing_code(&pairing.borrow_and_update());
        ledger.changed(vec![(Notifying::PairingCode, code)], Instant::now());
    }
    loop {
        let values = tokio::select! {
            // A subscription first: a change arriving with it is then notified to it; and a
            // write before the lamp's echo of it.
            biased;
            subscription = subscribed.recv() => match subscription {
                // BlueZ starts one session per characteristic, for all its subscribers.
                Some((what, notifier)) => {
                    notifiers.insert(what, notifier);
                    continue;
                }
                None => return,
            },
            Some(write) = written.recv() => {
                ledger.written(write, Instant::now());
                continue;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let values = light_values(&changes.borrow_and_update());
                let (mut fresh, own) = ledger.changed(values, Instant::now());
                if !own.is_empty() && several_connected(&adapter).await {
                    fresh.extend(own);
                }
                fresh
            }
            changed = pairing_changed(&mut pairing) => {
                if changed.is_err() {
                    return;
                }
                let code = pairing.as_mut().map(|pairing| pairing_code(&pairing.borrow_and_update()));
                let values = code.map(|code| (Notifying::PairingCode, code)).into_iter().collect();
                ledger.changed(values, Instant::now()).0
            }
        };
        for (what, value) in values {
            if let Some(notifier) = notifiers.get_mut(&what)
                && notifier.notify(value).await.is_err()
            {
                notifiers.remove(&what);
            }
        }
    }
}

fn light_values(echo: &Echo) -> Values {
    LampCharacteristic::ALL
        .map(|ch| (Notifying::Light(ch), ch.encode(&echo.state)))
        .into()
}

/// Whether more than one central is connected. Unknown counts as several: a change is better
/// sent twice than not at all.
async fn several_connected(adapter: &Adapter) -> bool {
    let Ok(addresses) = adapter.device_addresses().await else {
        return true;
    };
    let mut connected = 0;
    for address in addresses {
        let Ok(device) = adapter.device(address) else {
            continue;
        };
        if device.is_connected().await.unwrap_or(true) {
            connected += 1;
            if connected > 1 {
                return true;
            }
        }
    }
    false
}

/// The next change of the pairing code, when it is served; never otherwise.
async fn pairing_changed(pairing: &mut Option<watch::Receiver<PairingView>>) -> Result<(), watch::error::RecvError> {
    match pairing {
        Some(pairing) => pairing.changed().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(ch: LampCharacteristic, byte: u8) -> (Notifying, Vec<u8>) {
        (Notifying::Light(ch), vec![byte])
    }

    fn brightness(byte: u8) -> (Notifying, Vec<u8>) {
        value(LampCharacteristic::Brightness, byte)
    }

    fn on_off(byte: u8) -> (Notifying, Vec<u8>) {
        value(LampCharacteristic::OnOff, byte)
    }

    #[test]
    fn a_writers_own_value_is_held_and_the_rest_of_the_change_is_notified() {
        let start = Instant::now();
        let soon = start + Duration::from_millis(100);
        let mut ledger = Ledger::default();
        ledger.changed(vec![brightness(0x10), on_off(0)], start);
        ledger.written((LampCharacteristic::Brightness, vec![0x80]), start);
        // The lamp takes the write; in the same echo, a switch on from MQTT (or natural light's
        // colour as a person takes over).
        let (fresh, own) = ledger.changed(vec![brightness(0x80), on_off(1)], soon);
        assert_eq!((fresh, own), (vec![on_off(1)], vec![brightness(0x80)]));
        // Held once: coming back to the value later is a change like any other.
        assert_eq!(
            ledger.changed(vec![brightness(0x20), on_off(1)], soon).0,
            [brightness(0x20)]
        );
        assert_eq!(
            ledger.changed(vec![brightness(0x80), on_off(1)], soon).0,
            [brightness(0x80)]
        );
    }

    #[test]
    fn a_write_overtaken_before_the_lamp_took_it_is_still_held_when_it_lands() {
        let start = Instant::now();
        let mut ledger = Ledger::default();
        ledger.changed(vec![brightness(0x10)], start);
        ledger.written((LampCharacteristic::Brightness, vec![0x80]), start);
        // An MQTT change the lamp took just before the write.
        assert_eq!(ledger.changed(vec![brightness(0x30)], start).0, [brightness(0x30)]);
        let (fresh, own) = ledger.changed(vec![brightness(0x80)], start);
        assert_eq!((fresh, own), (vec![], vec![brightness(0x80)]));
    }

    #[test]
    fn a_write_the_lamp_never_took_is_forgotten() {
        let start = Instant::now();
        let mut ledger = Ledger::default();
        ledger.changed(vec![brightness(0x10)], start);
        ledger.written((LampCharacteristic::Brightness, vec![0x80]), start);
        let later = start + UNECHOED_FOR;
        let (fresh, own) = ledger.changed(vec![brightness(0x80)], later);
        assert_eq!((fresh, own), (vec![brightness(0x80)], vec![]));
    }

    #[test]
    fn unchanged_values_and_pairing_codes() {
        let start = Instant::now();
        let mut ledger = Ledger::default();
        ledger.changed(vec![brightness(0x10), (Notifying::PairingCode, vec![])], start);
        assert_eq!(ledger.changed(vec![brightness(0x10)], start), (vec![], vec![]));
        let code = (Notifying::PairingCode, b"ABCD-EFGH".to_vec());
        assert_eq!(ledger.changed(vec![code.clone()], start), (vec![code], vec![]));
    }

    /// A write to a lamp that echoes (or not) what it is sent, after `delay`.
    async fn write_to_a_lamp(echoes: bool, delay: Duration) -> ReqResult<()> {
        let (commands, mut taken) = mpsc::channel(1);
        let echo = |client: &str| Echo {
            state: crate::core::light::LightState::default(),
            client: client.to_owned(),
        };
        let (changed, changes) = watch::channel(echo("mqtt"));
        let (written, _notifier) = mpsc::channel(WRITES_PENDING);
        let lamp = tokio::spawn(async move {
            let Some(Command::Set { client, .. }) = taken.recv().await else {
                return;
            };
            tokio::time::sleep(delay).await;
            if echoes {
                changed.send_replace(echo(&client));
            }
            // Still running while the writer waits: only a silent lamp, not a gone one.
            tokio::time::sleep(WRITE_APPLIED * 2).await;
        });
        let answer = write(LampCharacteristic::Brightness, &[0x80], 0, commands, changes, written).await;
        lamp.abort();
        answer
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_is_answered_once_the_lamp_takes_it_and_failed_if_it_does_not() {
        assert_eq!(write_to_a_lamp(true, Duration::from_millis(50)).await, Ok(()));
        assert_eq!(write_to_a_lamp(true, WRITE_APPLIED * 2).await, Err(ReqError::Failed));
        assert_eq!(write_to_a_lamp(false, Duration::ZERO).await, Err(ReqError::Failed));
    }

    #[test]
    fn a_long_read_continues_at_its_offset() {
        assert_eq!(from_offset(b"LAMPI".to_vec(), 0), Ok(b"LAMPI".to_vec()));
        assert_eq!(from_offset(b"LAMPI".to_vec(), 3), Ok(b"PI".to_vec()));
        assert_eq!(from_offset(b"LAMPI".to_vec(), 5), Ok(Vec::new()));
        assert_eq!(from_offset(b"LAMPI".to_vec(), 6), Err(ReqError::InvalidOffset));
    }

    #[test]
    fn refusals_become_the_bluez_errors_of_their_att_codes() {
        // BlueZ: InvalidValueLength → 0x0D, InvalidOffset → 0x07, Failed → 0x80.
        let state = crate::core::light::LightState::default();
        for (ch, offset, value, error) in [
            (
                LampCharacteristic::Brightness,
                0,
                &[1u8, 2][..],
                ReqError::InvalidValueLength,
            ),
            (LampCharacteristic::Brightness, 2, &[1][..], ReqError::InvalidOffset),
            (LampCharacteristic::OnOff, 0, &[2][..], ReqError::Failed),
        ] {
            let refusal = ch.decode_write(offset, value, &state).unwrap_err();
            assert_eq!(req_error(&refusal), error, "{refusal}");
        }
    }
}
