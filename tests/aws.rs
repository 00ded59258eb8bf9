//! `shadow.service = "aws"`: the lamp as a client of a cloud shadow service. The service here
//! is a stand-in for AWS IoT Core built on the same `core::shadow` rules (which the property
//! test checks against the AWS rules): it keeps the document and knows nothing of lamps.

mod common;

use std::time::Duration;

use common::{Broker, Client, RunningLamp, json};
use lampi::core::colour::duty_for;
use lampi::core::shadow::{self, Shadow};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const PREFIX: &str = "$aws/things/lamp1/shadow/";

/// Answers update, get and delete for thing `lamp1` as AWS IoT would: no delta for a deleted
/// key, `delete/accepted` to every subscriber.
fn cloud_shadow_service(port: u16) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("aws-iot", "127.0.0.1", port), 100);
        client
            .subscribe(format!("{PREFIX}update"), QoS::AtLeastOnce)
            .await
            .unwrap();
        for op in ["get", "delete"] {
            client
                .subscribe(format!("{PREFIX}{op}"), QoS::AtLeastOnce)
                .await
                .unwrap();
        }
        let mut document = Shadow::default();
        let mut answers = Vec::new();
        loop {
            let Ok(Event::Incoming(Packet::Publish(request))) = eventloop.poll().await else {
                continue;
            };
            let now = lampi::clock::timestamp(std::time::SystemTime::now().into());
            if request.topic.ends_with("/update") {
                match shadow::parse_update(&request.payload).and_then(|r| document.update(r, now, |_, _| Ok(()))) {
                    Ok(accepted) => {
                        answers.push(("update/accepted", accepted.accepted));
                        answers.push(("update/documents", accepted.documents));
                        answers.extend(accepted.delta.map(|d| ("update/delta", d)));
                    }
                    Err(e) => answers.push(("update/rejected", e.document(now))),
                }
            } else if request.topic.ends_with("/delete") {
                let token = shadow::parse_token_request(&request.payload).ok().flatten();
                match document.delete("lamp1", token.as_deref(), now) {
                    Ok(doc) => answers.push(("delete/accepted", doc)),
                    Err(e) => answers.push(("delete/rejected", e.document(now))),
                }
            } else {
                let token = shadow::parse_token_request(&request.payload).ok().flatten();
                match document.get("lamp1", token.as_deref(), now) {
                    Ok(doc) => answers.push(("get/accepted", doc)),
                    Err(e) => answers.push(("get/rejected", e.document(now))),
                }
            }
            for (topic, doc) in answers.drain(..) {
                client
                    .try_publish(format!("{PREFIX}{topic}"), QoS::AtLeastOnce, false, doc.to_string())
                    .unwrap();
            }
        }
    })
}

/// The cloud's document, or `null` while there is none.
async fn get(app: &mut Client, token: &str) -> Value {
    app.publish(&format!("{PREFIX}get"), json!({"clientToken": token}).to_string())
        .await;
    let answer = app
        .next_where(|m| {
            m.topic.starts_with(&format!("{PREFIX}get/"))
                && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|j| j["clientToken"] == json!(token))
        })
        .await;
    if answer.topic.ends_with("accepted") {
        json(&answer)
    } else {
        Value::Null
    }
}

