//! The lamp's Bluetooth LE service without a radio: a private system bus (`dbus-daemon`) with a
//! BlueZ stand-in (`tests/common/ble.rs`) that records what the lamp registers and plays the
//! centrals, the daemon in this process, a real Mosquitto.

#![cfg(feature = "ble")]

mod common;

use std::time::Duration;

use common::ble::{BlueZ, Bus, CENTRAL_A, CENTRAL_B, bytes, standin_available, uuid_string};
use common::{Broker, Client, RunningLamp, TIMEOUT, json};
use lampi::core::colour::duty_for;
use lampi::lamp_task::Command;
use lampi::protocol::ble::{self, LampCharacteristic, from_byte};
use serde_json::json;

/// Waits until the lamp's `reported.ble.serving` is `serving`.
async fn serving(lamp: &mut RunningLamp, serving: bool) {
    let reported = tokio::time::timeout(
        TIMEOUT,
        lamp.handle
            .saved
            .wait_for(|s| s.shadow.reported.get("ble") == Some(&json!({"serving": serving}))),
    )
    .await;
    assert!(reported.is_ok(), "reported.ble.serving never became {serving}");
}

/// The whole tier-1 story on one bus: this test sets the process's D-Bus system bus address,
/// which bluer reads when it connects, so it is the only test in this file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lamp_serves_lampi_over_ble_through_bluez() {
    if !standin_available() {
        eprintln!("SKIPPED: dbus-daemon or /usr/bin/python3 with python3-dbusmock missing (make test installs them)");
        return;
    }
    let bus = Bus::start();
    // SAFETY: set before the lamp starts any thread that reads the environment, and this is the
    // only test in this binary.
    unsafe { std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bus.address) };
    let mut bluez = BlueZ::start(&bus);
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let mut lamp = RunningLamp::start_with(broker.port, state.path(), |config| {
        config.ble.enabled = true;
        config.ble.manufacturer = "Test Lamps".into();
        config.ble.pairing_code = true;
    })
    .await;
    bluez.event(
        |e| e["event"] == "registered" && e["what"] == "advertisement",
        "the advertisement",
    );
    serving(&mut lamp, true).await;

    registers_the_course_service_and_advertisement(&mut bluez);
    let mut client = Client::connect(broker.port, "tester").await;
    client.subscribe("lamp/changed").await;
    client.subscribe("lampi/lamp1/events").await;
    a_write_reaches_the_led_mqtt_and_the_shadow(&mut bluez, &mut lamp, &mut client).await;
    changes_from_mqtt_are_notified_and_a_ble_write_only_to_other_centrals(&mut bluez, &client).await;
    refused_writes_change_nothing(&mut bluez, &lamp);
    the_pairing_code_is_read_and_notified(&mut bluez, &lamp, &mut client).await;
    serves_again_after_the_adapter_goes_and_comes_back(&mut bluez, &mut lamp).await;
    serves_again_after_bluez_restarts(&mut bluez, &bus, &mut lamp).await;

    lamp.stop().await;
    drop(bluez);
    drop(bus);
    let _ = state;
}

