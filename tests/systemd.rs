//! The binary as systemd runs it: READY=1 once running, watchdog pings while the lamp answers,
//! STOPPING=1 and a clean exit on SIGTERM — and never an exit on its own.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A lamp with MQTT off, started with `env`. The PID systemd expects pings from is the
/// daemon's own; `exec` keeps the shell's PID for lampi so it can be named up front.
fn offline_lamp(dir: &Path, env: &[(&str, &Path)]) -> Child {
    let config = dir.join("lampi.toml");
    std::fs::write(&config, "[mqtt]\nenabled = false\n[led]\nswatch = false\n").unwrap();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"WATCHDOG_PID=$$ exec "$@""#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_lampi"))
        .arg("--config")
        .arg(&config)
        .args(["run", "--sim", "--no-ui", "--state-dir"])
        .arg(dir.join("state"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

fn terminate(mut lamp: Child) {
    Command::new("kill")
        .args(["-TERM", &lamp.id().to_string()])
        .status()
        .unwrap();
    assert!(lamp.wait().unwrap().success());
}

fn receive_until(socket: &UnixDatagram, wanted: &str, deadline: Instant) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.lines().any(|l| l == wanted) {
                return;
            }
            seen.push(message);
        }
    }
    panic!("no {wanted} from the daemon; got {seen:?}");
}

#[test]
fn notifies_ready_feeds_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let lamp = offline_lamp(
        dir.path(),
        &[("NOTIFY_SOCKET", &socket_path), ("WATCHDOG_USEC", Path::new("200000"))],
    );
    receive_until(&socket, "READY=1", Instant::now() + Duration::from_secs(10));
    // Interval 200 ms, pinged every 100 ms: several pings within a second.
    for _ in 0..3 {
        receive_until(&socket, "WATCHDOG=1", Instant::now() + Duration::from_secs(1));
    }
    let pid = lamp.id();
    terminate(lamp);
    receive_until(&socket, "STOPPING=1", Instant::now() + Duration::from_secs(1));
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn runs_until_told_to_stop_even_with_mqtt_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut lamp = offline_lamp(dir.path(), &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(lamp.try_wait().unwrap().is_none(), "the daemon exited by itself");
    terminate(lamp);
}

/// The shipped units, with their programs where this tree has them.
fn units_under_test(dir: &Path) -> std::path::PathBuf {
    let updater = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/lampi-update");
    for name in ["lampi.service", "lampi-update.service", "lampi-update.path"] {
        let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd").join(name))
            .unwrap()
            .replace("/usr/lib/lampi/lampi-update", updater)
            .replace("/usr/bin/lampi", env!("CARGO_BIN_EXE_lampi"));
        std::fs::write(dir.join(name), unit).unwrap();
    }
    dir.join("lampi.service")
}

/// What `systemd-analyze security` may hold against the lamp's unit, each for a reason: the
/// network (any broker address), hardware devices (GPIO, PWM, DRM, input; udev's netlink for
/// the touchscreen), `/proc` whole (rppal identifies the Pi from it), the host's root and users
/// (the lamp's groups give it its devices), and the read-only clock call alarms need
/// (adjtimex: `@clock`, part of `@privileged`, so `ProtectClock` too).
const ACCEPTED_EXPOSURES: [&str; 13] = [
    "SystemCallFilter=~@privileged",
    "SystemCallFilter=~@clock",
    "RootDirectory=/RootImage=",
    "PrivateDevices=",
    "ProtectClock=",
    "RestrictAddressFamilies=~AF_NETLINK",
    "RestrictAddressFamilies=~AF_UNIX",
    "RestrictAddressFamilies=~AF_(INET|INET6)",
    "ProcSubset=",
    "PrivateNetwork=",
    "PrivateUsers=",
    "DeviceAllow=",
    "IPAddressDeny=",
];

#[test]
fn the_units_verify_and_the_lamp_is_exposed_only_where_it_must_be() {
    let dir = tempfile::tempdir().unwrap();
    let unit = units_under_test(dir.path());
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .arg(dir.path().join("lampi-update.service"))
        .arg(dir.path().join("lampi-update.path"))
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && complaints.trim().is_empty(), "{complaints}");

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for lampi.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    assert!(exposure <= 1.9, "exposure {exposure}:\n{report}");
    let exposed: Vec<&str> = report
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("✗ ")?.split_whitespace().next())
        .collect();
    let unexpected: Vec<&&str> = exposed.iter().filter(|e| !ACCEPTED_EXPOSURES.contains(e)).collect();
    assert!(unexpected.is_empty(), "newly exposed: {unexpected:?}\n{report}");
}

/// Writable /sys is only the LED's PWM chips and the screen's backlight, named by their
/// /sys/class entries (systemd resolves those links to the device's own directory); the
/// lamp's groups are only those of its devices.
#[test]
fn the_lamp_may_write_only_its_pwm_and_backlight_and_joins_only_its_devices_groups() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("systemd/lampi.service")).unwrap();
    let writable: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ReadWritePaths="))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(!writable.is_empty());
    for path in &writable {
        let path = path.trim_start_matches('-');
        let device = ["/sys/class/pwm/pwmchip", "/sys/class/backlight/"]
            .iter()
            .find_map(|class| path.strip_prefix(class));
        assert!(
            device.is_some_and(|d| !d.is_empty() && !d.contains('/')),
            "{path} is not one PWM chip or backlight"
        );
    }
    assert!(!unit.contains("SupplementaryGroups="), "groups come from postinst");

    let postinst = std::fs::read_to_string(root.join("debian/postinst")).unwrap();
    let groups: Vec<&str> = postinst
        .lines()
        .find_map(|l| l.trim().strip_prefix("for group in ")?.strip_suffix("; do"))
        .expect("postinst's loop over the lamp's groups")
        .split_whitespace()
        .collect();
    // GPIO and PWM; DRM and the backlight; the GPU; the touchscreen. Bluetooth's group is not
    // one of them: postinst gives it in a drop-in only while BLE is on (scripts/test-ble-vm.sh
    // checks that under systemd).
    assert_eq!(groups, ["gpio", "video", "render", "input"]);
}
