//! The lamp's MQTT shell: LAMPI's topics, the device shadow's and Home Assistant's, over rumqttc.
//!
//! Two tasks, as rumqttc wants: the *poller* alone drives `EventLoop::poll`, reconnects with
//! backoff, and turns incoming messages into lamp commands; the *publisher* alone calls the
//! client, publishing state from the lamp's watch channel (which coalesces, so a flood of
//! commands never queues a flood of replies), rejections and the shadow's replies. Neither can
//! wait on the other, so they cannot deadlock.

use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Outgoing, Packet, QoS, TlsConfiguration,
    Transport,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MqttConfig, ShadowService};
use crate::core::backoff::Backoff;
use crate::core::device::{PairingView, ShadowMessage, ShadowOp, ShadowRole, ShadowTopic};
use crate::core::pairing::Owner;
use crate::core::schema::MAX_PACKET_BYTES;
use crate::events::{self, Spool};
use crate::lamp_task::{Command, LampHandle, Snapshot};
use crate::protocol::homeassistant::{self, Entity};
use crate::protocol::lampi;
use crate::protocol::pairing::{self, PairingTopics};

/// Notices wait here for the publisher; past this many they are dropped and logged, so a flood
/// of garbage cannot grow memory.
const NOTICE_QUEUE: usize = 64;
/// Larger incoming packets are a protocol error that drops the connection; smaller oversize
/// payloads are refused with a reason by the protocol layer. Room above [`MAX_PACKET_BYTES`] for
/// a topic and header, so that a largest message from AWS IoT (128 KiB of payload) or from a
/// broker with the documented `max_packet_size` always gets through.
const MAX_INCOMING_PACKET_BYTES: usize = MAX_PACKET_BYTES + 1024;
/// How long a clean shutdown may spend telling the broker the lamp is going.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// How soon events spooled while the link was up (rumqttc's queue was full) are sent again.
const SPOOL_RETRY: Duration = Duration::from_millis(500);

/// Bytes of a QoS 1 PUBLISH packet: fixed header (at most 5), topic length, topic, packet id,
/// payload — as rumqttc counts it against its outgoing limit, or a few bytes more.
fn packet_bytes(topic: &str, payload: usize) -> usize {
    5 + 2 + topic.len() + 2 + payload
}

/// Every topic the lamp uses, with the configured prefixes applied.
#[derive(Clone, Debug)]
pub struct Topics {
    pub set_config: String,
    pub set_config_rejected: String,
    pub changed: String,
    pub connection_state: String,
    /// Analytics events, QoS 1.
    pub events: String,
    /// Snooze or dismiss the ringing alarm; the answer goes to `alarm_result`.
    pub alarm: String,
    pub alarm_result: String,
    pub pairing: PairingTopics,
    /// LAMPI's retained association state.
    pub associated: String,
    /// Whether `associated` also shows the code (`pairing.code_on_lamp_topic`).
    pub code_on_lamp_topic: bool,
    /// `$aws/things/<thing>/shadow/` when the lamp has a shadow, hosted or in the cloud.
    pub shadow: Option<String>,
    pub shadow_role: ShadowRole,
    pub homeassistant: Option<HomeAssistant>,
}

#[derive(Clone, Debug)]
pub struct HomeAssistant {
    pub entity: Entity,
    /// Home Assistant says "online" here when it (re)starts; discovery is then sent again.
    pub status: String,
}

/// What a lamp following a cloud shadow listens to. The documents and `delete/accepted` tell it
/// of deletions, for which AWS sends no delta.
const CLOUD_MESSAGES: [ShadowTopic; 7] = [
    ShadowTopic::UpdateDelta,
    ShadowTopic::UpdateDocuments,
    ShadowTopic::DeleteAccepted,
    ShadowTopic::UpdateAccepted,
    ShadowTopic::UpdateRejected,
    ShadowTopic::GetAccepted,
    ShadowTopic::GetRejected,
];

const SHADOW_REQUESTS: [(&str, ShadowOp); 3] = [
    ("update", ShadowOp::Update),
    ("get", ShadowOp::Get),
    ("delete", ShadowOp::Delete),
];

