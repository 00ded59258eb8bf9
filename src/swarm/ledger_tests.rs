use super::*;

#[test]
fn the_mix_holds_for_every_prefix() {
    let kinds: Vec<Kind> = (0..10).map(|n| Kind::nth(n, 0.5)).collect();
    let desired = kinds.iter().filter(|k| **k == Kind::Desired).count();
    assert_eq!(desired, 5);
    assert!((0..100).all(|n| Kind::nth(n, 1.0) == Kind::Desired));
    assert!((0..100).all(|n| Kind::nth(n, 0.0) == Kind::SetConfig));
    let quarter = (0..1000).filter(|n| Kind::nth(*n, 0.25) == Kind::Desired).count();
    assert_eq!(quarter, 250);
}

#[test]
fn intent_values_are_unique_per_lamp_and_kind() {
    for seq in 0..9000 {
        let a = Light::for_intent(Kind::Desired, seq);
        assert!((0.0..=1.0).contains(&a.brightness) && (0.0..=1.0).contains(&a.hue));
        assert!(!a.same(&Light::for_intent(Kind::SetConfig, seq)));
        for other in [seq + 1, seq + 7, seq + 900, seq + 1000] {
            assert!(!a.same(&Light::for_intent(Kind::Desired, other)), "{seq} and {other}");
        }
    }
    let light = Light::for_intent(Kind::SetConfig, 17);
    assert_eq!(Light::from_lampi(&light.lampi_json()), Some(light));
    assert_eq!(Light::from_shadow(&light.shadow_json()), Some(light));
}

#[test]
fn tags_round_trip_for_their_app_only() {
    assert_eq!(tag(3, 42, 17), "a3-42-17");
    assert_eq!(parse_tag(3, "a3-42-17"), Some((42, 17)));
    assert_eq!(parse_tag(4, "a3-42-17"), None);
    assert_eq!(parse_tag(3, "final-42"), None);
    assert_eq!(parse_tag(3, "me"), None);
}

#[test]
fn pubacks_find_their_publish_in_order() {
    let mut map = PkidMap::default();
    map.queued("a");
    map.queued("b");
    map.outgoing(1);
    map.outgoing(2);
    map.queued("c");
    assert_eq!(map.acked(2), Some("b"));
    map.outgoing(3);
    assert_eq!(map.acked(1), Some("a"));
    assert_eq!(map.acked(3), Some("c"));
    assert_eq!(map.acked(3), None, "one PUBACK per publish");
    assert_eq!(map.pending(), 0);
}

#[test]
fn a_resend_keeps_its_first_entry() {
    let mut map = PkidMap::default();
    map.queued(("a", 10));
    map.queued(("b", 20));
    map.outgoing(1);
    // Reconnected with the session: rumqttc sends packet 1 again before anything new.
    map.outgoing(1);
    map.outgoing(2);
    assert_eq!(map.resent, 1);
    assert_eq!(map.acked(1), Some(("a", 10)));
    assert_eq!(map.acked(2), Some(("b", 20)));
}

#[test]
fn a_collision_waits_for_the_puback_that_frees_its_id() {
    let mut map = PkidMap::default();
    map.queued("old");
    map.outgoing(5);
    map.queued("new");
    map.collision(5);
    // rumqttc: PubAck(5) first, then Outgoing::Publish(5) for the collided one.
    assert_eq!(map.acked(5), Some("old"));
    map.outgoing(5);
    assert_eq!(map.acked(5), Some("new"));
}

#[test]
fn a_lost_session_gives_back_everything_unacknowledged() {
    let mut map = PkidMap::default();
    map.queued(1);
    map.queued(2);
    map.outgoing(1);
    // 2 was set aside unsent at the failure; 3 was queued after it and still goes out.
    map.queued(3);
    let mut dropped = map.session_lost(1);
    dropped.sort();
    assert_eq!(dropped, [1, 2]);
    assert_eq!(map.pending(), 1);
    assert_eq!(map.acked(1), None);
    map.outgoing(1);
    assert_eq!(map.acked(1), Some(3), "the publish sent after the reconnect is its own");
}

fn ledger_of(kinds: &[Kind]) -> LampLedger {
    let mut ledger = LampLedger::default();
    for (n, kind) in kinds.iter().enumerate() {
        ledger.send(*kind, n as u64 * 1000, 0);
        ledger.acked(n as u64, n as u64 * 1000 + 100);
    }
    ledger
}

