use super::*;
use crate::core::colour::state_for;
use crate::core::pairing::Owner;

/// Epoch seconds of an RFC 3339 time.
pub(super) fn at(time: &str) -> u64 {
    time.parse::<DateTime<Utc>>().unwrap().timestamp() as u64
}

/// Ticks every 100 ms of both clocks for `seconds`, as the lamp task would.
pub(super) fn run_for(lamp: &mut Lamp, now: &mut Instant, wall: &mut u64, seconds: u64) {
    for i in 0..seconds * 10 {
        *now += Duration::from_millis(100);
        lamp.tick(*now, *wall);
        if i % 10 == 9 {
            *wall += 1;
        }
    }
}

const LONDON: &str = r#"{"latitude": 51.5, "longitude": -0.12}"#;

/// A desired update that the lamp must accept.
fn desire(lamp: &mut Lamp, desired: Value, now: Instant) {
    let messages = request(lamp, ShadowOp::Update, json!({"state": {"desired": desired}}), now);
    assert_eq!(
        messages[0].topic,
        ShadowTopic::UpdateAccepted,
        "{:?}",
        messages[0].payload
    );
}

fn natural(lamp: &mut Lamp, now: Instant) {
    let place: Value = serde_json::from_str(LONDON).unwrap();
    desire(lamp, json!({"mode": "natural", "natural_light": place}), now);
}

#[test]
fn natural_light_drives_the_output_until_a_person_takes_over() {
    let mut now = Instant::now();
    let mut lamp = new_lamp(now);
    let mut wall = at("2026-06-21T12:00:00Z");
    natural(&mut lamp, now);
    // A short fade to where the sun is; a minute later the next sample aims a minute ahead.
    run_for(&mut lamp, &mut now, &mut wall, 59);
    let sky = crate::core::natural::NaturalLight::from_json(&serde_json::from_str(LONDON).unwrap()).unwrap();
    let expected = sky.output(wall_time(at("2026-06-21T12:00:00Z")));
    let shown = lamp.output(now);
    assert!(
        (shown.b - expected.b).abs() < 1e-3 && (shown.g - expected.g).abs() < 1e-3,
        "{shown:?}"
    );
    let reported = lamp.shadow().reported["output"]["b"].as_f64().unwrap();
    assert!((reported - expected.b).abs() < 1e-3, "{reported}");

    // The person dims the lamp: the colour stays the sun's, the mode becomes manual.
    let dim = LightChange {
        brightness: Some(Unit::try_from(0.3).unwrap()),
        ..Default::default()
    };
    lamp.local_change(dim, Some(Duration::ZERO), now, wall);
    run_for(&mut lamp, &mut now, &mut wall, 1);
    let light = lamp.light();
    let (hue, saturation, _) = state_for(expected);
    assert!((light.hue.get() - hue).abs() < 1e-4 && (light.saturation.get() - saturation).abs() < 1e-4);
    assert_eq!(light.brightness.get(), 0.3);
    assert_eq!(lamp.shadow().desired["mode"], json!("manual"));
    assert_eq!(lamp.shadow().reported["mode"], json!("manual"));
    assert_eq!(lamp.shadow().desired["light"]["brightness"], json!(0.3));
    // And stays where the person put it as the sun moves.
    let shown = lamp.output(now);
    wall += 3600;
    run_for(&mut lamp, &mut now, &mut wall, 61);
    assert_eq!(lamp.output(now), shown);
}

#[test]
fn natural_light_needs_a_place_and_a_light_change_with_it_does_not_end_it() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    let refused = request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"desired": {"mode": "natural"}}}),
        t0,
    );
    assert_eq!(refused[0].topic, ShadowTopic::UpdateRejected);
    let place: Value = serde_json::from_str(LONDON).unwrap();
    let both = json!({"state": {"desired": {"mode": "natural", "natural_light": place, "light": {"brightness": 0.2}}}});
    request(&mut lamp, ShadowOp::Update, both, t0);
    lamp.tick(t0, at("2026-06-21T12:00:00Z"));
    assert_eq!(lamp.shadow().reported["mode"], json!("natural"));
    assert_eq!(lamp.light().brightness.get(), 0.2, "kept for when natural light ends");
}

fn alarm_at_noon(lamp: &mut Lamp, now: Instant, spec: Value) {
    desire(lamp, json!({"alarms": {"noon": spec}}), now);
}