/// Polls the cloud document until `done` holds.
async fn until(app: &mut Client, done: impl Fn(&Value) -> bool) -> Value {
    for i in 0..100 {
        let doc = get(app, &format!("poll{i}")).await;
        if done(&doc) {
            return doc;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the cloud document never converged: {}",
        get(app, "last").await["state"]
    );
}

fn aws(c: &mut lampi::config::Config) {
    c.shadow.service = lampi::config::ShadowService::Aws;
    c.light.transition_ms = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_cloud_and_converges_after_being_away() {
    let broker = Broker::start();
    let service = cloud_shadow_service(broker.port);
    let state = tempfile::tempdir().unwrap();
    let mut app = Client::connect(broker.port, "app").await;
    app.subscribe(&format!("{PREFIX}get/+")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // On connecting, the lamp fetches (404: no document yet) and reports: the document appears.
    let mut lamp = RunningLamp::start_with(broker.port, state.path(), aws).await;
    let doc = until(&mut app, |d| d["state"]["reported"]["firmware"]["version"].is_string()).await;
    assert_eq!(doc["state"]["reported"]["light"]["on"], json!(true));

    // A desired change in the cloud reaches the LED and is reported back; no delta remains.
    let update = json!({"state": {"desired": {"light": {"brightness": 0.4, "hue": 0.6, "saturation": 1}}}});
    app.publish(&format!("{PREFIX}update"), update.to_string()).await;
    lamp.output_settles_at(duty_for(true, 0.6, 1.0, 0.4)).await;
    let doc = until(&mut app, |d| {
        d["state"]["reported"]["light"]["brightness"] == json!(0.4)
    })
    .await;
    assert!(doc["state"].get("delta").is_none(), "{doc}");

    // Away while the cloud changes: on return the lamp fetches, applies and reports.
    lamp.stop().await;
    let update = json!({"state": {"desired": {"light": {"brightness": 0.7}, "timezone": "Europe/Paris"}}});
    app.publish(&format!("{PREFIX}update"), update.to_string()).await;
    let mut lamp = RunningLamp::start_with(broker.port, state.path(), aws).await;
    lamp.output_settles_at(duty_for(true, 0.6, 1.0, 0.7)).await;
    let doc = until(&mut app, |d| {
        d["state"]["reported"]["timezone"] == json!("Europe/Paris")
    })
    .await;
    assert_eq!(doc["state"]["reported"]["light"]["brightness"], json!(0.7));

    // A local change is written to the cloud's desired too.
    app.publish("lamp/set_config", r#"{"brightness":0.1,"client":"wall"}"#)
        .await;
    let doc = until(&mut app, |d| d["state"]["desired"]["light"]["brightness"] == json!(0.1)).await;
    // In the same update as the report: the cloud never sees the report alone (it would send
    // the old desired value back as a delta and undo the change).
    assert_eq!(doc["state"]["reported"]["light"]["brightness"], json!(0.1));
    assert!(doc["state"].get("delta").is_none(), "{doc}");

    // A desired value the lamp cannot take is ignored, not applied.
    let bad = json!({"state": {"desired": {"light": {"brightness": 7}}}});
    app.publish(&format!("{PREFIX}update"), bad.to_string()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lamp.handle.changes.borrow().state.brightness.get(), 0.1);
    lamp.stop().await;
    service.abort();
}

fn no_alarms(reported: &Value) -> bool {
    reported.get("alarms").is_none() && reported["alarm"] == json!({"state": "idle"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_in_the_cloud_reach_the_lamp_though_aws_sends_no_delta_for_them() {
    let broker = Broker::start();
    let service = cloud_shadow_service(broker.port);
    let state = tempfile::tempdir().unwrap();
    let mut app = Client::connect(broker.port, "app").await;
    app.subscribe(&format!("{PREFIX}get/+")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut lamp = RunningLamp::start_with(broker.port, state.path(), |c| {
        aws(c);
        c.clock.start = Some("2026-11-27T06:59:58Z".into());
    })
    .await;
    until(&mut app, |d| d["state"]["reported"]["connected_since"].is_u64()).await;
    let update = |desired: Value| json!({"state": {"desired": desired}}).to_string();
    let blue = duty_for(true, 0.6667, 1.0, 0.3);
    let every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    // The only alarm, deleted while it rings.
    let light = json!({"on": true, "hue": 0.6667, "saturation": 1, "brightness": 0.3});
    let alarms = json!({"acc1": {"time": "07:00", "action": "blink", "days": every_day}});
    app.publish(
        &format!("{PREFIX}update"),
        update(json!({"light": light, "alarms": alarms})),
    )
    .await;
    until(&mut app, |d| {
        d["state"]["reported"]["alarm"]["state"] == json!("ringing")
    })
    .await;
    app.publish(&format!("{PREFIX}update"), update(json!({"alarms": {"acc1": null}})))
        .await;
    until(&mut app, |d| no_alarms(&d["state"]["reported"])).await;
    lamp.output_settles_at(blue).await;

    // Two alarms and the zone, then the whole desired section.
    let two = json!({"a": {"time": "08:00", "days": every_day}, "b": {"time": "09:00"}});
    app.publish(
        &format!("{PREFIX}update"),
        update(json!({"alarms": two, "timezone": "Europe/Paris"})),
    )
    .await;
    until(&mut app, |d| d["state"]["reported"]["alarms"] == two).await;
    app.publish(&format!("{PREFIX}update"), update(json!({"alarms": {"a": null}})))
        .await;
    until(&mut app, |d| {
        d["state"]["reported"]["alarm"]["next"]["id"] == json!("b")
    })
    .await;
    app.publish(
        &format!("{PREFIX}update"),
        json!({"state": {"desired": null}}).to_string(),
    )
    .await;
    until(&mut app, |d| {
        no_alarms(&d["state"]["reported"]) && d["state"]["reported"].get("timezone").is_none()
    })
    .await;

    // Deleted on the lamp's own screen: the lamp asks the cloud, and follows its documents.
    app.publish(&format!("{PREFIX}update"), update(json!({"alarms": alarms})))
        .await;
    until(&mut app, |d| d["state"]["reported"]["alarms"] == alarms).await;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let patch = json!({"alarms": {"acc1": null}}).as_object().unwrap().clone();
    let command = lampi::lamp_task::Command::Settings { patch, reply };
    lamp.handle.commands.send(command).await.unwrap();
    assert_eq!(answer.await.unwrap(), Ok(()));
    let doc = until(&mut app, |d| no_alarms(&d["state"]["reported"])).await;
    assert!(
        doc["state"].get("desired").is_none_or(|d| d.get("alarms").is_none()),
        "{doc}"
    );

    // The whole document: the lamp hears `delete/accepted`, ends its settings and reports anew.
    app.publish(&format!("{PREFIX}update"), update(json!({"alarms": alarms})))
        .await;
    until(&mut app, |d| d["state"]["reported"]["alarms"] == alarms).await;
    app.publish(&format!("{PREFIX}delete"), "{}").await;
    let doc = until(&mut app, |d| {
        no_alarms(&d["state"]["reported"]) && d["state"]["reported"]["connected_since"].is_u64()
    })
    .await;
    assert!(doc["state"].get("desired").is_none(), "{doc}");

    // Deleted while the lamp is away: it learns of it when it is back.
    app.publish(&format!("{PREFIX}update"), update(json!({"alarms": alarms})))
        .await;
    until(&mut app, |d| d["state"]["reported"]["alarms"] == alarms).await;
    lamp.stop().await;
    app.publish(&format!("{PREFIX}update"), update(json!({"alarms": null})))
        .await;
    let lamp = RunningLamp::start_with(broker.port, state.path(), aws).await;
    until(&mut app, |d| no_alarms(&d["state"]["reported"])).await;
    assert!(lamp.handle.saved.borrow().shadow.desired.get("alarms").is_none());
    lamp.stop().await;
    service.abort();
}