fn documents_of(ledger: &mut LampLedger, version: u64, kind: Kind, seq: u64, now: u64) -> Seen {
    ledger.documents(version, Some(Light::for_intent(kind, seq)), now)
}

#[test]
fn a_reported_state_reflects_the_desired_update_with_its_values() {
    let mut ledger = ledger_of(&[Kind::Desired, Kind::Desired]);
    assert_eq!(
        documents_of(&mut ledger, 3, Kind::Desired, 1, 5000),
        Seen::Reflected {
            kind: Kind::Desired,
            latency_us: 4000
        }
    );
    // The same document again (QoS 1 redelivery) is a duplicate.
    assert_eq!(
        documents_of(&mut ledger, 3, Kind::Desired, 1, 6000),
        Seen::Duplicate(Kind::Desired)
    );
    // A later report of the same light (e.g. the output caught up) is no news.
    assert_eq!(documents_of(&mut ledger, 4, Kind::Desired, 1, 7000), Seen::Other);
    let outcome = ledger.settle();
    assert_eq!(outcome.reflected, [1, 0]);
    assert_eq!(outcome.superseded, [1, 0], "seq 0 was coalesced into seq 1");
    assert!(outcome.lost.is_empty());
}

#[test]
fn a_set_config_is_reflected_by_its_echo() {
    let mut ledger = ledger_of(&[Kind::SetConfig, Kind::Desired]);
    let echo = Light::for_intent(Kind::SetConfig, 0);
    assert_eq!(
        ledger.changed(Some(0), Some(echo), 2500),
        Seen::Reflected {
            kind: Kind::SetConfig,
            latency_us: 2500
        }
    );
    assert_eq!(
        ledger.changed(Some(0), Some(echo), 2600),
        Seen::Duplicate(Kind::SetConfig)
    );
    // An echo naming a desired update's seq is not an answer to it.
    assert_eq!(ledger.changed(Some(1), Some(echo), 2700), Seen::Other);
    // A set_config's values showing in reported do not count as a desired update's.
    assert_eq!(documents_of(&mut ledger, 9, Kind::SetConfig, 0, 2800), Seen::Other);
    let outcome = ledger.settle();
    assert_eq!(outcome.reflected, [0, 1]);
    assert_eq!(outcome.lost.len(), 1, "the desired update was never reported");
    assert_eq!(outcome.lost[0].seq, 1);
    assert_eq!(ledger.last_reported, Some(Light::for_intent(Kind::SetConfig, 0)));
}

#[test]
fn the_last_acknowledged_update_never_reported_is_lost() {
    let mut ledger = ledger_of(&[Kind::Desired, Kind::Desired, Kind::Desired]);
    documents_of(&mut ledger, 1, Kind::Desired, 0, 1000);
    let outcome = ledger.settle();
    let lost: Vec<u64> = outcome.lost.iter().map(|i| i.seq).collect();
    assert_eq!(lost, [1, 2]);
    assert_eq!(outcome.reflected, [1, 0]);
}

#[test]
fn the_final_get_reflects_what_the_answers_missed() {
    let mut ledger = ledger_of(&[Kind::Desired, Kind::SetConfig, Kind::Desired]);
    ledger.final_state(Light::for_intent(Kind::Desired, 2));
    let outcome = ledger.settle();
    assert_eq!(outcome.reflected, [1, 0]);
    assert_eq!(outcome.superseded, [1, 1]);
    assert!(outcome.lost.is_empty());
    // A final state showing an older intent leaves the newer ones lost.
    let mut ledger = ledger_of(&[Kind::Desired, Kind::Desired]);
    ledger.final_state(Light::for_intent(Kind::Desired, 0));
    assert_eq!(ledger.settle().lost.len(), 1);
}

#[test]
fn unacknowledged_and_rejected_intents_are_not_lost() {
    let mut ledger = LampLedger::default();
    ledger.send(Kind::Desired, 0, 0);
    ledger.send(Kind::SetConfig, 10, 0);
    ledger.acked(1, 20);
    assert_eq!(ledger.rejected(1), Some(Kind::SetConfig));
    let outcome = ledger.settle();
    assert!(outcome.lost.is_empty());
    assert_eq!(outcome.unresolved, [1, 0]);
    assert_eq!(outcome.rejected, [0, 1]);
    assert_eq!(ledger.sent(), 2);
}
