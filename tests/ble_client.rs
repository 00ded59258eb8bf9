//! `lampi ble` (btleplug) and the lamp's real binary serving Bluetooth LE, both talking to the
//! BlueZ stand-in (`tests/common/ble.rs`) on a private system bus, which plays bluetoothd for
//! both sides; a real Mosquitto beside it. Scan, get, set and watch, MQTT and BLE in one
//! scenario, refusals, `--id`, the lamp killed mid-watch, and no Bluetooth at all.

#![cfg(all(feature = "ble", feature = "ble-client"))]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::ble::{BlueZ, Bus, standin_available};
use common::{Broker, Client, TIMEOUT, json, lampi_run};
use lampi::ble_client::{self, ClientError, Options};
use lampi::protocol::ble::{LampCharacteristic, from_byte};
use serde_json::{Value, json};

/// A process killed if a failed assertion leaves it running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip() -> bool {
    let skip = !standin_available();
    if skip {
        eprintln!("SKIPPED: dbus-daemon or /usr/bin/python3 with python3-dbusmock missing (make test installs them)");
    }
    skip
}

/// The lamp `id` serving BLE on `bus` and MQTT on `broker`, once BlueZ has its advertisement.
fn serve(id: &str, dir: &Path, bus: &Bus, bluez: &mut BlueZ, broker: &Broker) -> Running {
    let config: PathBuf = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!(
            "[device]\nid = \"{id}\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"{id}\"\nreconnect_initial_ms = 50\nreconnect_max_ms = 500\n[led]\nbackend = \"sim\"\nswatch = false\n[light]\ntransition_ms = 100\n[ble]\nenabled = true\n",
            dir.join(id).display(),
            broker.port
        ),
    )
    .unwrap();
    let lamp = Running(
        lampi_run(&config)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .spawn()
            .unwrap(),
    );
    bluez.event(
        |e| e["event"] == "registered" && e["what"] == "advertisement",
        "the lamp's advertisement",
    );
    lamp
}

