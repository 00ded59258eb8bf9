mod schedules;

use schedules::{at, run_for};

use super::*;
use crate::core::colour::duty_for;
use crate::core::light::{LightState, Unit};

/// What the tests look at; the shell sees only outputs.
impl Lamp {
    fn light(&self) -> LightState {
        self.fader.state()
    }

    fn shadow(&self) -> &Shadow {
        &self.shadow
    }
}

const FADE: Duration = Duration::from_millis(400);

fn new_lamp(now: Instant) -> Lamp {
    let identity = Identity {
        thing: "lamp1".into(),
        firmware: "1.2.3".into(),
        role: Default::default(),
    };
    let mut lamp = Lamp::new(Saved::default(), identity, FADE, Now::at(now, 0));
    lamp.tick(now + FADE, 100);
    lamp
}

fn topics(messages: &[ShadowMessage]) -> Vec<ShadowTopic> {
    messages.iter().map(|m| m.topic).collect()
}

fn request(lamp: &mut Lamp, op: ShadowOp, payload: Value, now: Instant) -> Vec<ShadowMessage> {
    lamp.shadow_request(op, payload.to_string().as_bytes(), now, 200)
}

#[test]
fn reports_itself_once_settled() {
    let t0 = Instant::now();
    let lamp = new_lamp(t0);
    let reported = &lamp.shadow().reported;
    assert_eq!(
        reported["light"],
        json!({"on": true, "hue": 0.0, "saturation": 0.0, "brightness": 1.0, "transition_ms": 400})
    );
    assert_eq!(reported["output"], json!({"r": 1.0, "g": 1.0, "b": 1.0}));
    assert_eq!(reported["firmware"], json!({"version": "1.2.3"}));
}

#[test]
fn reports_whether_ble_serves_once_told() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    assert!(lamp.shadow().reported.get("ble").is_none());
    for serving in [true, false] {
        lamp.handle(Input::BleServing(serving), Now::at(t0 + FADE, 101));
        assert_eq!(lamp.next_wake().mono, Some(t0 + FADE), "a report is due at once");
        let messages = lamp.tick(t0 + FADE, 101);
        assert_eq!(
            messages[0].payload["state"]["reported"],
            json!({"ble": {"serving": serving}})
        );
        assert_eq!(lamp.shadow().reported["ble"], json!({"serving": serving}));
    }
    // Told again what it already reports: nothing to send.
    lamp.handle(Input::BleServing(false), Now::at(t0 + FADE, 102));
    assert!(lamp.tick(t0 + FADE, 102).is_empty());
}

#[test]
fn desired_light_acts_and_is_reported_leaving_no_delta() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    let t1 = t0 + FADE;
    let messages = request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"desired": {"light": {"brightness": 0.5, "hue": 0.33, "saturation": 1.0}}}, "clientToken": "app"}),
        t1,
    );
    // The app's update: accepted, documents, delta; then the lamp's report: accepted, documents.
    assert_eq!(
        topics(&messages),
        [
            ShadowTopic::UpdateAccepted,
            ShadowTopic::UpdateDocuments,
            ShadowTopic::UpdateDelta,
            ShadowTopic::UpdateAccepted,
            ShadowTopic::UpdateDocuments
        ]
    );
    assert_eq!(
        messages[2].payload["state"],
        json!({"light": {"brightness": 0.5, "hue": 0.33, "saturation": 1.0}})
    );
    assert_eq!(messages[0].payload["clientToken"], json!("app"));
    assert!(lamp.shadow().delta().is_empty());
    assert_eq!(lamp.light().brightness.get(), 0.5);

    // During the fade the output is reported at most every 250 ms, and finally exactly.
    let mut reports = 0;
    let mut now = t1;
    while let Some(wake) = lamp.mono_wake(now) {
        now = wake;
        reports += lamp.tick(now, 201).len() / 2;
    }
    assert!(
        (1..=3).contains(&reports),
        "{reports} output reports during a 400 ms fade"
    );
    let expected = rounded(duty_for(true, 0.33, 1.0, 0.5));
    assert_eq!(
        lamp.shadow().reported["output"],
        json!({"r": expected.r, "g": expected.g, "b": expected.b})
    );
    assert_eq!(lamp.mono_wake(now), None);
}

