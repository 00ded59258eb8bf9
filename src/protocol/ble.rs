//! The LAMPI Bluetooth LE GATT service, pure: its UUIDs, descriptors and byte encodings, and a
//! central's write decoded into a [`LightChange`] or refused with the ATT error it earns.
//!
//! The service is the course's, byte for byte, so its iOS app and any BLE tool work unchanged.
//! docs/PROTOCOL.md ("Bluetooth LE") is the table of it.

use std::fmt;

use crate::core::light::{LightChange, LightState, Unit};

/// The Bluetooth base UUID, which a 16-bit assigned number fills in (Core spec, vol 3, part B,
/// 2.5.1).
const BASE_UUID: u128 = 0x0000_0000_0000_1000_8000_0080_5f9b_34fb;

/// A 16-bit assigned number as a full 128-bit UUID.
pub const fn assigned(short: u16) -> u128 {
    BASE_UUID | ((short as u128) << 96)
}

/// The Lamp Service.
pub const LAMP_SERVICE: u128 = 0x0001_a7d3_d8a4_4fea_8174_1736_e808_c066;
pub const HSV: u128 = 0x0002_a7d3_d8a4_4fea_8174_1736_e808_c066;
pub const BRIGHTNESS: u128 = 0x0003_a7d3_d8a4_4fea_8174_1736_e808_c066;
pub const ON_OFF: u128 = 0x0004_a7d3_d8a4_4fea_8174_1736_e808_c066;
/// The pairing code on the screen, read and notify (not the course's: LAMPI's own, opt-in).
pub const PAIRING_CODE: u128 = 0x0005_a7d3_d8a4_4fea_8174_1736_e808_c066;
/// The Pairing Code characteristic's 0x2901 user description.
pub const PAIRING_CODE_DESCRIPTION: &str = "Pairing Code";

/// The Pairing Code characteristic's value: the code the screen shows (`ABCD-EFGH`), UTF-8, or
/// no octets while it shows none.
pub fn pairing_code_value(code: Option<&str>) -> Vec<u8> {
    code.map(|code| code.as_bytes().to_vec()).unwrap_or_default()
}

/// Device Information Service and the characteristics of it the lamp serves.
pub const DEVICE_INFORMATION: u128 = assigned(0x180a);
pub const MANUFACTURER_NAME: u128 = assigned(0x2a29);
pub const MODEL_NUMBER: u128 = assigned(0x2a24);
pub const SERIAL_NUMBER: u128 = assigned(0x2a25);
pub const FIRMWARE_REVISION: u128 = assigned(0x2a26);

/// Characteristic User Description and Characteristic Presentation Format descriptors.
pub const USER_DESCRIPTION: u128 = assigned(0x2901);
pub const PRESENTATION_FORMAT: u128 = assigned(0x2904);

/// What the Model Number string says.
pub const MODEL: &str = "LAMPI";

/// GATT format types (Bluetooth Assigned Numbers, 2.4.1).
const FORMAT_UINT8: u8 = 0x04;
const FORMAT_UTF8: u8 = 0x19;

/// A Characteristic Presentation Format value: format, exponent 0, unit 0x2700 (unitless),
/// namespace 0x01 (Bluetooth SIG), description 0x0000; multi-octet fields little-endian.
const fn presentation_format(format: u8) -> [u8; 7] {
    [format, 0x00, 0x00, 0x27, 0x01, 0x00, 0x00]
}

/// The 0x2904 presentation format of the string characteristics: Device Information's and the
/// Pairing Code.
pub const STRING_FORMAT: [u8; 7] = presentation_format(FORMAT_UTF8);

/// One of the Lamp Service's characteristics, each read, write and notify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LampCharacteristic {
    /// `[hue, saturation, value]`, each 0x00–0xFF; value is always 0xFF.
    Hsv,
    /// 0x00–0xFF.
    Brightness,
    /// 0x00 off, 0x01 on.
    OnOff,
}

impl LampCharacteristic {
    pub const ALL: [LampCharacteristic; 3] = [
        LampCharacteristic::Hsv,
        LampCharacteristic::Brightness,
        LampCharacteristic::OnOff,
    ];

    pub fn uuid(self) -> u128 {
        match self {
            LampCharacteristic::Hsv => HSV,
            LampCharacteristic::Brightness => BRIGHTNESS,
            LampCharacteristic::OnOff => ON_OFF,
        }
    }

