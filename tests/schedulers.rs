//! The schedulers end to end: the real daemon and Mosquitto, an alarm set through the shadow
//! on a virtual clock running 60 times faster than time (a minute a second), snoozed and
//! dismissed over MQTT; and natural light's demo day, watched in `reported.output`.

mod common;

use common::{Broker, Client, RunningLamp, ctl_command, json};
use serde_json::{Value, json};

const PREFIX: &str = "$aws/things/lamp1/shadow/";
const DOCUMENTS: &str = "$aws/things/lamp1/shadow/update/documents";
const ALARM: &str = "lampi/lamp1/alarm";
const ALARM_RESULT: &str = "lampi/lamp1/alarm/result";

/// The next `reported` section (from `update/documents`) that `wanted` accepts.
async fn reported_until(client: &mut Client, wanted: impl Fn(&Value) -> bool) -> Value {
    let message = client
        .next_matching(DOCUMENTS, |doc| wanted(&doc["current"]["state"]["reported"]))
        .await;
    json(&message)["current"]["state"]["reported"].clone()
}

/// `lampi ctl alarm COMMAND` for lamp1, off the async threads.
async fn ctl_alarm(port: u16, command: &str) -> std::process::Output {
    let mut ctl = ctl_command(port, &["alarm", command]);
    tokio::task::spawn_blocking(move || ctl.output().unwrap())
        .await
        .unwrap()
}

fn channels(output: &Value) -> (f64, f64) {
    let channel = |c: &str| output[c].as_f64().unwrap_or(0.0);
    (channel("r"), channel("b"))
}

/// The sunrise's warm full light.
fn warm(output: &Value) -> bool {
    let (r, b) = channels(output);
    r > 0.5 && r > 2.0 * b
}

