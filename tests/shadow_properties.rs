//! Property test: the shadow's merge and delta against an independent reference written from
//! the AWS rules, over randomly generated documents and updates.
//!
//! The reference flattens documents to `path → leaf` maps, where the rules are one-liners:
//! a patch leaf replaces everything at and below its path (and any leaf above it); a `null`
//! removes everything at and below its path; the delta is every desired leaf whose path holds
//! something else (or nothing) in reported.

use std::collections::BTreeMap;

use lampi::core::shadow::{SectionUpdate, Shadow, UpdateRequest};
use proptest::prelude::*;
use serde_json::{Map, Value};

type Path = Vec<String>;
type Flat = BTreeMap<Path, Value>;

fn flatten(map: &Map<String, Value>, prefix: &Path, out: &mut Flat) {
    for (key, value) in map {
        let mut path = prefix.clone();
        path.push(key.clone());
        match value {
            Value::Object(inner) => flatten(inner, &path, out),
            leaf => {
                out.insert(path, leaf.clone());
            }
        }
    }
}

fn flat(map: &Map<String, Value>) -> Flat {
    let mut out = Flat::new();
    flatten(map, &Vec::new(), &mut out);
    out
}

fn reference_merge(document: &mut Flat, patch: &Flat) {
    for (path, value) in patch {
        document.retain(|p, _| !p.starts_with(path) && !path.starts_with(p));
        if !value.is_null() {
            document.insert(path.clone(), value.clone());
        }
    }
}

fn reference_delta(desired: &Flat, reported: &Flat) -> Flat {
    desired
        .iter()
        .filter(|(path, value)| reported.get(*path) != Some(*value))
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect()
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        (0i64..4).prop_map(Value::from),
        "[xy]{0,2}".prop_map(Value::from),
        prop::collection::vec(0i64..3, 0..3).prop_map(Value::from),
    ]
}

/// Objects with keys from a small alphabet, so documents and patches overlap often.
fn object(with_nulls: bool) -> impl Strategy<Value = Map<String, Value>> {
    let leaf = if with_nulls {
        prop_oneof![3 => leaf(), 1 => Just(Value::Null)].boxed()
    } else {
        leaf().boxed()
    };
    let value = leaf.prop_recursive(3, 24, 3, |inner| {
        prop::collection::btree_map("[abc]", inner, 1..3).prop_map(|m| Value::Object(m.into_iter().collect()))
    });
    prop::collection::btree_map("[abcd]", value, 0..4).prop_map(|m| m.into_iter().collect())
}

fn update(shadow: &mut Shadow, desired: Option<Map<String, Value>>, reported: Option<Map<String, Value>>) {
    let request = UpdateRequest {
        desired: desired.map(SectionUpdate::Merge),
        reported: reported.map(SectionUpdate::Merge),
        client_token: None,
        version: None,
    };
    shadow
        .update(request, 1, |_, _| Ok(()))
        .expect("small documents are accepted");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn merge_and_delta_follow_the_aws_rules(
        desired in object(false),
        reported in object(false),
        desired_patch in object(true),
        reported_patch in object(true),
    ) {
        let mut shadow = Shadow::default();
        update(&mut shadow, Some(desired.clone()), Some(reported.clone()));
        update(&mut shadow, Some(desired_patch.clone()), None);
        update(&mut shadow, None, Some(reported_patch.clone()));

        let mut want_desired = flat(&desired);
        reference_merge(&mut want_desired, &flat(&desired_patch));
        let mut want_reported = flat(&reported);
        reference_merge(&mut want_reported, &flat(&reported_patch));

        prop_assert_eq!(flat(&shadow.desired), want_desired.clone());
        prop_assert_eq!(flat(&shadow.reported), want_reported.clone());
        prop_assert_eq!(flat(&shadow.delta()), reference_delta(&want_desired, &want_reported));
        prop_assert_eq!(shadow.version, 3);
        // Every leaf has a timestamp in the metadata at the same path, and nothing else does.
        let stamped: Vec<Path> = flat(&shadow.metadata.desired)
            .into_iter()
            .map(|(mut path, meta)| {
                // A scalar's stamp sits at `path.timestamp`; an array's is an array at `path`.
                if !meta.is_array() {
                    path.pop();
                }
                path
            })
            .collect();
        let leaves: Vec<Path> = flat(&shadow.desired).into_keys().collect();
        prop_assert_eq!(stamped, leaves);
    }
}
