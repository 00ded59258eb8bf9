//! The lamp's MQTT shell: LAMPI's topics and the device shadow's, over rumqttc.
//!
//! Two tasks, as rumqttc wants: the *poller* alone drives `EventLoop::poll`, reconnects with
//! backoff, and turns `lamp/set_config` and shadow requests into lamp commands; the *publisher*
//! alone calls the client, publishing `lamp/changed` from the lamp's watch channel (which
//! coalesces, so a flood of commands never queues a flood of replies), rejections and the
//! shadow's replies. Neither can wait on the other, so they cannot deadlock.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MqttConfig, ShadowService};
use crate::core::backoff::Backoff;
use crate::core::device::{ShadowMessage, ShadowOp};
use crate::lamp_task::{Command, LampHandle, Snapshot};
use crate::protocol::lampi::{self, Rejection};

/// Rejections wait here for the publisher; past this many the oldest reasons are dropped and
/// logged, so a flood of garbage cannot grow memory.
const REJECTION_QUEUE: usize = 64;
/// Larger packets are a protocol error that drops the connection; smaller oversize payloads
/// are refused with a reason by the protocol layer.
const MAX_PACKET_BYTES: usize = 64 * 1024;
/// How long a clean shutdown may spend telling the broker the lamp is going.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// Every topic the lamp uses, with the configured prefixes applied.
#[derive(Clone, Debug)]
pub struct Topics {
    pub set_config: String,
    pub set_config_rejected: String,
    pub changed: String,
    pub connection_state: String,
    /// `$aws/things/<thing>/shadow/` when the lamp hosts its shadow.
    pub shadow: Option<String>,
}

const SHADOW_REQUESTS: [(&str, ShadowOp); 3] = [
    ("update", ShadowOp::Update),
    ("get", ShadowOp::Get),
    ("delete", ShadowOp::Delete),
];

impl Topics {
    pub fn from_config(config: &Config) -> Topics {
        let prefix = &config.mqtt.topic_prefix;
        Topics {
            set_config: format!("{prefix}lamp/set_config"),
            set_config_rejected: format!("{prefix}lamp/set_config/rejected"),
            changed: format!("{prefix}lamp/changed"),
            connection_state: format!("{prefix}lamp/connection/{}/state", config.mqtt.client_id),
            shadow: (config.shadow.service == ShadowService::Device).then(|| config.shadow_topic_prefix()),
        }
    }

    fn shadow_request(&self, topic: &str) -> Option<ShadowOp> {
        let operation = topic.strip_prefix(self.shadow.as_deref()?)?;
        SHADOW_REQUESTS
            .iter()
            .find(|(name, _)| *name == operation)
            .map(|(_, op)| *op)
    }

    fn subscriptions(&self) -> Vec<String> {
        let shadow = self
            .shadow
            .iter()
            .flat_map(|prefix| SHADOW_REQUESTS.map(|(name, _)| format!("{prefix}{name}")));
        std::iter::once(self.set_config.clone()).chain(shadow).collect()
    }
}

/// The poller's view of the connection, for the publisher: `generation` counts ConnAcks, so
/// the publisher can tell a reconnect from a state it has already handled.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Link {
    up: bool,
    generation: u64,
}

/// Runs the MQTT side of one lamp until `shutdown`, then says goodbye (retained "0" on the
/// connection topic) and disconnects.
pub async fn run(
    config: &MqttConfig,
    topics: Topics,
    lamp: LampHandle,
    shadow_out: mpsc::Receiver<ShadowMessage>,
    shutdown: CancellationToken,
) {
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs))
        // A persistent session: QoS 1 requests sent while the lamp is offline wait in the broker.
        .set_clean_session(false)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_last_will(LastWill::new(&topics.connection_state, "0", QoS::AtLeastOnce, true));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let mut network = NetworkOptions::new();
    // Without it Nagle's algorithm and delayed ACKs add 40–90 ms to every reply on loopback.
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);

    let (link_tx, link_rx) = watch::channel(Link::default());
    let (rejections_tx, rejections_rx) = mpsc::channel(REJECTION_QUEUE);
    let backoff = Backoff::new(config.reconnect_initial(), config.reconnect_max());
    let poller_stop = CancellationToken::new();
    let poller = tokio::spawn(poll(
        eventloop,
        topics.clone(),
        lamp.commands.clone(),
        rejections_tx,
        link_tx,
        backoff,
        poller_stop.clone(),
    ));
    let outputs = Outputs {
        changes: lamp.changes,
        rejections: rejections_rx,
        shadow: shadow_out,
    };
    let said_goodbye = publish(&client, &topics, outputs, link_rx, shutdown).await;
    if said_goodbye {
        // The poller stops by itself once it has written the DISCONNECT.
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, poller_stop.cancelled()).await;
    }
    poller_stop.cancel();
    let _ = poller.await;
}

