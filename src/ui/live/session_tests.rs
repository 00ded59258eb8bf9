use super::*;

fn brightness(v: f64) -> LightChange {
    LightChange {
        brightness: Unit::try_from(v).ok(),
        ..LightChange::default()
    }
}

#[test]
fn a_drag_sends_at_most_thirty_changes_a_second_and_always_the_last() {
    let mut throttle = Throttle::default();
    let t0 = Instant::now();
    let mut sent = Vec::new();
    // A finger at 120 events a second for one second, the lamp's loop turning at each.
    for i in 0..120 {
        let now = t0 + Duration::from_micros(8_333 * i);
        throttle.offer(brightness(i as f64 / 119.0));
        sent.extend(throttle.take(now));
    }
    assert!((29..=31).contains(&sent.len()), "{} changes", sent.len());
    let last = throttle.due().expect("the last move is still pending");
    assert!(last <= t0 + Duration::from_secs(1) + MIN_COMMAND_GAP);
    sent.extend(throttle.take(last));
    assert_eq!(sent.last().unwrap().brightness.unwrap().get(), 1.0);
    assert_eq!(throttle.due(), None);
}

#[test]
fn moves_of_different_sliders_merge_and_a_refused_send_is_kept_under_newer_moves() {
    let mut throttle = Throttle::default();
    let t0 = Instant::now();
    throttle.offer(brightness(0.5));
    let first = throttle.take(t0).unwrap();
    throttle.offer(LightChange {
        hue: Unit::try_from(0.3).ok(),
        ..LightChange::default()
    });
    throttle.offer(LightChange {
        on: Some(false),
        ..LightChange::default()
    });
    assert_eq!(throttle.take(t0 + Duration::from_millis(5)), None, "too soon");
    throttle.put_back(first);
    throttle.offer(brightness(0.7));
    let merged = throttle.take(t0 + MIN_COMMAND_GAP).unwrap();
    assert_eq!(merged.brightness.unwrap().get(), 0.7);
    assert_eq!(merged.hue.unwrap().get(), 0.3);
    assert_eq!(merged.on, Some(false));
}

#[test]
fn a_code_that_runs_out_shows_as_expired_but_one_that_was_used_does_not() {
    let (commands, _rx) = mpsc::channel(1);
    let mut screen = ScreenSession::new(commands);
    let ada = Owner {
        id: "a".into(),
        name: "Ada".into(),
    };
    let showing = |owner: Option<Owner>| PairingView {
        code: Some(("ABCD-EFGH".into(), 0)),
        expires: Some(std::time::Instant::now() + Duration::from_secs(30)),
        owner,
    };
    let gone = |owner: Option<Owner>| PairingView {
        code: None,
        expires: None,
        owner,
    };
    assert!(!screen.pairing_input(&showing(None)).expired);
    assert!(screen.pairing_input(&gone(None)).expired);
    assert!(
        screen.pairing_input(&gone(None)).expired,
        "until another code is asked for"
    );
    screen.pairing_input(&showing(None));
    assert!(!screen.pairing_input(&gone(Some(ada.clone()))).expired, "used");
    // Pairing again while paired: running out leaves the old owner, and is still expiry.
    screen.pairing_input(&showing(Some(ada.clone())));
    assert!(screen.pairing_input(&gone(Some(ada))).expired);
}
