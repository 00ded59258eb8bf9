use super::*;

fn accept_all(_: &Map<String, Value>, _: &Map<String, Value>) -> Result<(), Invalid> {
    Ok(())
}

fn update(shadow: &mut Shadow, payload: Value, timestamp: u64) -> Result<Accepted, ShadowError> {
    let request = parse_update(payload.to_string().as_bytes())?;
    shadow.update(request, timestamp, accept_all)
}

fn error(payload: &[u8]) -> (u16, String) {
    let e = parse_update(payload).unwrap_err();
    (e.code, e.message)
}

#[test]
fn partial_nested_merge_null_deletes_and_section_clear() {
    let mut shadow = Shadow::default();
    update(
        &mut shadow,
        json!({"state": {"desired": {"light": {"on": true, "hue": 0.5}, "mode": "manual"}}}),
        10,
    )
    .unwrap();
    update(
        &mut shadow,
        json!({"state": {"desired": {"light": {"hue": 0.7}, "mode": null}}}),
        20,
    )
    .unwrap();
    assert_eq!(
        Value::Object(shadow.desired.clone()),
        json!({"light": {"on": true, "hue": 0.7}})
    );
    assert_eq!(
        Value::Object(shadow.metadata.desired.clone()),
        json!({"light": {"on": {"timestamp": 10}, "hue": {"timestamp": 20}}})
    );
    // Deleting the last key of an object removes the object.
    update(
        &mut shadow,
        json!({"state": {"desired": {"light": {"on": null, "hue": null}}}}),
        30,
    )
    .unwrap();
    assert!(shadow.desired.is_empty() && shadow.metadata.desired.is_empty());
    update(
        &mut shadow,
        json!({"state": {"desired": {"a": 1}, "reported": {"b": 2}}}),
        40,
    )
    .unwrap();
    update(&mut shadow, json!({"state": {"desired": null}}), 50).unwrap();
    assert!(shadow.desired.is_empty());
    assert_eq!(Value::Object(shadow.reported.clone()), json!({"b": 2}));
    assert_eq!(shadow.version, 5);
}

#[test]
fn arrays_are_values_and_leaves_can_become_objects() {
    let mut shadow = Shadow::default();
    update(
        &mut shadow,
        json!({"state": {"reported": {"days": ["mon", "tue"], "x": 1}}}),
        1,
    )
    .unwrap();
    update(
        &mut shadow,
        json!({"state": {"reported": {"days": ["sun"], "x": {"y": 2}}}}),
        2,
    )
    .unwrap();
    assert_eq!(
        Value::Object(shadow.reported.clone()),
        json!({"days": ["sun"], "x": {"y": 2}})
    );
    assert_eq!(
        Value::Object(shadow.metadata.reported.clone()),
        json!({"days": [{"timestamp": 2}], "x": {"y": {"timestamp": 2}}})
    );
}

#[test]
fn accepted_echoes_the_request_with_metadata_version_and_token() {
    let mut shadow = Shadow::default();
    let accepted = update(
        &mut shadow,
        json!({"state": {"desired": {"on": true, "gone": null}}, "clientToken": "t1"}),
        7,
    )
    .unwrap();
    assert_eq!(
        accepted.accepted,
        json!({"state": {"desired": {"on": true, "gone": null}},
               "metadata": {"desired": {"on": {"timestamp": 7}, "gone": {"timestamp": 7}}},
               "version": 1, "timestamp": 7, "clientToken": "t1"})
    );
    assert_eq!(accepted.documents["previous"], Value::Null);
    assert_eq!(accepted.documents["current"]["version"], json!(1));
    assert_eq!(accepted.documents["clientToken"], json!("t1"));
}

#[test]
fn delta_has_full_paths_of_differing_desired_leaves_only() {
    let mut shadow = Shadow::default();
    update(
        &mut shadow,
        json!({"state": {"reported": {"light": {"on": false, "hue": 0.5}, "extra": 1, "n": 1.0}}}),
        1,
    )
    .unwrap();
    let accepted = update(
        &mut shadow,
        json!({"state": {"desired": {"light": {"on": true, "hue": 0.5}, "mode": "natural", "n": 1}}}),
        2,
    )
    .unwrap();
    let delta = accepted.delta.unwrap();
    assert_eq!(delta["state"], json!({"light": {"on": true}, "mode": "natural"}));
    assert_eq!(
        delta["metadata"],
        json!({"light": {"on": {"timestamp": 2}}, "mode": {"timestamp": 2}})
    );
    assert_eq!(delta["version"], json!(2));
    // Reporting the desired values leaves no delta.
    let accepted = update(
        &mut shadow,
        json!({"state": {"reported": {"light": {"on": true}, "mode": "natural"}}}),
        3,
    )
    .unwrap();
    assert_eq!(accepted.delta, None);
    assert_eq!(accepted.documents["previous"]["version"], json!(2));
}

#[test]
fn version_conflict_is_409_and_changes_nothing() {
    let mut shadow = Shadow::default();
    update(&mut shadow, json!({"state": {"desired": {"a": 1}}}), 1).unwrap();
    let before = shadow.clone();
    let e = update(
        &mut shadow,
        json!({"state": {"desired": {"a": 2}}, "version": 0, "clientToken": "c"}),
        2,
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str(), e.client_token.as_deref()),
        (409, "Version conflict", Some("c"))
    );
    assert_eq!(shadow, before);
    update(&mut shadow, json!({"state": {"desired": {"a": 2}}, "version": 1}), 2).unwrap();
    assert_eq!(shadow.version, 2);
}