    /// The 0x2901 user description.
    pub fn description(self) -> &'static str {
        match self {
            LampCharacteristic::Hsv => "HSV",
            LampCharacteristic::Brightness => "Brightness",
            LampCharacteristic::OnOff => "On / Off",
        }
    }

    /// The 0x2904 presentation format: uint8 (HSV is three of them).
    pub fn presentation_format(self) -> [u8; 7] {
        presentation_format(FORMAT_UINT8)
    }

    /// How many octets its value has; a write of any other length is refused.
    pub fn value_len(self) -> usize {
        match self {
            LampCharacteristic::Hsv => 3,
            LampCharacteristic::Brightness | LampCharacteristic::OnOff => 1,
        }
    }

    /// Its value for `state`, as read and notified.
    pub fn encode(self, state: &LightState) -> Vec<u8> {
        match self {
            LampCharacteristic::Hsv => vec![to_byte(state.hue), to_byte(state.saturation), 0xff],
            LampCharacteristic::Brightness => vec![to_byte(state.brightness)],
            LampCharacteristic::OnOff => vec![u8::from(state.on)],
        }
    }

    /// A value as read or notified (or written), decoded into the change it describes; a value
    /// of the wrong length, or one the characteristic does not take, is refused.
    pub fn decode(self, value: &[u8]) -> Result<LightChange, WriteRefusal> {
        if value.len() != self.value_len() {
            return Err(WriteRefusal::InvalidLength {
                expected: self.value_len(),
                got: value.len(),
            });
        }
        let change = match self {
            LampCharacteristic::Hsv => {
                if value[2] != 0xff {
                    return Err(WriteRefusal::ValueNotAllowed(format!(
                        "the HSV value octet must be 0xFF, not {:#04X}",
                        value[2]
                    )));
                }
                LightChange {
                    hue: Some(from_byte(value[0])),
                    saturation: Some(from_byte(value[1])),
                    ..LightChange::default()
                }
            }
            LampCharacteristic::Brightness => LightChange {
                brightness: Some(from_byte(value[0])),
                ..LightChange::default()
            },
            LampCharacteristic::OnOff => LightChange {
                on: Some(match value[0] {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(WriteRefusal::ValueNotAllowed(format!(
                            "On / Off takes 0x00 or 0x01, not {other:#04X}"
                        )));
                    }
                }),
                ..LightChange::default()
            },
        };
        Ok(change)
    }

    /// A central's write at `offset`, against the lamp's `current` state. A byte that equals
    /// what the current value reads as keeps the current value exactly: a value set over MQTT
    /// or on the screen, read over BLE and written back, does not move by the rounding.
    pub fn decode_write(self, offset: u16, value: &[u8], current: &LightState) -> Result<LightChange, WriteRefusal> {
        // Every value is at most three octets, well under any MTU: a long write is a mistake.
        if offset != 0 {
            return Err(WriteRefusal::InvalidOffset(offset));
        }
        let mut change = self.decode(value)?;
        let keep = |new: &mut Option<Unit>, now: Unit| {
            if new.is_some_and(|new| to_byte(new) == to_byte(now)) {
                *new = Some(now);
            }
        };
        keep(&mut change.hue, current.hue);
        keep(&mut change.saturation, current.saturation);
        keep(&mut change.brightness, current.brightness);
        Ok(change)
    }
}

/// A read-only Device Information Service characteristic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceInformation {
    ManufacturerName,
    ModelNumber,
    SerialNumber,
    FirmwareRevision,
}

impl DeviceInformation {
    pub const ALL: [DeviceInformation; 4] = [
        DeviceInformation::ManufacturerName,
        DeviceInformation::ModelNumber,
        DeviceInformation::SerialNumber,
        DeviceInformation::FirmwareRevision,
    ];

    pub fn uuid(self) -> u128 {
        match self {
            DeviceInformation::ManufacturerName => MANUFACTURER_NAME,
            DeviceInformation::ModelNumber => MODEL_NUMBER,
            DeviceInformation::SerialNumber => SERIAL_NUMBER,
            DeviceInformation::FirmwareRevision => FIRMWARE_REVISION,
        }
    }

    /// The 0x2901 user description.
    pub fn description(self) -> &'static str {
        match self {
            DeviceInformation::ManufacturerName => "Manufacturer Name",
            DeviceInformation::ModelNumber => "Model Number",
            DeviceInformation::SerialNumber => "Serial Number",
            DeviceInformation::FirmwareRevision => "Firmware Revision",
        }
    }

    /// The 0x2904 presentation format: a UTF-8 string.
    pub fn presentation_format(self) -> [u8; 7] {
        STRING_FORMAT
    }

    /// Its value, UTF-8 without a terminator.
    pub fn value(self, info: &DeviceInfo) -> Vec<u8> {
        match self {
            DeviceInformation::ManufacturerName => info.manufacturer.as_bytes().to_vec(),
            DeviceInformation::ModelNumber => MODEL.as_bytes().to_vec(),
            DeviceInformation::SerialNumber => info.serial.as_bytes().to_vec(),
            DeviceInformation::FirmwareRevision => info.firmware.as_bytes().to_vec(),
        }
    }
}