/// Turns an incoming publish into a lamp command, or a rejection for its sender.
fn command_for(topics: &Topics, topic: &str, payload: &[u8]) -> Option<Result<Command, Rejection>> {
    if topic == topics.set_config {
        return Some(lampi::parse_set_config(payload).map(|set| Command::Set {
            change: set.change,
            client: set.client,
        }));
    }
    let op = topics.shadow_request(topic)?;
    Some(Ok(Command::Shadow {
        op,
        payload: payload.to_vec(),
    }))
}

async fn poll(
    mut eventloop: EventLoop,
    topics: Topics,
    commands: mpsc::Sender<Command>,
    rejections: mpsc::Sender<Rejection>,
    link: watch::Sender<Link>,
    mut backoff: Backoff,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = eventloop.poll() => event,
        };
        let command = match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(broker = ?eventloop.mqtt_options.broker_address(), "MQTT connected");
                eventloop.mqtt_options.set_clean_session(false);
                backoff.reset();
                link.send_modify(|l| {
                    l.up = true;
                    l.generation += 1;
                });
                Command::Connected
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                match command_for(&topics, &publish.topic, &publish.payload) {
                    Some(Ok(command)) => command,
                    Some(Err(rejection)) => {
                        tracing::warn!(client = ?rejection.client, "set_config rejected: {}", rejection.error);
                        if rejections.try_send(rejection).is_err() {
                            tracing::warn!("too many rejections queued; this one is only logged");
                        }
                        continue;
                    }
                    None => continue,
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                stop.cancel();
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                link.send_if_modified(|l| std::mem::replace(&mut l.up, false));
                if is_oversize(&e) {
                    // The broker would redeliver the packet to the persistent session forever;
                    // one clean session discards it (and whatever else was queued).
                    tracing::error!(
                        "a message over {MAX_PACKET_BYTES} bytes was sent to the lamp; discarding its session"
                    );
                    eventloop.mqtt_options.set_clean_session(true);
                }
                let delay = backoff.next_delay(&mut rand::rng());
                tracing::warn!("MQTT connection: {e}; retrying in {delay:?}");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        if commands.send(command).await.is_err() {
            return;
        }
    }
}

fn is_oversize(error: &rumqttc::ConnectionError) -> bool {
    matches!(
        error,
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)
        ))
    )
}

/// What the publisher sends out.
struct Outputs {
    changes: watch::Receiver<Snapshot>,
    rejections: mpsc::Receiver<Rejection>,
    shadow: mpsc::Receiver<ShadowMessage>,
}

async fn publish(
    client: &AsyncClient,
    topics: &Topics,
    outputs: Outputs,
    mut link: watch::Receiver<Link>,
    shutdown: CancellationToken,
) -> bool {
    let Outputs {
        mut changes,
        mut rejections,
        mut shadow,
    } = outputs;
    let publish_changed = |snapshot: Snapshot| {
        let payload = lampi::changed_payload(&snapshot.state, &snapshot.client);
        client.publish(&topics.changed, QoS::AtLeastOnce, true, payload)
    };
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Ok(()) = link.changed() => {
                if !link.borrow_and_update().up {
                    continue;
                }
                // A fresh session: subscribe again, announce ourselves, and republish the state
                // (the broker may have restarted and lost retained messages).
                let snapshot = changes.borrow_and_update().clone();
                for topic in topics.subscriptions() {
                    let _ = client.subscribe(topic, QoS::AtLeastOnce).await;
                }
                let _ = client.publish(&topics.connection_state, QoS::AtLeastOnce, true, "1").await;
                let _ = publish_changed(snapshot).await;
            }
            Ok(()) = changes.changed() => {
                let snapshot = changes.borrow_and_update().clone();
                if link.borrow().up {
                    let _ = publish_changed(snapshot).await;
                }
            }
            Some(message) = shadow.recv() => {
                // Replies made while offline are dropped: the document itself is kept, and a
                // client that missed a reply can `get` it.
                let up = link.borrow().up;
                if let (true, Some(prefix)) = (up, &topics.shadow) {
                    let topic = format!("{prefix}{}", message.topic.suffix());
                    let payload = serde_json::to_vec(&message.payload).expect("JSON values always serialise");
                    let _ = client.publish(topic, QoS::AtLeastOnce, false, payload).await;
                }
            }
            Some(rejection) = rejections.recv() => {
                if link.borrow().up {
                    let payload = lampi::rejection_payload(&rejection);
                    let _ = client.publish(&topics.set_config_rejected, QoS::AtLeastOnce, false, payload).await;
                }
            }
            else => break,
        }
    }
    if !link.borrow().up {
        return false;
    }
    // A clean exit sends no last will, so say "0" ourselves.
    let goodbye = async {
        client
            .publish(&topics.connection_state, QoS::AtLeastOnce, true, "0")
            .await?;
        client.disconnect().await
    };
    match tokio::time::timeout(GOODBYE_TIMEOUT, goodbye).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!("MQTT goodbye: {e}");
            false
        }
        Err(_) => false,
    }
}