#[test]
fn an_alarm_overrides_natural_light_and_gives_it_back() {
    let mut now = Instant::now();
    let mut lamp = new_lamp(now);
    let mut wall = at("2026-06-21T11:59:00Z");
    natural(&mut lamp, now);
    alarm_at_noon(
        &mut lamp,
        now,
        json!({"time": "12:00", "action": "blink", "days": ["sun"]}),
    );
    run_for(&mut lamp, &mut now, &mut wall, 60);
    let daylight = lamp.output(now);
    assert_eq!(
        lamp.shadow().reported["alarm"]["next"]["at"],
        json!("2026-06-21T12:00:00+00:00")
    );

    wall = at("2026-06-21T12:00:00Z");
    lamp.tick(now, wall);
    assert_eq!(lamp.output(now), Rgb { r: 1.0, g: 1.0, b: 1.0 }, "the first flash");
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert_eq!(lamp.shadow().reported["alarm"]["state"], json!("ringing"));
    assert_eq!(lamp.shadow().reported["alarm"]["ringing"]["id"], json!("noon"));
    let events = lamp.take_events();
    assert!(events.iter().any(|e| e["type"] == json!("alarm_ringing")), "{events:?}");

    lamp.alarm_command(AlarmCommand::Dismiss, now, wall).unwrap();
    run_for(&mut lamp, &mut now, &mut wall, 60);
    let back = lamp.output(now);
    assert!((back.b - daylight.b).abs() < 0.01, "{back:?} {daylight:?}");
    assert_eq!(lamp.shadow().reported["mode"], json!("natural"));
    assert_eq!(lamp.shadow().reported["alarm"]["state"], json!("idle"));
    assert_eq!(
        lamp.alarm_command(AlarmCommand::Snooze, now, wall),
        Err(Refusal::Alarm(crate::core::alarm::NotRinging::Snooze))
    );
}

#[test]
fn a_light_change_while_ringing_dismisses_and_a_one_off_alarm_disables_itself() {
    let mut now = Instant::now();
    let mut lamp = new_lamp(now);
    let mut wall = at("2026-06-21T11:59:00Z");
    alarm_at_noon(&mut lamp, now, json!({"time": "12:00", "action": "blink"}));
    run_for(&mut lamp, &mut now, &mut wall, 1);
    wall = at("2026-06-21T12:00:00Z");
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert!(lamp.scheduler.alarms().is_ringing());
    let off = LightChange {
        on: Some(false),
        ..Default::default()
    };
    lamp.local_change(off, None, now, wall);
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert!(!lamp.scheduler.alarms().is_ringing());
    assert_eq!(lamp.output(now), Rgb::OFF);
    assert_eq!(lamp.shadow().desired["alarms"]["noon"]["enabled"], json!(false));
    assert_eq!(lamp.shadow().reported["alarms"]["noon"]["enabled"], json!(false));
    let events = lamp.take_events();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == json!("alarm_dismissed") && e["how"] == json!("manual")),
        "{events:?}"
    );
}

#[test]
fn snooze_gives_the_light_back_and_the_alarm_rings_again() {
    let mut now = Instant::now();
    let mut lamp = new_lamp(now);
    let mut wall = at("2026-06-21T12:00:00Z");
    let before = lamp.output(now);
    alarm_at_noon(
        &mut lamp,
        now,
        json!({"time": "12:10", "action": "sunrise", "snooze_minutes": 1, "brightness": 0.5}),
    );
    // Set ten minutes into its ramp: it starts half-way, deep-warm and dim.
    lamp.tick(now, wall);
    run_for(&mut lamp, &mut now, &mut wall, 6);
    let rising = lamp.output(now);
    assert!(
        rising.r > rising.g && rising.g > rising.b && rising.r < before.r,
        "{rising:?}"
    );
    lamp.alarm_command(AlarmCommand::Snooze, now, wall).unwrap();
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert_eq!(lamp.output(now), before);
    assert_eq!(lamp.shadow().reported["alarm"]["state"], json!("snoozed"));
    wall += 60;
    run_for(&mut lamp, &mut now, &mut wall, 2);
    assert_eq!(lamp.shadow().reported["alarm"]["state"], json!("ringing"));
    assert_ne!(lamp.output(now), before);
}