impl Topics {
    pub fn from_config(config: &Config) -> Topics {
        let prefix = &config.mqtt.topic_prefix;
        let connection_state = format!("{prefix}lamp/connection/{}/state", config.mqtt.client_id);
        let homeassistant = config.homeassistant.enabled.then(|| {
            let discovery = &config.homeassistant.discovery_prefix;
            HomeAssistant {
                entity: Entity::new(
                    discovery,
                    &config.device_id(),
                    env!("CARGO_PKG_VERSION"),
                    &connection_state,
                ),
                status: format!("{discovery}/status"),
            }
        });
        Topics {
            set_config: format!("{prefix}lamp/set_config"),
            set_config_rejected: format!("{prefix}lamp/set_config/rejected"),
            changed: format!("{prefix}lamp/changed"),
            connection_state,
            events: format!("lampi/{}/events", config.device_id()),
            alarm: lampi::alarm_topic(&config.device_id()),
            alarm_result: format!("{}/result", lampi::alarm_topic(&config.device_id())),
            pairing: PairingTopics::new(&config.device_id()),
            associated: format!("{prefix}lamp/associated"),
            code_on_lamp_topic: config.pairing.code_on_lamp_topic,
            shadow: (config.shadow.service != ShadowService::Off).then(|| config.shadow_topic_prefix()),
            shadow_role: match config.shadow.service {
                ShadowService::Aws => ShadowRole::Client,
                ShadowService::Device | ShadowService::Off => ShadowRole::Host,
            },
            homeassistant,
        }
    }

    /// Whether `topic` announces a state rather than asking the lamp to do something; only such
    /// messages are taken when they arrive retained.
    fn is_announcement(&self, topic: &str) -> bool {
        self.homeassistant.as_ref().is_some_and(|ha| ha.status == topic)
    }

    /// As host: a request for the lamp to answer.
    fn shadow_request(&self, topic: &str) -> Option<ShadowOp> {
        if self.shadow_role != ShadowRole::Host {
            return None;
        }
        let operation = topic.strip_prefix(self.shadow.as_deref()?)?;
        SHADOW_REQUESTS
            .iter()
            .find(|(name, _)| *name == operation)
            .map(|(_, op)| *op)
    }

    /// As client: a message from the cloud's shadow service.
    fn cloud_message(&self, topic: &str) -> Option<ShadowTopic> {
        if self.shadow_role != ShadowRole::Client {
            return None;
        }
        let suffix = topic.strip_prefix(self.shadow.as_deref()?)?;
        CLOUD_MESSAGES.into_iter().find(|t| t.suffix() == suffix)
    }

    fn subscriptions(&self) -> Vec<String> {
        let suffixes: Vec<&str> = match self.shadow_role {
            ShadowRole::Host => SHADOW_REQUESTS.iter().map(|(name, _)| *name).collect(),
            ShadowRole::Client => CLOUD_MESSAGES.iter().map(|t| t.suffix()).collect(),
        };
        let shadow = self
            .shadow
            .iter()
            .flat_map(|prefix| suffixes.iter().map(move |s| format!("{prefix}{s}")));
        let homeassistant = self
            .homeassistant
            .iter()
            .flat_map(|ha| [ha.entity.command_topic.clone(), ha.status.clone()]);
        [
            self.set_config.clone(),
            self.alarm.clone(),
            self.pairing.request.clone(),
            self.pairing.associate.clone(),
            self.pairing.unpair.clone(),
        ]
        .into_iter()
        .chain(shadow)
        .chain(homeassistant)
        .collect()
    }
}

/// Something the poller asks the publisher to send.
#[derive(Debug)]
enum Notice {
    /// An answer to a command, or why a message was refused, to the sender's topic.
    Reply { topic: String, payload: Vec<u8> },
    /// Home Assistant restarted: send discovery and state again.
    Rediscover,
    /// An analytics event of the MQTT side's own: an ignored retained command, a dropped message.
    Event(Value),
}

