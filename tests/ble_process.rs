//! The real binary serving Bluetooth LE to the BlueZ stand-in (`tests/common/ble.rs`): killed
//! with SIGKILL while serving, it is forgotten like any client that leaves the bus, and started
//! again it serves again; stopped with SIGTERM, it leaves nothing registered either.

#![cfg(feature = "ble")]

mod common;

use std::io::Write;
use std::process::{Child, Command};

use common::ble::{BlueZ, Bus, CENTRAL_A, bytes, standin_available, uuid_string};
use common::{Broker, lampi_run, write_config};
use lampi::protocol::ble;

/// The lamp's process, killed if a failed assertion leaves it running.
struct Lamp(Child);

impl Drop for Lamp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &std::path::Path, bus: &Bus, bluez: &mut BlueZ) -> Lamp {
    let lamp = Lamp(
        lampi_run(config)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .spawn()
            .unwrap(),
    );
    bluez.event(
        |e| e["event"] == "registered" && e["what"] == "advertisement",
        "the lamp's advertisement",
    );
    let model = bluez.path_of(ble::MODEL_NUMBER, None);
    assert_eq!(bytes(&bluez.read(&model, CENTRAL_A)), b"LAMPI");
    // Off by default: the pairing code is served only when asked for.
    let tree = bluez.tree();
    assert!(
        !tree.to_string().contains(&uuid_string(ble::PAIRING_CODE)),
        "the pairing code is served unasked: {tree}"
    );
    lamp
}

fn forgotten(bluez: &mut BlueZ) {
    bluez.event(
        |e| e["event"] == "unregistered" && e["what"] == "application",
        "the lamp's application unregistered",
    );
    let tree = bluez.tree();
    assert_eq!(tree["applications"], serde_json::json!([]), "{tree}");
}

#[test]
fn a_lamp_killed_while_serving_is_forgotten_and_serves_again_when_restarted() {
    if !standin_available() {
        eprintln!("SKIPPED: dbus-daemon or /usr/bin/python3 with python3-dbusmock missing (make test installs them)");
        return;
    }
    let bus = Bus::start();
    let mut bluez = BlueZ::start(&bus);
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), broker.port, &dir.path().join("state"), "ble_process");
    let mut file = std::fs::OpenOptions::new().append(true).open(&config).unwrap();
    writeln!(file, "[ble]\nenabled = true").unwrap();

    for _ in 0..2 {
        let mut lamp = serve(&config, &bus, &mut bluez);
        lamp.0.kill().unwrap();
        lamp.0.wait().unwrap();
        forgotten(&mut bluez);
    }

    let mut lamp = serve(&config, &bus, &mut bluez);
    let status = Command::new("kill")
        .args(["-TERM", &lamp.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(lamp.0.wait().unwrap().success(), "a clean exit on SIGTERM");
    forgotten(&mut bluez);
}
