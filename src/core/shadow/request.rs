//! Requests as AWS IoT checks them: size, encoding, shape, depth and client token, refused
//! with its codes and messages.

use serde_json::{Map, Value};

use super::{MAX_CLIENT_TOKEN_BYTES, MAX_DEPTH, MAX_REQUEST_BYTES, SectionUpdate, ShadowError, UpdateRequest};

/// Checks size, encoding and shape of an `update` request, with AWS's codes and messages.
pub fn parse_update(payload: &[u8]) -> Result<UpdateRequest, ShadowError> {
    let root = parse_object(payload)?;
    let client_token = client_token(&root)?;
    let token = client_token.as_deref();
    let version = match root.get("version") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| ShadowError::new(400, "Invalid version", token))?,
        ),
    };
    let state = match root.get("state") {
        None | Some(Value::Null) => {
            return Err(ShadowError::new(400, "Missing required node: state", token));
        }
        Some(Value::Object(state)) => state,
        Some(_) => return Err(ShadowError::new(400, "State node must be an object", token)),
    };
    if state.keys().any(|k| k != "desired" && k != "reported") {
        return Err(ShadowError::new(400, "State contains an invalid node", token));
    }
    let section = |name: &str, message: &str| -> Result<Option<SectionUpdate>, ShadowError> {
        match state.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(SectionUpdate::Clear)),
            Some(Value::Object(fields)) => {
                if depth(fields) > MAX_DEPTH {
                    return Err(ShadowError::new(
                        400,
                        "JSON contains too many levels of nesting; maximum is 6",
                        token,
                    ));
                }
                Ok(Some(SectionUpdate::Merge(fields.clone())))
            }
            Some(_) => Err(ShadowError::new(400, message, token)),
        }
    };
    Ok(UpdateRequest {
        desired: section("desired", "Desired node must be an object")?,
        reported: section("reported", "Reported node must be an object")?,
        client_token,
        version,
    })
}

/// A `get` or `delete` request: empty, or an object with an optional `clientToken`.
pub fn parse_token_request(payload: &[u8]) -> Result<Option<String>, ShadowError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    client_token(&parse_object(payload)?)
}

fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, ShadowError> {
    if payload.len() > MAX_REQUEST_BYTES {
        return Err(ShadowError::new(
            413,
            "The payload exceeds the maximum size allowed",
            None,
        ));
    }
    let text = std::str::from_utf8(payload).map_err(|_| {
        ShadowError::new(
            415,
            "Unsupported documented encoding; supported encoding is UTF-8",
            None,
        )
    })?;
    match serde_json::from_str(text) {
        Ok(Value::Object(root)) => Ok(root),
        Ok(_) => Err(ShadowError::new(400, "Missing required node: state", None)),
        Err(_) => Err(ShadowError::new(400, "Invalid JSON", None)),
    }
}

fn client_token(root: &Map<String, Value>) -> Result<Option<String>, ShadowError> {
    match root.get("clientToken") {
        None => Ok(None),
        Some(Value::String(token)) if token.len() <= MAX_CLIENT_TOKEN_BYTES => Ok(Some(token.clone())),
        Some(_) => Err(ShadowError::new(400, "Invalid clientToken", None)),
    }
}

/// Levels of nesting below a section: `{"a": 1}` is 1, `{"a": {"b": 1}}` is 2.
fn depth(fields: &Map<String, Value>) -> usize {
    fn value_depth(value: &Value) -> usize {
        match value {
            Value::Object(map) => depth(map),
            Value::Array(items) => items.iter().map(value_depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    1 + fields.values().map(value_depth).max().unwrap_or(0)
}