/// What an incoming message means.
enum Incoming {
    Command(Command),
    /// A command for the alarm, whose answer is published.
    Alarm(lampi::AlarmRequest),
    /// The portal's association or unpairing, answered on the pairing result topic.
    Associate(pairing::Association),
    Unpair {
        token: Option<String>,
    },
    Notice(Notice),
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
    shadow: mpsc::Receiver<ShadowMessage>,
    events: mpsc::Receiver<serde_json::Value>,
    spool: Spool,
    shutdown: CancellationToken,
) {
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs))
        // A persistent session: QoS 1 requests sent while the lamp is offline wait in the broker.
        .set_clean_session(false)
        .set_max_packet_size(MAX_INCOMING_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_last_will(LastWill::new(&topics.connection_state, "0", QoS::AtLeastOnce, true));
    if let Some(username) = &config.username {
        options.set_credentials(username, config.password.as_ref().map_or("", |p| p.expose()));
    }
    if config.tls {
        match tls_configuration(config) {
            Ok(tls) => {
                options.set_transport(Transport::tls_with_config(tls));
            }
            Err(e) => {
                // The config was checked at start-up; a file that vanished since then leaves the
                // lamp working locally rather than talking to the broker in the clear.
                tracing::error!("MQTT disabled: cannot load TLS certificates: {e}");
                shutdown.cancelled().await;
                return;
            }
        }
    }
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let mut network = NetworkOptions::new();
    // Without it Nagle's algorithm and delayed ACKs add 40–90 ms to every reply on loopback.
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);

    let (link_tx, link_rx) = watch::channel(Link::default());
    let (notices_tx, notices_rx) = mpsc::channel(NOTICE_QUEUE);
    let own_notices = notices_tx.downgrade();
    let backoff = Backoff::new(config.reconnect_initial(), config.reconnect_max());
    let poller_stop = CancellationToken::new();
    let poller = tokio::spawn(poll(
        eventloop,
        topics.clone(),
        lamp.commands.clone(),
        notices_tx,
        link_tx,
        backoff,
        poller_stop.clone(),
    ));
    let outputs = Outputs {
        changes: lamp.changes,
        pairing: lamp.pairing,
        notices: notices_rx,
        shadow,
        events,
        spool,
    };
    let out = Out {
        client,
        notices: own_notices,
    };
    let said_goodbye = publish(&out, &topics, outputs, link_rx, shutdown).await;
    if said_goodbye {
        // The poller stops by itself once it has written the DISCONNECT.
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, poller_stop.cancelled()).await;
    }
    poller_stop.cancel();
    let _ = poller.await;
}

/// Decodes an incoming publish; `None` for topics the lamp does not act on.
fn decode(topics: &Topics, topic: &str, payload: &[u8]) -> Option<Incoming> {
    if topic == topics.set_config {
        return Some(match lampi::parse_set_config(payload) {
            Ok(set) => Incoming::Command(Command::Set {
                change: set.change,
                transition: None,
                client: set.client,
            }),
            Err(rejection) => {
                tracing::warn!(client = ?rejection.client, "set_config rejected: {}", rejection.error);
                Incoming::Notice(Notice::Reply {
                    topic: topics.set_config_rejected.clone(),
                    payload: lampi::rejection_payload(&rejection),
                })
            }
        });
    }
    if topic == topics.alarm {
        return Some(match lampi::parse_alarm_command(payload) {
            Ok(request) => Incoming::Alarm(request),
            Err((error, token)) => Incoming::Notice(Notice::Reply {
                topic: topics.alarm_result.clone(),
                payload: lampi::alarm_result(None, token.as_deref(), Err(&error)),
            }),
        });
    }
    if topic == topics.pairing.request {
        return Some(Incoming::Command(Command::RequestPairingCode));
    }
    if topic == topics.pairing.associate {
        return Some(match pairing::parse_association(payload) {
            Ok(association) => Incoming::Associate(association),
            Err((error, token)) => Incoming::Notice(Notice::Reply {
                topic: topics.pairing.result.clone(),
                payload: pairing::result(token.as_deref(), Err(&error)),
            }),
        });
    }
    if topic == topics.pairing.unpair {
        return Some(match pairing::parse_unpair(payload) {
            Ok(token) => Incoming::Unpair { token },
            Err(error) => Incoming::Notice(Notice::Reply {
                topic: topics.pairing.result.clone(),
                payload: pairing::result(None, Err(&error)),
            }),
        });
    }
    if let Some(op) = topics.shadow_request(topic) {
        return Some(Incoming::Command(Command::Shadow {
            op,
            payload: payload.to_vec(),
        }));
    }
    if let Some(topic) = topics.cloud_message(topic) {
        return Some(Incoming::Command(Command::Cloud {
            topic,
            payload: payload.to_vec(),
        }));
    }
    let ha = topics.homeassistant.as_ref()?;
    if topic == ha.status {
        return (payload == b"online").then_some(Incoming::Notice(Notice::Rediscover));
    }
    if topic != ha.entity.command_topic {
        return None;
    }
    Some(match homeassistant::parse_command(payload) {
        Ok((change, transition)) => Incoming::Command(Command::Set {
            change,
            transition,
            client: "homeassistant".into(),
        }),
        Err(error) => {
            tracing::warn!("Home Assistant command rejected: {error}");
            Incoming::Notice(Notice::Reply {
                topic: format!("{topic}/rejected"),
                payload: json!({ "error": error }).to_string().into_bytes(),
            })
        }
    })
}

