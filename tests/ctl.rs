//! `lampi ctl` against a lamp over a real Mosquitto.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Broker, RunningLamp, ctl_command};
use serde_json::{Value, json};

fn ctl(port: u16, args: &[&str]) -> Output {
    ctl_command(port, args).output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ctl prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_get_and_watch() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let lamp = RunningLamp::start(broker.port, state.path()).await;
    let port = broker.port;
    // The lamp subscribes right after connecting; retry get until it answers.
    let mut ready = false;
    for _ in 0..50 {
        if ctl(port, &["get"]).status.success() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the lamp never answered `lampi ctl get`");

    let mut watch = ctl_command(port, &["watch"]).stdout(Stdio::piped()).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let accepted = stdout_json(&ctl(
        port,
        &["set", "--off", "--brightness", "0.3", "--transition-ms", "0"],
    ));
    assert_eq!(
        accepted["state"]["desired"]["light"],
        json!({"on": false, "brightness": 0.3, "transition_ms": 0})
    );
    let doc = stdout_json(&ctl(port, &["get"]));
    assert_eq!(doc["state"]["reported"]["light"]["brightness"], json!(0.3));
    assert_eq!(doc["state"]["reported"]["light"]["on"], json!(false));

    // The watcher saw the delta and then the lamp's report (after any output reports of the
    // lamp's start-up fade). A watchdog ends the watcher so a missing line fails, not hangs.
    let watcher = watch.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(common::TIMEOUT);
        let _ = Command::new("kill").arg(watcher).status();
    });
    let lines: Vec<Value> = BufReader::new(watch.stdout.take().unwrap())
        .lines()
        .take(10)
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .take_while(|line: &Value| line["reported"]["light"]["brightness"] != json!(0.3))
        .collect();
    assert!(lines.len() < 10, "no report of the new brightness: {lines:?}");
    assert!(
        lines.iter().any(|l| l["delta"]["light"]["brightness"] == json!(0.3)),
        "{lines:?}"
    );
    watch.kill().unwrap();
    watch.wait().unwrap();
    lamp.stop().await;
}

#[test]
fn bad_arguments_and_missing_lamps_are_clear_errors() {
    let broker = Broker::start();
    let out = ctl(broker.port, &["set", "--brightness", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a number from 0.0 to 1.0"));
    let out = ctl(broker.port, &["set"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to set"));
    // Nobody answers for lamp1 on this broker.
    let out = ctl(broker.port, &["get"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the lamp connected?"));
}
