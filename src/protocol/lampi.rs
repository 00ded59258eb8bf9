//! The original LAMPI MQTT payloads (`lamp/set_config`, `lamp/changed`), kept byte-compatible
//! with the course's `lamp_service.py` so its `lamp_cmd`, web page and Kivy UI work unchanged.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Refused, only_keys, small_object, token};
use crate::core::lamp::AlarmCommand;
use crate::core::light::{LightChange, LightState, Unit};

/// A `set_config` is a few dozen bytes; anything much larger is a mistake or an attack.
pub const MAX_SET_CONFIG_BYTES: usize = 1024;
/// The longest `client` name accepted and echoed back.
pub const MAX_CLIENT_CHARS: usize = 128;

/// A valid `lamp/set_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct SetConfig {
    pub client: String,
    pub change: LightChange,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetConfig {
    client: String,
    on: Option<bool>,
    color: Option<RawColor>,
    brightness: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColor {
    h: Option<f64>,
    s: Option<f64>,
}

/// A refusal's token is the `client` that sent it, when that could be read.
pub fn parse_set_config(payload: &[u8]) -> Result<SetConfig, Refused> {
    let reject = |client: Option<String>, error: String| Refused::new(error).with_token(client);
    if payload.len() > MAX_SET_CONFIG_BYTES {
        return Err(reject(
            None,
            format!(
                "payload is {} bytes; the limit is {MAX_SET_CONFIG_BYTES}",
                payload.len()
            ),
        ));
    }
    let text = std::str::from_utf8(payload).map_err(|e| reject(None, format!("payload is not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(text).map_err(|e| reject(None, format!("payload is not JSON: {e}")))?;
    let client = value
        .get("client")
        .and_then(Value::as_str)
        .map(|c| c.chars().take(MAX_CLIENT_CHARS).collect::<String>());
    if !value.is_object() {
        return Err(reject(None, "payload must be a JSON object".into()));
    }
    let raw: RawSetConfig = serde_json::from_value(value).map_err(|e| reject(client.clone(), e.to_string()))?;
    if raw.client.chars().count() > MAX_CLIENT_CHARS {
        return Err(reject(
            client,
            format!("client is longer than {MAX_CLIENT_CHARS} characters"),
        ));
    }
    let unit = |name: &str, value: Option<f64>| -> Result<Option<Unit>, Refused> {
        value
            .map(|v| Unit::try_from(v).map_err(|e| reject(Some(raw.client.clone()), format!("{name}: {e}"))))
            .transpose()
    };
    let (h, s) = raw.color.map_or((None, None), |c| (c.h, c.s));
    let change = LightChange {
        on: raw.on,
        hue: unit("color.h", h)?,
        saturation: unit("color.s", s)?,
        brightness: unit("brightness", raw.brightness)?,
    };
    Ok(SetConfig {
        client: raw.client,
        change,
    })
}

#[derive(Serialize)]
struct Changed<'a> {
    color: Color,
    brightness: f64,
    on: bool,
    client: &'a str,
}

#[derive(Serialize)]
struct Color {
    h: f64,
    s: f64,
}

/// The retained `lamp/changed` document for a state and the client that last changed it.
pub fn changed_payload(state: &LightState, client: &str) -> Vec<u8> {
    let changed = Changed {
        color: Color {
            h: state.hue.get(),
            s: state.saturation.get(),
        },
        brightness: state.brightness.get(),
        on: state.on,
        client,
    };
    serde_json::to_vec(&changed).expect("plain structs always serialise")
}

/// LAMPI's `lamp/set_config/rejected` document: `{"client", "error"}`, `client` null when it
/// could not be read.
#[derive(Serialize)]
struct Rejection<'a> {
    client: Option<&'a str>,
    error: &'a str,
}

pub fn rejection_payload(refused: &Refused) -> Vec<u8> {
    let rejection = Rejection {
        client: refused.token(),
        error: refused.reason(),
    };
    serde_json::to_vec(&rejection).expect("plain structs always serialise")
}

/// Longest alarm command accepted.
pub const MAX_ALARM_COMMAND_BYTES: usize = 256;

/// Where a lamp takes alarm commands; the answers go to the same topic + `/result`.
pub fn alarm_topic(device_id: &str) -> String {
    format!("lampi/{device_id}/alarm")
}

/// A command for the ringing alarm, with the sender's optional token for the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmRequest {
    pub command: AlarmCommand,
    pub token: Option<String>,
}

/// `{"command": "snooze"}` or `{"command": "dismiss"}`, optionally with `"token"` (≤ 64
/// bytes), on `lampi/<id>/alarm`. A refusal keeps the token when it could be read.
pub fn parse_alarm_command(payload: &[u8]) -> Result<AlarmRequest, Refused> {
    let object = small_object(payload, MAX_ALARM_COMMAND_BYTES)?;
    let token = token(&object)?;
    only_keys(&object, &["command", "token"]).map_err(|e| e.with_token(token.clone()))?;
    let command = match object.get("command").and_then(Value::as_str) {
        Some("snooze") => AlarmCommand::Snooze,
        Some("dismiss") => AlarmCommand::Dismiss,
        _ => return Err(Refused::new("command: must be \"snooze\" or \"dismiss\"").with_token(token)),
    };
    Ok(AlarmRequest { command, token })
}

/// The answer on `lampi/<id>/alarm/result`.
pub fn alarm_result(
    command: Option<AlarmCommand>,
    token: Option<&str>,
    result: Result<(), impl fmt::Display>,
) -> Vec<u8> {
    let mut answer = json!({ "ok": result.is_ok() });
    if let Some(command) = command {
        answer["command"] = json!(match command {
            AlarmCommand::Snooze => "snooze",
            AlarmCommand::Dismiss => "dismiss",
        });
    }
    if let Some(token) = token {
        answer["token"] = json!(token);
    }
    if let Err(error) = result {
        answer["error"] = json!(error.to_string());
    }
    answer.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(payload: &[u8]) -> Refused {
        parse_set_config(payload).expect_err("should be rejected")
    }

    #[test]
    fn accepts_the_lamp_cmd_message() {
        let parsed =
            parse_set_config(br#"{"color":{"h":0.33,"s":1.0},"brightness":0.5,"on":true,"client":"me"}"#).unwrap();
        assert_eq!(parsed.client, "me");
        assert_eq!(parsed.change.hue.unwrap().get(), 0.33);
        assert_eq!(parsed.change.saturation.unwrap().get(), 1.0);
        assert_eq!(parsed.change.brightness.unwrap().get(), 0.5);
        assert_eq!(parsed.change.on, Some(true));
    }

    #[test]
    fn accepts_partial_updates() {
        let parsed = parse_set_config(br#"{"color":{"s":0.2},"client":"ui"}"#).unwrap();
        assert_eq!(parsed.change.hue, None);
        assert_eq!(parsed.change.saturation.unwrap().get(), 0.2);
        assert_eq!(parsed.change.on, None);
    }

    #[test]
    fn rejects_each_kind_of_bad_input_with_a_reason() {
        let e = error_of(&[0xff, 0xfe, b'{']);
        assert!(e.reason().contains("UTF-8"), "{e:?}");
        let e = error_of(b"{not json");
        assert!(e.reason().contains("not JSON"), "{e:?}");
        let e = error_of(b"[1,2]");
        assert!(e.reason().contains("object"), "{e:?}");
        let e = error_of(br#"{"on":true}"#);
        assert!(e.reason().contains("missing field `client`"), "{e:?}");
        let e = error_of(br#"{"brightness":1.5,"client":"me"}"#);
        assert_eq!(e.token(), Some("me"));
        assert!(e.reason().contains("brightness") && e.reason().contains("1.5"), "{e:?}");
        let e = error_of(br#"{"color":{"h":-0.1},"client":"me"}"#);
        assert!(e.reason().contains("color.h"), "{e:?}");
        let e = error_of(br#"{"on":"yes","client":"me"}"#);
        assert!(e.reason().contains("invalid type"), "{e:?}");
        assert_eq!(e.token(), Some("me"));
        let e = error_of(br#"{"on":true,"colour":{},"client":"me"}"#);
        assert!(e.reason().contains("unknown field `colour`"), "{e:?}");
        let e = error_of(br#"{"client":42}"#);
        assert!(e.reason().contains("invalid type"), "{e:?}");
        let big = format!(r#"{{"client":"{}"}}"#, "x".repeat(MAX_SET_CONFIG_BYTES));
        let e = error_of(big.as_bytes());
        assert!(e.reason().contains("limit"), "{e:?}");
    }

    /// `lamp_service.py`'s clients read these bytes: `client` first, null when unknown.
    #[test]
    fn rejections_keep_lampis_bytes() {
        let payload = |set_config: &[u8]| String::from_utf8(rejection_payload(&error_of(set_config))).unwrap();
        assert_eq!(
            payload(b"[1,2]"),
            r#"{"client":null,"error":"payload must be a JSON object"}"#
        );
        assert_eq!(
            payload(br#"{"on":true,"client":"me","x":1}"#),
            r#"{"client":"me","error":"unknown field `x`, expected one of `client`, `on`, `color`, `brightness`"}"#
        );
    }

    #[test]
    fn changed_has_lampi_shape() {
        let state = LightState {
            on: true,
            hue: Unit::try_from(0.33).unwrap(),
            saturation: Unit::ONE,
            brightness: Unit::try_from(0.5).unwrap(),
        };
        let json: Value = serde_json::from_slice(&changed_payload(&state, "me")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"color":{"h":0.33,"s":1.0},"brightness":0.5,"on":true,"client":"me"})
        );
    }

    #[test]
    fn alarm_commands_are_parsed_and_refusals_keep_the_token() {
        assert_eq!(
            parse_alarm_command(br#"{"command": "snooze", "token": "t1"}"#),
            Ok(AlarmRequest {
                command: AlarmCommand::Snooze,
                token: Some("t1".into())
            })
        );
        let cases: [(&[u8], &str, Option<&str>); 4] = [
            (
                br#"{"command": "louder", "token": "t2"}"#,
                "command: must be",
                Some("t2"),
            ),
            (
                br#"{"command": "dismiss", "volume": 11}"#,
                "volume: unknown field",
                None,
            ),
            (b"snooze", "invalid JSON", None),
            (br#"{"command": "snooze", "token": 7}"#, "token: must be text", None),
        ];
        for (payload, error, token) in cases {
            let got = parse_alarm_command(payload).unwrap_err();
            assert!(got.reason().starts_with(error), "{got}");
            assert_eq!(got.token(), token);
        }
        let answer: Value = serde_json::from_slice(&alarm_result(
            Some(AlarmCommand::Dismiss),
            Some("t3"),
            Err("no alarm is ringing"),
        ))
        .unwrap();
        assert_eq!(
            answer,
            json!({"ok": false, "command": "dismiss", "token": "t3", "error": "no alarm is ringing"})
        );
    }
}
