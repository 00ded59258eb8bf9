use super::*;

fn report(run_id: &str, pid: u32, lamps: [u64; 2]) -> Report {
    let parameters = Parameters {
        run_id: run_id.to_owned(),
        brokers: vec!["127.0.0.1:1883".to_owned()],
        lamps: lamps[1] - lamps[0],
        apps: 2,
        rate_per_s: 100.0,
        mix: BTreeMap::from([("desired".to_owned(), 0.5), ("set_config".to_owned(), 0.5)]),
        qos: 1,
        ramp_per_s: 500.0,
        duration_ms: 20_000,
        topic_prefix: "swarm".to_owned(),
    };
    let source = Source {
        host: "test".to_owned(),
        pid,
        started_unix_ms: 1_700_000_000_000,
        lamps,
        cpu_s: 1.5,
        peak_rss_bytes: 50 << 20,
        bytes_per_lamp: 90_000,
    };
    Report::new(parameters, source, "set_config_changed")
}

/// A deterministic spread of latencies from 20 µs to about 2 s, different per `seed`.
fn samples(seed: u64, n: u64) -> impl Iterator<Item = u64> {
    (0..n).map(move |i| 20 + (i * 7919 + seed * 104_729) % 2_000_000 / (1 + i % 50))
}

fn fill(report: &mut Report, seed: u64, start_ms: u64) {
    for (i, us) in samples(seed, 5_000).enumerate() {
        let i = i as u64;
        report.latency_us.publish_puback.record(us / 10);
        report.latency_us.desired_reported.record(us);
        report.latency_us.set_config_changed.record(us / 3);
        let point = report.timeline.at(start_ms + i * 7);
        point.sent += 1;
        point.received += i % 2;
        point.latency_us.record(us / 3);
    }
    report.connections = Connections {
        made: 100 + seed,
        failed: seed,
        connected_at_end: 100,
        all_connected_after_ms: Some(1000 + seed),
    };
    report.messages.desired = Counts {
        sent: 2500,
        acked: 2499,
        received: 2400 + seed,
        duplicates: seed,
        reflected: 2300,
        superseded: 100 + seed,
        lost: 3,
        ..Counts::default()
    };
    report.messages.set_config.sent = 2500;
    let mut reconnect_us = Latency::new();
    reconnect_us.record(800_000 + seed);
    report.faults.push(Fault {
        kind: "broker_restart".to_owned(),
        at_ms: 5000,
        down_ms: 2000,
        all_reconnected_after_ms: Some(900),
        reconnected: 100,
        reconnect_us,
    });
    report.loss.lost = 3;
    report.loss.first = (0..3)
        .map(|i| Lost {
            lamp: format!("r-{seed:02}{i:03}"),
            seq: i,
            kind: "desired".to_owned(),
            sent_unix_ms: start_ms + seed * 10 + i * 100,
            values: serde_json::json!({"on": true, "brightness": 0.5}),
            last_reported: None,
        })
        .collect();
}

#[test]
fn json_round_trip_keeps_histograms_exact() {
    let mut original = report("r", 1, [0, 100]);
    fill(&mut original, 1, 1_700_000_000_000);
    // The ends: 0 µs (a loopback answer within the clock's resolution) and past 60 s.
    original.latency_us.publish_puback.record(0);
    original.latency_us.desired_reported.record(3_600_000_000);
    let json = original.to_json();
    let read = Report::from_json(&json).unwrap();
    assert_eq!(read, original);
    // Exact: not only equal counts, the same bucket at every quantile.
    for ((name, a), (_, b)) in read.latency_us.all().into_iter().zip(original.latency_us.all()) {
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(a.quantile(q), b.quantile(q), "{name} at {q}");
        }
    }
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["schema"], SCHEMA);
    assert_eq!(value["latency_us"]["desired_reported"]["count"], 5001);
    assert_eq!(value["latency_us"]["publish_puback"]["min"], 0);
    assert!((60_000_000..60_100_000).contains(&read.latency_us.desired_reported.max()));
    assert!(
        value["latency_us"]["desired_reported"]["hdr"]
            .as_str()
            .unwrap()
            .starts_with("HISTFAAA")
    );
}

