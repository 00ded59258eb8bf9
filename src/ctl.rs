//! `lampi ctl`: a command-line client for a lamp's shadow, as the course's `lamp_cmd` was for
//! LAMPI's topics. It speaks only the public shadow protocol, so it works the same against a
//! lamp-hosted shadow and against AWS IoT.

use std::time::Duration;

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, Publish, QoS};
use serde_json::{Map, Value, json};

use crate::config::Resolved;
use crate::core::pairing::{display, normalise};
use crate::protocol::pairing::PairingTopics;

/// How long to wait for the lamp's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the lamp is.
pub struct Target {
    host: String,
    port: u16,
    /// e.g. `$aws/things/b827eb123456/shadow/`
    shadow_prefix: String,
    device_id: String,
}

impl Target {
    /// The lamp `resolved` names, through the broker at `host`:`port`.
    pub fn new(host: String, port: u16, resolved: &Resolved) -> Target {
        Target {
            host,
            port,
            shadow_prefix: resolved.shadow_prefix().to_owned(),
            device_id: resolved.device_id().to_owned(),
        }
    }
}

/// How long retained messages may take to arrive after a subscription.
const RETAINED_QUIET: Duration = Duration::from_millis(300);

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
    let (client, mut eventloop) = open(target)?;
    subscribe(&client, &mut eventloop, target, subscriptions).await?;
    Ok((client, eventloop))
}

fn open(target: &Target) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let id = format!("lampi-ctl-{}", std::process::id());
    let mut options = MqttOptions::new(id, &target.host, target.port);
    options.set_max_packet_size(256 * 1024, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    Ok((client, eventloop))
}

/// Subscribes and waits for every acknowledgement, so no answer can slip past; messages that
/// arrive meanwhile (retained ones) are returned.
async fn subscribe(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    target: &Target,
    subscriptions: &[String],
) -> anyhow::Result<Vec<Publish>> {
    for topic in subscriptions {
        client.subscribe(topic, QoS::AtLeastOnce).await?;
    }
    let mut early = Vec::new();
    let mut acked = 0;
    while acked < subscriptions.len() {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => acked += 1,
            Ok(Event::Incoming(Packet::Publish(p))) => early.push(p),
            Ok(_) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot reach the broker at {}:{}", target.host, target.port));
            }
        }
    }
    Ok(early)
}

/// Collects what arrives until nothing has for [`RETAINED_QUIET`]: the retained messages.
async fn retained(eventloop: &mut EventLoop, mut found: Vec<Publish>) -> anyhow::Result<Vec<Publish>> {
    while let Ok(event) = tokio::time::timeout(RETAINED_QUIET, eventloop.poll()).await {
        if let Event::Incoming(Packet::Publish(p)) = event? {
            found.push(p);
        }
    }
    Ok(found)
}

/// Waits for the first message that `wanted` turns into an answer.
async fn answer<T>(
    eventloop: &mut EventLoop,
    what: &str,
    mut wanted: impl FnMut(&Publish) -> Option<T>,
) -> anyhow::Result<T> {
    let found = tokio::time::timeout(ANSWER_TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await?
                && let Some(found) = wanted(&p)
            {
                return Ok::<_, rumqttc::ConnectionError>(found);
            }
        }
    })
    .await;
    match found {
        Err(_) => bail!("no {what} within {ANSWER_TIMEOUT:?}; is the lamp connected?"),
        Ok(result) => result.context("connection to the broker lost"),
    }
}

fn unique_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ctl-{}-{nanos}", std::process::id())
}