fn registers_the_course_service_and_advertisement(bluez: &mut BlueZ) {
    let tree = bluez.tree();
    let adverts = tree["advertisements"].as_array().unwrap();
    assert_eq!(adverts.len(), 1, "{tree}");
    let advert = &adverts[0]["props"];
    assert_eq!(advert["Type"], "peripheral");
    assert_eq!(advert["ServiceUUIDs"], json!([uuid_string(ble::LAMP_SERVICE)]));
    assert_eq!(advert["LocalName"], "LAMPI lamp1");
    assert_eq!(advert["Discoverable"], true);

    let objects = tree["applications"][0]["objects"].as_object().unwrap().clone();
    let service = bluez.path_of(ble::LAMP_SERVICE, None);
    assert_eq!(objects[&service]["org.bluez.GattService1"]["Primary"], true);
    for ch in LampCharacteristic::ALL {
        let path = bluez.path_of(ch.uuid(), Some(&service));
        let flags = &objects[&path]["org.bluez.GattCharacteristic1"]["Flags"];
        // No write-without-response: BlueZ would answer writes before the lamp, refusals too.
        for flag in ["read", "write", "notify"] {
            assert!(flags.as_array().unwrap().contains(&json!(flag)), "{ch:?}: {flags}");
        }
        assert!(
            !flags.as_array().unwrap().contains(&json!("write-without-response")),
            "{ch:?}: {flags}"
        );
        let description = bluez.path_of(ble::USER_DESCRIPTION, Some(&path));
        let format = bluez.path_of(ble::PRESENTATION_FORMAT, Some(&path));
        assert_eq!(bytes(&bluez.read(&description, CENTRAL_A)), ch.description().as_bytes());
        assert_eq!(bytes(&bluez.read(&format, CENTRAL_A)), [0x04, 0, 0, 0x27, 1, 0, 0]);
    }
    assert_eq!(
        ble::LampCharacteristic::ALL.map(|ch| ch.description()),
        ["HSV", "Brightness", "On / Off"]
    );

    let information = bluez.path_of(ble::DEVICE_INFORMATION, None);
    for (uuid, value) in [
        (ble::MANUFACTURER_NAME, "Test Lamps"),
        (ble::MODEL_NUMBER, "LAMPI"),
        (ble::SERIAL_NUMBER, "lamp1"),
        (ble::FIRMWARE_REVISION, env!("CARGO_PKG_VERSION")),
    ] {
        let path = bluez.path_of(uuid, Some(&information));
        assert_eq!(
            objects[&path]["org.bluez.GattCharacteristic1"]["Flags"],
            json!(["read"])
        );
        assert_eq!(bytes(&bluez.read(&path, CENTRAL_A)), value.as_bytes());
        let long_read = bluez.ask(json!({"cmd": "read", "path": path, "device": CENTRAL_A, "offset": 2}));
        assert_eq!(bytes(&long_read), &value.as_bytes()[2..]);
        let format = bluez.path_of(ble::PRESENTATION_FORMAT, Some(&path));
        assert_eq!(bytes(&bluez.read(&format, CENTRAL_A)), [0x19, 0, 0, 0x27, 1, 0, 0]);
    }
}

async fn a_write_reaches_the_led_mqtt_and_the_shadow(bluez: &mut BlueZ, lamp: &mut RunningLamp, client: &mut Client) {
    let brightness = bluez.path_of(ble::BRIGHTNESS, None);
    let answer = bluez.write(&brightness, &[0x80], CENTRAL_A);
    assert!(answer.get("error").is_none(), "{answer}");
    // Read straight back: the write is answered once the lamp has taken it.
    assert_eq!(bytes(&bluez.read(&brightness, CENTRAL_B)), [0x80]);

    // The echo and the analytics event, in either order.
    let (mut echo, mut event) = (None, None);
    while echo.is_none() || event.is_none() {
        let message = client
            .next_where(|m| {
                m.topic == "lampi/lamp1/events" || (m.topic == "lamp/changed" && json(m)["client"] == "ble")
            })
            .await;
        let slot = if message.topic == "lamp/changed" {
            &mut echo
        } else {
            &mut event
        };
        *slot = Some(json(&message));
    }
    let (echo, event) = (echo.unwrap(), event.unwrap());
    assert_eq!(
        (&echo["client"], &echo["brightness"]),
        (&json!("ble"), &json!(from_byte(0x80).get()))
    );
    assert_eq!((&event["type"], &event["source"]), (&json!("light"), &json!("ble")));
    lamp.output_settles_at(duty_for(true, 0.0, 0.0, from_byte(0x80).get()))
        .await;
    let desired = tokio::time::timeout(
        TIMEOUT,
        lamp.handle.saved.wait_for(|s| {
            s.shadow.desired.get("light").and_then(|l| l.get("brightness")) == Some(&json!(128.0 / 255.0))
        }),
    )
    .await;
    assert!(
        desired.is_ok(),
        "the BLE write never reached desired.light in the shadow"
    );
}