#[test]
fn nothing_rings_while_the_clock_is_unsynchronised_and_that_is_reported() {
    let mut now = Instant::now();
    let mut lamp = new_lamp(now);
    let mut wall = at("2026-06-21T11:59:00Z");
    let unsynchronised = ClockStatus {
        synchronised: false,
        require_sync: true,
    };
    lamp.set_clock(unsynchronised, wall);
    alarm_at_noon(&mut lamp, now, json!({"time": "12:00", "action": "blink"}));
    run_for(&mut lamp, &mut now, &mut wall, 1);
    wall = at("2026-06-21T12:00:00Z");
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert!(!lamp.scheduler.alarms().is_ringing());
    assert_eq!(
        lamp.shadow().reported["clock"],
        json!({"synchronised": false, "require_sync": true})
    );
}

#[test]
fn pairing_is_reported_and_a_wall_clock_jump_does_not_change_a_codes_life() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    let code = lamp.request_code(&mut rng, t0, 100_000);
    assert_eq!(lamp.pairing().code, Some((code.clone(), 100_060)));
    // NTP moves the wall clock back a day and then forward a year: the code still dies
    // 60 s after it was shown, by the monotonic clock.
    lamp.tick(t0 + Duration::from_secs(30), 100_000 - 86_400);
    lamp.tick(t0 + Duration::from_secs(59), 100_000 + 365 * 86_400);
    assert!(lamp.pairing().code.is_some());
    assert_eq!(
        lamp.mono_wake(t0 + Duration::from_secs(59)),
        Some(t0 + Duration::from_secs(60))
    );
    lamp.tick(t0 + Duration::from_secs(60), 100_000);
    assert_eq!(lamp.pairing().code, None);
    let alice = Owner::new("alice", "Alice").unwrap();
    let late = lamp.associate(&code, alice.clone(), t0 + Duration::from_secs(60), 1060);
    assert!(late.unwrap_err().to_string().starts_with("the code has expired"));

    let code = lamp.request_code(&mut rng, t0 + Duration::from_secs(61), 1061);
    assert_eq!(
        lamp.associate(&code, alice.clone(), t0 + Duration::from_secs(62), 1062),
        Ok(alice.clone())
    );
    lamp.tick(t0 + Duration::from_secs(62), 1062);
    assert_eq!(lamp.shadow().reported["owner"], json!({"id": "alice", "name": "Alice"}));
    assert_eq!(lamp.memory().owner, Some(alice.clone()));
    let events = lamp.take_events();
    assert!(events.iter().any(|e| e["type"] == json!("pairing_refused")));
    assert!(
        events
            .iter()
            .any(|e| e["type"] == json!("paired") && e["owner"] == json!("alice"))
    );

    assert_eq!(lamp.unpair(UnpairSource::Cloud, 1063), Ok(alice));
    lamp.tick(t0 + Duration::from_secs(63), 1063);
    assert!(lamp.shadow().reported.get("owner").is_none());
    assert_eq!(lamp.unpair(UnpairSource::Cloud, 1064), Err(Refusal::NotPaired));
}

/// Sets a blink alarm at noon on Sundays and runs the lamp until it rings.
fn ringing_at_noon(lamp: &mut Lamp, now: &mut Instant, wall: &mut u64) {
    alarm_at_noon(lamp, *now, json!({"time": "12:00", "action": "blink", "days": ["sun"]}));
    *wall = at("2026-06-21T11:59:59Z");
    run_for(lamp, now, wall, 2);
    assert_eq!(lamp.shadow().reported["alarm"]["state"], json!("ringing"));
    assert!(lamp.shadow().reported["alarms"].get("noon").is_some());
}

/// The alarm is gone from the lamp and from `reported`, and nothing is due.
fn assert_alarm_gone(lamp: &mut Lamp, now: &mut Instant, wall: &mut u64, how: &str) {
    run_for(lamp, now, wall, 1);
    assert!(!lamp.scheduler.alarms().is_ringing(), "{how}: still ringing");
    let reported = &lamp.shadow().reported;
    assert!(reported.get("alarms").is_none(), "{how}: {:?}", reported.get("alarms"));
    assert_eq!(reported["alarm"], json!({"state": "idle"}), "{how}");
    assert_eq!(
        lamp.output(*now),
        Rgb { r: 1.0, g: 1.0, b: 1.0 },
        "{how}: the light is back"
    );
    assert_eq!(
        lamp.scheduler.next_wake_wall(*now, lamp.wall),
        None,
        "{how}: nothing scheduled"
    );
}

