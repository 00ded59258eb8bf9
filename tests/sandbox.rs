//! The daemon against the shipped unit's system-call filter. `systemd/lampi.service`'s
//! `SystemCallFilter=` lines are expanded with `systemd-analyze syscall-filter` and applied in
//! systemd's order; the real `lampi run` goes through a scripted session under `strace -f`
//! (set_config, a shadow update, a pairing code, then a restart on a virtual clock and an
//! alarm ringing), and any system call it makes outside the allowed set fails the test — the
//! one that would get EPERM under systemd, today's and the next one. With the `ble` feature,
//! the same for a lamp serving Bluetooth LE to the BlueZ stand-in (bluer, its D-Bus connection
//! and the notifications).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Broker, Client, TIMEOUT, json};
use serde_json::{Value, json};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/lampi.service");
const DOCUMENTS: &str = "$aws/things/lamp1/shadow/update/documents";
const CHANGED: &str = "lamp/changed";
const CODE: &str = "lampi/lamp1/pairing/code";

/// The system calls of `filter` (a name or a `@set`), sets expanded recursively.
fn expand(filter: &str, into: &mut BTreeSet<String>) {
    if !filter.starts_with('@') {
        into.insert(filter.to_owned());
        return;
    }
    let listing = Command::new("systemd-analyze")
        .args(["syscall-filter", filter])
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    assert!(listing.status.success(), "unknown system-call set {filter}");
    // The first line names the set; then its comment, its members and nested sets.
    for line in String::from_utf8_lossy(&listing.stdout).lines().skip(1) {
        let entry = line.trim();
        if !entry.is_empty() && !entry.starts_with('#') {
            expand(entry, into);
        }
    }
}

/// What the unit lets through, the way systemd builds it: the first `SystemCallFilter=` line
/// makes an allow-list (which always holds `@default`), a `~` line takes calls out of it, and
/// any later line puts calls back.
fn allowed_by_the_unit() -> BTreeSet<String> {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let lines: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SystemCallFilter="))
        .collect();
    assert!(
        lines.first().is_some_and(|first| !first.starts_with('~')),
        "the unit's filter is an allow-list: {lines:?}"
    );
    let mut allowed = BTreeSet::new();
    expand("@default", &mut allowed);
    for line in lines {
        let (deny, names) = match line.strip_prefix('~') {
            Some(names) => (true, names),
            None => (false, line),
        };
        for name in names.split_whitespace() {
            let mut calls = BTreeSet::new();
            expand(name, &mut calls);
            if deny {
                allowed.retain(|call| !calls.contains(call));
            } else {
                allowed.extend(calls);
            }
        }
    }
    allowed
}

/// `lampi run` under `strace -f`, counting system calls by name into `counts`; its log goes
/// to `log`. Killed if the test fails before it is stopped.
struct Traced {
    strace: Child,
    lamp: u32,
    counts: PathBuf,
}

impl Traced {
    fn start(config: &Path, counts: PathBuf, log: &Path, env: &[(&str, &str)]) -> Traced {
        let strace = Command::new("strace")
            .args(["-f", "-qq", "-c", "-U", "name,calls", "-o"])
            .arg(&counts)
            .arg(env!("CARGO_BIN_EXE_lampi"))
            .arg("--config")
            .arg(config)
            .args(["run", "--no-ui"])
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("strace (apt-get install strace)");
        let lamp = child_of(strace.id());
        Traced { strace, lamp, counts }
    }

    /// Stops the lamp as systemd does (SIGTERM) and returns the system calls it made.
    fn stop(mut self) -> BTreeSet<String> {
        signal("TERM", self.lamp);
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.strace.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the lamp did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "lampi under strace: {status}");
        let summary = std::fs::read_to_string(&self.counts).unwrap();
        // A table: a header, dashes, one "name calls" row per system call, dashes, the total.
        summary
            .lines()
            .filter(|l| !l.starts_with('-') && !l.starts_with("syscall") && !l.starts_with("total"))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if self.strace.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").args(["-KILL", &self.lamp.to_string()]).status();
            // Never wait for ever: a failed test must end, not hang the suite.
            let deadline = Instant::now() + TIMEOUT;
            while self.strace.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.strace.kill();
            let _ = self.strace.wait();
        }
    }
}

fn signal(name: &str, pid: u32) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}

