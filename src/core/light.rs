//! What the lamp is asked to show: on/off, hue, saturation, brightness, as in LAMPI.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value in 0.0–1.0 inclusive; the type makes out-of-range and NaN unrepresentable.
#[derive(Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Unit(f64);

impl fmt::Debug for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Unit {
    pub const ZERO: Unit = Unit(0.0);
    pub const ONE: Unit = Unit(1.0);

    pub fn get(self) -> f64 {
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("{0} is outside 0.0–1.0")]
pub struct OutOfRange(pub f64);

impl TryFrom<f64> for Unit {
    type Error = OutOfRange;

    fn try_from(value: f64) -> Result<Self, OutOfRange> {
        if (0.0..=1.0).contains(&value) {
            // -0.0 is in range, but would go out as "-0.0", which LAMPI's clients show as "-0".
            Ok(Unit(value + 0.0))
        } else {
            Err(OutOfRange(value))
        }
    }
}

impl From<Unit> for f64 {
    fn from(unit: Unit) -> f64 {
        unit.0
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LightState {
    pub on: bool,
    pub hue: Unit,
    pub saturation: Unit,
    pub brightness: Unit,
}

impl Default for LightState {
    /// A new lamp glows full white, as LAMPI's did.
    fn default() -> Self {
        LightState {
            on: true,
            hue: Unit::ZERO,
            saturation: Unit::ZERO,
            brightness: Unit::ONE,
        }
    }
}

/// A partial update: only the fields that are `Some` change.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LightChange {
    pub on: Option<bool>,
    pub hue: Option<Unit>,
    pub saturation: Option<Unit>,
    pub brightness: Option<Unit>,
}

impl LightState {
    pub fn with(mut self, change: LightChange) -> LightState {
        self.on = change.on.unwrap_or(self.on);
        self.hue = change.hue.unwrap_or(self.hue);
        self.saturation = change.saturation.unwrap_or(self.saturation);
        self.brightness = change.brightness.unwrap_or(self.brightness);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_rejects_out_of_range_and_nan() {
        assert!(Unit::try_from(-0.01).is_err());
        assert!(Unit::try_from(1.0001).is_err());
        assert!(Unit::try_from(f64::NAN).is_err());
        assert_eq!(Unit::try_from(1.0).unwrap(), Unit::ONE);
        let zero = Unit::try_from(-0.0).unwrap().get();
        assert!(zero.is_sign_positive(), "{zero}");
        assert_eq!(serde_json::to_string(&Unit::try_from(-0.0).unwrap()).unwrap(), "0.0");
    }

    #[test]
    fn partial_change_touches_only_given_fields() {
        let half = Unit::try_from(0.5).unwrap();
        let state = LightState::default().with(LightChange {
            brightness: Some(half),
            ..LightChange::default()
        });
        assert_eq!(state.brightness, half);
        assert!(state.on);
        assert_eq!(state.hue, Unit::ZERO);
    }
}
