//! `lampi ctl`: a command-line client for a lamp's shadow, as the course's `lamp_cmd` was for
//! LAMPI's topics. It speaks only the public shadow protocol, so it works the same against a
//! lamp-hosted shadow and against AWS IoT.

use std::time::Duration;

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use serde_json::{Map, Value, json};

/// How long to wait for the lamp's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the lamp's shadow is.
pub struct Target {
    pub host: String,
    pub port: u16,
    /// e.g. `$aws/things/b827eb123456/shadow/`
    pub shadow_prefix: String,
}

/// The light fields `lampi ctl set` can change.
#[derive(Debug, Default)]
pub struct LightSettings {
    pub on: Option<bool>,
    pub hue: Option<f64>,
    pub saturation: Option<f64>,
    pub brightness: Option<f64>,
    pub transition_ms: Option<u64>,
}

impl LightSettings {
    /// The `desired.light` patch, or `None` when nothing was asked for.
    pub fn desired(&self) -> Option<Value> {
        let mut light = Map::new();
        if let Some(on) = self.on {
            light.insert("on".into(), json!(on));
        }
        for (key, value) in [
            ("hue", self.hue),
            ("saturation", self.saturation),
            ("brightness", self.brightness),
        ] {
            if let Some(value) = value {
                light.insert(key.into(), json!(value));
            }
        }
        if let Some(ms) = self.transition_ms {
            light.insert("transition_ms".into(), json!(ms));
        }
        (!light.is_empty()).then(|| json!({"state": {"desired": {"light": light}}}))
    }
}

async fn connect(target: &Target, subscriptions: &[String]) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let id = format!("lampi-ctl-{}", std::process::id());
    let mut options = MqttOptions::new(id, &target.host, target.port);
    options.set_max_packet_size(256 * 1024, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    for topic in subscriptions {
        client.subscribe(topic, QoS::AtLeastOnce).await?;
    }
    // Wait until every subscription is acknowledged, so no answer can slip past.
    let mut acked = 0;
    while acked < subscriptions.len() {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot reach the broker at {}:{}", target.host, target.port));
            }
        }
    }
    Ok((client, eventloop))
}

/// Sends one shadow request (`update`, `get` or `delete`) and returns the lamp's answer;
/// a rejection becomes an error carrying the AWS error document.
pub async fn request(target: &Target, operation: &str, mut payload: Value) -> anyhow::Result<Value> {
    let token = format!(
        "ctl-{}-{}",
        std::process::id(),
        crate::clock::timestamp(std::time::SystemTime::now().into())
    );
    payload["clientToken"] = json!(token);
    let accepted = format!("{}{operation}/accepted", target.shadow_prefix);
    let rejected = format!("{}{operation}/rejected", target.shadow_prefix);
    let (client, mut eventloop) = connect(target, &[accepted.clone(), rejected.clone()]).await?;
    client
        .publish(
            format!("{}{operation}", target.shadow_prefix),
            QoS::AtLeastOnce,
            false,
            payload.to_string(),
        )
        .await?;
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await? {
                let doc: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                if doc["clientToken"] == json!(token) {
                    return Ok::<_, rumqttc::ConnectionError>((p.topic == accepted, doc));
                }
            }
        }
    })
    .await;
    let _ = client.disconnect().await;
    match answer {
        Err(_) => bail!("no answer on {accepted} within {ANSWER_TIMEOUT:?}; is the lamp connected?"),
        Ok(Err(e)) => Err(e).context("connection to the broker lost"),
        Ok(Ok((true, doc))) => Ok(doc),
        Ok(Ok((false, doc))) => bail!("rejected: {} {}", doc["code"], doc["message"].as_str().unwrap_or("")),
    }
}

/// Prints deltas and reported changes as they happen, one JSON line each, until interrupted.
pub async fn watch(target: &Target) -> anyhow::Result<()> {
    let delta = format!("{}update/delta", target.shadow_prefix);
    let documents = format!("{}update/documents", target.shadow_prefix);
    let (_client, mut eventloop) = connect(target, &[delta.clone(), documents.clone()]).await?;
    loop {
        let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await? else {
            continue;
        };
        let doc: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
        if p.topic == delta {
            println!("{}", json!({"delta": doc["state"], "version": doc["version"]}));
        } else {
            let empty = Value::Object(Map::new());
            let before = doc["previous"]["state"]["reported"]
                .as_object()
                .unwrap_or(empty.as_object().unwrap());
            let after = doc["current"]["state"]["reported"]
                .as_object()
                .unwrap_or(empty.as_object().unwrap());
            let changed = crate::core::shadow::diff_patch(before, after);
            if !changed.is_empty() {
                println!("{}", json!({"reported": changed, "version": doc["current"]["version"]}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_builds_a_desired_light_patch_of_only_what_was_given() {
        assert_eq!(LightSettings::default().desired(), None);
        let settings = LightSettings {
            on: Some(false),
            brightness: Some(0.25),
            ..Default::default()
        };
        assert_eq!(
            settings.desired(),
            Some(json!({"state": {"desired": {"light": {"on": false, "brightness": 0.25}}}}))
        );
    }
}
