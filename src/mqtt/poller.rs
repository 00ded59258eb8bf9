//! The poller: the one task that drives rumqttc's `EventLoop`, reconnects with backoff (failing
//! over between the configured brokers), and turns incoming messages into lamp commands.

use rumqttc::{Event, EventLoop, MqttOptions, Outgoing, Packet};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::topics::{Route, Topics};
use super::{Link, MAX_INCOMING_PACKET_BYTES, Notice, now_timestamp};
use crate::core::backoff::Backoff;
use crate::core::lamp::{Refusal, UnpairSource};
use crate::core::pairing::Owner;
use crate::events;
use crate::lamp_task::Command;
use crate::protocol::homeassistant;
use crate::protocol::lampi;
use crate::protocol::pairing;

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
    /// A command that arrived retained, ignored.
    Retained,
}

/// Decodes an incoming publish; `None` for topics the lamp does not act on.
fn decode(topics: &Topics, topic: &str, retain: bool, payload: &[u8]) -> Option<Incoming> {
    Some(match topics.route(topic, retain)? {
        Route::RetainedCommand => Incoming::Retained,
        Route::SetConfig => match lampi::parse_set_config(payload) {
            Ok(set) => Incoming::Command(Command::Set {
                change: set.change,
                transition: None,
                client: set.client,
            }),
            Err(refused) => {
                tracing::warn!(client = ?refused.token(), "set_config rejected: {refused}");
                Incoming::Notice(Notice::Reply {
                    topic: topics.set_config_rejected.clone(),
                    payload: lampi::rejection_payload(&refused),
                })
            }
        },
        Route::Alarm => match lampi::parse_alarm_command(payload) {
            Ok(request) => Incoming::Alarm(request),
            Err(refused) => Incoming::Notice(Notice::Reply {
                topic: topics.alarm_result.clone(),
                payload: lampi::alarm_result(None, refused.token(), Err(&refused)),
            }),
        },
        Route::PairingRequest => Incoming::Command(Command::RequestPairingCode),
        Route::PairingAssociate => match pairing::parse_association(payload) {
            Ok(association) => Incoming::Associate(association),
            Err(refused) => Incoming::Notice(Notice::Reply {
                topic: topics.pairing.result.clone(),
                payload: pairing::result(refused.token(), Err(&refused)),
            }),
        },
        Route::PairingUnpair => match pairing::parse_unpair(payload) {
            Ok(token) => Incoming::Unpair { token },
            Err(refused) => Incoming::Notice(Notice::Reply {
                topic: topics.pairing.result.clone(),
                payload: pairing::result(refused.token(), Err(&refused)),
            }),
        },
        Route::ShadowRequest(op) => Incoming::Command(Command::Shadow {
            op,
            payload: payload.to_vec(),
        }),
        Route::Cloud(topic) => Incoming::Command(Command::Cloud {
            topic,
            payload: payload.to_vec(),
        }),
        Route::HomeAssistantStatus => return (payload == b"online").then_some(Incoming::Notice(Notice::Rediscover)),
        Route::HomeAssistantCommand => match homeassistant::parse_command(payload) {
            Ok((change, transition)) => Incoming::Command(Command::Set {
                change,
                transition,
                client: "homeassistant".into(),
            }),
            Err(refused) => {
                tracing::warn!("Home Assistant command rejected: {refused}");
                Incoming::Notice(Notice::Reply {
                    topic: format!("{topic}/rejected"),
                    payload: json!({ "error": refused.reason() }).to_string().into_bytes(),
                })
            }
        },
    })
}

/// Where and when the lamp reconnects: the brokers it fails over between, in the configured
/// order, the one in use, and the backoff.
///
/// A failure moves on to the next broker, wrapping around after the last; a broker that answers
/// is kept until it fails, so the lamp never drops a working connection to go back to the first.
pub(super) struct Reconnect {
    brokers: Vec<MqttOptions>,
    current: usize,
    backoff: Backoff,
}

impl Reconnect {
    /// `brokers` is not empty (the config says so): the first is the one tried first.
    pub(super) fn new(brokers: Vec<MqttOptions>, backoff: Backoff) -> Reconnect {
        Reconnect {
            brokers,
            current: 0,
            backoff,
        }
    }

    /// The broker in use, counted from 1 in the configured order.
    fn position(&self) -> usize {
        self.current + 1
    }