#[test]
fn local_change_wins_in_desired_and_reported() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"desired": {"light": {"on": true, "brightness": 0.9}}}}),
        t0,
    );
    let change = LightChange {
        brightness: Some(Unit::try_from(0.2).unwrap()),
        ..Default::default()
    };
    lamp.tick(t0, 300);
    lamp.local_change(change, None, t0, 300);
    // Nothing reaches the shadow until the delay is over (or a request needs it).
    assert_eq!(lamp.mono_wake(t0 + FADE), Some(t0 + LOCAL_REPORT_DELAY));
    assert_eq!(lamp.shadow().reported["light"]["brightness"], json!(0.9));
    let messages = lamp.tick(t0 + LOCAL_REPORT_DELAY, 300);
    assert_eq!(
        topics(&messages),
        [ShadowTopic::UpdateAccepted, ShadowTopic::UpdateDocuments]
    );
    assert_eq!(lamp.shadow().desired["light"], json!({"on": true, "brightness": 0.2}));
    assert_eq!(lamp.shadow().reported["light"]["brightness"], json!(0.2));
    assert!(lamp.shadow().delta().is_empty());
}

#[test]
fn invalid_desired_is_rejected_naming_the_field_and_changes_nothing() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    let before = lamp.shadow().clone();
    let messages = request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"desired": {"light": {"brightness": 2}}}, "clientToken": "x"}),
        t0,
    );
    assert_eq!(topics(&messages), [ShadowTopic::UpdateRejected]);
    assert_eq!(messages[0].payload["code"], json!(400));
    assert!(
        messages[0].payload["message"]
            .as_str()
            .unwrap()
            .starts_with("desired.light.brightness")
    );
    assert_eq!(lamp.shadow(), &before);
    assert_eq!(lamp.light(), LightState::default());
}

#[test]
fn settings_are_mirrored_and_alarm_deletion_follows() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"desired": {"mode": "manual", "alarms": {"a": {"time": "07:00"}, "b": {"time": "08:00"}}}}}),
        t0,
    );
    assert_eq!(lamp.shadow().reported["alarms"], lamp.shadow().desired["alarms"]);
    request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"desired": {"alarms": {"a": null}}}}),
        t0,
    );
    assert_eq!(lamp.shadow().reported["alarms"], json!({"b": {"time": "08:00"}}));
    assert!(lamp.shadow().delta().is_empty());
    // The last one too, though `desired.alarms` then disappears.
    request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"desired": {"alarms": {"b": null}}}}),
        t0,
    );
    assert!(
        lamp.shadow().reported.get("alarms").is_none(),
        "{:?}",
        lamp.shadow().reported
    );
    assert!(lamp.shadow().delta().is_empty());
}

#[test]
fn false_reports_from_apps_are_corrected() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"reported": {"light": {"on": false}}}}),
        t0,
    );
    assert_eq!(lamp.shadow().reported["light"]["on"], json!(true));
}

#[test]
fn transition_from_desired_becomes_the_default() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"desired": {"light": {"transition_ms": 0, "on": false}}}}),
        t0,
    );
    assert_eq!(lamp.output(t0), Rgb::OFF, "a zero transition applies at once");
    assert_eq!(lamp.shadow().reported["light"]["transition_ms"], json!(0));
}

