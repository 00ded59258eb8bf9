//! The pairing protocol between the lamp and the cloud portal, on `lampi/<device id>/pairing/…`
//! (docs/PROTOCOL.md): parsing what the portal sends and building what the lamp publishes.

use std::fmt;

use serde_json::{Map, Value, json};

use super::{Refused, only_keys, small_object, token};
use crate::core::lamp::PairingView;
use crate::core::pairing::{Owner, display};

/// Longest association or unpair message accepted.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Topics of one lamp's pairing, under `lampi/<device id>/pairing/`.
#[derive(Clone, Debug)]
pub struct PairingTopics {
    /// Anyone allowed may ask for a code (the touchscreen does it internally).
    pub request: String,
    /// Retained `{"code", "expires"}` while a code is active, empty otherwise; for the cloud only.
    pub code: String,
    pub associate: String,
    pub unpair: String,
    /// The lamp's answers to `associate` and `unpair`, with the sender's `token`.
    pub result: String,
}

impl PairingTopics {
    pub fn new(device_id: &str) -> PairingTopics {
        let base = format!("lampi/{device_id}/pairing/");
        PairingTopics {
            request: format!("{base}request"),
            code: format!("{base}code"),
            associate: format!("{base}associate"),
            unpair: format!("{base}unpair"),
            result: format!("{base}result"),
        }
    }
}

/// An association the portal sends: the code the owner typed, and who they are.
#[derive(Debug, PartialEq)]
pub struct Association {
    pub code: String,
    pub owner: Owner,
    pub token: Option<String>,
}

fn object(payload: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, Refused> {
    let map = small_object(payload, MAX_MESSAGE_BYTES)?;
    only_keys(&map, allowed)?;
    Ok(map)
}

/// `{"code": "ABCD-EFGH", "owner": "alice", "name": "Alice", "token": "..."}`.
/// A refusal keeps the token when it could be read.
pub fn parse_association(payload: &[u8]) -> Result<Association, Refused> {
    let map = object(payload, &["code", "owner", "name", "token"])?;
    let token = token(&map)?;
    let text = |key: &str| match map.get(key) {
        Some(Value::String(s)) => Ok(s.as_str()),
        _ => Err(Refused::new(format!("{key}: required text")).with_token(token.clone())),
    };
    let code = text("code")?.to_owned();
    let owner =
        Owner::new(text("owner")?, text("name")?).map_err(|e| Refused::new(e.to_string()).with_token(token.clone()))?;
    Ok(Association { code, owner, token })
}

/// `{"token": "..."}` (or `{}`) on `unpair`.
pub fn parse_unpair(payload: &[u8]) -> Result<Option<String>, Refused> {
    let map = object(payload, &["token"])?;
    token(&map)
}

/// The answer on `result`.
pub fn result(token: Option<&str>, outcome: Result<&Owner, impl fmt::Display>) -> Vec<u8> {
    let mut answer = json!({ "ok": outcome.is_ok() });
    if let Some(token) = token {
        answer["token"] = json!(token);
    }
    match outcome {
        Ok(owner) => answer["owner"] = json!({"id": owner.id, "name": owner.name}),
        Err(error) => answer["error"] = json!(error.to_string()),
    }
    answer.to_string().into_bytes()
}

/// What the retained `code` topic carries: the code and its expiry, or nothing.
pub fn code_payload(view: &PairingView) -> Vec<u8> {
    match &view.code {
        Some((code, expires)) => json!({"code": code, "expires": expires}).to_string().into_bytes(),
        None => Vec::new(),
    }
}

/// LAMPI's retained `lamp/associated`: `{"associated": true}` once paired, else
/// `{"associated": false}`, with `"code": "ABCD-EFGH"` while one is shown only if
/// `with_code` (`pairing.code_on_lamp_topic`): apps read this topic, and a code they see they
/// can claim in the portal before the person at the lamp does.
pub fn associated_payload(view: &PairingView, with_code: bool) -> Vec<u8> {
    let mut payload = json!({"associated": view.owner.is_some()});
    if let (true, Some((code, _))) = (with_code, &view.code) {
        payload["code"] = json!(display(code));
    }
    payload.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn associations_are_parsed_and_refused_with_reasons() {
        let good = parse_association(br#"{"code": "abcd-efgh", "owner": "alice", "name": "Alice", "token": "t1"}"#);
        assert_eq!(
            good,
            Ok(Association {
                code: "abcd-efgh".into(),
                owner: Owner::new("alice", "Alice").unwrap(),
                token: Some("t1".into()),
            })
        );
        let cases: [(&[u8], &str); 5] = [
            (b"{", "invalid JSON"),
            (b"[]", "must be a JSON object"),
            (
                br#"{"code": "A", "owner": "a", "name": "b", "extra": 1}"#,
                "extra: unknown field",
            ),
            (br#"{"owner": "a", "name": "b", "token": "t"}"#, "code: required"),
            (br#"{"code": "A", "owner": "", "name": "b"}"#, "owner: id must be"),
        ];
        for (payload, expected) in cases {
            let error = parse_association(payload).unwrap_err();
            assert!(error.reason().starts_with(expected), "{error}");
        }
        let error = parse_association(br#"{"owner": "a", "name": "b", "token": "t"}"#).unwrap_err();
        assert_eq!(error.token(), Some("t"), "the sender still gets its token back");
    }

    #[test]
    fn lampi_associated_carries_the_code_only_when_asked_to() {
        let mut view = PairingView {
            code: Some(("ABCDEFGH".into(), 100)),
            ..Default::default()
        };
        let json = |p: Vec<u8>| serde_json::from_slice::<Value>(&p).unwrap();
        assert_eq!(json(associated_payload(&view, false)), json!({"associated": false}));
        assert_eq!(
            json(associated_payload(&view, true)),
            json!({"code": "ABCD-EFGH", "associated": false})
        );
        assert_eq!(json(code_payload(&view)), json!({"code": "ABCDEFGH", "expires": 100}));
        view.code = None;
        view.owner = Some(Owner::new("alice", "Alice").unwrap());
        for with_code in [false, true] {
            assert_eq!(json(associated_payload(&view, with_code)), json!({"associated": true}));
        }
        assert!(code_payload(&view).is_empty());
    }
}
