//! Wire formats, pure: bytes in, typed values or a reason out.

pub mod homeassistant;
pub mod lampi;
pub mod pairing;
