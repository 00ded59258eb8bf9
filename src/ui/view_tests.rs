use super::alarms::days_text;
use super::*;

fn example() -> ViewInput {
    ViewInput::example()
}

#[test]
fn the_clock_is_in_the_lamps_zone_in_either_format_and_blank_until_synchronised() {
    let mut input = example();
    // 12:42 UTC is 07:42 in New York.
    assert_eq!(
        (view(&input).time_text.as_str(), view(&input).meridiem.as_str()),
        ("07:42", "")
    );
    assert_eq!(view(&input).date_text, "Thursday 26 November");
    input.prefs.clock_24h = false;
    input.now = "2026-11-26T21:05:00Z".parse().unwrap();
    assert_eq!(
        (view(&input).time_text.as_str(), view(&input).meridiem.as_str()),
        ("4:05", "PM")
    );
    input.desired.insert("timezone".into(), json!("Asia/Kolkata"));
    assert_eq!(view(&input).time_text, "2:35");
    input.clock_synchronised = false;
    assert_eq!(view(&input).time_text, "--:--");
    assert_eq!(view(&input).meridiem, "");
}

#[test]
fn next_alarm_snooze_and_ringing_read_from_the_report() {
    let mut input = example();
    assert_eq!(view(&input).next_alarm_text, "Alarm: Tomorrow 06:45 · Work");
    input.reported["alarm"] =
        json!({"state": "idle", "next": {"id": "w", "label": "", "at": "2026-12-01T09:00:00-05:00"}});
    assert_eq!(view(&input).next_alarm_text, "Alarm: Tuesday 09:00");
    input.reported["alarm"] = json!({"state": "idle"});
    assert_eq!(view(&input).next_alarm_text, "No alarm set");
    input.reported["alarm"] = json!({"state": "snoozed", "snoozed_until": "2026-11-27T06:54:00-05:00"});
    assert_eq!(view(&input).next_alarm_text, "Snoozed until 06:54");
    assert!(!view(&input).ringing && view(&input).snoozed);
    input.reported["alarm"] = json!({"state": "ringing", "ringing": {"label": "", "at": "2026-11-27T06:45:00-05:00"}});
    let ringing = view(&input);
    assert!(ringing.ringing);
    assert_eq!(
        (ringing.ringing_label.as_str(), ringing.ringing_time.as_str()),
        ("Alarm", "06:45")
    );
}