async fn poll(
    mut eventloop: EventLoop,
    topics: Topics,
    commands: mpsc::Sender<Command>,
    notices: mpsc::Sender<Notice>,
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
            Ok(Event::Incoming(Packet::Publish(publish)))
                if publish.retain && !topics.is_announcement(&publish.topic) =>
            {
                // MQTT replays a retained message at every subscribe: a command kept that way
                // would act again at every reconnect (a delete, an unpairing...).
                tracing::warn!(topic = %publish.topic, "ignoring a retained command");
                let event = events::retained_event(&publish.topic, now_timestamp());
                let _ = notices.try_send(Notice::Event(event));
                continue;
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => match decode(&topics, &publish.topic, &publish.payload) {
                Some(Incoming::Command(command)) => command,
                Some(Incoming::Alarm(request)) => {
                    let (reply, answer) = oneshot::channel();
                    let command = request.command;
                    answer_later(
                        &notices,
                        topics.alarm_result.clone(),
                        answer,
                        move |result: Result<(), String>| {
                            let result = result.as_ref().map(|_| ()).map_err(String::as_str);
                            lampi::alarm_result(Some(command), request.token.as_deref(), result)
                        },
                    );
                    Command::Alarm { command, reply }
                }
                Some(Incoming::Associate(association)) => Command::Associate {
                    code: association.code,
                    owner: association.owner,
                    reply: pairing_reply(&notices, &topics, association.token),
                },
                Some(Incoming::Unpair { token }) => Command::Unpair {
                    source: "cloud",
                    reply: pairing_reply(&notices, &topics, token),
                },
                Some(Incoming::Notice(notice)) => {
                    if notices.try_send(notice).is_err() {
                        tracing::warn!("too many notices queued; this one is only logged");
                    }
                    continue;
                }
                None => continue,
            },
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                stop.cancel();
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                if link.send_if_modified(|l| std::mem::replace(&mut l.up, false)) {
                    // Only the screen's status icon waits on this; never stall reconnecting for it.
                    let _ = commands.try_send(Command::Disconnected);
                }
                if is_oversize(&e) {
                    // The broker would redeliver the packet to the persistent session forever;
                    // one clean session discards it (and whatever else was queued).
                    tracing::error!(
                        "a message over {MAX_INCOMING_PACKET_BYTES} bytes was sent to the lamp; discarding its session"
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

/// Publishes the lamp's answer to a command once it comes, without holding up the poller.
fn answer_later<T: Send + 'static>(
    notices: &mpsc::Sender<Notice>,
    topic: String,
    answer: oneshot::Receiver<T>,
    render: impl FnOnce(T) -> Vec<u8> + Send + 'static,
) {
    let notices = notices.clone();
    tokio::spawn(async move {
        if let Ok(result) = answer.await {
            let payload = render(result);
            let _ = notices.send(Notice::Reply { topic, payload }).await;
        }
    });
}

/// Where the lamp's answer to an association or unpairing goes: the pairing result topic,
/// with the sender's token.
fn pairing_reply(
    notices: &mpsc::Sender<Notice>,
    topics: &Topics,
    token: Option<String>,
) -> oneshot::Sender<Result<Owner, String>> {
    let (reply, answer) = oneshot::channel();
    answer_later(
        notices,
        topics.pairing.result.clone(),
        answer,
        move |result: Result<Owner, String>| pairing::result(token.as_deref(), result.as_ref().map_err(String::as_str)),
    );
    reply
}

fn tls_configuration(config: &MqttConfig) -> std::io::Result<TlsConfiguration> {
    let read = |path: &Option<std::path::PathBuf>| path.as_ref().map(std::fs::read).transpose();
    let ca = read(&config.ca_file)?.unwrap_or_default();
    let client_auth = read(&config.cert_file)?.zip(read(&config.key_file)?);
    Ok(TlsConfiguration::Simple {
        ca,
        alpn: None,
        client_auth,
    })
}

fn is_oversize(error: &rumqttc::ConnectionError) -> bool {
    matches!(
        error,
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)
        ))
    )
}

fn now_timestamp() -> u64 {
    crate::clock::timestamp(std::time::SystemTime::now().into())
}

