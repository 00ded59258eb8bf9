//! Bluetooth LE without a radio: a private system bus ([`Bus`]) with a BlueZ stand-in
//! ([`BlueZ`], `tests/ble/bluez_standin.py` on Debian's python3-dbusmock) that records what a
//! GATT server registers and plays the centrals.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::TIMEOUT;

const STANDIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ble/bluez_standin.py");
/// Debian's python3 with python3-dbusmock: not whatever `python3` is first on the PATH.
const PYTHON: &str = "/usr/bin/python3";
pub const CENTRAL_A: &str = "/org/bluez/hci0/dev_00_11_22_33_44_55";
pub const CENTRAL_B: &str = "/org/bluez/hci0/dev_66_77_88_99_AA_BB";

/// Whether the stand-in can run here; the Makefile installs both (`dbus-daemon`,
/// `python3-dbusmock`), so CI always runs these tests.
pub fn standin_available() -> bool {
    let ok = |command: &mut Command| command.output().is_ok_and(|o| o.status.success());
    ok(Command::new("dbus-daemon").arg("--version"))
        && ok(Command::new(PYTHON).args(["-c", "import dbusmock, gi.repository.GLib"]))
}

/// A private bus of type `system`, with an allow-all policy, gone when dropped.
pub struct Bus {
    daemon: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    pub fn start() -> Bus {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("socket");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon starts");
        let deadline = Instant::now() + TIMEOUT;
        while !socket.exists() {
            assert!(Instant::now() < deadline, "dbus-daemon never made {}", socket.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        Bus {
            daemon,
            address: format!("unix:path={}", socket.display()),
            _dir: dir,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// The BlueZ stand-in: commands in, answers and events out (see the script's docstring).
pub struct BlueZ {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    /// Events read while waiting for an answer.
    events: Vec<Value>,
    next_id: u64,
}

impl BlueZ {
    pub fn start(bus: &Bus) -> BlueZ {
        let mut child = Command::new(PYTHON)
            .arg(STANDIN)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the stand-in starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line)
                    && tx.send(value).is_err()
                {
                    return;
                }
            }
        });
        let mut bluez = BlueZ {
            child,
            stdin,
            lines,
            events: Vec::new(),
            next_id: 0,
        };
        bluez.event(|e| e["event"] == "ready", "the stand-in's ready line");
        bluez
    }

    fn next_line(&self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the stand-in never sent {waiting_for}"))
    }

    /// Sends a command and returns its answer.
    pub fn ask(&mut self, mut request: Value) -> Value {
        self.next_id += 1;
        request["id"] = json!(self.next_id);
        writeln!(self.stdin, "{request}").unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let line = self.next_line(deadline, &format!("an answer to {request}"));
            if line["id"] == json!(self.next_id) {
                return line;
            }
            self.events.push(line);
        }
    }

    /// Waits for an event that `wanted` accepts, taking it and those before it.
    pub fn event(&mut self, wanted: impl Fn(&Value) -> bool, what: &str) -> Value {
        if let Some(at) = self.events.iter().position(&wanted) {
            return self.events.drain(..=at).next_back().unwrap();
        }
        self.events.clear();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let line = self.next_line(deadline, what);
            if wanted(&line) {
                return line;
            }
        }
    }

    /// Events that `wanted` accepts arriving within `quiet`.
    pub fn events_within(&mut self, quiet: Duration, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + quiet;
        let mut seen: Vec<Value> = self.events.drain(..).filter(&wanted).collect();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if wanted(&line) {
                seen.push(line);
            }
        }
        seen
    }

    pub fn tree(&mut self) -> Value {
        self.ask(json!({"cmd": "tree"}))
    }

    /// The path of the registered object with `uuid`, under `parent` when given.
    pub fn path_of(&mut self, uuid: u128, parent: Option<&str>) -> String {
        let tree = self.tree();
        let uuid = uuid_string(uuid);
        let objects = tree["applications"][0]["objects"]
            .as_object()
            .unwrap_or_else(|| panic!("an application is registered: {tree}"));
        let found: Vec<&String> = objects
            .iter()
            .filter(|(path, ifaces)| {
                parent.is_none_or(|p| path.starts_with(&format!("{p}/")))
                    && ifaces
                        .as_object()
                        .unwrap()
                        .values()
                        .any(|props| props["UUID"] == json!(uuid))
            })
            .map(|(path, _)| path)
            .collect();
        assert_eq!(found.len(), 1, "one object with {uuid} under {parent:?}: {found:?}");
        found[0].clone()
    }

    pub fn read(&mut self, path: &str, device: &str) -> Value {
        self.ask(json!({"cmd": "read", "path": path, "device": device}))
    }

    pub fn write(&mut self, path: &str, value: &[u8], device: &str) -> Value {
        self.ask(json!({"cmd": "write", "path": path, "value": value, "device": device, "type": "request"}))
    }
}

impl BlueZ {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BlueZ {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn uuid_string(uuid: u128) -> String {
    let hex = format!("{uuid:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub fn bytes(answer: &Value) -> Vec<u8> {
    let value = answer["value"]
        .as_array()
        .unwrap_or_else(|| panic!("a value, not {answer}"));
    value.iter().map(|b| b.as_u64().unwrap() as u8).collect()
}
