//! LED output backends behind one small trait, picked by name from config (as librespot picks
//! audio backends): `sim` everywhere, `rpi` when built with the `rpi` feature.

use crate::config::{LedBackendName, LedConfig};
use crate::core::colour::Rgb;

#[cfg(feature = "rpi")]
mod rpi;
mod sim;

pub use sim::{Console, SimLed};

#[derive(Debug, thiserror::Error)]
#[error("LED backend {backend}: {message}")]
pub struct LedError {
    backend: &'static str,
    message: String,
}

/// Something that shows three duty cycles. Implementations quantise to their own resolution;
/// callers always pass the exact values.
pub trait Led: Send {
    fn set(&mut self, duty: Rgb) -> Result<(), LedError>;

    /// Called once when the daemon stops; `keep_lit` says whether to leave the light on.
    fn shut_down(&mut self, keep_lit: bool) -> Result<(), LedError>;
}

/// Opens the backend the config names. `force_sim` is `lampi run --sim`; the simulated LED
/// draws its swatch on `console`, where the log goes.
pub fn open(config: &LedConfig, force_sim: bool, console: &Console) -> Result<Box<dyn Led>, LedError> {
    let backend = if force_sim { LedBackendName::Sim } else { config.backend };
    match backend {
        LedBackendName::Sim if config.swatch => Ok(Box::new(SimLed::with_swatch(console))),
        LedBackendName::Sim => Ok(Box::new(SimLed::new())),
        #[cfg(feature = "rpi")]
        LedBackendName::Rpi => Ok(Box::new(rpi::RpiLed::open(config)?)),
        #[cfg(not(feature = "rpi"))]
        LedBackendName::Rpi => Err(LedError {
            backend: "rpi",
            message: "this build has no Raspberry Pi support; rebuild with `--features rpi` or run with --sim".into(),
        }),
    }
}
