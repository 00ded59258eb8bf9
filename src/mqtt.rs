//! The lamp's MQTT shell: LAMPI's topics over rumqttc.
//!
//! Two tasks, as rumqttc wants: the *poller* alone drives `EventLoop::poll`, reconnects with
//! backoff, and turns `lamp/set_config` packets into lamp commands; the *publisher* alone calls
//! the client, publishing `lamp/changed` from the lamp's watch channel (which coalesces, so a
//! flood of commands never queues a flood of replies) and rejections. Neither can wait on the
//! other, so they cannot deadlock.

use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Outgoing, Packet, QoS,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::MqttConfig;
use crate::core::backoff::Backoff;
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

/// Every topic the lamp uses, with the configured prefix applied.
#[derive(Clone, Debug)]
pub struct Topics {
    pub set_config: String,
    pub set_config_rejected: String,
    pub changed: String,
    pub connection_state: String,
}

impl Topics {
    pub fn new(prefix: &str, client_id: &str) -> Topics {
        Topics {
            set_config: format!("{prefix}lamp/set_config"),
            set_config_rejected: format!("{prefix}lamp/set_config/rejected"),
            changed: format!("{prefix}lamp/changed"),
            connection_state: format!("{prefix}lamp/connection/{client_id}/state"),
        }
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
pub async fn run(config: &MqttConfig, lamp: LampHandle, shutdown: CancellationToken) {
    let topics = Topics::new(&config.topic_prefix, &config.client_id);
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_last_will(LastWill::new(
            &topics.connection_state,
            "0",
            QoS::AtLeastOnce,
            true,
        ));
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
    let said_goodbye = publish(
        &client,
        &topics,
        lamp.changes,
        link_rx,
        rejections_rx,
        shutdown,
    )
    .await;
    if said_goodbye {
        // The poller stops by itself once it has written the DISCONNECT.
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, poller_stop.cancelled()).await;
    }
    poller_stop.cancel();
    let _ = poller.await;
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
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(broker = ?eventloop.mqtt_options.broker_address(), "MQTT connected");
                backoff.reset();
                link.send_modify(|l| {
                    l.up = true;
                    l.generation += 1;
                });
            }
            Ok(Event::Incoming(Packet::Publish(publish))) if publish.topic == topics.set_config => {
                match lampi::parse_set_config(&publish.payload) {
                    Ok(set) => {
                        let command = Command::Set {
                            change: set.change,
                            client: set.client,
                        };
                        if commands.send(command).await.is_err() {
                            return;
                        }
                    }
                    Err(rejection) => {
                        tracing::warn!(client = ?rejection.client, "set_config rejected: {}", rejection.error);
                        if rejections.try_send(rejection).is_err() {
                            tracing::warn!("too many rejections queued; this one is only logged");
                        }
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                stop.cancel();
                return;
            }
            Ok(_) => {}
            Err(e) => {
                link.send_if_modified(|l| std::mem::replace(&mut l.up, false));
                let delay = backoff.next_delay(&mut rand::rng());
                tracing::warn!("MQTT connection: {e}; retrying in {delay:?}");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

async fn publish(
    client: &AsyncClient,
    topics: &Topics,
    mut changes: watch::Receiver<Snapshot>,
    mut link: watch::Receiver<Link>,
    mut rejections: mpsc::Receiver<Rejection>,
    shutdown: CancellationToken,
) -> bool {
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
                let _ = client.subscribe(&topics.set_config, QoS::AtLeastOnce).await;
                let _ = client.publish(&topics.connection_state, QoS::AtLeastOnce, true, "1").await;
                let _ = publish_changed(snapshot).await;
            }
            Ok(()) = changes.changed() => {
                let snapshot = changes.borrow_and_update().clone();
                if link.borrow().up {
                    let _ = publish_changed(snapshot).await;
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
