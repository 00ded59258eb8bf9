//! A device shadow with AWS IoT Device Shadow semantics: desired/reported documents merged
//! partially, per-leaf metadata timestamps, versions, deltas and AWS's error documents.
//!
//! Schema-agnostic and pure: callers pass the time (epoch seconds, as AWS reports it) and a
//! validator for what the document may contain. The lamp hosts one of these when the broker
//! has no shadow service (Mosquitto), answering exactly as AWS IoT would.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// AWS limits a shadow's state document to 8 KB, metadata not counted. Counted here per
/// section (desired, reported), so a lamp mirroring a full desired section in reported still fits.
pub const MAX_STATE_BYTES: usize = 8 * 1024;
/// Requests larger than this are refused before they are parsed. Above the state limit so a
/// request that mostly deletes (nulls) still fits.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// AWS: "JSON contains too many levels of nesting; maximum is 6".
pub const MAX_DEPTH: usize = 6;
/// AWS: "A client token that is longer than 64 bytes will cause this response."
pub const MAX_CLIENT_TOKEN_BYTES: usize = 64;

/// An error as AWS IoT reports it on a `/rejected` topic.
#[derive(Clone, Debug, PartialEq)]
pub struct ShadowError {
    pub code: u16,
    pub message: String,
    pub client_token: Option<String>,
}

impl ShadowError {
    fn new(code: u16, message: impl Into<String>, client_token: Option<&str>) -> ShadowError {
        ShadowError {
            code,
            message: message.into(),
            client_token: client_token.map(str::to_owned),
        }
    }

    /// The AWS error document: `{code, message, clientToken?, timestamp}`.
    pub fn document(&self, timestamp: u64) -> Value {
        let mut doc = json!({"code": self.code, "message": self.message, "timestamp": timestamp});
        if let Some(token) = &self.client_token {
            doc["clientToken"] = json!(token);
        }
        doc
    }
}

/// A validator's refusal of an update: what the sender is told, as the 400's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Invalid {
        Invalid(message.into())
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// What a request does to one section (`desired` or `reported`).
#[derive(Clone, Debug, PartialEq)]
pub enum SectionUpdate {
    /// `"desired": null` — clear the whole section.
    Clear,
    /// Merge these fields in; a `null` field deletes that key.
    Merge(Map<String, Value>),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateRequest {
    pub desired: Option<SectionUpdate>,
    pub reported: Option<SectionUpdate>,
    pub client_token: Option<String>,
    pub version: Option<u64>,
}

/// Whether two JSON values mean the same; numbers compare by value, so a desired `1` matches a
/// reported `1.0`.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// Every desired leaf that differs from (or is missing in) reported, with its full path.
/// Arrays are values: a differing array appears whole.
pub fn delta(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, wanted) in desired {
        match (wanted, reported.get(key)) {
            (Value::Object(d), Some(Value::Object(r))) => {
                let inner = delta(d, r);
                if !inner.is_empty() {
                    out.insert(key.clone(), Value::Object(inner));
                }
            }
            (wanted, Some(actual)) if same_value(wanted, actual) => {}
            (wanted, _) => {
                out.insert(key.clone(), wanted.clone());
            }
        }
    }
    out
}

/// A merge patch that turns `current` into `wanted` under [`Shadow::update`]'s rules: changed
/// leaves set, vanished keys `null`, nested objects patched key by key.
pub fn diff_patch(current: &Map<String, Value>, wanted: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for (key, value) in wanted {
        match (current.get(key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                let inner = diff_patch(old, new);
                if !inner.is_empty() {
                    patch.insert(key.clone(), Value::Object(inner));
                }
            }
            (Some(old), new) if same_value(old, new) => {}
            (_, new) => {
                patch.insert(key.clone(), new.clone());
            }
        }
    }
    for key in current.keys().filter(|k| !wanted.contains_key(*k)) {
        patch.insert(key.clone(), Value::Null);
    }
    patch
}

/// Metadata for a value: `{"timestamp": t}` at every leaf, mirroring objects and arrays.
fn timestamps(value: &Value, timestamp: u64) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), timestamps(v, timestamp))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|v| timestamps(v, timestamp)).collect()),
        _ => json!({ "timestamp": timestamp }),
    }
}

/// Leaf metadata is `{"timestamp": <number>}`; anything else is a branch.
fn is_branch(metadata: &Value) -> bool {
    match metadata {
        Value::Object(map) => !(map.len() == 1 && map.get("timestamp").is_some_and(Value::is_number)),
        _ => false,
    }
}