/// The publisher's handle on rumqttc. Everything goes through [`Out::fits`] first: rumqttc keeps
/// a QoS 1 publish it cannot send and resends it first after every reconnect, so a message over
/// the packet limit would drop the connection for good. Such a message is dropped instead.
struct Out {
    client: AsyncClient,
    /// The publisher's own queue, where a dropped message's event waits; weak, so that the
    /// queue still closes when the poller goes.
    notices: mpsc::WeakSender<Notice>,
}

impl Out {
    fn fits(&self, topic: &str, payload: &[u8]) -> bool {
        let bytes = packet_bytes(topic, payload.len());
        if bytes <= MAX_PACKET_BYTES {
            return true;
        }
        tracing::error!(topic, bytes, "not sent: over the {MAX_PACKET_BYTES}-byte packet limit");
        let event = events::oversize_event(topic, bytes, MAX_PACKET_BYTES, now_timestamp());
        if let Some(notices) = self.notices.upgrade() {
            let _ = notices.try_send(Notice::Event(event));
        }
        false
    }

    /// A QoS 1 publish, if it fits.
    async fn publish(&self, topic: &str, retain: bool, payload: impl Into<Vec<u8>>) {
        let payload = payload.into();
        if self.fits(topic, &payload) {
            let _ = self.client.publish(topic, QoS::AtLeastOnce, retain, payload).await;
        }
    }

    /// Sends analytics events now if the link is up and rumqttc has room, else spools them.
    /// Once one is spooled the rest follow it there, so they leave in order.
    fn send_events(&self, topic: &str, up: bool, spool: &mut Spool, batch: Vec<Value>) {
        for event in batch {
            let payload = event.to_string();
            if !self.fits(topic, payload.as_bytes()) {
                continue;
            }
            let sent =
                up && spool.is_empty() && self.client.try_publish(topic, QoS::AtLeastOnce, false, payload).is_ok();
            if !sent {
                spool.push(&event);
            }
        }
        if let Err(e) = spool.flush() {
            tracing::error!("analytics spool: {e}");
        }
    }

    /// Publishes everything spooled, oldest first.
    async fn drain_spool(&self, topic: &str, spool: &mut Spool) {
        match spool.drain(now_timestamp()) {
            Ok(backlog) => {
                for event in backlog {
                    self.publish(topic, false, event).await;
                }
            }
            Err(e) => tracing::error!("analytics spool: {e}"),
        }
    }
}

/// What the publisher sends out.
struct Outputs {
    changes: watch::Receiver<Snapshot>,
    pairing: watch::Receiver<PairingView>,
    notices: mpsc::Receiver<Notice>,
    shadow: mpsc::Receiver<ShadowMessage>,
    events: mpsc::Receiver<serde_json::Value>,
    /// Where events wait while the broker is unreachable.
    spool: Spool,
}

/// Publishes the lamp's state on LAMPI's topic and, when enabled, Home Assistant's.
async fn publish_state(out: &Out, topics: &Topics, snapshot: &Snapshot) {
    let payload = lampi::changed_payload(&snapshot.state, &snapshot.client);
    out.publish(&topics.changed, true, payload).await;
    if let Some(ha) = &topics.homeassistant {
        let state = homeassistant::state(&snapshot.state).to_string();
        out.publish(&ha.entity.state_topic, true, state).await;
    }
}

/// The pairing code for the cloud (retained; empty withdraws it) and LAMPI's association state.
async fn publish_pairing(out: &Out, topics: &Topics, view: &PairingView) {
    let code = pairing::code_payload(view);
    out.publish(&topics.pairing.code, true, code).await;
    let associated = pairing::associated_payload(view, topics.code_on_lamp_topic);
    out.publish(&topics.associated, true, associated).await;
}

async fn publish_discovery(out: &Out, topics: &Topics) {
    if let Some(ha) = &topics.homeassistant {
        let discovery = ha.entity.discovery().to_string();
        out.publish(&ha.entity.discovery_topic, true, discovery).await;
    }
}