#[test]
fn merging_two_reports_equals_recording_everything_in_one() {
    let start = 1_700_000_000_000;
    let mut a = report("r", 1, [0, 100]);
    fill(&mut a, 1, start);
    let mut b = report("r", 2, [100, 200]);
    // Half a second later, so some seconds are in both and some in one.
    fill(&mut b, 2, start + 500);

    let mut one = Latencies::default();
    let mut timeline = Timeline::new("set_config_changed");
    for (seed, start) in [(1, start), (2, start + 500)] {
        for (i, us) in samples(seed, 5_000).enumerate() {
            one.publish_puback.record(us / 10);
            one.desired_reported.record(us);
            one.set_config_changed.record(us / 3);
            let point = timeline.at(start + i as u64 * 7);
            point.sent += 1;
            point.received += i as u64 % 2;
            point.latency_us.record(us / 3);
        }
    }

    // Through JSON, as `lampi swarm merge` reads them.
    let mut merged = Report::from_json(&a.to_json()).unwrap();
    merged.merge(Report::from_json(&b.to_json()).unwrap()).unwrap();
    assert_eq!(merged.latency_us, one);
    assert_eq!(merged.timeline, timeline);
    assert_eq!(merged.parameters.lamps, 200);
    assert_eq!(merged.parameters.rate_per_s, 200.0);
    assert_eq!(merged.sources.len(), 2);
    assert_eq!(merged.connections.made, 203);
    assert_eq!(merged.connections.failed, 3);
    assert_eq!(merged.messages.desired.received, 4803);
    assert_eq!(merged.totals().sent, 10_000);
    assert_eq!(merged.loss.lost, 6);
    let first: Vec<_> = merged
        .loss
        .first
        .iter()
        .map(|l| (l.lamp.as_str(), l.sent_unix_ms - start))
        .collect();
    assert_eq!(
        first,
        [
            ("r-01000", 10),
            ("r-01001", 110),
            ("r-01002", 210),
            ("r-02000", 520),
            ("r-02001", 620),
            ("r-02002", 720)
        ]
    );
}

#[test]
fn merging_a_report_with_itself_doubles_counts_and_keeps_percentiles() {
    let mut a = report("r", 1, [0, 100]);
    fill(&mut a, 1, 1_700_000_000_000);
    let mut doubled = a.clone();
    let mut again = a.clone();
    // Another process with other lamps, or merge refuses it as the same one (or lamps) twice.
    again.sources[0].pid = 2;
    again.sources[0].lamps = [100, 200];
    doubled.merge(again).unwrap();
    let (d, one) = (&doubled.messages.desired, &a.messages.desired);
    assert_eq!(
        [
            d.sent,
            d.acked,
            d.received,
            d.duplicates,
            d.reflected,
            d.superseded,
            d.lost
        ],
        [
            one.sent,
            one.acked,
            one.received,
            one.duplicates,
            one.reflected,
            one.superseded,
            one.lost
        ]
        .map(|n| 2 * n)
    );
    assert_eq!(doubled.faults.len(), 2);
    assert_eq!(
        doubled.connections.all_connected_after_ms,
        a.connections.all_connected_after_ms
    );
    for ((name, d), (_, one)) in doubled.latency_us.all().into_iter().zip(a.latency_us.all()) {
        assert_eq!(d.count(), 2 * one.count(), "{name}");
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(d.quantile(q), one.quantile(q), "{name} at {q}");
        }
    }
}

#[test]
fn loss_keeps_the_first_few_by_time_sent() {
    let mut a = report("r", 1, [0, 100]);
    let lost = |i: u64| Lost {
        lamp: format!("l{i}"),
        seq: i,
        kind: "desired".to_owned(),
        sent_unix_ms: i,
        values: serde_json::Value::Null,
        last_reported: None,
    };
    a.loss.lost = 8;
    a.loss.first = (0..8).map(|i| lost(2 * i + 1)).collect();
    let mut b = report("r", 2, [100, 200]);
    b.loss.lost = 8;
    b.loss.first = (0..8).map(|i| lost(2 * i)).collect();
    a.merge(b).unwrap();
    assert_eq!(a.loss.lost, 16);
    let seqs: Vec<u64> = a.loss.first.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (0..FIRST_LOST as u64).collect::<Vec<_>>());
}