#[test]
fn as_a_cloud_client_it_fetches_follows_deltas_and_refetches_when_refused() {
    let t0 = Instant::now();
    let identity = Identity {
        thing: "lamp1".into(),
        firmware: "1".into(),
        role: ShadowRole::Client,
    };
    let mut lamp = Lamp::new(Saved::default(), identity, Duration::ZERO, Now::at(t0, 0));
    let hello = lamp.connected(10, 2);
    assert_eq!(topics(&hello), [ShadowTopic::Get]);
    let token = hello[0].payload["clientToken"].as_str().unwrap().to_owned();

    // No document in the cloud yet: the lamp reports everything.
    let missing = json!({"code": 404, "message": "No shadow exists with name: 'lamp1'", "clientToken": token});
    let report = lamp.cloud_message(ShadowTopic::GetRejected, missing.to_string().as_bytes(), t0, 11);
    assert_eq!(topics(&report), [ShadowTopic::Update]);
    assert_eq!(report[0].payload["state"]["reported"]["connected_since"], json!(10));
    assert_eq!(
        report[0].payload["state"]["reported"]["broker"],
        json!(2),
        "the second broker"
    );
    assert!(report[0].payload.get("version").is_none());

    // A delta is applied and the change reported.
    let delta = json!({"state": {"light": {"brightness": 0.5}}, "version": 3});
    let report = lamp.cloud_message(ShadowTopic::UpdateDelta, delta.to_string().as_bytes(), t0, 12);
    assert_eq!(lamp.light().brightness.get(), 0.5);
    assert_eq!(
        report[0].payload["state"]["reported"]["light"],
        json!({"brightness": 0.5})
    );

    // A delta the schema refuses changes nothing and reports nothing.
    let bad = json!({"state": {"light": {"brightness": 5}}, "version": 4});
    assert!(
        lamp.cloud_message(ShadowTopic::UpdateDelta, bad.to_string().as_bytes(), t0, 13)
            .is_empty()
    );
    assert_eq!(lamp.light().brightness.get(), 0.5);

    // One of its own updates refused: fetch again. Someone else's: not its business.
    let own = report[0].payload["clientToken"].clone();
    let refused = json!({"code": 409, "message": "Version conflict", "clientToken": own});
    let again = lamp.cloud_message(ShadowTopic::UpdateRejected, refused.to_string().as_bytes(), t0, 14);
    assert_eq!(topics(&again), [ShadowTopic::Get]);
    let other = json!({"code": 400, "message": "Invalid JSON", "clientToken": "app-1"});
    assert!(
        lamp.cloud_message(ShadowTopic::UpdateRejected, other.to_string().as_bytes(), t0, 15)
            .is_empty()
    );

    // A local change shows at once; its report never leaves without its desired half.
    let change = LightChange {
        brightness: Some(Unit::try_from(0.1).unwrap()),
        ..Default::default()
    };
    lamp.local_change(change, None, t0, 300);
    let sent = lamp.tick(t0, 16);
    assert_eq!(topics(&sent), [ShadowTopic::Update]);
    assert_eq!(sent[0].payload["state"]["desired"]["light"], json!({"brightness": 0.1}));
    assert_eq!(
        sent[0].payload["state"]["reported"]["light"],
        json!({"brightness": 0.1})
    );
}

#[test]
fn get_and_delete_answer_on_their_topics() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    let got = request(&mut lamp, ShadowOp::Get, json!({"clientToken": "g"}), t0);
    assert_eq!(topics(&got), [ShadowTopic::GetAccepted]);
    assert_eq!(
        got[0].payload["state"]["reported"]["firmware"],
        json!({"version": "1.2.3"})
    );
    let deleted = lamp.shadow_request(ShadowOp::Delete, b"", t0, 5);
    assert_eq!(topics(&deleted), [ShadowTopic::DeleteAccepted]);
    let missing = lamp.shadow_request(ShadowOp::Get, b"", t0, 5);
    assert_eq!(topics(&missing), [ShadowTopic::GetRejected]);
    assert_eq!(
        missing[0].payload["message"],
        json!("No shadow exists with name: 'lamp1'")
    );
}

fn cloud_client(now: Instant) -> (Lamp, String) {
    let identity = Identity {
        thing: "lamp1".into(),
        firmware: "1".into(),
        role: ShadowRole::Client,
    };
    let mut lamp = Lamp::new(Saved::default(), identity, Duration::ZERO, Now::at(now, 0));
    let hello = lamp.connected(10, 1);
    let token = hello[0].payload["clientToken"].as_str().unwrap().to_owned();
    (lamp, token)
}

fn document(desired: Value, version: u64) -> Value {
    json!({"state": {"desired": desired}, "version": version})
}