async fn publish(
    out: &Out,
    topics: &Topics,
    outputs: Outputs,
    mut link: watch::Receiver<Link>,
    shutdown: CancellationToken,
) -> bool {
    let Outputs {
        mut changes,
        mut pairing,
        mut notices,
        mut shadow,
        mut events,
        mut spool,
    } = outputs;
    let client = &out.client;
    // Events spooled while the link is up would otherwise wait for the next reconnect.
    let retry = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(retry);
    let mut retry_armed = false;
    loop {
        if !retry_armed && link.borrow().up && !spool.is_empty() {
            retry.as_mut().reset(tokio::time::Instant::now() + SPOOL_RETRY);
            retry_armed = true;
        }
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
                out.publish(&topics.connection_state, true, "1").await;
                publish_discovery(out, topics).await;
                publish_state(out, topics, &snapshot).await;
                let view = pairing.borrow_and_update().clone();
                publish_pairing(out, topics, &view).await;
                out.drain_spool(&topics.events, &mut spool).await;
            }
            () = &mut retry, if retry_armed => {
                retry_armed = false;
                if link.borrow().up {
                    out.drain_spool(&topics.events, &mut spool).await;
                }
            }
            Some(event) = events.recv() => {
                // Take the whole batch, and never wait: while the link is down (or not yet known
                // to be) rumqttc's queue fills, and the events go to the spool instead.
                let mut batch = vec![event];
                while let Ok(event) = events.try_recv() {
                    batch.push(event);
                }
                out.send_events(&topics.events, link.borrow().up, &mut spool, batch);
            }
            Ok(()) = changes.changed() => {
                let snapshot = changes.borrow_and_update().clone();
                if link.borrow().up {
                    publish_state(out, topics, &snapshot).await;
                }
            }
            Ok(()) = pairing.changed() => {
                let view = pairing.borrow_and_update().clone();
                if link.borrow().up {
                    publish_pairing(out, topics, &view).await;
                }
            }
            Some(message) = shadow.recv() => {
                // Replies made while offline are dropped: the document itself is kept, and a
                // client that missed a reply can `get` it.
                let up = link.borrow().up;
                if let (true, Some(prefix)) = (up, &topics.shadow) {
                    let topic = format!("{prefix}{}", message.topic.suffix());
                    let payload = serde_json::to_vec(&message.payload).expect("JSON values always serialise");
                    out.publish(&topic, false, payload).await;
                }
            }
            Some(notice) = notices.recv() => {
                let up = link.borrow().up;
                match notice {
                    // Spooled while offline, like the lamp's own events.
                    Notice::Event(event) => out.send_events(&topics.events, up, &mut spool, vec![event]),
                    _ if !up => {}
                    Notice::Reply { topic, payload } => out.publish(&topic, false, payload).await,
                    Notice::Rediscover => {
                        let snapshot = changes.borrow().clone();
                        publish_discovery(out, topics).await;
                        publish_state(out, topics, &snapshot).await;
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Of all the lamp subscribes to, only Home Assistant's status is taken when retained.
    #[test]
    fn only_home_assistants_status_counts_when_retained() {
        let text = "[device]\nid = \"lamp1\"\n[homeassistant]\nenabled = true\n";
        let config = Config::parse(text, std::path::Path::new("t.toml")).unwrap().config;
        let topics = Topics::from_config(&config);
        let status = &topics.homeassistant.as_ref().unwrap().status;
        let announcements: Vec<String> = topics
            .subscriptions()
            .into_iter()
            .filter(|t| topics.is_announcement(t))
            .collect();
        assert_eq!(announcements, std::slice::from_ref(status));
    }

    /// rumqttc would keep a publish over its limit and resend it after every reconnect; the
    /// largest that fits goes out, one byte more is dropped with an event.
    #[tokio::test]
    async fn a_publish_over_the_packet_limit_is_dropped_with_an_event() {
        let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("lamp", "127.0.0.1", 1883), 10);
        let (notices_tx, mut notices) = mpsc::channel(NOTICE_QUEUE);
        let out = Out {
            client,
            notices: notices_tx.downgrade(),
        };
        let topic = "$aws/things/lamp1/shadow/update/documents";
        let largest = MAX_PACKET_BYTES - packet_bytes(topic, 0);
        out.publish(topic, false, vec![b'x'; largest]).await;
        out.publish(topic, false, vec![b'x'; largest + 1]).await;

        eventloop.clean();
        let sent: Vec<_> = eventloop
            .pending
            .iter()
            .filter_map(|request| match request {
                rumqttc::Request::Publish(publish) => Some(publish.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(sent.len(), 1);
        let mut publish = sent[0].clone();
        publish.pkid = 1;
        assert_eq!(publish.payload.len(), largest);
        assert!(publish.size() <= MAX_PACKET_BYTES, "rumqttc counts {}", publish.size());

        let Ok(Notice::Event(event)) = notices.try_recv() else {
            panic!("no event for the dropped message");
        };
        assert_eq!(event["type"], "message_too_large");
        assert_eq!(event["bytes"], MAX_PACKET_BYTES + 1);
        assert_eq!(event["topic"], topic);
    }
}
