//! The publisher: the one task that calls the MQTT client, publishing the lamp's state from its
//! watch channels (which coalesce, so a flood of commands never queues a flood of replies), the
//! shadow's replies, the poller's notices and the analytics events, spooled while offline and
//! drained at each reconnect.

use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::topics::Topics;
use super::{GOODBYE_TIMEOUT, Link, Notice, now_timestamp};
use crate::core::lamp::Echo;
use crate::core::lamp::PairingView;
use crate::core::schema::MAX_PACKET_BYTES;
use crate::events::{self, Spool};
use crate::lamp_task::{LampHandle, ShadowReply};
use crate::protocol::homeassistant;
use crate::protocol::lampi;
use crate::protocol::pairing;

/// How soon events spooled while the link was up (rumqttc's queue was full) are sent again.
const SPOOL_RETRY: Duration = Duration::from_millis(500);

/// Bytes of a QoS 1 PUBLISH packet: fixed header (at most 5), topic length, topic, packet id,
/// payload — as rumqttc counts it against its outgoing limit, or a few bytes more.
fn packet_bytes(topic: &str, payload: usize) -> usize {
    5 + 2 + topic.len() + 2 + payload
}

/// The publisher's handle on rumqttc. Everything goes through [`Out::fits`] first: rumqttc keeps
/// a QoS 1 publish it cannot send and resends it first after every reconnect, so a message over
/// the packet limit would drop the connection for good. Such a message is dropped instead.
pub(super) struct Out {
    client: AsyncClient,
    /// The publisher's own queue, where a dropped message's event waits; weak, so that the
    /// queue still closes when the poller goes.
    notices: mpsc::WeakSender<Notice>,
}

impl Out {
    pub(super) fn new(client: AsyncClient, notices: mpsc::WeakSender<Notice>) -> Out {
        Out { client, notices }
    }

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
}

/// What the publisher sends out.
pub(super) struct Outputs {
    changes: watch::Receiver<Echo>,
    pairing: watch::Receiver<PairingView>,
    notices: mpsc::Receiver<Notice>,
    shadow: mpsc::Receiver<ShadowReply>,
    events: mpsc::Receiver<Value>,
    /// Where events wait while the broker is unreachable.
    spool: Spool,
}

impl Outputs {
    /// The lamp's state channels, the poller's notices, the shadow's replies and the analytics
    /// events, with the spool they wait in while offline.
    pub(super) fn new(
        lamp: LampHandle,
        notices: mpsc::Receiver<Notice>,
        shadow: mpsc::Receiver<ShadowReply>,
        events: mpsc::Receiver<Value>,
        spool: Spool,
    ) -> Outputs {
        Outputs {
            changes: lamp.changes,
            pairing: lamp.pairing,
            notices,
            shadow,
            events,
            spool,
        }
    }
}

/// The events spooled while the broker was unreachable (or rumqttc's queue was full), oldest
/// first.
async fn send_backlog(out: &Out, topics: &Topics, spool: &mut Spool) {
    match spool.drain(now_timestamp()) {
        Ok(backlog) => {
            for event in backlog {
                out.publish(&topics.events, false, event).await;
            }
        }
        Err(e) => tracing::error!("analytics spool: {e}"),
    }
}

/// Publishes the lamp's state on LAMPI's topic and, when enabled, Home Assistant's.
async fn publish_state(out: &Out, topics: &Topics, snapshot: &Echo) {
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

/// Publishes until `shutdown`; whether it then said goodbye to the broker.
pub(super) async fn publish(
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
                send_backlog(out, topics, &mut spool).await;
            }
            () = &mut retry, if retry_armed => {
                retry_armed = false;
                if link.borrow().up {
                    send_backlog(out, topics, &mut spool).await;
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
                    out.publish(&topic, false, message.payload).await;
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
    use rumqttc::MqttOptions;

    use super::*;
    use crate::mqtt::NOTICE_QUEUE;

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