/// `lampi ctl pair-code`: asks the lamp for a pairing code, as its "Connect to cloud" button
/// does, and returns it as shown on the screen, with its expiry.
pub async fn pair_code(target: &Target) -> anyhow::Result<Value> {
    let topics = PairingTopics::new(&target.device_id);
    let (client, mut eventloop) = open(target)?;
    let early = subscribe(&client, &mut eventloop, target, std::slice::from_ref(&topics.code)).await?;
    // A code shown before this request may still be retained; the answer is the next one.
    let old: Vec<Value> = retained(&mut eventloop, early)
        .await?
        .iter()
        .filter_map(|p| serde_json::from_slice::<Value>(&p.payload).ok())
        .map(|doc| doc["code"].clone())
        .collect();
    client.publish(&topics.request, QoS::AtLeastOnce, false, "{}").await?;
    let doc = answer(&mut eventloop, "pairing code", |p| {
        let doc: Value = serde_json::from_slice(&p.payload).ok()?;
        (doc["code"].is_string() && !old.contains(&doc["code"])).then_some(doc)
    })
    .await?;
    let _ = client.disconnect().await;
    let code = doc["code"].as_str().unwrap_or_default();
    Ok(json!({"code": display(code), "expires": doc["expires"]}))
}

/// `lampi ctl portal-associate`: plays the cloud portal. Finds the lamp whose retained pairing
/// code is `code` and sends it the association; returns the lamp's answer.
pub async fn portal_associate(target: &Target, code: &str, owner: &str, name: &str) -> anyhow::Result<Value> {
    let (client, mut eventloop) = open(target)?;
    let early = subscribe(&client, &mut eventloop, target, &["lampi/+/pairing/code".to_owned()]).await?;
    let typed = normalise(code);
    let shown = retained(&mut eventloop, early).await?;
    let lamp = shown.iter().find_map(|p| {
        let doc: Value = serde_json::from_slice(&p.payload).ok()?;
        let device = p.topic.strip_prefix("lampi/")?.strip_suffix("/pairing/code")?;
        (doc["code"].as_str() == Some(typed.as_str())).then(|| device.to_owned())
    });
    let Some(lamp) = lamp else {
        bail!("no lamp on {}:{} is showing the code {code}", target.host, target.port);
    };
    let topics = PairingTopics::new(&lamp);
    let token = unique_token();
    subscribe(&client, &mut eventloop, target, std::slice::from_ref(&topics.result)).await?;
    let association = json!({"code": code, "owner": owner, "name": name, "token": token});
    client
        .publish(&topics.associate, QoS::AtLeastOnce, false, association.to_string())
        .await?;
    let result = lamp_result(&mut eventloop, &token).await;
    let _ = client.disconnect().await;
    result.map(|mut doc| {
        doc["device"] = json!(lamp);
        doc
    })
}

/// `lampi ctl alarm snooze|dismiss`: acts on the ringing alarm, as the touchscreen's buttons do.
pub async fn alarm(target: &Target, command: &str) -> anyhow::Result<Value> {
    let topic = crate::protocol::lampi::alarm_topic(&target.device_id);
    let results = format!("{topic}/result");
    let (client, mut eventloop) = connect(target, std::slice::from_ref(&results)).await?;
    let token = unique_token();
    let request = json!({"command": command, "token": token});
    client
        .publish(&topic, QoS::AtLeastOnce, false, request.to_string())
        .await?;
    let result = lamp_result(&mut eventloop, &token).await;
    let _ = client.disconnect().await;
    result
}

/// `lampi ctl portal-unpair`: the cloud tells the lamp it no longer has an owner.
pub async fn portal_unpair(target: &Target) -> anyhow::Result<Value> {
    let topics = PairingTopics::new(&target.device_id);
    let (client, mut eventloop) = connect(target, std::slice::from_ref(&topics.result)).await?;
    let token = unique_token();
    client
        .publish(
            &topics.unpair,
            QoS::AtLeastOnce,
            false,
            json!({ "token": token }).to_string(),
        )
        .await?;
    let result = lamp_result(&mut eventloop, &token).await;
    let _ = client.disconnect().await;
    result
}

/// The lamp's answer carrying `token`; a refusal is an error with the lamp's reason.
async fn lamp_result(eventloop: &mut EventLoop, token: &str) -> anyhow::Result<Value> {
    let doc = answer(eventloop, "answer from the lamp", |p| {
        let doc: Value = serde_json::from_slice(&p.payload).ok()?;
        (doc["token"] == json!(token)).then_some(doc)
    })
    .await?;
    if doc["ok"] != json!(true) {
        bail!("refused: {}", doc["error"].as_str().unwrap_or("no reason given"));
    }
    Ok(doc)
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
