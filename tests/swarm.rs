//! `lampi swarm run` against a real, private Mosquitto on loopback: a small fleet loses nothing,
//! a broker restart mid-run loses nothing acknowledged and every lamp comes back, and the CLI
//! writes reports that `lampi swarm merge` adds up. Counts and connectivity are asserted, never
//! latency values (the machine is shared). The tests run one at a time: each has hundreds of
//! lamps.
#![cfg(feature = "swarm")]

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::lampi_in;
use lampi::config::Config;
use lampi::swarm::plan::{Asked, Plan};
use lampi::swarm::report::Report;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn plan(run_id: &str, lamps: u64, apps: u64, rate: f64, duration: &str, state_dir: &Path) -> Asked {
    Asked {
        brokers: vec![],
        mosquitto: true,
        lamps,
        lamp_offset: 0,
        run_id: Some(run_id.to_owned()),
        apps,
        rate,
        mix: "desired=0.5,set_config=0.5".to_owned(),
        ramp: 200.0,
        duration: duration.to_owned(),
        grace: "5s".to_owned(),
        max_messages: None,
        qos: 1,
        prefix: "swarmtest".to_owned(),
        state_dir: Some(state_dir.to_owned()),
        restart_broker_at: None,
        broker_down: "2s".to_owned(),
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
    }
}

fn run(plan: Plan) -> Report {
    // Lamps reconnect fast, as in the other tests: the defaults (500 ms doubling to 30 s) would
    // make a restart test wait on backoff rather than measure it.
    let base = Config::parse(
        "[mqtt]\nreconnect_initial_ms = 200\nreconnect_max_ms = 2000\n",
        Path::new("swarm.toml"),
    )
    .unwrap()
    .config;
    let report = lampi::swarm::run(plan, base, false).expect("the swarm runs");
    eprintln!("{report}");
    report
}

fn assert_no_loss(report: &Report) {
    let table = report.to_string();
    assert_eq!(report.aborted, None, "{table}");
    assert_eq!(report.loss.lost, 0, "{table}");
    assert_eq!(report.loss.unanswered, 0, "every lamp answered the final get\n{table}");
    for (name, counts) in [
        ("desired", &report.messages.desired),
        ("set_config", &report.messages.set_config),
    ] {
        assert!(counts.sent > 0, "{name}\n{table}");
        assert_eq!(counts.lost, 0, "{name}\n{table}");
        assert_eq!(counts.rejected, 0, "{name}\n{table}");
        // Every intent is accounted for.
        assert_eq!(
            counts.reflected + counts.superseded + counts.unresolved,
            counts.sent,
            "{name}\n{table}"
        );
    }
}

#[test]
fn a_small_fleet_connects_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let lamps = 200;
    let report = run(plan("small", lamps, 10, 100.0, "20s", dir.path())
        .validate("x")
        .unwrap());
    let table = report.to_string();
    assert_eq!(report.connections.connected_at_end, lamps, "{table}");
    assert!(report.connections.all_connected_after_ms.is_some(), "{table}");
    assert!(report.connections.made >= lamps + 10, "{table}");
    assert_no_loss(&report);
    let (d, s) = (&report.messages.desired, &report.messages.set_config);
    // 100 a second for 20 s, less what a starved sender could not make up at the end.
    assert!((1600..=2000).contains(&(d.sent + s.sent)), "{table}");
    assert_eq!(d.acked, d.sent, "QoS 1: every publish acknowledged\n{table}");
    assert_eq!(s.acked, s.sent, "{table}");
    assert_eq!(d.unresolved + s.unresolved, 0, "{table}");
    for (name, latency) in report.latency_us.all() {
        assert!(latency.count() > 0, "{name}\n{table}");
    }
    assert_eq!(report.latency_us.publish_puback.count(), d.sent + s.sent, "{table}");
    assert!(report.timeline.points.len() >= 15, "{table}");
    assert!(report.sources[0].bytes_per_lamp > 0, "{table}");
    assert!(report.faults.is_empty());
}

#[test]
fn a_broker_restart_loses_nothing_acknowledged_and_every_lamp_comes_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let lamps = 100;
    let mut asked = plan("restart", lamps, 5, 50.0, "15s", dir.path());
    asked.restart_broker_at = Some("5s".to_owned());
    let report = run(asked.validate("x").unwrap());
    let table = report.to_string();
    assert_eq!(report.connections.connected_at_end, lamps, "{table}");
    assert_no_loss(&report);
    assert_eq!(report.faults.len(), 1, "{table}");
    let fault = &report.faults[0];
    assert_eq!(fault.kind, "broker_restart");
    assert!(fault.down_ms >= 2000, "{table}");
    assert_eq!(fault.reconnected, lamps, "{table}");
    assert!(fault.all_reconnected_after_ms.is_some(), "{table}");
    assert_eq!(fault.reconnect_us.count(), lamps, "{table}");
    // Lamps and apps all connected twice at least.
    assert!(report.connections.made >= 2 * (lamps + 5), "{table}");
}