#[test]
fn aws_400_cases() {
    assert_eq!(error(b"{nope"), (400, "Invalid JSON".into()));
    assert_eq!(error(b"{}"), (400, "Missing required node: state".into()));
    assert_eq!(error(b"[1]"), (400, "Missing required node: state".into()));
    assert_eq!(error(br#"{"state": 3}"#), (400, "State node must be an object".into()));
    assert_eq!(
        error(br#"{"state": {"desired": [1]}}"#),
        (400, "Desired node must be an object".into())
    );
    assert_eq!(
        error(br#"{"state": {"reported": "x"}}"#),
        (400, "Reported node must be an object".into())
    );
    assert_eq!(
        error(br#"{"state": {"delta": {}}}"#),
        (400, "State contains an invalid node".into())
    );
    assert_eq!(
        error(br#"{"state": {}, "version": -1}"#),
        (400, "Invalid version".into())
    );
    assert_eq!(
        error(br#"{"state": {}, "version": "3"}"#),
        (400, "Invalid version".into())
    );
    let long = format!(r#"{{"state": {{}}, "clientToken": "{}"}}"#, "x".repeat(65));
    assert_eq!(error(long.as_bytes()), (400, "Invalid clientToken".into()));
    let ok = format!(r#"{{"state": {{}}, "clientToken": "{}"}}"#, "x".repeat(64));
    assert!(parse_update(ok.as_bytes()).is_ok());
    let six = br#"{"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}"#;
    assert!(parse_update(six).is_ok());
    let seven = br#"{"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}"#;
    assert_eq!(
        error(seven),
        (400, "JSON contains too many levels of nesting; maximum is 6".into())
    );
    assert_eq!(error(&[0xff, b'{']).0, 415);
}

#[test]
fn too_large_is_413_before_or_after_merge() {
    let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
    assert_eq!(error(&huge).0, 413);
    let mut shadow = Shadow::default();
    let big = "x".repeat(5000);
    update(&mut shadow, json!({"state": {"desired": {"a": big}}}), 1).unwrap();
    update(&mut shadow, json!({"state": {"reported": {"b": big}}}), 2).unwrap();
    let e = update(&mut shadow, json!({"state": {"reported": {"c": big}}}), 3).unwrap_err();
    assert_eq!(e.code, 413);
    assert_eq!(shadow.version, 2);
}

#[test]
fn validator_refusal_is_400_and_changes_nothing() {
    let mut shadow = Shadow::default();
    let request = parse_update(br#"{"state": {"desired": {"bad": 1}}, "clientToken": "v"}"#).unwrap();
    let e = shadow
        .update(request, 1, |_, _| Err(Invalid::new("desired.bad: not allowed")))
        .unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (400, "desired.bad: not allowed"));
    assert_eq!(
        e.document(5),
        json!({"code": 400, "message": "desired.bad: not allowed", "clientToken": "v", "timestamp": 5})
    );
    assert_eq!(shadow, Shadow::default());
}

#[test]
fn get_and_delete() {
    let mut shadow = Shadow::default();
    assert_eq!(shadow.get("lamp", Some("g"), 1).unwrap_err().code, 404);
    update(
        &mut shadow,
        json!({"state": {"desired": {"a": 1}, "reported": {"a": 2}}}),
        3,
    )
    .unwrap();
    let doc = shadow.get("lamp", Some("g"), 4).unwrap();
    assert_eq!(
        doc,
        json!({"state": {"desired": {"a": 1}, "reported": {"a": 2}, "delta": {"a": 1}},
               "metadata": {"desired": {"a": {"timestamp": 3}}, "reported": {"a": {"timestamp": 3}}},
               "version": 1, "timestamp": 4, "clientToken": "g"})
    );
    assert_eq!(
        shadow.delete("lamp", None, 5).unwrap(),
        json!({"version": 1, "timestamp": 5})
    );
    assert_eq!(
        shadow.delete("lamp", None, 6).unwrap_err().message,
        "No shadow exists with name: 'lamp'"
    );
    update(&mut shadow, json!({"state": {"reported": {"b": 1}}}), 7).unwrap();
    assert_eq!(shadow.version, 2, "the version carries on after a delete");
}

#[test]
fn diff_patch_turns_one_section_into_another() {
    let current = json!({"a": 1, "b": {"c": 2, "d": 3}, "gone": true, "same": [1, 2]});
    let wanted = json!({"a": 1.0, "b": {"c": 5}, "new": {"x": 1}, "same": [1, 2]});
    let patch = diff_patch(current.as_object().unwrap(), wanted.as_object().unwrap());
    assert_eq!(
        Value::Object(patch.clone()),
        json!({"b": {"c": 5, "d": null}, "new": {"x": 1}, "gone": null})
    );
    let mut shadow = Shadow::default();
    update(&mut shadow, json!({"state": {"reported": current}}), 1).unwrap();
    update(&mut shadow, json!({"state": {"reported": patch}}), 2).unwrap();
    assert!(same_value(&Value::Object(shadow.reported), &wanted));
}

#[test]
fn token_requests() {
    assert_eq!(parse_token_request(b"").unwrap(), None);
    assert_eq!(
        parse_token_request(br#"{"clientToken":"x"}"#).unwrap().as_deref(),
        Some("x")
    );
    assert_eq!(parse_token_request(b"{oops").unwrap_err().message, "Invalid JSON");
}