#[test]
fn alarms_are_listed_by_time_with_their_days_and_actions() {
    let lines = view(&example()).alarms;
    let summary: Vec<(&str, &str, &str, bool)> = lines
        .iter()
        .map(|l| {
            (
                l.time_text.as_str(),
                l.days_text.as_str(),
                l.action_text.as_str(),
                l.enabled,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("06:45", "Weekdays", "Sunrise over 30 min", true),
            ("09:00", "Weekends", "Sunrise over 45 min", true),
            ("21:30", "Once", "Blink", false),
        ]
    );
    assert_eq!(days_text(0b000_0101), "Mon, Wed");
    assert_eq!(days_text(0b111_1111), "Every day");
    // A desired change shows before the lamp reports it.
    let mut input = example();
    input.desired.insert("alarms".into(), json!({}));
    assert!(view(&input).alarms.is_empty());
}

#[test]
fn an_edited_alarm_becomes_a_patch_the_schema_accepts() {
    let line = AlarmLine {
        hour: 6,
        minute: 5,
        day_mask: 0b100_0001,
        enabled: true,
        sunrise: true,
        ramp_minutes: 25,
        ..AlarmLine::default()
    };
    let patch = alarm_patch(&line);
    assert_eq!(
        patch,
        json!({"time": "06:05", "days": ["mon", "sun"], "enabled": true, "action": "sunrise", "ramp_minutes": 25})
    );
    let desired = json!({"alarms": {"alarm-1": patch}});
    crate::core::schema::validate(desired.as_object().unwrap(), &Map::new()).unwrap();
    let blink = alarm_patch(&AlarmLine { sunrise: false, ..line });
    assert_eq!(blink.get("ramp_minutes"), None);
    let taken = json!({"alarm-1": {}, "alarm-2": {}});
    assert_eq!(new_alarm_id(taken.as_object()), "alarm-3");
    assert_eq!(new_alarm_id(None), "alarm-1");
}

#[test]
fn slider_tracks_show_what_they_would_produce() {
    let mut input = example();
    let warm = view(&input);
    // Brightness runs from black to the chosen colour at full brightness.
    assert_eq!(warm.brightness_track[0], [0, 0, 0]);
    assert_eq!(
        warm.brightness_track[4],
        duty_for(true, input.light.hue, input.light.saturation, 1.0).to_srgb8()
    );
    // Saturation starts white; the hue track goes round to where it began.
    let first = warm.saturation_track[0];
    assert!(first[0] == first[1] && first[1] == first[2]);
    assert_eq!(warm.hue_track[0], warm.hue_track[6]);
    input.light.on = false;
    let off = view(&input);
    assert_eq!(off.preview, [0, 0, 0]);
    assert_eq!(off.hue_track, warm.hue_track);
}

#[test]
fn pairing_shows_the_code_its_countdown_the_owner_or_that_it_expired() {
    let mut input = example();
    assert_eq!(view(&input).pairing_phase, PairingPhase::Paired);
    assert_eq!(view(&input).owner_name, "Ada");
    input.pairing = PairingInput {
        code: Some("ABCD-EFGH".into()),
        left_s: 29.2,
        expired: false,
    };
    let showing = view(&input);
    assert_eq!(showing.pairing_phase, PairingPhase::Showing);
    assert_eq!(
        (showing.pairing_seconds, showing.pairing_code.as_str()),
        (30, "ABCD-EFGH")
    );
    assert!((showing.pairing_left - 29.2 / 60.0).abs() < 1e-6);
    input.pairing = PairingInput {
        expired: true,
        ..PairingInput::default()
    };
    assert_eq!(view(&input).pairing_phase, PairingPhase::Expired);
    input.pairing.expired = false;
    input.reported.remove("owner");
    assert_eq!(view(&input).pairing_phase, PairingPhase::Idle);
    assert!(!view(&input).paired);
}

#[test]
fn natural_light_needs_a_place_and_draws_todays_sun() {
    let sunny = view(&example());
    assert!(sunny.natural_available);
    assert_eq!(sunny.sun_path.matches('L').count(), 24 * 60 / SUN_STEP_MINUTES as usize);
    // 07:42 local: the sun is up, low, in the morning.
    assert!((sunny.sun_now_minute - 462.0).abs() < 0.01);
    assert!(
        (0.0..20.0).contains(&sunny.sun_now_elevation),
        "{}",
        sunny.sun_now_elevation
    );
    assert_eq!(
        (sunny.sunrise_text.as_str(), sunny.sunset_text.as_str()),
        ("☀↑ 06:48", "☀↓ 16:14")
    );
    let mut input = example();
    input.reported.remove("natural_light");
    let nowhere = view(&input);
    assert!(!nowhere.natural_available && nowhere.sun_path.is_empty());
    assert!(nowhere.natural_text.contains("location"));
}

#[test]
fn status_lines_say_what_the_network_popup_said_and_more() {
    let mut input = example();
    input.cloud_connected = false;
    let line = |input: &ViewInput, name: &str| {
        let info = view(input).info;
        info.into_iter().find(|(n, _)| n == name).map(|(_, v)| v).unwrap()
    };
    assert_eq!(line(&input, "Broker"), "mqtt.example.net:8883, offline");
    input.reported.insert("broker".into(), json!(2));
    assert_eq!(line(&input, "Broker"), "mqtt2.example.net:8883, offline", "failed over");
    input.reported.insert("broker".into(), json!(3));
    assert_eq!(
        line(&input, "Broker"),
        "mqtt.example.net:8883, offline",
        "a list shortened since"
    );
    assert_eq!(line(&input, "Addresses"), "192.168.1.42, fe80::ba27:ebff:fe12:3456");
    assert_eq!(line(&input, "Time zone"), "America/New_York");
    input.status.brokers.clear();
    assert_eq!(view(&input).info[3].1, "MQTT off");
}

#[test]
fn the_screen_changes_by_itself_at_the_next_minute_or_countdown_second() {
    let mut input = example();
    input.now = "2026-11-26T12:42:15.5Z".parse().unwrap();
    assert_eq!(
        next_minute(input.now),
        "2026-11-26T12:43:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(countdown_tick(&input), None);
    input.pairing.code = Some("ABCD-EFGH".into());
    input.pairing.left_s = 41.25;
    assert_eq!(countdown_tick(&input), Some(Duration::from_millis(250)));
}