/// The lamp: the child of `parent` (strace) once it runs `lampi`. Before its exec the child is
/// still a copy of strace, and a test that took it for the lamp signalled the wrong process.
fn child_of(parent: u32) -> u32 {
    let parent = parent.to_string();
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid …; comm may hold spaces, so count from its ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let ppid = rest.split_whitespace().nth(1);
            if ppid == Some(parent.as_str()) && head.ends_with("(lampi") {
                return entry.file_name().to_string_lossy().parse().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("strace started no lamp");
}

fn config(dir: &Path, port: u16, clock: &str) -> PathBuf {
    let path = dir.join("lampi.toml");
    std::fs::write(
        &path,
        format!(
            "[device]\nid = \"lamp1\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\n\
             reconnect_initial_ms = 50\nreconnect_max_ms = 500\n[led]\nbackend = \"sim\"\nswatch = false\n\
             [light]\ntransition_ms = 100\n[clock]\n{clock}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

/// What the kernel says of the clock, asked from here, outside any filter.
fn kernel_says_synchronised() -> bool {
    // SAFETY: adjtimex with `modes == 0` only reads the kernel's state into `timex`.
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut timex) };
    state >= 0 && state != libc::TIME_ERROR && timex.status & libc::STA_UNSYNC == 0
}

async fn reported_until(app: &mut Client, wanted: impl Fn(&Value) -> bool) -> Value {
    let documents = app
        .next_matching(DOCUMENTS, |doc| wanted(&doc["current"]["state"]["reported"]))
        .await;
    json(&documents)["current"]["state"]["reported"].clone()
}

/// An app watching the lamp's answers, subscribed before the lamp starts.
async fn watching_app(port: u16, id: &str) -> Client {
    let app = Client::connect(port, id).await;
    for topic in [DOCUMENTS, CHANGED, CODE] {
        app.subscribe(topic).await;
    }
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lamp_makes_no_system_call_that_its_unit_forbids() {
    let allowed = allowed_by_the_unit();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();

    // On the system clock, with alarms waiting for it as on a Pi: the lamp asks the kernel
    // whether NTP has synchronised it.
    let mut app = watching_app(broker.port, "app").await;
    let lamp = Traced::start(
        &config(dir.path(), broker.port, "require_sync = true"),
        dir.path().join("system-clock.txt"),
        &dir.path().join("system-clock.log"),
        &[],
    );
    // lamp/changed is retained and the lamp's first message; a moment more for its subscriptions.
    app.next_on(CHANGED).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.publish(
        "lamp/set_config",
        r#"{"on":true,"brightness":0.5,"color":{"h":0.6,"s":1.0},"client":"sandbox"}"#,
    )
    .await;
    app.next_matching(CHANGED, |c| c["client"] == json!("sandbox")).await;
    let update = json!({"state": {"desired": {
        "alarms": {"wake": {"time": "07:00", "action": "sunrise", "ramp_minutes": 1}}
    }}});
    app.publish("$aws/things/lamp1/shadow/update", update.to_string()).await;
    let reported = reported_until(&mut app, |r| r["alarms"]["wake"].is_object()).await;
    assert_eq!(
        reported["clock"]["synchronised"],
        json!(kernel_says_synchronised()),
        "the lamp reports the clock as the kernel sees it"
    );
    app.publish("lampi/lamp1/pairing/request", "{}").await;
    app.next_matching(CODE, |c| c["code"].is_string()).await;
    let mut made = lamp.stop();

    // Again on a virtual clock a minute before the alarm kept in the state file, until it rings
    // (on a day to come: the lamp remembers that today's 07:00 is settled).
    let day = chrono::Utc::now().date_naive() + chrono::Days::new(2);
    let mut app = watching_app(broker.port, "app2").await;
    let lamp = Traced::start(
        &config(
            dir.path(),
            broker.port,
            &format!("start = \"{day}T06:58:50Z\"\nspeed = 60.0"),
        ),
        dir.path().join("virtual-clock.txt"),
        &dir.path().join("virtual-clock.log"),
        &[],
    );
    reported_until(&mut app, |r| r["alarm"]["state"] == json!("ringing")).await;
    made.extend(lamp.stop());

    // The test itself would pass on nothing: the session did reach the network and the clock.
    for expected in ["connect", "timerfd_settime"] {
        assert!(made.contains(expected), "no {expected} in {made:?}");
    }
    assert!(
        made.contains("clock_adjtime") || made.contains("adjtimex"),
        "the lamp never asked whether the clock is synchronised: {made:?}"
    );
    none_forbidden(&made, &allowed);
}

fn none_forbidden(made: &BTreeSet<String>, allowed: &BTreeSet<String>) {
    let forbidden: Vec<&String> = made.difference(allowed).collect();
    assert!(
        forbidden.is_empty(),
        "under {UNIT} these system calls would fail with EPERM: {forbidden:?}"
    );
}

/// Bluetooth LE on, served to the BlueZ stand-in on a private bus: registered, read, written,
/// subscribed to and notified of an MQTT change.
#[cfg(feature = "ble")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lamp_serving_ble_makes_no_system_call_that_its_unit_forbids() {
    use common::ble::{BlueZ, Bus, CENTRAL_A, bytes, standin_available};
    use lampi::protocol::ble;

    if !standin_available() {
        eprintln!("SKIPPED: dbus-daemon or /usr/bin/python3 with python3-dbusmock missing (make test installs them)");
        return;
    }
    let allowed = allowed_by_the_unit();
    let broker = Broker::start();
    let bus = Bus::start();
    let mut bluez = BlueZ::start(&bus);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), broker.port, "require_sync = false\n[ble]\nenabled = true");
    let mut app = watching_app(broker.port, "app").await;
    let lamp = Traced::start(
        &config,
        dir.path().join("ble.txt"),
        &dir.path().join("ble.log"),
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)],
    );
    bluez.event(
        |e| e["event"] == "registered" && e["what"] == "advertisement",
        "the lamp's advertisement",
    );
    let model = bluez.path_of(ble::MODEL_NUMBER, None);
    assert_eq!(bytes(&bluez.read(&model, CENTRAL_A)), b"LAMPI");
    let brightness = bluez.path_of(ble::BRIGHTNESS, None);
    let written = bluez.write(&brightness, &[0xcc], CENTRAL_A);
    assert!(written.get("error").is_none(), "{written}");
    app.next_matching(CHANGED, |c| c["client"] == json!("ble")).await;
    let subscribed = bluez.ask(json!({"cmd": "start_notify", "path": brightness}));
    assert!(subscribed.get("error").is_none(), "{subscribed}");
    app.publish("lamp/set_config", r#"{"brightness":0.25,"client":"sandbox"}"#)
        .await;
    let notified = bluez.event(|e| e["event"] == "notification", "a notification of the MQTT change");
    assert_eq!(notified["value"], json!([64]));
    let made = lamp.stop();

    none_forbidden(&made, &allowed);
}