/// `lampi ble ARGS` on `address`, looking for lamps for half a second.
fn ble(address: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lampi"));
    command
        .arg("ble")
        .args(args)
        .args(["--scan-time", "0.5"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", address)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run(address: &str, args: &[&str]) -> Output {
    ble(address, args).output().unwrap()
}

/// The JSON lines a successful run printed.
fn lines(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "lampi ble failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

/// A failed run's exit status and message.
fn failure(output: &Output) -> (Option<i32>, String) {
    assert!(!output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `lampi ble watch`, its lines read as they come.
struct Watch {
    process: Running,
    lines: mpsc::Receiver<Value>,
}

impl Watch {
    fn start(address: &str, args: &[&str]) -> Watch {
        let mut process = Running(
            ble(address, &[&["watch"][..], args].concat())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stdout = BufReader::new(process.0.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    return;
                }
            }
        });
        Watch { process, lines }
    }

    fn next(&self, what: &str) -> Value {
        self.lines
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("lampi ble watch never printed {what}"))
    }

    /// The next line about `characteristic`, skipping others.
    fn next_about(&self, characteristic: &str) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("lampi ble watch never printed a {characteristic} line"));
            if line["characteristic"] == characteristic {
                return line;
            }
        }
    }

    /// How it ended, within the test timeout.
    fn exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.process.0.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.process.0.stderr.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
                }
                return (status.code(), stderr);
            }
            assert!(Instant::now() < deadline, "lampi ble watch did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The lamp's `reported`, once `lampi ctl get` prints a shadow that `wanted` accepts.
fn shadow_where(broker: &Broker, thing: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let output = Command::new(env!("CARGO_BIN_EXE_lampi"))
            .args([
                "ctl",
                "--host",
                "127.0.0.1",
                "--port",
                &broker.port.to_string(),
                "--thing",
                thing,
                "get",
            ])
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        if wanted(&doc) {
            return doc["state"]["reported"].clone();
        }
        assert!(Instant::now() < deadline, "the shadow never showed it: {doc}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill(process: &Running, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lampi_ble_scans_gets_sets_and_watches_the_lamp_beside_mqtt() {
    if skip() {
        return;
    }
    let bus = Bus::start();
    let mut bluez = BlueZ::start(&bus);
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let lamp = serve("desk", dir.path(), &bus, &mut bluez, &broker);
    let mut mqtt = Client::connect(broker.port, "tester").await;
    mqtt.subscribe("lamp/changed").await;

    let found = lines(&run(&bus.address, &["scan"]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["name"], "LAMPI desk");
    let address = found[0]["address"].as_str().unwrap().to_owned();

    let got = lines(&run(&bus.address, &["get"]));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (&got[0]["device"], &got[0]["address"]),
        (&json!("desk"), &json!(address))
    );
    assert_eq!(
        (&got[0]["manufacturer"], &got[0]["model"], &got[0]["firmware"]),
        (&json!("LAMPI"), &json!("LAMPI"), &json!(env!("CARGO_PKG_VERSION")))
    );
    let light = &got[0]["light"];
    for field in ["on", "hue", "saturation", "brightness"] {
        assert!(light.get(field).is_some(), "{got:?}");
    }

    // A set_config over MQTT is notified to the watcher.
    let watch = Watch::start(&bus.address, &["--id", "desk"]);
    assert_eq!(watch.next("the lamp's light")["light"], *light);
    mqtt.publish("lamp/set_config", r#"{"client": "phone", "brightness": 0.25}"#)
        .await;
    let notified = watch.next_about("Brightness");
    // 0.25 × 255 = 63.75, to the nearest step.
    assert_eq!(notified["value"], json!([0x40]));
    assert_eq!(notified["brightness"], json!(from_byte(0x40).get()));

    // A set over BLE shows on lamp/changed and in the shadow, and reads back as written.
    let set = lines(&run(
        &bus.address,
        &["set", "--id", &address, "--hue", "0.5", "--brightness", "0.75", "--off"],
    ));
    let light = &set[0]["light"];
    assert_eq!(light["hue"], json!(from_byte(0x80).get()));
    assert_eq!(light["brightness"], json!(from_byte(0xbf).get()));
    assert_eq!(light["on"], json!(false));
    let changed = json(
        &mqtt
            .next_matching("lamp/changed", |m| m["client"] == "ble" && m["on"] == false)
            .await,
    );
    assert_eq!(changed["brightness"], json!(from_byte(0xbf).get()));
    let reported = shadow_where(&broker, "desk", |doc| doc["state"]["reported"]["light"]["on"] == false);
    assert_eq!(reported["light"]["brightness"], json!(from_byte(0xbf).get()));
    assert_eq!(reported["light"]["hue"], json!(from_byte(0x80).get()));
    assert_eq!(reported["ble"]["serving"], json!(true));

    // SIGTERM ends the watcher cleanly; killed, the lamp ends a watch with an error of its own.
    kill(&watch.process, "-TERM");
    assert_eq!(watch.exit().0, Some(0));
    bluez.event(
        |e| e["event"] == "disconnected" && e["why"] == "Disconnect",
        "the watcher's disconnection",
    );
    // A watcher killed outright is forgotten as it leaves the bus, and the lamp serves on.
    let watch = Watch::start(&bus.address, &[]);
    watch.next("the lamp's light");
    kill(&watch.process, "-KILL");
    assert_eq!(watch.exit().0, None);
    bluez.event(
        |e| e["event"] == "disconnected" && e["why"] == "last client gone",
        "the killed watcher's connection ended",
    );
    let got = lines(&run(&bus.address, &["get"]));
    assert_eq!(got[0]["light"], *light);
    let watch = Watch::start(&bus.address, &[]);
    watch.next("the lamp's light");
    drop(lamp);
    let (code, stderr) = watch.exit();
    assert_eq!(code, Some(74), "{stderr}");
    assert!(
        stderr.contains("lost the lamp: ") && stderr.contains("disconnected"),
        "{stderr}"
    );
    drop(bluez);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_the_lamp_refuses_are_reported_and_change_nothing() {
    if skip() {
        return;
    }
    let bus = Bus::start();
    let mut bluez = BlueZ::start(&bus);
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let _lamp = serve("shelf", dir.path(), &bus, &mut bluez, &broker);
    // SAFETY: btleplug reads the bus address from the environment, and no other test in this
    // binary sets or reads it in this process (they give it to the processes they start).
    unsafe { std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bus.address) };
    let options = Options {
        adapter: None,
        id: Some("shelf".into()),
        scan: Duration::from_secs(2),
    };
    let (_adapter, lamp) = ble_client::open(&options).await.unwrap();
    let before = lamp.state().await.unwrap();
    for (ch, value, why) in [
        (
            LampCharacteristic::OnOff,
            &[2u8][..],
            "Operation failed with ATT error: 0x80 (org.bluez.Error.Failed)",
        ),
        (
            LampCharacteristic::Brightness,
            &[1, 2][..],
            "Invalid Length (org.bluez.Error.InvalidArguments)",
        ),
        (LampCharacteristic::Hsv, &[1, 2, 3][..], "ATT error: 0x80"),
    ] {
        match lamp.write(ch, value).await {
            Err(e @ ClientError::Refused { .. }) => {
                assert!(e.to_string().contains(why), "{e}");
                assert!(
                    e.to_string()
                        .starts_with(&format!("the lamp refused {}", ch.description())),
                    "{e}"
                );
                assert_eq!(e.exit_code(), 65);
            }
            other => panic!("{ch:?} {value:?}: {other:?}"),
        }
    }
    assert_eq!(lamp.state().await.unwrap(), before);
    lamp.close().await;
    bluez.event(|e| e["event"] == "disconnected", "the client's disconnection");
}

#[test]
fn id_chooses_among_lamps_and_a_missing_lamp_or_adapter_says_so() {
    if skip() {
        return;
    }
    let bus = Bus::start();
    let mut bluez = BlueZ::start(&bus);
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let _one = serve("one", dir.path(), &bus, &mut bluez, &broker);
    let _two = serve("two", dir.path(), &bus, &mut bluez, &broker);

    let found = lines(&run(&bus.address, &["scan"]));
    let mut names: Vec<&str> = found.iter().map(|f| f["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["LAMPI one", "LAMPI two"]);
    let two = found.iter().find(|f| f["name"] == "LAMPI two").unwrap();

    let (code, stderr) = failure(&run(&bus.address, &["get"]));
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("several LAMPI lamps in range, choose one with --id"),
        "{stderr}"
    );
    for id in ["two", "LAMPI two", two["address"].as_str().unwrap()] {
        let got = lines(&run(&bus.address, &["get", "--id", id]));
        assert_eq!(got[0]["device"], "two", "--id {id}");
    }

    let (code, stderr) = failure(&run(&bus.address, &["get", "--id", "three"]));
    assert_eq!(code, Some(68), "{stderr}");
    assert!(stderr.contains("no LAMPI lamp in range with id three"), "{stderr}");
    let (code, stderr) = failure(&run(&bus.address, &["scan", "--adapter", "hci7"]));
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("no adapter hci7 (BlueZ has hci0)"), "{stderr}");

    drop(bluez);
    let (code, stderr) = failure(&run(&bus.address, &["scan"]));
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("BlueZ does not answer"), "{stderr}");
    let (code, stderr) = failure(&run("unix:path=/nonexistent/bus", &["scan"]));
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("no Bluetooth: cannot reach the system bus"), "{stderr}");
}

#[test]
fn no_lamp_in_range_is_a_clear_error() {
    if skip() {
        return;
    }
    let bus = Bus::start();
    let _bluez = BlueZ::start(&bus);
    for action in ["scan", "get", "watch"] {
        let (code, stderr) = failure(&run(&bus.address, &[action]));
        assert_eq!(code, Some(68), "{action}: {stderr}");
        assert!(
            stderr.contains("lampi ble: no LAMPI lamp in range (looked for 0.5 s)"),
            "{stderr}"
        );
    }
    let (code, stderr) = failure(&run(&bus.address, &["set"]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("nothing to set"), "{stderr}");
}