#[test]
fn merge_refuses_reports_of_another_run() {
    let mut a = report("r", 1, [0, 100]);
    let mut other_qos = report("r", 2, [100, 200]);
    other_qos.parameters.qos = 0;
    assert!(matches!(a.merge(other_qos), Err(ReportError::Mismatch(m)) if m.contains("qos")));
    let other_run = report("s", 2, [100, 200]);
    assert!(matches!(a.merge(other_run), Err(ReportError::Mismatch(m)) if m.contains("run_id")));
    let err = a.merge(report("r", 1, [0, 100])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "different runs: process 1 on test started at 1700000000000 ms is in both"
    );
    assert_eq!(a, report("r", 1, [0, 100]), "a refused merge changes nothing");
    let err = a.merge(report("r", 2, [50, 150])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "different runs: lamps 0..100 and 50..150 overlap (give each process its own --lamp-offset)"
    );
    a.merge(report("r", 2, [100, 200])).expect("adjacent ranges");
}

fn baseline(pattern: &str, publish_in: u64, window_ms: u64) -> Option<Baseline> {
    Some(Baseline {
        pattern: pattern.to_owned(),
        publishers: 2,
        subscribers: 10,
        publish_in,
        publish_out: 2 * publish_in,
        window_ms,
    })
}

#[test]
fn raw_baselines_merge_only_with_their_own_pattern() {
    let mut a = report("r", 1, [0, 100]);
    a.baseline = baseline("echo", 1000, 2000);
    let mut b = report("r", 2, [100, 200]);
    b.baseline = baseline("echo", 500, 2500);
    a.merge(b).unwrap();
    let merged = a.baseline.as_ref().unwrap();
    assert_eq!(
        (
            merged.publishers,
            merged.subscribers,
            merged.publish_in,
            merged.publish_out,
            merged.window_ms
        ),
        (4, 20, 1500, 3000, 2500)
    );
    assert_eq!(merged.broker_msgs_per_s(), 1800.0);
    let table = a.to_string();
    assert!(
        table.contains(
            "raw echo: 4 publishers, 20 subscribers; broker PUBLISH in 1500 + out 3000 in 2.5 s = 1800 msgs/s"
        ),
        "{table}"
    );

    let mut firehose = report("r", 3, [200, 300]);
    firehose.baseline = baseline("firehose", 10, 1000);
    assert!(matches!(a.merge(firehose), Err(ReportError::Mismatch(m)) if m.contains("baseline")));
    // A swarm's report and a baseline are not one run's processes.
    assert!(matches!(a.merge(report("r", 4, [300, 400])), Err(ReportError::Mismatch(m)) if m.contains("baseline")));
    // Absent, not null, in a swarm's JSON; a baseline's survives the round trip.
    assert!(!report("r", 1, [0, 100]).to_json().contains("baseline"));
    assert_eq!(Report::from_json(&a.to_json()).unwrap(), a);
}

#[test]
fn a_file_that_is_not_a_report_is_refused_with_why() {
    let mut a = report("r", 1, [0, 100]);
    fill(&mut a, 1, 1_700_000_000_000);
    let json = a.to_json();

    let err = Report::from_json("{\"schema\": \"lampi-swarm/2\"}").unwrap_err();
    assert_eq!(err.to_string(), "schema \"lampi-swarm/2\" is not \"lampi-swarm/1\"");
    let err = Report::from_json("[1, 2").unwrap_err();
    assert!(matches!(err, ReportError::Json(_)), "{err}");

    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["latency_us"]["publish_puback"]["count"] = 1.into();
    let err = Report::from_json(&value.to_string()).unwrap_err();
    assert!(err.to_string().contains("count and max say 1"), "{err}");

    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["latency_us"]["publish_puback"]["hdr"] = "bm90IGEgaGlzdG9ncmFt".into();
    let err = Report::from_json(&value.to_string()).unwrap_err();
    assert!(err.to_string().contains("not an HdrHistogram"), "{err}");

    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["timeline"]["points"].as_array_mut().unwrap().reverse();
    let err = Report::from_json(&value.to_string()).unwrap_err();
    assert!(matches!(err, ReportError::Timeline(_)), "{err}");
}

