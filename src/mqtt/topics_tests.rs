use super::*;
use crate::config::Overrides;

fn topics(service: ShadowService, homeassistant: bool) -> Topics {
    let mut config = Config::default();
    config.device.id = Some("lamp1".into());
    config.mqtt.topic_prefix = "site/".into();
    config.shadow.service = service;
    config.homeassistant.enabled = homeassistant;
    Topics::new(&config, &Resolved::new(&config, Overrides::default()))
}

const SHADOW: &str = "$aws/things/lamp1/shadow/";

#[test]
fn each_topic_routes_to_what_it_is_for_this_lamp() {
    use Route::*;
    use ShadowService::{Aws, Device, Off};
    let table: &[(ShadowService, &str, Option<Route>)] = &[
        (Device, "site/lamp/set_config", Some(SetConfig)),
        (Device, "lamp/set_config", None),
        (Device, "site/lamp/set_config/rejected", None),
        (Device, "site/lamp/changed", None),
        (Device, "lampi/lamp1/alarm", Some(Alarm)),
        (Device, "lampi/lamp2/alarm", None),
        (Device, "lampi/lamp1/alarm/result", None),
        (Device, "lampi/lamp1/pairing/request", Some(PairingRequest)),
        (Device, "lampi/lamp1/pairing/associate", Some(PairingAssociate)),
        (Device, "lampi/lamp1/pairing/unpair", Some(PairingUnpair)),
        (Device, "lampi/lamp1/pairing/code", None),
        (Device, "lampi/lamp1/pairing/result", None),
        (
            Device,
            "$aws/things/lamp1/shadow/update",
            Some(ShadowRequest(ShadowOp::Update)),
        ),
        (
            Device,
            "$aws/things/lamp1/shadow/get",
            Some(ShadowRequest(ShadowOp::Get)),
        ),
        (
            Device,
            "$aws/things/lamp1/shadow/delete",
            Some(ShadowRequest(ShadowOp::Delete)),
        ),
        (Device, "$aws/things/lamp1/shadow/update/delta", None),
        (Device, "$aws/things/lamp2/shadow/update", None),
        (Aws, "$aws/things/lamp1/shadow/update", None),
        (
            Aws,
            "$aws/things/lamp1/shadow/update/delta",
            Some(Cloud(ShadowTopic::UpdateDelta)),
        ),
        (
            Aws,
            "$aws/things/lamp1/shadow/update/documents",
            Some(Cloud(ShadowTopic::UpdateDocuments)),
        ),
        (
            Aws,
            "$aws/things/lamp1/shadow/update/accepted",
            Some(Cloud(ShadowTopic::UpdateAccepted)),
        ),
        (
            Aws,
            "$aws/things/lamp1/shadow/update/rejected",
            Some(Cloud(ShadowTopic::UpdateRejected)),
        ),
        (
            Aws,
            "$aws/things/lamp1/shadow/get/accepted",
            Some(Cloud(ShadowTopic::GetAccepted)),
        ),
        (
            Aws,
            "$aws/things/lamp1/shadow/get/rejected",
            Some(Cloud(ShadowTopic::GetRejected)),
        ),
        (
            Aws,
            "$aws/things/lamp1/shadow/delete/accepted",
            Some(Cloud(ShadowTopic::DeleteAccepted)),
        ),
        (Aws, "$aws/things/lamp1/shadow/delete/rejected", None),
        (Aws, "site/lamp/set_config", Some(SetConfig)),
        (Off, "$aws/things/lamp1/shadow/update", None),
        (Off, "$aws/things/lamp1/shadow/update/delta", None),
        (Off, "lampi/lamp1/alarm", Some(Alarm)),
        (Device, "homeassistant/status", Some(HomeAssistantStatus)),
        (Device, "lampi/lamp1/light/set", Some(HomeAssistantCommand)),
        (Device, "lampi/lamp1/light/state", None),
        (Device, "homeassistant/light/lamp1/config", None),
    ];
    for (service, topic, expected) in table {
        assert_eq!(
            topics(*service, true).route(topic, false),
            *expected,
            "{service:?} {topic}"
        );
    }
}

#[test]
fn home_assistant_topics_route_only_when_it_is_enabled() {
    let on = topics(ShadowService::Device, true);
    let ha = on.homeassistant.as_ref().unwrap();
    let off = topics(ShadowService::Device, false);
    for topic in [&ha.status, &ha.entity.command_topic] {
        assert!(on.route(topic, false).is_some(), "{topic}");
        assert_eq!(off.route(topic, false), None, "{topic}");
        assert!(!off.subscriptions().contains(topic), "{topic}");
    }
}

#[test]
fn the_lamp_subscribes_to_exactly_what_it_routes() {
    for service in [ShadowService::Device, ShadowService::Aws, ShadowService::Off] {
        let topics = topics(service, true);
        let subscriptions = topics.subscriptions();
        for topic in &subscriptions {
            assert!(
                topics.route(topic, false).is_some(),
                "{service:?}: subscribed to {topic} but ignores it"
            );
        }
        let shadow = subscriptions.iter().filter(|t| t.starts_with(SHADOW)).count();
        let expected = match service {
            ShadowService::Device => 3,
            ShadowService::Aws => 7,
            ShadowService::Off => 0,
        };
        assert_eq!(shadow, expected, "{service:?}: {subscriptions:?}");
    }
}

#[test]
fn a_retained_message_is_a_command_to_ignore_unless_it_is_home_assistants_status() {
    let topics = topics(ShadowService::Device, true);
    for topic in topics.subscriptions() {
        let expected = if topic == "homeassistant/status" {
            Some(Route::HomeAssistantStatus)
        } else {
            Some(Route::RetainedCommand)
        };
        assert_eq!(topics.route(&topic, true), expected, "{topic}");
    }
    assert_eq!(topics.route("elsewhere", true), Some(Route::RetainedCommand));
}

/// Of all the lamp subscribes to, only Home Assistant's status is taken when retained.
#[test]
fn only_home_assistants_status_counts_when_retained() {
    let text = "[device]\nid = \"lamp1\"\n[homeassistant]\nenabled = true\n";
    let config = Config::parse(text, std::path::Path::new("t.toml")).unwrap().config;
    let topics = Topics::new(&config, &Resolved::new(&config, Overrides::default()));
    let status = &topics.homeassistant.as_ref().unwrap().status;
    let announcements: Vec<String> = topics
        .subscriptions()
        .into_iter()
        .filter(|t| topics.is_announcement(t))
        .collect();
    assert_eq!(announcements, std::slice::from_ref(status));
}
