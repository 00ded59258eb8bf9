//! Wire formats, pure: bytes in, typed values or a reason out.

pub mod ble;
pub mod homeassistant;
pub mod lampi;
pub mod pairing;

use serde_json::{Map, Value};

/// A JSON object of at most `max_bytes`: the first step of every small command the lamp takes.
pub(crate) fn small_object(payload: &[u8], max_bytes: usize) -> Result<Map<String, Value>, String> {
    if payload.len() > max_bytes {
        return Err(format!("payload over {max_bytes} bytes"));
    }
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("invalid JSON: {e}"))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("must be a JSON object".into()),
    }
}

/// Refuses the first field that is not `allowed`, naming those that are.
pub(crate) fn only_keys(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!("{key}: unknown field (allowed: {})", allowed.join(", "))),
        None => Ok(()),
    }
}

/// The sender's optional `token`, echoed in the answer so it can find it.
pub(crate) fn token(map: &Map<String, Value>) -> Result<Option<String>, String> {
    match map.get("token") {
        None => Ok(None),
        Some(Value::String(t)) if t.len() <= 64 => Ok(Some(t.clone())),
        Some(_) => Err("token: must be text of at most 64 bytes".into()),
    }
}