#[test]
fn every_way_of_deleting_a_ringing_alarm_stops_it_and_drops_it_from_reported() {
    type Deletion = fn(&mut Lamp, Instant, u64) -> Vec<ShadowMessage>;
    let cases: [(&str, Deletion); 5] = [
        ("the alarm deleted", |d, now, wall| {
            let payload = json!({"state": {"desired": {"alarms": {"noon": null}}}});
            d.shadow_request(ShadowOp::Update, payload.to_string().as_bytes(), now, wall)
        }),
        ("all alarms deleted", |d, now, wall| {
            let payload = json!({"state": {"desired": {"alarms": null}}});
            d.shadow_request(ShadowOp::Update, payload.to_string().as_bytes(), now, wall)
        }),
        ("desired cleared", |d, now, wall| {
            d.shadow_request(ShadowOp::Update, br#"{"state": {"desired": null}}"#, now, wall)
        }),
        ("the shadow deleted", |d, now, wall| {
            d.shadow_request(ShadowOp::Delete, b"", now, wall)
        }),
        ("deleted on the touchscreen", |d, now, wall| {
            let patch = json!({"alarms": {"noon": null}}).as_object().unwrap().clone();
            d.local_settings(patch, now, wall).unwrap()
        }),
    ];
    for (how, delete) in cases {
        let mut now = Instant::now();
        let mut lamp = new_lamp(now);
        let mut wall = 0;
        ringing_at_noon(&mut lamp, &mut now, &mut wall);
        let answer = delete(&mut lamp, now, wall);
        assert!(
            answer.iter().all(|m| m.topic != ShadowTopic::UpdateRejected),
            "{how}: {answer:?}"
        );
        assert_alarm_gone(&mut lamp, &mut now, &mut wall, how);
        let events = lamp.take_events();
        assert!(
            events
                .iter()
                .any(|e| e["type"] == json!("alarm_dismissed") && e["how"] == json!("removed")),
            "{how}: {events:?}"
        );
    }
}

#[test]
fn deleting_the_mode_natural_light_or_the_zone_takes_effect() {
    for deletion in [
        json!({"mode": null}),
        json!({"mode": null, "natural_light": null}),
        json!(null),
    ] {
        let mut now = Instant::now();
        let mut lamp = new_lamp(now);
        let mut wall = at("2026-11-27T02:00:00Z");
        let dark_night = json!({"latitude": 51.5, "longitude": -0.12, "night": "off"});
        desire(&mut lamp, json!({"mode": "natural", "natural_light": dark_night}), now);
        run_for(&mut lamp, &mut now, &mut wall, 3);
        assert_eq!(lamp.output(now), Rgb::OFF, "night in London");
        desire(&mut lamp, deletion.clone(), now);
        run_for(&mut lamp, &mut now, &mut wall, 3);
        assert_eq!(
            lamp.output(now),
            Rgb { r: 1.0, g: 1.0, b: 1.0 },
            "{deletion}: the person's light is back"
        );
        assert!(lamp.shadow().reported.get("mode").is_none(), "{deletion}");
    }
    // `natural_light` alone cannot go while natural light is on: a clear refusal.
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    natural(&mut lamp, t0);
    let refused = request(
        &mut lamp,
        ShadowOp::Update,
        json!({"state": {"desired": {"natural_light": null}}}),
        t0,
    );
    assert_eq!(refused[0].topic, ShadowTopic::UpdateRejected);

    let mut now = Instant::now();
    let mut lamp = new_lamp(now);
    let mut wall = at("2026-06-21T09:00:00Z");
    desire(&mut lamp, json!({"timezone": "Europe/Paris"}), now);
    alarm_at_noon(&mut lamp, now, json!({"time": "12:00"}));
    run_for(&mut lamp, &mut now, &mut wall, 1);
    let next = |d: &Lamp| d.shadow().reported["alarm"]["next"]["at"].clone();
    assert_eq!(next(&lamp), json!("2026-06-21T12:00:00+02:00"));
    desire(&mut lamp, json!({"timezone": null}), now);
    run_for(&mut lamp, &mut now, &mut wall, 1);
    assert_eq!(next(&lamp), json!("2026-06-21T12:00:00+00:00"), "back to UTC");
    assert!(lamp.shadow().reported.get("timezone").is_none());
}

#[test]
fn a_shadow_delete_without_settings_leaves_the_shadow_deleted() {
    let t0 = Instant::now();
    let mut lamp = new_lamp(t0);
    lamp.shadow_request(ShadowOp::Delete, b"", t0, 5);
    assert!(lamp.tick(t0, 6).is_empty());
    assert!(!lamp.shadow().exists);
}
