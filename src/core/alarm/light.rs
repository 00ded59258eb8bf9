//! The light an alarm shows: the blink pattern and the sunrise ramp.

use std::time::Duration;

use crate::core::colour::{Rgb, blackbody, dimmed};

/// The blink alarm: three short flashes and a pause, every two seconds — not a pattern a
/// person switching the lamp makes. (on, milliseconds), repeating.
pub const BLINK_PATTERN: [(bool, u64); 6] = [
    (true, 200),
    (false, 200),
    (true, 200),
    (false, 200),
    (true, 200),
    (false, 1000),
];
/// Sunrise ramp: its colour runs from this deep red to warm white.
pub const SUNRISE_START_KELVIN: f64 = 1000.0;
pub const SUNRISE_END_KELVIN: f64 = 2700.0;
/// The ramp is sampled this often (wall time) and each sample fades into the next, so the
/// output moves continuously; the lamp's fades are smooth down to the first duty step.
pub const SUNRISE_STEP: chrono::Duration = chrono::Duration::seconds(5);

/// Whether the blink pattern is lit `elapsed` into it, and how long until it changes.
pub(super) fn blink_phase(elapsed: Duration) -> (bool, Duration) {
    let period: u64 = BLINK_PATTERN.iter().map(|(_, ms)| ms).sum();
    let mut t = (elapsed.as_millis() % u128::from(period)) as u64;
    for (on, ms) in BLINK_PATTERN {
        if t < ms {
            return (on, Duration::from_millis(ms - t));
        }
        t -= ms;
    }
    (false, Duration::from_millis(1))
}

/// The sunrise light `progress` (0–1) through its ramp: colour from deep red to warm white,
/// brightness rising evenly in lightness to `brightness`.
pub fn sunrise(progress: f64, brightness: f64) -> Rgb {
    let kelvin = SUNRISE_START_KELVIN + (SUNRISE_END_KELVIN - SUNRISE_START_KELVIN) * progress;
    dimmed(blackbody(kelvin), brightness * progress)
}