/// A report's `hdr` as a crafted file could hold it: a V2 header of the caller's choosing and
/// `payload`, deflated and wrapped as V2+deflate, base64.
fn crafted_hdr(payload_len: u32, digits: u32, highest: u64, payload: &[u8]) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut v2 = Vec::new();
    v2.extend(0x1c84_9313_u32.to_be_bytes());
    v2.extend(payload_len.to_be_bytes());
    v2.extend(0_u32.to_be_bytes());
    v2.extend(digits.to_be_bytes());
    v2.extend(1_u64.to_be_bytes());
    v2.extend(highest.to_be_bytes());
    v2.extend(1.0_f64.to_be_bytes());
    v2.extend(payload);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&v2).unwrap();
    let deflated = zlib.finish().unwrap();
    let mut bytes = 0x1c84_9314_u32.to_be_bytes().to_vec();
    bytes.extend((deflated.len() as u32).to_be_bytes());
    bytes.extend(deflated);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_histogram_naming_other_bounds_or_a_false_length_is_refused_before_allocating() {
    let mut a = report("r", 1, [0, 100]);
    fill(&mut a, 1, 1_700_000_000_000);
    let refused = |hdr: String| {
        let mut value: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        value["latency_us"]["publish_puback"]["hdr"] = hdr.into();
        Report::from_json(&value.to_string()).unwrap_err().to_string()
    };
    // hdrhistogram would size its counts for 1..u64::MAX at 5 digits, and its buffer for 4 GiB.
    let err = refused(crafted_hdr(0, 5, u64::MAX, &[]));
    assert!(err.contains("not 1..18446744073709551615 with 5"), "{err}");
    let err = refused(crafted_hdr(u32::MAX - 64, 3, 60_000_000, &[2]));
    assert!(
        err.contains("payload length says 4294967231 bytes, but 1 follow"),
        "{err}"
    );
    let err = refused(crafted_hdr(2 << 20, 3, 60_000_000, &vec![0; 2 << 20]));
    assert!(err.contains("inflates past 1048576 bytes"), "{err}");
    // The same bytes with our bounds and a true length are a histogram.
    let mut value: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
    value["latency_us"]["publish_puback"] = serde_json::json!({
        "count": 0, "min": 0, "p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": 0, "mean": 0.0,
        "hdr": crafted_hdr(0, 3, 60_000_000, &[]),
    });
    Report::from_json(&value.to_string()).expect("an empty histogram of our bounds");
}

#[test]
fn the_table_shows_percentiles_in_ms_and_the_loss() {
    let mut a = report("r", 1, [0, 100]);
    a.latency_us.set_config_changed.record(1500);
    a.loss.lost = 1;
    let table = a.to_string();
    let row = table.lines().find(|l| l.starts_with("set_config_changed")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["set_config_changed", "1", "1.50", "1.50", "1.50", "1.50", "1.50"]
    );
    assert!(table.contains("lost: 1"), "{table}");
}

#[test]
fn the_svg_has_one_line_per_series_with_a_point_per_interval() {
    let mut a = report("r", 1, [0, 100]);
    fill(&mut a, 1, 1_700_000_000_000);
    let svg = svg::render(&a);
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
    // Every second of fill's 35 has a point, so each series is one line through them all.
    let lines: Vec<&str> = svg.lines().filter(|l| l.starts_with("<polyline")).collect();
    assert_eq!(lines.len(), 5);
    for line in lines {
        let points = line.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), a.timeline.points.len(), "{line}");
    }
    assert!(svg::render(&report("r", 1, [0, 1])).contains("no timeline points"));
}

#[test]
fn the_svg_shows_an_interval_with_no_point_as_no_throughput_and_no_latency() {
    let mut a = report("r", 1, [0, 100]);
    for second in [0, 1, 3] {
        let point = a.timeline.at(1_700_000_000_000 + second * 1000);
        point.sent = 10;
        point.latency_us.record(1000);
    }
    let svg = svg::render(&a);
    let lines: Vec<(&str, Vec<&str>)> = svg
        .lines()
        .filter(|l| l.starts_with("<polyline"))
        .map(|l| {
            let name = l.split("<title>").nth(1).unwrap().split('<').next().unwrap();
            let points = l.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
            (name, points.split(' ').collect())
        })
        .collect();
    let sent: Vec<_> = lines.iter().filter(|(name, _)| *name == "sent").collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.len(), 4, "second 2 drawn as 0: {:?}", sent[0].1);
    assert_eq!(sent[0].1[2].split(',').nth(1), Some("490.0"), "the bottom panel's 0");
    let p50: Vec<usize> = lines
        .iter()
        .filter(|(name, _)| *name == "p50")
        .map(|(_, p)| p.len())
        .collect();
    assert_eq!(p50, [2, 1], "the latency line breaks at second 2");
}