/// Merges `patch` into `target` the AWS way, keeping `metadata` in step.
fn merge(
    target: &mut Map<String, Value>,
    metadata: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    timestamp: u64,
) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
                metadata.remove(key);
            }
            Value::Object(fields) => {
                let child = target.entry(key.clone()).or_insert_with(|| json!({}));
                if !child.is_object() {
                    *child = json!({});
                }
                let child_metadata = metadata.entry(key.clone()).or_insert_with(|| json!({}));
                if !is_branch(child_metadata) {
                    *child_metadata = json!({});
                }
                let (Value::Object(child), Value::Object(child_metadata)) = (child, child_metadata) else {
                    unreachable!("both were just made objects");
                };
                merge(child, child_metadata, fields, timestamp);
                // An object left empty disappears, as AWS drops empty nodes.
                if child.is_empty() {
                    target.remove(key);
                    metadata.remove(key);
                }
            }
            leaf => {
                target.insert(key.clone(), leaf.clone());
                metadata.insert(key.clone(), timestamps(leaf, timestamp));
            }
        }
    }
}

/// Merges a patch into a section by the update rules, without metadata.
pub fn merge_into(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    merge(target, &mut Map::new(), patch, 0);
}

/// The parts of `metadata` that describe the fields present in `shape`.
fn project(metadata: &Map<String, Value>, shape: &Map<String, Value>) -> Map<String, Value> {
    shape
        .iter()
        .filter_map(|(key, value)| {
            let meta = metadata.get(key)?;
            Some(match (value, meta) {
                (Value::Object(inner), Value::Object(inner_meta)) if is_branch(meta) => {
                    (key.clone(), Value::Object(project(inner_meta, inner)))
                }
                _ => (key.clone(), meta.clone()),
            })
        })
        .collect()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub desired: Map<String, Value>,
    pub reported: Map<String, Value>,
}

/// The whole shadow, as kept on disk.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Shadow {
    pub desired: Map<String, Value>,
    pub reported: Map<String, Value>,
    pub metadata: Metadata,
    pub version: u64,
    /// False until the first update and after a delete; the version carries on regardless,
    /// as AWS's does for a shadow recreated soon after deletion.
    pub exists: bool,
}

/// The messages an accepted update produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    /// For `update/accepted`.
    pub accepted: Value,
    /// For `update/documents`.
    pub documents: Value,
    /// For `update/delta`, when desired and reported still differ.
    pub delta: Option<Value>,
}

/// Builds an object from values already made, moving them in. (`json!` would copy each one
/// through serde, which was most of the cost of an update.)
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn with_token(mut doc: Value, token: Option<&str>) -> Value {
    if let Some(token) = token {
        doc["clientToken"] = json!(token);
    }
    doc
}

fn section_value(map: &Map<String, Value>) -> Option<Value> {
    (!map.is_empty()).then(|| Value::Object(map.clone()))
}

impl Shadow {
    pub fn delta(&self) -> Map<String, Value> {
        delta(&self.desired, &self.reported)
    }

    /// Bytes the larger section takes, against [`MAX_STATE_BYTES`].
    pub fn state_bytes(&self) -> usize {
        let bytes = |section: &Map<String, Value>| serde_json::to_vec(section).map_or(usize::MAX, |v| v.len());
        bytes(&self.desired).max(bytes(&self.reported))
    }

    /// `{"state": {desired, reported}, "metadata": {...}, "version"}` as in `update/documents`.
    /// Takes the shadow, so the state an update replaced moves into `previous` uncopied.
    fn snapshot(self) -> Value {
        let mut state = Map::new();
        let mut metadata = Map::new();
        for (name, section, meta) in [
            ("desired", self.desired, self.metadata.desired),
            ("reported", self.reported, self.metadata.reported),
        ] {
            if !section.is_empty() {
                state.insert(name.into(), Value::Object(section));
                metadata.insert(name.into(), Value::Object(meta));
            }
        }
        object([
            ("state", Value::Object(state)),
            ("metadata", Value::Object(metadata)),
            ("version", self.version.into()),
        ])
    }

