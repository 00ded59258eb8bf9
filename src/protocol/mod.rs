//! Wire formats, pure: bytes in, typed values or a reason out.

pub mod ble;
pub mod homeassistant;
pub mod lampi;
pub mod pairing;

use std::fmt;

use serde_json::{Map, Value};

/// Why a message was refused, with what the sender gave to recognise the answer when it could
/// be read: its `token`, or the `client` of a LAMPI `set_config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    reason: String,
    token: Option<String>,
}

impl Refused {
    fn new(reason: impl Into<String>) -> Refused {
        Refused {
            reason: reason.into(),
            token: None,
        }
    }

    fn with_token(self, token: Option<String>) -> Refused {
        Refused { token, ..self }
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Refused {}

/// A JSON object of at most `max_bytes`: the first step of every small command the lamp takes.
fn small_object(payload: &[u8], max_bytes: usize) -> Result<Map<String, Value>, Refused> {
    if payload.len() > max_bytes {
        return Err(Refused::new(format!("payload over {max_bytes} bytes")));
    }
    let value: Value = serde_json::from_slice(payload).map_err(|e| Refused::new(format!("invalid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Refused::new("must be a JSON object")),
    }
}

/// Refuses the first field that is not `allowed`, naming those that are.
fn only_keys(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), Refused> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(Refused::new(format!(
            "{key}: unknown field (allowed: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The sender's optional `token`, echoed in the answer so it can find it.
fn token(map: &Map<String, Value>) -> Result<Option<String>, Refused> {
    match map.get("token") {
        None => Ok(None),
        Some(Value::String(t)) if t.len() <= 64 => Ok(Some(t.clone())),
        Some(_) => Err(Refused::new("token: must be text of at most 64 bytes")),
    }
}
