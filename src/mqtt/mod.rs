//! The lamp's MQTT shell: LAMPI's topics, the device shadow's and Home Assistant's, over rumqttc.
//!
//! Two tasks, as rumqttc wants: the *poller* alone drives `EventLoop::poll`, reconnects with
//! backoff, and turns incoming messages into lamp commands; the *publisher* alone calls the
//! client. Neither can wait on the other, so they cannot deadlock.
//!
//! - `topics`: every topic of one lamp, and what an incoming message is for it (pure).
//! - `poller`: the connection, reconnects and failover between brokers, incoming messages →
//!   lamp commands.
//! - `publisher`: state, replies and analytics out, within the packet limit; the analytics
//!   spool drained at each reconnect.
//! - `tls`: the broker's and the lamp's certificates.

mod poller;
mod publisher;
pub(crate) mod tls;
mod topics;

use std::time::Duration;

use rumqttc::{AsyncClient, LastWill, MqttOptions, NetworkOptions, QoS, Transport};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use self::topics::Topics;
use crate::config::{BrokerAddr, MqttConfig};
use crate::core::backoff::Backoff;
use crate::core::schema::MAX_PACKET_BYTES;
use crate::events::Spool;
use crate::lamp_task::{LampHandle, ShadowReply};

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
    shadow: mpsc::Receiver<ShadowReply>,
    events: mpsc::Receiver<Value>,
    spool: Spool,
    shutdown: CancellationToken,
) {
    let transport = if config.tls {
        match tls::configuration(config) {
            Ok(tls) => Transport::tls_with_config(tls),
            Err(e) => {
                // The config was checked at start-up; a file that vanished since then leaves the
                // lamp working locally rather than talking to the broker in the clear.
                tracing::error!("MQTT disabled: cannot load TLS certificates: {e}");
                shutdown.cancelled().await;
                return;
            }
        }
    } else {
        Transport::Tcp
    };
    let brokers: Vec<MqttOptions> = config
        .brokers()
        .iter()
        .map(|broker| options(config, &topics, broker, &transport))
        .collect();
    let (client, mut eventloop) = AsyncClient::new(brokers[0].clone(), 64);
    let mut network = NetworkOptions::new();
    // Without it Nagle's algorithm and delayed ACKs add 40–90 ms to every reply on loopback.
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);

    let (link_tx, link_rx) = watch::channel(Link::default());
    let (notices_tx, notices_rx) = mpsc::channel(NOTICE_QUEUE);
    let own_notices = notices_tx.downgrade();
    let backoff = Backoff::new(config.reconnect_initial(), config.reconnect_max());
    let poller_stop = CancellationToken::new();
    let poller = tokio::spawn(poller::poll(
        eventloop,
        topics.clone(),
        lamp.commands.clone(),
        notices_tx,
        link_tx,
        poller::Reconnect::new(brokers, backoff),
        poller_stop.clone(),
    ));
    let outputs = publisher::Outputs::new(lamp, notices_rx, shadow, events, spool);
    let out = publisher::Out::new(client, own_notices);
    let said_goodbye = publisher::publish(&out, &topics, outputs, link_rx, shutdown).await;
    if said_goodbye {
        // The poller stops by itself once it has written the DISCONNECT.
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, poller_stop.cancelled()).await;
    }
    poller_stop.cancel();
    let _ = poller.await;
}

/// How the lamp connects to one broker; all but the address is the same for every broker.
fn options(config: &MqttConfig, topics: &Topics, broker: &BrokerAddr, transport: &Transport) -> MqttOptions {
    let mut options = MqttOptions::new(&config.client_id, &broker.host, broker.port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs))
        // A persistent session: QoS 1 requests sent while the lamp is offline wait in the broker.
        .set_clean_session(false)
        .set_max_packet_size(MAX_INCOMING_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_last_will(LastWill::new(&topics.connection_state, "0", QoS::AtLeastOnce, true))
        .set_transport(transport.clone());
    if let Some(username) = &config.username {
        options.set_credentials(username, config.password.as_ref().map_or("", |p| p.expose()));
    }
    options
}

fn now_timestamp() -> u64 {
    crate::clock::timestamp(std::time::SystemTime::now().into())
}