#[test]
fn the_command_line_runs_a_swarm_and_merges_its_reports() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    for (name, offset) in [("a", "0"), ("b", "20")] {
        let out = lampi_in(
            dir.path(),
            &[
                "swarm",
                "run",
                "--mosquitto",
                "--lamps",
                "20",
                "--lamp-offset",
                offset,
                "--apps",
                "2",
                "--rate",
                "20",
                "--duration",
                "5s",
                "--grace",
                "2s",
                "--run-id",
                "cli",
                "--state-dir",
                state,
                "--quiet",
                "--fail-on-loss",
                "--out",
                &format!("{name}.json"),
                "--svg",
                &format!("{name}.svg"),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            stdout.contains("run cli: 20 lamps (20 connected at the end)"),
            "{stdout}"
        );
        assert!(stdout.contains("lost: 0"), "{stdout}");
        let svg = std::fs::read_to_string(dir.path().join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg "));
    }
    assert!(!Path::new(state).join("cli").exists(), "the run's state is removed");

    let out = lampi_in(dir.path(), &["swarm", "merge", "a.json", "b.json", "--out", "ab.json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let read = |name: &str| Report::from_json(&std::fs::read_to_string(dir.path().join(name)).unwrap()).unwrap();
    let (a, b, merged) = (read("a.json"), read("b.json"), read("ab.json"));
    assert_eq!(merged.parameters.lamps, 40);
    assert_eq!(merged.connections.connected_at_end, 40);
    assert_eq!(merged.totals().sent, a.totals().sent + b.totals().sent, "{stdout}");
    assert!(
        stdout.contains("run cli: 40 lamps (40 connected at the end)"),
        "{stdout}"
    );
    assert_eq!(merged.sources.len(), 2);
    assert_eq!(merged.sources[1].lamps, [20, 40]);
}

#[test]
fn a_bad_plan_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    for (args, why) in [
        (&["--lamps", "100001"][..], "--lamps"),
        (&["--duration", "2h"][..], "--duration"),
        (&["--rate", "2000000"][..], "--rate"),
        (&["--restart-broker-at", "1s"][..], "--mosquitto"),
    ] {
        let out = lampi_in(
            dir.path(),
            &[&["swarm", "run", "--broker", "127.0.0.1:1"][..], args].concat(),
        );
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{args:?}");
    }
    // A broker that is not there: EX_UNAVAILABLE, before any lamp starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = lampi_in(
        dir.path(),
        &[
            "swarm",
            "run",
            "--broker",
            &format!("127.0.0.1:{port}"),
            "--lamps",
            "2",
            "--apps",
            "1",
            "--duration",
            "1s",
        ],
    );
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
}

#[test]
fn a_run_that_cannot_finish_stops_at_its_deadline_with_a_report() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // A "broker" that accepts connections and never answers: no lamp or app ever connects.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    silent.set_nonblocking(true).unwrap();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while std::time::Instant::now() < until {
            match silent.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    });
    let started = std::time::Instant::now();
    let out = lampi_in(
        dir.path(),
        &[
            "swarm",
            "run",
            "--broker",
            &format!("127.0.0.1:{port}"),
            "--lamps",
            "2",
            "--apps",
            "1",
            "--duration",
            "1s",
            "--grace",
            "0s",
            "--quiet",
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--out",
            "r.json",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The deadline: ramp (0.01 s) + 1 s + 0 s + 30 s, plus stopping.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let report = Report::from_json(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(report.aborted.as_deref(), Some("deadline"), "{stdout}");
    assert_eq!(report.connections.connected_at_end, 0);
    assert!(
        report.connections.failed > 0,
        "the app's attempts are counted\n{stdout}"
    );
    assert!(stdout.contains("ABORTED: deadline"), "{stdout}");
    drop(holder);
}

#[test]
fn every_lamp_and_app_connects_over_tls_with_its_own_certificate() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    common::pki::make_ca(&pki, "ca");
    common::pki::issue(&pki, "ca", "broker", Some("IP:127.0.0.1"));
    let lamps = 4;
    let clients = (0..lamps)
        .map(|i| format!("tls-{i:05}"))
        .chain(["app-tls-0-0".to_owned()]);
    for client in clients {
        common::pki::issue(&pki, "ca", &client, None);
    }
    let tls_port = common::free_port();
    let extra = format!(
        "listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/broker.pem\nkeyfile {0}/broker.key\nrequire_certificate true\n",
        pki.display()
    );
    let _broker = common::Broker::start_custom(false, "", extra);
    let mut asked = plan("tls", lamps, 1, 10.0, "3s", dir.path());
    asked.mosquitto = false;
    asked.brokers = vec![format!("127.0.0.1:{tls_port}")];
    asked.tls_ca = Some(pki.join("ca.pem"));
    asked.tls_cert = Some(format!("{}/{{id}}.pem", pki.display()));
    asked.tls_key = Some(format!("{}/{{id}}.key", pki.display()));

    // One lamp without its certificate: refused before anything connects.
    std::fs::rename(pki.join("tls-00002.key"), pki.join("aside.key")).unwrap();
    let err = lampi::swarm::run(asked.clone().validate("x").unwrap(), Config::default(), false).unwrap_err();
    assert_eq!(err.exit_code(), 66, "{err}");
    assert!(err.to_string().contains("tls-00002.key"), "{err}");
    std::fs::rename(pki.join("aside.key"), pki.join("tls-00002.key")).unwrap();

    let report = run(asked.validate("x").unwrap());
    let table = report.to_string();
    assert_eq!(report.connections.connected_at_end, lamps, "{table}");
    assert_no_loss(&report);
    let (d, s) = (&report.messages.desired, &report.messages.set_config);
    assert_eq!((d.acked, s.acked), (d.sent, s.sent), "{table}");
}

/// The process `parent` started as `mosquitto`, read from /proc.
fn mosquitto_child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        let (comm, rest) = stat.split_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && comm.ends_with("(mosquitto")).then_some(pid)
    })
}