/// What the Device Information Service tells about this lamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub manufacturer: String,
    /// The device id.
    pub serial: String,
    pub firmware: String,
}

/// Why a write was refused. Each maps to the ATT error the central sees; through BlueZ's D-Bus
/// API a server can only return a few of them (org.bluez.Error.*, see [`WriteRefusal::att_error`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteRefusal {
    /// The value has the wrong number of octets.
    InvalidLength { expected: usize, got: usize },
    /// A write at a non-zero offset (a long or prepared write).
    InvalidOffset(u16),
    /// The right length, but a value the characteristic does not take.
    ValueNotAllowed(String),
}

/// ATT "Invalid Offset".
pub const ATT_INVALID_OFFSET: u8 = 0x07;
/// ATT "Invalid Attribute Value Length".
pub const ATT_INVALID_VALUE_LENGTH: u8 = 0x0d;
/// The first of the ATT application errors. BlueZ returns it for a server's
/// `org.bluez.Error.Failed`; the core spec's "Value Not Allowed" (0x13) cannot be returned
/// through BlueZ's D-Bus API, so a bad value is this.
pub const ATT_APPLICATION_ERROR: u8 = 0x80;

impl WriteRefusal {
    /// The ATT error code the central receives.
    pub fn att_error(&self) -> u8 {
        match self {
            WriteRefusal::InvalidLength { .. } => ATT_INVALID_VALUE_LENGTH,
            WriteRefusal::InvalidOffset(_) => ATT_INVALID_OFFSET,
            WriteRefusal::ValueNotAllowed(_) => ATT_APPLICATION_ERROR,
        }
    }
}

impl fmt::Display for WriteRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteRefusal::InvalidLength { expected, got } => {
                write!(f, "{got} octets; this characteristic takes {expected}")
            }
            WriteRefusal::InvalidOffset(offset) => write!(f, "write at offset {offset}; only whole values are written"),
            WriteRefusal::ValueNotAllowed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for WriteRefusal {}

/// 0.0–1.0 as 0x00–0xFF, to the nearest step.
pub fn to_byte(unit: Unit) -> u8 {
    // In range by the type: 0.0 ≤ unit ≤ 1.0, so the product is 0.0–255.0.
    (unit.get() * 255.0).round() as u8
}

