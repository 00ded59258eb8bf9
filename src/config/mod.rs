//! The daemon's configuration: one TOML file, every key optional, validated up front.
//!
//! A bad file stops the daemon at start with the file, key and reason; a key it does not know
//! is only warned about, so a config written for a newer firmware still starts an older one.
//!
//! - `file`: the keys and their defaults ([`Config`]), reading and parsing.
//! - `validate`: what makes a config wrong or risky.
//! - `resolve`: what the config leaves to the machine (device id, state directory) and to the
//!   command line ([`Overrides`]), settled once into [`Resolved`].

mod file;
mod resolve;
mod validate;

pub use self::file::*;
pub use self::resolve::{Overrides, Resolved, mac_device_id};

#[cfg(test)]
mod tests;