/// Gone, or a zombie nobody reaps (this machine's PID 1 reaps no orphans).
fn has_exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `limit` for `done`.
fn within(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let by = std::time::Instant::now() + limit;
    while !done() {
        if std::time::Instant::now() > by {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}

/// Starts a long swarm on its own Mosquitto, waits until its lamps are running, sends `signal`;
/// returns the swarm's exit and whether its broker exited within 20 s.
fn signal_a_running_swarm(dir: &Path, run_id: &str, signal: libc::c_int) -> (std::process::ExitStatus, bool) {
    use std::time::Duration;
    let swarm = std::process::Command::new(env!("CARGO_BIN_EXE_lampi"))
        .current_dir(dir)
        .args([
            "swarm",
            "run",
            "--mosquitto",
            "--lamps",
            "5",
            "--apps",
            "1",
            "--duration",
            "60s",
            "--quiet",
        ])
        .args([
            "--run-id",
            run_id,
            "--state-dir",
            dir.to_str().unwrap(),
            "--out",
            &format!("{run_id}.json"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut swarm = KillOnDrop(swarm);
    let mut broker = None;
    assert!(
        within(Duration::from_secs(30), || {
            broker = mosquitto_child_of(swarm.0.id());
            broker.is_some()
        }),
        "no mosquitto started"
    );
    let lamps = dir.join(run_id).join("lamps");
    assert!(
        within(Duration::from_secs(30), || std::fs::read_dir(&lamps)
            .is_ok_and(|mut d| d.next().is_some())),
        "no lamp started"
    );
    // SAFETY: a signal to a child this test started and has not reaped.
    unsafe { libc::kill(swarm.0.id() as libc::pid_t, signal) };
    let mut status = None;
    assert!(
        within(Duration::from_secs(60), || {
            status = swarm.0.try_wait().unwrap();
            status.is_some()
        }),
        "the swarm did not stop"
    );
    let broker = broker.unwrap();
    (status.unwrap(), within(Duration::from_secs(20), || has_exited(broker)))
}

#[test]
fn a_swarm_killed_or_interrupted_leaves_no_broker_or_state_behind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();

    let (status, broker_exited) = signal_a_running_swarm(dir.path(), "killed", libc::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(broker_exited, "SIGKILL orphaned the swarm's mosquitto");

    for (signal, run_id, name, code) in [
        (libc::SIGINT, "interrupted", "SIGINT", 130),
        (libc::SIGTERM, "terminated", "SIGTERM", 143),
    ] {
        let (status, broker_exited) = signal_a_running_swarm(dir.path(), run_id, signal);
        assert_eq!(status.code(), Some(code), "{name}: {status:?}");
        assert!(broker_exited, "{name} orphaned the swarm's mosquitto");
        assert!(!dir.path().join(run_id).exists(), "{name} left the lamps' state behind");
        let report = std::fs::read_to_string(dir.path().join(format!("{run_id}.json"))).unwrap();
        let report = Report::from_json(&report).unwrap();
        assert_eq!(report.aborted.as_deref(), Some(name));
        assert_eq!(report.parameters.lamps, 5);
    }
}