    /// The next broker to try after the current one failed; `None` with a single broker, which
    /// keeps the event loop's options as they are (and so a clean session asked of it).
    fn advance(&mut self) -> Option<MqttOptions> {
        if self.brokers.len() < 2 {
            return None;
        }
        self.current = (self.current + 1) % self.brokers.len();
        Some(self.brokers[self.current].clone())
    }
}

pub(super) async fn poll(
    mut eventloop: EventLoop,
    topics: Topics,
    commands: mpsc::Sender<Command>,
    notices: mpsc::Sender<Notice>,
    link: watch::Sender<Link>,
    mut reconnect: Reconnect,
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
                reconnect.backoff.reset();
                link.send_modify(|l| {
                    l.up = true;
                    l.generation += 1;
                });
                Command::Connected {
                    broker: reconnect.position(),
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                match decode(&topics, &publish.topic, publish.retain, &publish.payload) {
                    Some(Incoming::Retained) => {
                        tracing::warn!(topic = %publish.topic, "ignoring a retained command");
                        let event = events::retained_event(&publish.topic, now_timestamp());
                        let _ = notices.try_send(Notice::Event(event));
                        continue;
                    }
                    Some(Incoming::Command(command)) => command,
                    Some(Incoming::Alarm(request)) => {
                        let (reply, answer) = oneshot::channel();
                        let command = request.command;
                        answer_later(
                            &notices,
                            topics.alarm_result.clone(),
                            answer,
                            move |result: Result<(), Refusal>| {
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
                        source: UnpairSource::Cloud,
                        reply: pairing_reply(&notices, &topics, token),
                    },
                    Some(Incoming::Notice(notice)) => {
                        if notices.try_send(notice).is_err() {
                            tracing::warn!("too many notices queued; this one is only logged");
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
                if link.send_if_modified(|l| std::mem::replace(&mut l.up, false)) {
                    // Only the screen's status icon waits on this; never stall reconnecting for it.
                    let _ = commands.try_send(Command::Disconnected);
                }
                let next = if is_oversize(&e) {
                    // The broker would redeliver the packet to the persistent session forever;
                    // one clean session discards it (and whatever else was queued). The broker
                    // is not at fault, so the lamp stays with it.
                    tracing::error!(
                        "a message over {MAX_INCOMING_PACKET_BYTES} bytes was sent to the lamp; discarding its session"
                    );
                    eventloop.mqtt_options.set_clean_session(true);
                    None
                } else {
                    reconnect.advance()
                };
                // Every attempt waits its backoff, the first move to another broker included: a
                // fleet that lost one node would otherwise land on the next all in one instant,
                // and the delays stay short until several attempts in a row have failed.
                let delay = reconnect.backoff.next_delay(&mut rand::rng());
                let (host, port) = eventloop.mqtt_options.broker_address();
                match next {
                    Some(next) => {
                        let (to_host, to_port) = next.broker_address();
                        tracing::warn!(
                            "MQTT connection to {host}:{port}: {e}; failing over to {to_host}:{to_port} in {delay:?}"
                        );
                        eventloop.mqtt_options = next;
                    }
                    None => tracing::warn!("MQTT connection to {host}:{port}: {e}; retrying in {delay:?}"),
                }
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
) -> oneshot::Sender<Result<Owner, Refusal>> {
    let (reply, answer) = oneshot::channel();
    answer_later(
        notices,
        topics.pairing.result.clone(),
        answer,
        move |result: Result<Owner, Refusal>| pairing::result(token.as_deref(), result.as_ref()),
    );
    reply
}

fn is_oversize(error: &rumqttc::ConnectionError) -> bool {
    matches!(
        error,
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)
        ))
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reconnect(ports: &[u16]) -> Reconnect {
        Reconnect::new(
            ports
                .iter()
                .map(|&p| MqttOptions::new("lamp", "127.0.0.1", p))
                .collect(),
            Backoff::new(Duration::from_millis(1), Duration::from_millis(1)),
        )
    }

    #[test]
    fn failover_goes_down_the_list_and_wraps_around() {
        let mut brokers = reconnect(&[1, 2, 3]);
        let ports: Vec<u16> = (0..5).map(|_| brokers.advance().unwrap().broker_address().1).collect();
        assert_eq!(ports, [2, 3, 1, 2, 3]);
    }

    #[test]
    fn a_single_broker_is_retried_as_it_is() {
        assert!(reconnect(&[1]).advance().is_none());
    }
}