/// The person's dim blue.
fn blue(output: &Value) -> bool {
    let (r, b) = channels(output);
    b > 0.05 && r < b / 10.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_rings_is_snoozed_rings_again_and_is_dismissed() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let mut app = Client::connect(broker.port, "app").await;
    app.subscribe(DOCUMENTS).await;
    app.subscribe(ALARM_RESULT).await;
    // Its own client: `next_on` skips what it does not want.
    let mut analytics = Client::connect(broker.port, "analytics").await;
    analytics.subscribe("lampi/lamp1/events").await;
    let lamp = RunningLamp::start_with(broker.port, state.path(), |c| {
        c.clock.start = Some("2026-11-27T06:57:00Z".into());
        c.clock.speed = Some(60.0);
    })
    .await;
    reported_until(&mut app, |r| r["connected_since"].is_u64()).await;

    // A dim blue lamp, and a one-minute sunrise for 07:00 (a second of real time).
    let update = json!({"state": {"desired": {
        "light": {"on": true, "hue": 0.6667, "saturation": 1, "brightness": 0.3},
        "alarms": {"wake": {"time": "07:00", "action": "sunrise", "ramp_minutes": 1,
                            "snooze_minutes": 2, "label": "Work"}}
    }}});
    app.publish(&format!("{PREFIX}update"), update.to_string()).await;
    let reported = reported_until(&mut app, |r| r["alarm"]["next"]["id"] == json!("wake")).await;
    assert_eq!(reported["alarm"]["next"]["at"], json!("2026-11-27T07:00:00+00:00"));
    reported_until(&mut app, |r| blue(&r["output"])).await;

    // 06:59: the sunrise starts, and by 07:00 the lamp shows warm full light.
    let ringing = reported_until(&mut app, |r| r["alarm"]["state"] == json!("ringing")).await;
    assert_eq!(ringing["alarm"]["ringing"]["label"], json!("Work"));
    reported_until(&mut app, |r| warm(&r["output"])).await;

    app.publish(ALARM, r#"{"command":"snooze"}"#).await;
    let answer = json(&app.next_on(ALARM_RESULT).await);
    assert_eq!(answer, json!({"command": "snooze", "ok": true}));
    let snoozed = reported_until(&mut app, |r| r["alarm"]["state"] == json!("snoozed")).await;
    assert!(snoozed["alarm"]["snoozed_until"].is_string());
    reported_until(&mut app, |r| blue(&r["output"])).await;

    // Two virtual minutes later it rings again.
    reported_until(&mut app, |r| r["alarm"]["state"] == json!("ringing")).await;
    reported_until(&mut app, |r| warm(&r["output"])).await;

    // Dismissed from the command line this time.
    let dismissed = ctl_alarm(broker.port, "dismiss").await;
    assert!(
        dismissed.status.success(),
        "{}",
        String::from_utf8_lossy(&dismissed.stderr)
    );
    let idle = reported_until(&mut app, |r| r["alarm"]["state"] == json!("idle") && blue(&r["output"])).await;
    assert_eq!(idle["light"]["brightness"], json!(0.3), "the light is restored");

    // Nothing rings now: a refusal with its reason; a malformed command too.
    let refused = ctl_alarm(broker.port, "snooze").await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no alarm is ringing"));
    app.publish(ALARM, r#"{"command":"snooze"}"#).await;
    // (ctl's answers carry its token; this one has none.)
    assert_eq!(
        json(&app.next_matching(ALARM_RESULT, |j| j.get("token").is_none()).await),
        json!({"command": "snooze", "ok": false, "error": "no alarm is ringing"})
    );
    app.publish(ALARM, r#"{"command":"louder"}"#).await;
    let refused = json(&app.next_on(ALARM_RESULT).await);
    assert_eq!(refused["ok"], json!(false));
    assert!(refused["error"].as_str().unwrap().starts_with("command:"));

    // Analytics saw it all.
    let mut seen = Vec::new();
    while !seen.contains(&"alarm_dismissed".to_owned()) {
        let event = json(&analytics.next_on("lampi/lamp1/events").await);
        seen.push(event["type"].as_str().unwrap().to_owned());
    }
    for expected in ["alarm_ringing", "alarm_snoozed", "alarm_dismissed"] {
        assert!(seen.iter().any(|s| s == expected), "{expected} missing from {seen:?}");
    }
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natural_light_demo_mode_plays_a_whole_day() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let mut app = Client::connect(broker.port, "app").await;
    app.subscribe(DOCUMENTS).await;
    let lamp = RunningLamp::start_with(broker.port, state.path(), |c| {
        c.clock.start = Some("2026-06-21T00:00:00Z".into());
    })
    .await;
    reported_until(&mut app, |r| r["connected_since"].is_u64()).await;

    let update = json!({"state": {"desired": {"mode": "natural", "timezone": "Europe/London",
        "natural_light": {"latitude": 51.5, "longitude": -0.12, "demo_period_s": 10}}}});
    app.publish(&format!("{PREFIX}update"), update.to_string()).await;
    // Ten seconds are a day: collect the brightest channel of every reported output for 11 s.
    let mut day = Vec::new();
    let end = tokio::time::Instant::now() + std::time::Duration::from_secs(11);
    while tokio::time::Instant::now() < end {
        let reported = reported_until(&mut app, |r| r["output"].is_object()).await;
        let output = &reported["output"];
        let brightest = ["r", "g", "b"]
            .iter()
            .map(|c| output[c].as_f64().unwrap())
            .fold(0.0, f64::max);
        day.push(brightest);
    }
    assert!(day.len() >= 15, "{} reports in a demo day", day.len());
    let darkest = day.iter().cloned().fold(1.0, f64::min);
    let brightest = day.iter().cloned().fold(0.0, f64::max);
    assert!(darkest < 0.02, "night is dim: {darkest}");
    assert!(brightest > 0.95, "noon is bright: {brightest}");
    let noon = day.iter().position(|&b| b == brightest).unwrap();
    assert!(day[..noon].iter().any(|&b| b < 0.02), "dark before noon: {day:?}");
    lamp.stop().await;
}
