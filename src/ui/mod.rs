//! The touchscreen: a Slint UI in `ui/*.slint` whose one exported global, `Api`, is the whole
//! contract with Rust.
//!
//! - [`view`]: pure: the lamp's state → everything each screen shows.
//! - [`bridge`]: the only code that touches the window: a view into `Api`, callbacks out.
//! - [`live`]: the screen of a running lamp: watches the lamp task, sends it commands, dims the
//!   backlight.
//! - [`display`]: which Slint backend shows the screen, if any.
//! - [`prefs`]: the screen's own preferences file.
//! - [`screenshot`]: any screen, headless, to a PNG, with the software renderer.
//! - [`backlight`]: the backlight in `/sys/class/backlight`.

pub mod backlight;
pub mod bridge;
pub mod display;
pub mod live;
pub mod prefs;
pub mod screenshot;
pub mod view;

#[allow(clippy::all, clippy::pedantic)]
mod generated {
    slint::include_modules!();
}

pub use generated::{AlarmRow, Api, AppWindow, InfoLine, PairingPhase, Screen};