/// 0x00–0xFF as 0.0–1.0; [`to_byte`] takes it back to the same byte.
pub fn from_byte(byte: u8) -> Unit {
    Unit::try_from(f64::from(byte) / 255.0).expect("0–255 over 255 is within 0.0–1.0")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn unit(x: f64) -> Unit {
        Unit::try_from(x).unwrap()
    }

    fn units() -> impl Strategy<Value = Unit> {
        prop_oneof![
            Just(Unit::ZERO),
            Just(Unit::ONE),
            (0.0..=1.0f64).prop_map(unit),
            any::<u8>().prop_map(from_byte),
        ]
    }

    prop_compose! {
        fn states()(on in any::<bool>(), hue in units(), saturation in units(), brightness in units()) -> LightState {
            LightState { on, hue, saturation, brightness }
        }
    }

    fn bytes_for(ch: LampCharacteristic) -> BoxedStrategy<Vec<u8>> {
        match ch {
            LampCharacteristic::Hsv => (any::<u8>(), any::<u8>()).prop_map(|(h, s)| vec![h, s, 0xff]).boxed(),
            LampCharacteristic::Brightness => any::<u8>().prop_map(|b| vec![b]).boxed(),
            LampCharacteristic::OnOff => (0..=1u8).prop_map(|b| vec![b]).boxed(),
        }
    }

    fn characteristics() -> impl Strategy<Value = LampCharacteristic> {
        prop::sample::select(LampCharacteristic::ALL.to_vec())
    }

    proptest! {
        /// A byte written reads back identical, whatever the lamp showed before.
        #[test]
        fn a_written_value_reads_back_identical(
            (ch, bytes) in characteristics().prop_flat_map(|ch| (Just(ch), bytes_for(ch))),
            before in states(),
        ) {
            let change = ch.decode_write(0, &bytes, &before).unwrap();
            prop_assert_eq!(ch.encode(&before.with(change)), bytes);
        }

        /// A value from MQTT or the screen, read over BLE and written back, changes nothing.
        #[test]
        fn reading_and_writing_back_does_not_drift(ch in characteristics(), state in states()) {
            let change = ch.decode_write(0, &ch.encode(&state), &state).unwrap();
            prop_assert_eq!(state.with(change), state);
        }

        /// Every byte maps into 0.0–1.0 and back to itself; every value to its nearest byte.
        #[test]
        fn bytes_and_units_round_trip(byte in any::<u8>(), x in 0.0..=1.0f64) {
            prop_assert_eq!(to_byte(from_byte(byte)), byte);
            prop_assert!((f64::from(to_byte(unit(x))) - x * 255.0).abs() <= 0.5);
        }

        /// What a central reads decodes to values that encode to it again.
        #[test]
        fn a_value_read_decodes_to_what_encodes_it(ch in characteristics(), state in states()) {
            let value = ch.encode(&state);
            let read = LightState::default().with(ch.decode(&value).unwrap());
            prop_assert_eq!(ch.encode(&read), value);
        }

        /// Any length but the right one is refused with 0x0D.
        #[test]
        fn wrong_lengths_are_refused(ch in characteristics(), bytes in prop::collection::vec(any::<u8>(), 0..8), state in states()) {
            prop_assume!(bytes.len() != ch.value_len());
            let refusal = ch.decode_write(0, &bytes, &state).unwrap_err();
            prop_assert_eq!(refusal.att_error(), ATT_INVALID_VALUE_LENGTH);
        }
    }

    #[test]
    fn ends_and_middle_of_the_range() {
        assert_eq!(to_byte(Unit::ZERO), 0x00);
        assert_eq!(to_byte(Unit::ONE), 0xff);
        assert_eq!(to_byte(unit(0.5)), 0x80);
        assert_eq!(from_byte(0xff), Unit::ONE);
        assert_eq!(from_byte(0x00), Unit::ZERO);
    }

    #[test]
    fn reads_the_course_layout() {
        let state = LightState {
            on: false,
            hue: unit(1.0 / 3.0),
            saturation: Unit::ONE,
            brightness: unit(0.5),
        };
        assert_eq!(LampCharacteristic::Hsv.encode(&state), [0x55, 0xff, 0xff]);
        assert_eq!(LampCharacteristic::Brightness.encode(&state), [0x80]);
        assert_eq!(LampCharacteristic::OnOff.encode(&state), [0x00]);
    }

    #[test]
    fn refuses_bad_values_and_offsets_with_their_att_errors() {
        let state = LightState::default();
        let on_off = LampCharacteristic::OnOff.decode_write(0, &[0x02], &state).unwrap_err();
        assert_eq!(on_off.att_error(), ATT_APPLICATION_ERROR);
        assert_eq!(on_off.to_string(), "On / Off takes 0x00 or 0x01, not 0x02");
        let hsv = LampCharacteristic::Hsv.decode_write(0, &[1, 2, 3], &state).unwrap_err();
        assert_eq!(hsv.att_error(), ATT_APPLICATION_ERROR);
        let offset = LampCharacteristic::Brightness
            .decode_write(1, &[1], &state)
            .unwrap_err();
        assert_eq!(offset.att_error(), ATT_INVALID_OFFSET);
        let long = LampCharacteristic::Brightness
            .decode_write(0, &[1, 2], &state)
            .unwrap_err();
        assert_eq!(
            (long.att_error(), long.to_string().as_str()),
            (0x0d, "2 octets; this characteristic takes 1")
        );
    }

    #[test]
    fn a_write_changes_only_its_own_fields() {
        let change = LampCharacteristic::Hsv
            .decode_write(0, &[0x00, 0x80, 0xff], &LightState::default())
            .unwrap();
        assert_eq!((change.on, change.brightness), (None, None));
        assert_eq!(change.saturation, Some(from_byte(0x80)));
    }

    #[test]
    fn uuids_and_descriptors() {
        assert_eq!(
            format!("{:032x}", DEVICE_INFORMATION),
            "0000180a00001000800000805f9b34fb"
        );
        assert_eq!(format!("{:032x}", ON_OFF), "0004a7d3d8a44fea81741736e808c066");
        assert_eq!(
            LampCharacteristic::OnOff.presentation_format(),
            [0x04, 0x00, 0x00, 0x27, 0x01, 0x00, 0x00]
        );
        assert_eq!(DeviceInformation::ModelNumber.presentation_format()[0], 0x19);
        let info = DeviceInfo {
            manufacturer: "CWRU".into(),
            serial: "b827eb123456".into(),
            firmware: "0.1.0".into(),
        };
        assert_eq!(DeviceInformation::SerialNumber.value(&info), b"b827eb123456");
        assert_eq!(DeviceInformation::ModelNumber.value(&info), b"LAMPI");
    }
}
