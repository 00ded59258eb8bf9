use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::core::colour::Rgb;

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn alarm(id: &str, spec: Value) -> Alarm {
    Alarm::from_json(id, &spec)
}

fn zone(name: &str) -> Tz {
    name.parse().unwrap()
}

#[test]
fn next_occurrence_across_zones_and_dst() {
    // (zone, time, days, after, expected)
    let cases = [
        // Spring-forward: 02:30 does not exist; the first valid instant is 03:00 EDT.
        (
            "America/New_York",
            "02:30",
            vec![],
            "2026-03-08T05:00:00Z",
            "2026-03-08T07:00:00Z",
        ),
        // Fall-back: 01:30 happens twice; it rings at the first, and next on the next day.
        (
            "America/New_York",
            "01:30",
            vec![],
            "2026-11-01T04:00:00Z",
            "2026-11-01T05:30:00Z",
        ),
        (
            "America/New_York",
            "01:30",
            vec![],
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z",
        ),
        (
            "Europe/London",
            "01:15",
            vec![],
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
        ),
        (
            "Europe/London",
            "01:30",
            vec![],
            "2026-10-24T23:00:00Z",
            "2026-10-25T00:30:00Z",
        ),
        (
            "Europe/London",
            "01:30",
            vec![],
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
        ),
        // Lord Howe moves its clocks by 30 minutes.
        (
            "Australia/Lord_Howe",
            "02:15",
            vec![],
            "2026-10-03T12:00:00Z",
            "2026-10-03T15:30:00Z",
        ),
        (
            "Australia/Lord_Howe",
            "01:45",
            vec![],
            "2026-04-04T12:00:00Z",
            "2026-04-04T14:45:00Z",
        ),
        (
            "Australia/Lord_Howe",
            "01:45",
            vec![],
            "2026-04-04T14:45:00Z",
            "2026-04-05T15:15:00Z",
        ),
        // No DST at all.
        (
            "Asia/Kolkata",
            "07:00",
            vec![],
            "2026-11-26T12:00:00Z",
            "2026-11-27T01:30:00Z",
        ),
        (
            "Asia/Kolkata",
            "07:00",
            vec![],
            "2026-11-27T01:29:59Z",
            "2026-11-27T01:30:00Z",
        ),
        // Weekdays: asked on Thursday the 26th after 07:00, a Mon/Fri alarm rings Friday.
        (
            "Europe/London",
            "07:00",
            vec!["mon", "fri"],
            "2026-11-26T08:00:00Z",
            "2026-11-27T07:00:00Z",
        ),
        (
            "Europe/London",
            "07:00",
            vec!["mon"],
            "2026-11-26T08:00:00Z",
            "2026-11-30T07:00:00Z",
        ),
    ];
    for (tz, time, days, after, expected) in cases {
        let a = alarm("a", json!({"time": time, "days": days, "timezone": tz}));
        assert_eq!(
            a.next_after(utc(after), Tz::UTC),
            Some(utc(expected)),
            "{tz} {time} after {after}"
        );
    }
    // Without its own zone an alarm follows the lamp's.
    let lamp_zone = alarm("a", json!({"time": "07:00"}));
    assert_eq!(
        lamp_zone.next_after(utc("2026-11-26T08:00:00Z"), zone("America/New_York")),
        Some(utc("2026-11-26T12:00:00Z"))
    );
}

struct Run {
    clock: AlarmClock,
    start: Instant,
    origin: DateTime<Utc>,
    events: Vec<(DateTime<Utc>, AlarmEvent)>,
}

impl Run {
    fn new(alarms: Vec<Alarm>, lamp_zone: &str, at: &str) -> Run {
        let origin = utc(at);
        let mut clock = AlarmClock::new(AlarmMemory::default(), true);
        let events = clock.configure(alarms, zone(lamp_zone), origin);
        assert!(events.is_empty());
        Run {
            clock,
            start: Instant::now(),
            origin,
            events: Vec::new(),
        }
    }

    fn mono(&self, wall: DateTime<Utc>) -> Instant {
        self.start + (wall - self.origin).to_std().unwrap_or_default()
    }

    fn tick(&mut self, at: &str) -> Vec<AlarmEvent> {
        self.tick_at(utc(at))
    }

    fn tick_at(&mut self, wall: DateTime<Utc>) -> Vec<AlarmEvent> {
        let events = self.clock.tick(self.mono(wall), wall);
        self.events.extend(events.iter().map(|e| (wall, e.clone())));
        events
    }

