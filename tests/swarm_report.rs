//! `lampi swarm merge`: reports of two processes of one run, merged by the real binary.
#![cfg(feature = "swarm")]

mod common;

use std::collections::BTreeMap;

use common::lampi_in;
use lampi::swarm::report::{Parameters, Report, Source};

/// One process's report: lamps `[first, first + 100)`, latencies from `base_us` up.
fn process_report(first: u64, base_us: u64, start_unix_ms: u64) -> Report {
    let parameters = Parameters {
        run_id: "t".to_owned(),
        brokers: vec!["127.0.0.1:1883".to_owned()],
        lamps: 100,
        apps: 1,
        rate_per_s: 50.0,
        mix: BTreeMap::from([("desired".to_owned(), 1.0)]),
        qos: 1,
        ramp_per_s: 100.0,
        duration_ms: 5000,
        topic_prefix: "swarm".to_owned(),
    };
    let source = Source {
        host: "test".to_owned(),
        pid: first as u32 + 1,
        started_unix_ms: start_unix_ms,
        lamps: [first, first + 100],
        cpu_s: 0.5,
        peak_rss_bytes: 20 << 20,
        bytes_per_lamp: 80_000,
    };
    let mut report = Report::new(parameters, source, "desired_reported");
    for i in 0..1000 {
        let us = base_us + i * 37;
        report.latency_us.publish_puback.record(us / 4);
        report.latency_us.desired_reported.record(us);
        let point = report.timeline.at(start_unix_ms + i * 5);
        point.sent += 1;
        point.received += 1;
        point.latency_us.record(us);
    }
    report.messages.desired.sent = 1000;
    report.messages.desired.acked = 1000;
    report.messages.desired.received = 1000;
    report.connections.made = 101;
    report.connections.connected_at_end = 100;
    report
}

#[test]
fn merge_of_two_processes_reports_adds_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = process_report(0, 500, 1_700_000_000_000);
    let b = process_report(100, 40_000, 1_700_000_002_500);
    std::fs::write(dir.path().join("a.json"), a.to_json()).unwrap();
    std::fs::write(dir.path().join("b.json"), b.to_json()).unwrap();

    // Bare file names: written in the working directory.
    let out = lampi_in(
        dir.path(),
        &[
            "swarm",
            "merge",
            "a.json",
            "b.json",
            "--out",
            "merged.json",
            "--svg",
            "merged.svg",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));

    let mut expected = a;
    expected.merge(b).unwrap();
    let merged = Report::from_json(&std::fs::read_to_string(dir.path().join("merged.json")).unwrap()).unwrap();
    assert_eq!(merged, expected);
    assert_eq!(merged.latency_us.desired_reported.count(), 2000);
    assert_eq!(merged.parameters.lamps, 200);
    assert_eq!(merged.timeline.points.len(), 8, "5 s and 5 s, 2.5 s apart");

    // The table: the merged median lies between the two processes' (500–37 500 µs and
    // 40 000–77 000 µs), which no average of percentiles would say exactly.
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("desired_reported"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "2000", "{stdout}");
    let p50: f64 = row[2].parse().unwrap();
    assert!((37.0..=40.1).contains(&p50), "{stdout}");
    assert!(
        stdout.contains("run t: 200 lamps (200 connected at the end)"),
        "{stdout}"
    );

    let svg = std::fs::read_to_string(dir.path().join("merged.svg")).unwrap();
    assert!(svg.starts_with("<svg ") && svg.contains("desired_reported"));
}

#[test]
fn a_file_that_is_not_a_report_is_a_data_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.json"),
        process_report(0, 500, 1_700_000_000_000).to_json(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"schema\": \"lampi-swarm/1\", \"lampi\": ",
    )
    .unwrap();

    let out = lampi_in(
        dir.path(),
        &["swarm", "merge", "good.json", "bad.json", "--out", "merged.json"],
    );
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.json: not a swarm report: EOF"), "{stderr}");
    assert!(!dir.path().join("merged.json").exists(), "nothing is written");

    let mut other = process_report(100, 500, 1_700_000_000_000);
    other.parameters.run_id = "u".to_owned();
    std::fs::write(dir.path().join("other.json"), other.to_json()).unwrap();
    let out = lampi_in(dir.path(), &["swarm", "merge", "good.json", "other.json"]);
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("other.json: different runs: run_id differs"),
        "{stderr}"
    );

    let out = lampi_in(dir.path(), &["swarm", "merge", "good.json", "good.json"]);
    assert_eq!(
        out.status.code(),
        Some(65),
        "one process's report twice would double its counts"
    );

    let out = lampi_in(dir.path(), &["swarm", "merge", "missing.json"]);
    assert_eq!(out.status.code(), Some(66));
}