    /// Applies an update. `validate` sees the documents as they would be after it and refuses
    /// (answered as a 400) or accepts.
    pub fn update(
        &mut self,
        request: UpdateRequest,
        timestamp: u64,
        validate: impl FnOnce(&Map<String, Value>, &Map<String, Value>) -> Result<(), Invalid>,
    ) -> Result<Accepted, ShadowError> {
        let token = request.client_token.as_deref();
        if request.version.is_some_and(|v| v != self.version) {
            return Err(ShadowError::new(409, "Version conflict", token));
        }
        let mut next = self.clone();
        let mut accepted_state = Map::new();
        let mut accepted_metadata = Map::new();
        for (name, update, section, metadata) in [
            (
                "desired",
                request.desired,
                &mut next.desired,
                &mut next.metadata.desired,
            ),
            (
                "reported",
                request.reported,
                &mut next.reported,
                &mut next.metadata.reported,
            ),
        ] {
            match update {
                None => {}
                Some(SectionUpdate::Clear) => {
                    section.clear();
                    metadata.clear();
                    accepted_state.insert(name.into(), Value::Null);
                    accepted_metadata.insert(name.into(), json!({ "timestamp": timestamp }));
                }
                Some(SectionUpdate::Merge(patch)) => {
                    merge(section, metadata, &patch, timestamp);
                    let patch = Value::Object(patch);
                    accepted_metadata.insert(name.into(), timestamps(&patch, timestamp));
                    accepted_state.insert(name.into(), patch);
                }
            }
        }
        // Size first: it is a limit of the service, whatever the content means.
        if next.state_bytes() > MAX_STATE_BYTES {
            return Err(ShadowError::new(
                413,
                "The payload exceeds the maximum size allowed",
                token,
            ));
        }
        validate(&next.desired, &next.reported).map_err(|Invalid(message)| ShadowError::new(400, message, token))?;
        next.version += 1;
        next.exists = true;
        let previous = std::mem::replace(self, next);
        let previous = previous.exists.then(|| previous.snapshot());

        let accepted = with_token(
            object([
                ("state", Value::Object(accepted_state)),
                ("metadata", Value::Object(accepted_metadata)),
                ("version", self.version.into()),
                ("timestamp", timestamp.into()),
            ]),
            token,
        );
        let documents = with_token(
            object([
                ("previous", previous.unwrap_or(Value::Null)),
                ("current", self.clone().snapshot()),
                ("timestamp", timestamp.into()),
            ]),
            token,
        );
        let delta = self.delta();
        let delta = (!delta.is_empty()).then(|| {
            let metadata = project(&self.metadata.desired, &delta);
            with_token(
                object([
                    ("version", self.version.into()),
                    ("timestamp", timestamp.into()),
                    ("state", Value::Object(delta)),
                    ("metadata", Value::Object(metadata)),
                ]),
                token,
            )
        });
        Ok(Accepted {
            accepted,
            documents,
            delta,
        })
    }

    /// The `get/accepted` document, or 404 when there is no shadow.
    pub fn get(&self, thing: &str, client_token: Option<&str>, timestamp: u64) -> Result<Value, ShadowError> {
        if !self.exists {
            return Err(ShadowError::new(
                404,
                format!("No shadow exists with name: '{thing}'"),
                client_token,
            ));
        }
        let mut state = Map::new();
        let mut metadata = Map::new();
        if let Some(desired) = section_value(&self.desired) {
            state.insert("desired".into(), desired);
            metadata.insert("desired".into(), Value::Object(self.metadata.desired.clone()));
        }
        if let Some(reported) = section_value(&self.reported) {
            state.insert("reported".into(), reported);
            metadata.insert("reported".into(), Value::Object(self.metadata.reported.clone()));
        }
        if let Some(delta) = section_value(&self.delta()) {
            state.insert("delta".into(), delta);
        }
        Ok(with_token(
            object([
                ("state", Value::Object(state)),
                ("metadata", Value::Object(metadata)),
                ("version", self.version.into()),
                ("timestamp", timestamp.into()),
            ]),
            client_token,
        ))
    }

    /// Deletes the shadow; answers `delete/accepted` or 404.
    pub fn delete(&mut self, thing: &str, client_token: Option<&str>, timestamp: u64) -> Result<Value, ShadowError> {
        if !self.exists {
            return Err(ShadowError::new(
                404,
                format!("No shadow exists with name: '{thing}'"),
                client_token,
            ));
        }
        let version = self.version;
        *self = Shadow {
            version,
            ..Shadow::default()
        };
        Ok(with_token(
            json!({"version": version, "timestamp": timestamp}),
            client_token,
        ))
    }
}

mod request;
#[cfg(test)]
mod tests;

pub use request::{parse_token_request, parse_update};