    fn ringing_ids(events: &[AlarmEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                AlarmEvent::Ringing { id } => Some(id.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_week_of_alarms_minute_by_minute() {
    let weekday = alarm(
        "work",
        json!({"time": "07:00", "days": ["mon", "tue", "wed", "thu", "fri"], "action": "blink", "ring_minutes": 10}),
    );
    let weekend = alarm(
        "lie-in",
        json!({"time": "09:30", "days": ["sat", "sun"], "action": "sunrise", "ramp_minutes": 30}),
    );
    // Monday 2026-11-23 00:00 in London, a week of minutes.
    let mut run = Run::new(vec![weekday, weekend], "Europe/London", "2026-11-23T00:00:00Z");
    for minute in 0..7 * 24 * 60 {
        run.tick_at(utc("2026-11-23T00:00:00Z") + chrono::Duration::minutes(minute));
    }
    let rings: Vec<(String, String)> = run
        .events
        .iter()
        .filter_map(|(at, e)| match e {
            AlarmEvent::Ringing { id } => Some((at.format("%a %H:%M").to_string(), id.clone())),
            _ => None,
        })
        .collect();
    let expected = [
        ("Mon 07:00", "work"),
        ("Tue 07:00", "work"),
        ("Wed 07:00", "work"),
        ("Thu 07:00", "work"),
        ("Fri 07:00", "work"),
        ("Sat 09:00", "lie-in"),
        ("Sun 09:00", "lie-in"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(rings, expected);
    let auto_stops = run
        .events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                AlarmEvent::Dismissed {
                    how: Dismissal::Auto,
                    ..
                }
            )
        })
        .count();
    assert_eq!(auto_stops, 7);
    assert!(!run.events.iter().any(|(_, e)| matches!(e, AlarmEvent::Missed { .. })));
}

#[test]
fn a_clock_jump_from_1970_rings_nothing_it_skipped() {
    let daily = alarm("daily", json!({"time": "07:00", "action": "blink"}));
    let mut run = Run::new(vec![daily], "UTC", "1970-01-01T00:00:10Z");
    assert!(run.tick("1970-01-01T00:00:11Z").is_empty());
    // NTP sets the clock a minute after the alarm: within the grace period, but skipped.
    run.clock.clock_stepped(utc("2026-11-26T07:01:00Z"));
    assert!(run.tick("2026-11-26T07:01:00Z").is_empty());
    assert!(run.clock.report(utc("2026-11-26T07:01:00Z"))["next"]["at"] == json!("2026-11-27T07:00:00+00:00"));
    // The next day it rings as usual.
    assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T07:00:00Z")), ["daily"]);
}

#[test]
fn missed_by_a_restart_rings_once_within_grace_and_not_after() {
    let daily = alarm("daily", json!({"time": "07:00", "action": "blink"}));
    let mut run = Run::new(vec![daily.clone()], "UTC", "2026-11-26T06:58:00Z");
    run.tick("2026-11-26T06:58:00Z");
    // The lamp restarts across 07:00 and is back at 07:03 with what it had saved.
    let memory = run.clock.memory().clone();
    let mut restarted = AlarmClock::new(memory.clone(), true);
    restarted.configure(vec![daily.clone()], Tz::UTC, utc("2026-11-26T07:03:00Z"));
    let now = Instant::now();
    let first = restarted.tick(now, utc("2026-11-26T07:03:00Z"));
    assert_eq!(Run::ringing_ids(&first), ["daily"]);
    // Once only, even across another restart.
    let mut again = AlarmClock::new(restarted.memory().clone(), true);
    again.configure(vec![daily.clone()], Tz::UTC, utc("2026-11-26T07:04:00Z"));
    assert!(Run::ringing_ids(&again.tick(now, utc("2026-11-26T07:04:00Z"))).is_empty());
    // Back only at 07:20: missed, reported, not rung.
    let mut late = AlarmClock::new(memory, true);
    late.configure(vec![daily], Tz::UTC, utc("2026-11-26T07:20:00Z"));
    let events = late.tick(now, utc("2026-11-26T07:20:00Z"));
    assert_eq!(
        events,
        [AlarmEvent::Missed {
            id: "daily".into(),
            at: utc("2026-11-26T07:00:00Z")
        }]
    );
}

#[test]
fn nothing_rings_on_an_untrusted_clock_nor_for_what_it_missed() {
    let daily = alarm("daily", json!({"time": "07:00", "action": "blink"}));
    let mut clock = AlarmClock::new(AlarmMemory::default(), false);
    clock.configure(vec![daily], Tz::UTC, utc("2026-11-26T06:00:00Z"));
    let now = Instant::now();
    assert!(clock.tick(now, utc("2026-11-26T07:00:00Z")).is_empty());
    assert_eq!(clock.next_wake(now, utc("2026-11-26T07:00:00Z")), (None, None));
    clock.set_trusted(true, utc("2026-11-26T07:02:00Z"));
    assert!(clock.tick(now, utc("2026-11-26T07:02:00Z")).is_empty());
    assert_eq!(
        clock.next_wake(now, utc("2026-11-26T07:02:00Z")).1,
        Some(utc("2026-11-27T07:00:00Z"))
    );
}

#[test]
fn snooze_rings_again_and_dismiss_ends() {
    let a = alarm(
        "a",
        json!({"time": "07:00", "action": "blink", "snooze_minutes": 5, "days": ["fri"]}),
    );
    let mut run = Run::new(vec![a], "UTC", "2026-11-27T06:00:00Z");
    assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T07:00:00Z")), ["a"]);
    let mono = run.mono(utc("2026-11-27T07:00:00Z"));
    assert!(run.clock.output(mono, utc("2026-11-27T07:00:00Z")).is_some());
    let snoozed = run.clock.snooze(utc("2026-11-27T07:01:00Z")).unwrap();
    assert_eq!(
        snoozed,
        [AlarmEvent::Snoozed {
            ids: vec!["a".into()],
            until: utc("2026-11-27T07:06:00Z")
        }]
    );
    assert_eq!(run.clock.output(mono, utc("2026-11-27T07:02:00Z")), None);
    let report = run.clock.report(utc("2026-11-27T07:02:00Z"));
    assert_eq!(report["snoozed_until"], json!("2026-11-27T07:06:00+00:00"));
    assert!(run.tick("2026-11-27T07:05:59Z").is_empty());
    assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T07:06:00Z")), ["a"]);
    assert!(run.clock.snooze(utc("2026-11-27T07:07:00Z")).is_ok());
    assert!(
        run.clock.snooze(utc("2026-11-27T07:07:00Z")).is_err(),
        "already snoozed"
    );
    let dismissed = run.clock.dismiss(Dismissal::User).unwrap();
    assert_eq!(
        dismissed,
        [AlarmEvent::Dismissed {
            ids: vec!["a".into()],
            how: Dismissal::User
        }]
    );
    assert!(run.clock.dismiss(Dismissal::User).is_err());
    let report = run.clock.report(utc("2026-11-27T07:08:00Z"));
    assert_eq!((report["state"].as_str(), report.get("ringing")), (Some("idle"), None));
}

#[test]
fn alarms_in_the_same_minute_ring_once_and_one_due_while_snoozed_merges() {
    let a = alarm("a", json!({"time": "07:00", "action": "blink"}));
    let b = alarm("b", json!({"time": "07:00", "action": "blink"}));
    let c = alarm("c", json!({"time": "07:05", "action": "blink"}));
    let mut run = Run::new(vec![a, b, c], "UTC", "2026-11-27T06:00:00Z");
    let events = run.tick("2026-11-27T07:00:00Z");
    assert_eq!(
        events,
        [
            AlarmEvent::Ringing { id: "a".into() },
            AlarmEvent::Merged {
                id: "b".into(),
                into: "a".into()
            }
        ]
    );
    run.clock.snooze(utc("2026-11-27T07:01:00Z")).unwrap();
    let events = run.tick("2026-11-27T07:05:00Z");
    assert_eq!(
        events,
        [AlarmEvent::Merged {
            id: "c".into(),
            into: "a".into()
        }]
    );
    assert!(run.clock.is_ringing());
    assert_eq!(run.clock.active().unwrap().ids, ["c", "a", "b"]);
    // One dismiss ends all three.
    let ended = run.clock.dismiss(Dismissal::User).unwrap();
    assert!(matches!(&ended[0], AlarmEvent::Dismissed { ids, .. } if ids.len() == 3));
}

#[test]
fn deleting_or_disabling_a_ringing_alarm_stops_it_and_one_offs_disable_themselves() {
    let once = alarm("once", json!({"time": "07:00", "action": "blink"}));
    let mut run = Run::new(vec![once.clone()], "UTC", "2026-11-27T06:00:00Z");
    run.tick("2026-11-27T07:00:00Z");
    let ended = run.clock.dismiss(Dismissal::User).unwrap();
    assert_eq!(ended[1], AlarmEvent::Disable { id: "once".into() });

    let mut run = Run::new(vec![once.clone()], "UTC", "2026-11-27T06:00:00Z");
    run.tick("2026-11-27T07:00:00Z");
    let disabled = Alarm {
        enabled: false,
        ..once.clone()
    };
    let events = run
        .clock
        .configure(vec![disabled], Tz::UTC, utc("2026-11-27T07:01:00Z"));
    assert!(matches!(
        &events[0],
        AlarmEvent::Dismissed {
            how: Dismissal::Removed,
            ..
        }
    ));

    let mut run = Run::new(vec![once], "UTC", "2026-11-27T06:00:00Z");
    run.tick("2026-11-27T07:00:00Z");
    let events = run.clock.configure(vec![], Tz::UTC, utc("2026-11-27T07:01:00Z"));
    assert!(matches!(
        &events[0],
        AlarmEvent::Dismissed {
            how: Dismissal::Removed,
            ..
        }
    ));
    assert!(run.clock.memory().settled.is_empty());
}

#[test]
fn changing_the_lamp_zone_replans() {
    let a = alarm("a", json!({"time": "07:00", "action": "blink"}));
    let mut run = Run::new(vec![a.clone()], "Europe/London", "2026-11-27T06:00:00Z");
    let wall = utc("2026-11-27T06:30:00Z");
    assert_eq!(run.clock.report(wall)["next"]["at"], json!("2026-11-27T07:00:00+00:00"));
    run.clock.configure(vec![a], zone("America/New_York"), wall);
    assert_eq!(run.clock.report(wall)["next"]["at"], json!("2026-11-27T07:00:00-05:00"));
    assert!(run.tick("2026-11-27T07:00:00Z").is_empty());
    assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T12:00:00Z")), ["a"]);
}

#[test]
fn sunrise_rises_from_dark_red_to_full_at_the_alarm_time_without_steps() {
    let a = alarm("a", json!({"time": "07:00", "action": "sunrise", "ramp_minutes": 20}));
    let mut run = Run::new(vec![a], "UTC", "2026-11-27T06:00:00Z");
    assert!(run.tick("2026-11-27T06:39:59Z").is_empty());
    assert_eq!(Run::ringing_ids(&run.tick("2026-11-27T06:40:00Z")), ["a"]);
    let start = utc("2026-11-27T06:40:00Z");
    let mut previous = Rgb::OFF;
    for second in (0..=20 * 60).step_by(5) {
        let wall = start + chrono::Duration::seconds(second);
        let (target, fade) = run.clock.output(run.mono(wall), wall).unwrap();
        if second == 0 {
            assert!(
                target.r > 0.0 && target.r < 0.01 && target.g < target.r / 10.0 && target.b == 0.0,
                "{target:?}"
            );
        }
        assert!(
            target.r >= previous.r && target.g >= previous.g,
            "rising at {second}: {target:?}"
        );
        let lightness = super::super::colour::lightness_from_luminance;
        assert!(
            lightness(target.r) - lightness(previous.r) < 0.01,
            "a visible step at {second}"
        );
        assert!(fade > Duration::ZERO);
        previous = target;
    }
    assert_eq!(previous, sunrise(1.0, 1.0));
    assert_eq!(previous.r, 1.0);
    let (wall_wake_mono, wall_wake) = run.clock.next_wake(run.mono(start), start);
    assert_eq!((wall_wake_mono, wall_wake), (None, Some(start + SUNRISE_STEP)));
}

#[test]
fn blink_flashes_three_times_then_pauses() {
    let lit: Vec<bool> = (0..20).map(|i| blink_phase(Duration::from_millis(i * 100)).0).collect();
    assert_eq!(
        lit,
        [
            true, true, false, false, true, true, false, false, true, true, false, false, false, false, false, false,
            false, false, false, false
        ]
    );
    assert_eq!(
        blink_phase(Duration::from_millis(2050)),
        (true, Duration::from_millis(150))
    );
}
