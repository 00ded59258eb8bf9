//! `lampi swarm raw`: the broker baseline, run by the real binary against a real Mosquitto.
#![cfg(feature = "swarm")]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Broker, free_port};
use lampi::swarm::report::Report;

fn raw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lampi"))
        .args(["swarm", "raw"])
        .args(args)
        .output()
        .unwrap()
}

fn run(port: u16, out: &Path, args: &[&str]) -> Report {
    let broker = format!("127.0.0.1:{port}");
    let mut all = vec!["--broker", &broker, "--out", out.to_str().unwrap()];
    all.extend(args);
    let output = raw(&all);
    assert!(
        output.status.success(),
        "lampi swarm raw {all:?}: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report = Report::from_json(&std::fs::read_to_string(out).unwrap()).expect("the report parses");
    // The table printed is the report's.
    assert_eq!(String::from_utf8_lossy(&output.stdout), report.to_string());
    report
}

#[test]
fn echo_answers_every_set_config_and_times_the_round_trip() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("echo.json");
    let args = [
        "--pattern",
        "echo",
        "--connections",
        "20",
        "--apps",
        "2",
        "--rate",
        "200",
        "--duration",
        "2s",
    ];
    let report = run(broker.port, &out, &args);

    let baseline = report.baseline.as_ref().expect("a raw report has its baseline");
    assert_eq!(baseline.pattern, "echo");
    assert_eq!((baseline.publishers, baseline.subscribers), (2, 20));
    let c = &report.messages.set_config;
    // 200 a second for 2 s, within the budget of 110 %.
    assert!((100..=440).contains(&c.sent), "sent {}", c.sent);
    assert_eq!((c.acked, c.received, c.duplicates), (c.sent, c.sent, 0), "{c:?}");
    // Each round trip is four PUBLISH packets: set_config in and out, changed in and out.
    assert_eq!((baseline.publish_in, baseline.publish_out), (2 * c.sent, 2 * c.sent));
    assert_eq!(report.latency_us.set_config_changed.count(), c.sent);
    assert_eq!(report.latency_us.publish_puback.count(), c.sent);
    assert!(report.latency_us.set_config_changed.max() > 0);
    assert_eq!(report.connections.connected_at_end, 20);
    assert_eq!((report.connections.made, report.connections.failed), (22, 0));
    let timeline_sent: u64 = report.timeline.points.iter().map(|p| p.sent).sum();
    assert_eq!(timeline_sent, c.sent);
    assert!(baseline.window_ms >= 1900, "window {} ms", baseline.window_ms);
    assert!(report.sources[0].cpu_s > 0.0);
}

#[test]
fn firehose_reaches_every_subscriber_and_stops_at_its_budget() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("firehose.json");
    let args = [
        "--pattern",
        "firehose",
        "--connections",
        "2",
        "--subscribers",
        "3",
        "--max",
        "--max-messages",
        "3000",
        "--duration",
        "2s",
    ];
    let report = run(broker.port, &out, &args);

    let baseline = report.baseline.as_ref().unwrap();
    assert_eq!(
        (baseline.pattern.as_str(), baseline.publishers, baseline.subscribers),
        ("firehose", 2, 3)
    );
    assert!(
        (1..=3000).contains(&baseline.publish_in),
        "published {}",
        baseline.publish_in
    );
    assert_eq!(baseline.publish_out, 3 * baseline.publish_in);
    assert_eq!(report.latency_us.publish_puback.count(), baseline.publish_in);
    assert_eq!(report.connections.failed, 0);
}

#[test]
fn a_broker_that_is_not_there_is_exit_69_and_bad_flags_78() {
    let nobody = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let output = raw(&[
        "--broker",
        &nobody,
        "--pattern",
        "firehose",
        "--max",
        "--duration",
        "1s",
    ]);
    assert_eq!(output.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Connection refused"));
    assert!(started.elapsed() < Duration::from_secs(5));

    let output = raw(&[
        "--broker",
        &nobody,
        "--pattern",
        "firehose",
        "--apps",
        "2",
        "--rate",
        "10",
    ]);
    assert_eq!(output.status.code(), Some(78));
    let output = raw(&["--broker", "nowhere", "--pattern", "echo", "--rate", "10"]);
    assert_eq!(output.status.code(), Some(78));
}
