//! The LAMPI GATT application as bluer serves it: reads answer from the lamp's state, writes
//! become [`Command::Set`] from client `ble`, and the lamp's changes go out as notifications;
//! with `[ble] pairing_code`, the pairing code on the screen too.

use std::collections::HashMap;
use std::time::Duration;

use bluer::Uuid;
use bluer::gatt::local::{
    Application, Characteristic, CharacteristicNotifier, CharacteristicNotify, CharacteristicNotifyMethod,
    CharacteristicRead, CharacteristicWrite, CharacteristicWriteMethod, Descriptor, DescriptorRead, ReqError,
    ReqResult, Service,
};
use tokio::sync::{mpsc, watch};

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

/// The application: the Lamp Service (`commands` takes its writes, `changes` answers its reads;
/// with `pairing`, the Pairing Code characteristic too) and the Device Information Service. New
/// subscriptions arrive on `subscribed`.
pub fn application(
    commands: mpsc::Sender<Command>,
    changes: watch::Receiver<Echo>,
    pairing: Option<watch::Receiver<PairingView>>,
    info: &DeviceInfo,
    subscribed: mpsc::Sender<Subscription>,
) -> Application {
    let mut lamp: Vec<Characteristic> = LampCharacteristic::ALL
        .into_iter()
        .map(|ch| lamp_characteristic(ch, commands.clone(), changes.clone(), subscribed.clone()))
        .collect();
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
    subscribed: mpsc::Sender<Subscription>,
) -> Characteristic {
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
                Box::pin(async move { write(ch, &value, request.offset, commands, changes).await })
            })),
            ..Default::default()
        }),
        notify: Some(notify(Notifying::Light(ch), subscribed)),
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
) -> ReqResult<()> {
    let current = changes.borrow_and_update().state;
    let change = ch.decode_write(offset, value, &current).map_err(|refusal| {
        tracing::info!(
            characteristic = ch.description(),
            ?value,
            "BLE write refused: {refusal}"
        );
        req_error(&refusal)
    })?;
    let set = Command::Set {
        change,
        transition: None,
        client: CLIENT.into(),
    };
    commands.send(set).await.map_err(|_| ReqError::Failed)?;
    // Every Set is echoed; a read right after the write then sees the new value.
    let taken = async {
        while changes.changed().await.is_ok() {
            if changes.borrow_and_update().client == CLIENT {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(WRITE_APPLIED, taken).await;
    Ok(())
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

/// Notifies subscribed centrals of the lamp's changes until `changes` closes: each
/// characteristic whose value changed, except after a BLE write (BlueZ would send the writer its
/// own value back; see docs/PROTOCOL.md); and of each new pairing code, and its end, when
/// `pairing` is served. A subscription whose central went away is dropped.
pub async fn notify_changes(
    mut changes: watch::Receiver<Echo>,
    mut pairing: Option<watch::Receiver<PairingView>>,
    mut subscribed: mpsc::Receiver<Subscription>,
) {
    let mut notifiers: HashMap<Notifying, CharacteristicNotifier> = HashMap::new();
    let mut known: HashMap<Notifying, Vec<u8>> = LampCharacteristic::ALL
        .into_iter()
        .map(|ch| (Notifying::Light(ch), ch.encode(&changes.borrow_and_update().state)))
        .collect();
    if let Some(pairing) = &mut pairing {
        known.insert(Notifying::PairingCode, pairing_code(&pairing.borrow_and_update()));
    }
    loop {
        let values: Vec<(Notifying, Vec<u8>)> = tokio::select! {
            // A subscription first: a change arriving with it is then notified to it.
            biased;
            subscription = subscribed.recv() => match subscription {
                // BlueZ starts one session per characteristic, for all its subscribers.
                Some((what, notifier)) => {
                    notifiers.insert(what, notifier);
                    continue;
                }
                None => return,
            },
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let echo = changes.borrow_and_update().clone();
                let values = LampCharacteristic::ALL.map(|ch| (Notifying::Light(ch), ch.encode(&echo.state)));
                if echo.client == CLIENT {
                    known.extend(values);
                    continue;
                }
                values.into()
            }
            changed = pairing_changed(&mut pairing) => {
                if changed.is_err() {
                    return;
                }
                let code = pairing.as_mut().map(|pairing| pairing_code(&pairing.borrow_and_update()));
                code.map(|code| (Notifying::PairingCode, code)).into_iter().collect()
            }
        };
        for (what, value) in values {
            if known.get(&what) == Some(&value) {
                continue;
            }
            known.insert(what, value.clone());
            if let Some(notifier) = notifiers.get_mut(&what)
                && notifier.notify(value).await.is_err()
            {
                notifiers.remove(&what);
            }
        }
    }
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