#[test]
fn as_a_cloud_client_deletions_come_from_the_documents_and_delete_accepted() {
    let mut now = Instant::now();
    let (mut lamp, token) = cloud_client(now);
    let mut wall = at("2026-06-21T11:00:00Z");
    let alarms = json!({"a": {"time": "12:00"}, "b": {"time": "13:00"}});
    let got = json!({"state": {"desired": {"alarms": alarms.clone(), "timezone": "UTC"}}, "version": 4, "clientToken": token});
    lamp.cloud_message(ShadowTopic::GetAccepted, got.to_string().as_bytes(), now, wall);
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert_eq!(lamp.shadow().reported["alarms"], alarms);

    // AWS sends no delta for a deletion; the documents show it, whoever asked for it.
    let cloud = |lamp: &mut Lamp, topic, doc: Value, now, wall| {
        lamp.cloud_message(topic, doc.to_string().as_bytes(), now, wall)
    };
    let documents = json!({
        "previous": document(json!({"alarms": alarms.clone(), "timezone": "UTC"}), 5),
        "current": document(json!({"alarms": {"b": {"time": "13:00"}}, "timezone": "UTC"}), 6),
    });
    let sent = cloud(&mut lamp, ShadowTopic::UpdateDocuments, documents, now, wall);
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert_eq!(lamp.shadow().reported["alarms"], json!({"b": {"time": "13:00"}}));
    assert_eq!(sent[0].payload["state"]["reported"]["alarms"], json!({"a": null}));
    // The last alarm, and the zone; the lamp's own reports change nothing in desired.
    let documents = json!({
        "previous": document(json!({"alarms": {"b": {"time": "13:00"}}, "timezone": "UTC"}), 7),
        "current": {"state": {"reported": {"x": 1}}, "version": 8},
    });
    cloud(&mut lamp, ShadowTopic::UpdateDocuments, documents, now, wall);
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert!(lamp.shadow().desired.is_empty());
    for key in ["alarms", "timezone"] {
        assert!(lamp.shadow().reported.get(key).is_none(), "{key}");
    }
    assert_eq!(lamp.shadow().reported["alarm"], json!({"state": "idle"}));

    // A delete of the cloud's document ends the settings; the lamp reports everything anew.
    let got = json!({"state": {"desired": {"alarms": alarms.clone()}}, "version": 9, "clientToken": token});
    cloud(&mut lamp, ShadowTopic::GetAccepted, got, now, wall);
    run_for(&mut lamp, &mut now, &mut wall, 1);
    // A stale copy of an older document (redelivered, say) replays nothing.
    let stale = json!({
        "previous": document(json!({"alarms": alarms.clone()}), 5),
        "current": document(json!({"alarms": {"b": {"time": "13:00"}}}), 6),
    });
    cloud(&mut lamp, ShadowTopic::UpdateDocuments, stale, now, wall);
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert_eq!(lamp.shadow().reported["alarms"], alarms);
    let sent = cloud(
        &mut lamp,
        ShadowTopic::DeleteAccepted,
        json!({"version": 9, "timestamp": wall}),
        now,
        wall,
    );
    assert_eq!(topics(&sent), [ShadowTopic::Update]);
    assert!(
        sent[0].payload["state"]["reported"]["firmware"].is_object(),
        "a full report"
    );
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert!(lamp.shadow().reported.get("alarms").is_none());
    assert!(lamp.scheduler.alarms().report(lamp.wall).get("next").is_none());

    // Deleted while the lamp was away: the fetched document has them only in a stale
    // `reported`, which is not what the lamp is asked to do.
    let got = json!({"state": {"desired": {"alarms": alarms.clone()}}, "version": 12, "clientToken": token});
    cloud(&mut lamp, ShadowTopic::GetAccepted, got, now, wall);
    run_for(&mut lamp, &mut now, &mut wall, 1);
    let got = json!({"state": {"reported": {"alarms": alarms.clone()}}, "version": 14, "clientToken": token});
    let sent = cloud(&mut lamp, ShadowTopic::GetAccepted, got, now, wall);
    assert_eq!(sent[0].payload["state"]["reported"].get("alarms"), Some(&Value::Null));
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert!(lamp.shadow().reported.get("alarms").is_none());
    assert_eq!(lamp.shadow().reported["alarm"], json!({"state": "idle"}));
}

#[test]
fn as_a_cloud_client_a_new_document_gets_the_settings_the_lamp_keeps() {
    let now = Instant::now();
    let identity = Identity {
        thing: "lamp1".into(),
        firmware: "1".into(),
        role: ShadowRole::Client,
    };
    // A lamp that kept its own shadow before (`shadow.service = "device"`).
    let shadow = Shadow {
        desired: json!({"alarms": {"a": {"time": "07:00"}}, "light": {"on": true}})
            .as_object()
            .unwrap()
            .clone(),
        ..Shadow::default()
    };
    let mut lamp = Lamp::new(
        Saved {
            shadow: Arc::new(shadow),
            ..Saved::default()
        },
        identity,
        Duration::ZERO,
        Now::at(now, 0),
    );
    let hello = lamp.connected(10, 1);
    let token = hello[0].payload["clientToken"].clone();
    let missing = json!({"code": 404, "message": "No shadow exists with name: 'lamp1'", "clientToken": token});
    let sent = lamp.cloud_message(ShadowTopic::GetRejected, missing.to_string().as_bytes(), now, 11);
    assert_eq!(
        sent[0].payload["state"]["desired"],
        json!({"alarms": {"a": {"time": "07:00"}}}),
        "else the next fetch would delete them"
    );
    assert_eq!(
        sent[0].payload["state"]["reported"]["alarms"],
        json!({"a": {"time": "07:00"}})
    );
}