async fn changes_from_mqtt_are_notified_and_a_ble_write_only_to_other_centrals(bluez: &mut BlueZ, client: &Client) {
    let brightness = bluez.path_of(ble::BRIGHTNESS, None);
    let on_off = bluez.path_of(ble::ON_OFF, None);
    for path in [&brightness, &on_off] {
        let answer = bluez.ask(json!({"cmd": "start_notify", "path": path}));
        assert!(answer.get("error").is_none(), "{answer}");
    }
    client
        .publish("lamp/set_config", r#"{"client": "phone", "brightness": 0.25}"#)
        .await;
    let notified = bluez.event(|e| e["event"] == "notification", "a notification of the MQTT change");
    assert_eq!(notified["path"], json!(brightness));
    assert_eq!(notified["value"], json!([64]));

    // As a write without response ("command"), which BlueZ 5.66 reports for every write.
    let answer =
        bluez.ask(json!({"cmd": "write", "path": on_off, "value": [0], "device": CENTRAL_A, "type": "command"}));
    assert!(answer.get("error").is_none(), "{answer}");
    assert_eq!(bytes(&bluez.read(&on_off, CENTRAL_B)), [0x00]);
    let echoed = bluez.events_within(Duration::from_millis(300), |e| e["event"] == "notification");
    assert!(echoed.is_empty(), "a BLE write was notified back: {echoed:?}");

    client
        .publish("lamp/set_config", r#"{"client": "phone", "on": true}"#)
        .await;
    let notified = bluez.event(|e| e["event"] == "notification", "a notification of on");
    assert_eq!((&notified["path"], &notified["value"]), (&json!(on_off), &json!([1])));

    // With a second central connected, it must learn of the first one's write; BlueZ cannot
    // leave the writer out, so the writer gets its value back too.
    for central in [CENTRAL_A, CENTRAL_B] {
        let answer = bluez.ask(json!({"cmd": "connect_central", "device": central}));
        assert!(answer.get("error").is_none(), "{answer}");
    }
    let answer = bluez.write(&brightness, &[0x33], CENTRAL_A);
    assert!(answer.get("error").is_none(), "{answer}");
    let notified = bluez.event(
        |e| e["event"] == "notification",
        "central A's write notified to central B",
    );
    assert_eq!(
        (&notified["path"], &notified["value"]),
        (&json!(brightness), &json!([0x33]))
    );
    // One central again: its writes are not echoed to it.
    bluez.ask(json!({"cmd": "disconnect_central", "device": CENTRAL_B}));
    let answer = bluez.write(&brightness, &[0x44], CENTRAL_A);
    assert!(answer.get("error").is_none(), "{answer}");
    let echoed = bluez.events_within(Duration::from_millis(300), |e| e["event"] == "notification");
    assert!(
        echoed.is_empty(),
        "a lone central's write was notified back: {echoed:?}"
    );
    bluez.ask(json!({"cmd": "disconnect_central", "device": CENTRAL_A}));

    // The last central leaves (BlueZ stops the session): changes go on, unnotified, until one
    // subscribes again.
    bluez.ask(json!({"cmd": "stop_notify", "path": brightness}));
    client
        .publish("lamp/set_config", r#"{"client": "phone", "brightness": 0.5}"#)
        .await;
    let unsubscribed = bluez.events_within(Duration::from_millis(300), |e| e["path"] == json!(brightness));
    assert!(
        unsubscribed.is_empty(),
        "notified without a subscriber: {unsubscribed:?}"
    );
    bluez.ask(json!({"cmd": "start_notify", "path": brightness}));
    client
        .publish("lamp/set_config", r#"{"client": "phone", "brightness": 1.0}"#)
        .await;
    let notified = bluez.event(
        |e| e["path"] == json!(brightness),
        "a notification after subscribing again",
    );
    assert_eq!(notified["value"], json!([255]));
}

fn refused_writes_change_nothing(bluez: &mut BlueZ, lamp: &RunningLamp) {
    let before = lamp.handle.changes.borrow().state;
    let brightness = bluez.path_of(ble::BRIGHTNESS, None);
    let on_off = bluez.path_of(ble::ON_OFF, None);
    let hsv = bluez.path_of(ble::HSV, None);
    for (path, value, error) in [
        (&brightness, &[1u8, 2][..], "org.bluez.Error.InvalidValueLength"),
        (&hsv, &[1, 2][..], "org.bluez.Error.InvalidValueLength"),
        (&on_off, &[][..], "org.bluez.Error.InvalidValueLength"),
        (&on_off, &[2][..], "org.bluez.Error.Failed"),
        (&hsv, &[1, 2, 3][..], "org.bluez.Error.Failed"),
    ] {
        let answer = bluez.write(path, value, CENTRAL_A);
        assert_eq!(answer["error"], error, "{value:?} to {path}: {answer}");
    }
    let offset = bluez.ask(json!({"cmd": "write", "path": brightness, "value": [1], "device": CENTRAL_A, "offset": 1}));
    assert_eq!(offset["error"], "org.bluez.Error.InvalidOffset", "{offset}");
    assert_eq!(lamp.handle.changes.borrow().state, before);
}

/// With `[ble] pairing_code`: the code on the screen, notified as it appears and as it ends.
async fn the_pairing_code_is_read_and_notified(bluez: &mut BlueZ, lamp: &RunningLamp, client: &mut Client) {
    let service = bluez.path_of(ble::LAMP_SERVICE, None);
    let path = bluez.path_of(ble::PAIRING_CODE, Some(&service));
    let objects = bluez.tree()["applications"][0]["objects"].clone();
    assert_eq!(
        objects[&path]["org.bluez.GattCharacteristic1"]["Flags"],
        json!(["read", "notify"])
    );
    let description = bluez.path_of(ble::USER_DESCRIPTION, Some(&path));
    let format = bluez.path_of(ble::PRESENTATION_FORMAT, Some(&path));
    assert_eq!(bytes(&bluez.read(&description, CENTRAL_A)), b"Pairing Code");
    assert_eq!(bytes(&bluez.read(&format, CENTRAL_A)), [0x19, 0, 0, 0x27, 1, 0, 0]);
    assert_eq!(bytes(&bluez.read(&path, CENTRAL_A)), b"", "no code is shown yet");

    let answer = bluez.ask(json!({"cmd": "start_notify", "path": path}));
    assert!(answer.get("error").is_none(), "{answer}");
    lamp.handle.commands.send(Command::RequestPairingCode).await.unwrap();
    let notified = bluez.event(
        |e| e["event"] == "notification" && e["path"] == json!(path),
        "the new pairing code notified",
    );
    let code = lamp.handle.pairing.borrow().code.clone().expect("a code is shown").0;
    assert_eq!(notified["value"], json!(code.as_bytes()));
    assert_eq!(bytes(&bluez.read(&path, CENTRAL_B)), code.as_bytes());

    // Used, the code is gone from the screen and from BLE.
    let association = json!({"code": code, "owner": "alice", "name": "Alice", "token": "ble1"});
    client.subscribe("lampi/lamp1/pairing/result").await;
    client
        .publish("lampi/lamp1/pairing/associate", association.to_string())
        .await;
    let result = client.next_where(|m| m.topic == "lampi/lamp1/pairing/result").await;
    assert_eq!(json(&result)["ok"], true, "{}", json(&result));
    let ended = bluez.event(
        |e| e["event"] == "notification" && e["path"] == json!(path),
        "the code's end notified",
    );
    assert_eq!(ended["value"], json!([]));
    assert_eq!(bytes(&bluez.read(&path, CENTRAL_A)), b"");
    bluez.ask(json!({"cmd": "stop_notify", "path": path}));
}

async fn serves_again_after_the_adapter_goes_and_comes_back(bluez: &mut BlueZ, lamp: &mut RunningLamp) {
    bluez.ask(json!({"cmd": "remove_adapter"}));
    serving(lamp, false).await;
    bluez.ask(json!({"cmd": "add_adapter"}));
    bluez.event(
        |e| e["event"] == "registered" && e["what"] == "advertisement",
        "the advertisement again",
    );
    serving(lamp, true).await;
    let on_off = bluez.path_of(ble::ON_OFF, None);
    assert_eq!(bytes(&bluez.read(&on_off, CENTRAL_A)), [0x01]);

    bluez.ask(json!({"cmd": "power", "on": false}));
    serving(lamp, false).await;
    bluez.ask(json!({"cmd": "power", "on": true}));
    serving(lamp, true).await;
    let tree = bluez.tree();
    assert_eq!(tree["applications"].as_array().unwrap().len(), 1, "{tree}");
}

/// bluetoothd killed says nothing; a new one knows nothing of the old registrations.
async fn serves_again_after_bluez_restarts(bluez: &mut BlueZ, bus: &Bus, lamp: &mut RunningLamp) {
    bluez.kill();
    serving(lamp, false).await;
    *bluez = BlueZ::start(bus);
    bluez.event(
        |e| e["event"] == "registered" && e["what"] == "advertisement",
        "the advertisement to the new BlueZ",
    );
    serving(lamp, true).await;
    let hsv = bluez.path_of(ble::HSV, None);
    assert_eq!(bytes(&bluez.read(&hsv, CENTRAL_A)), [0x00, 0x00, 0xff]);
}
