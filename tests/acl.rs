//! The fleet broker as shipped: a real Mosquitto runs docs/mosquitto-fleet.conf and
//! docs/mosquitto-acl.conf as they are (only the port and the paths changed), a real lamp logs
//! in with its device id, and hostile clients — an app, the portal, another lamp, nobody at
//! all — try what those files say they cannot. Then each line that stops an attack is removed,
//! or its read-only grant widened to readwrite, and that attack must get through: a protecting
//! line the attacks do not need, or an attack the config does not stop, fails a test. Last,
//! docs/mosquitto-fleet-dynsec.conf with the portal's commands from docs/mosquitto-dynsec.json:
//! an app reaches only its owner's lamps, and only while they are paired.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::{issue, make_ca};
use common::{Client, RunningLamp, free_port, running_as_root};
use lampi::core::pairing::{Owner, display};
use lampi::lamp_task::Command as LampCommand;
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use serde_json::json;

const FLEET: &str = include_str!("../docs/mosquitto-fleet.conf");
const ACL: &str = include_str!("../docs/mosquitto-acl.conf");

/// The accounts: two lamps (device ids), and the app and the portal the shipped ACL names.
const VICTIM: &str = "lampB";
const OTHER_LAMP: &str = "lampA";
const APP: &str = "app-alice";
const PORTAL: &str = "portal";

/// Long enough for a message the broker lets through to arrive on loopback.
const QUIET: Duration = Duration::from_millis(400);

fn password(user: &str) -> String {
    format!("{user} horse staple")
}

/// The shipped broker config with only the port and the paths changed: the listener on a free
/// loopback port, the files in the test's directory.
fn instantiate(fleet: &str, port: u16, dir: &Path) -> String {
    let dir = dir.display();
    let mut config = fleet
        .replace("listener 8883", &format!("listener {port} 127.0.0.1"))
        .replace("/etc/mosquitto/lampi-passwords", &format!("{dir}/passwords"))
        .replace("/etc/mosquitto/lampi-acl.conf", &format!("{dir}/acl.conf"))
        .replace(
            "/var/lib/mosquitto/dynamic-security.json",
            &format!("{dir}/dynamic-security.json"),
        )
        .replace("/etc/mosquitto/certs/", &format!("{dir}/"))
        .replace("/var/lib/mosquitto/", &format!("{dir}/"));
    let settings = config.lines().filter(|l| !l.starts_with('#'));
    let unknown: Vec<&str> = settings
        .filter(|l| l.contains("/etc/") || l.contains("/var/"))
        .collect();
    assert!(
        unknown.is_empty() && config.contains(&port.to_string()),
        "the shipped config has a path or port the test does not know: {unknown:?}"
    );
    // Started by root, Mosquitto becomes the user `mosquitto`, who cannot read the test's files.
    if running_as_root() {
        config.push_str("user root\n");
    }
    config
}

/// A Mosquitto running a fleet config and ACL, with the accounts above, on TLS.
struct Fleet {
    port: u16,
    ca: Vec<u8>,
    dir: tempfile::TempDir,
    child: Child,
}

/// Who may do what: the ACL file's text, or the dynamic-security plugin, whose admin the portal
/// is and which it then fills with docs/mosquitto-dynsec.json.
enum Access {
    AclFile(String),
    Dynsec,
}

impl Fleet {
    fn start(fleet: &str, access: &Access) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        make_ca(path, "ca");
        issue(path, "ca", "broker", Some("IP:127.0.0.1"));
        match access {
            Access::AclFile(acl) => {
                for (i, user) in [OTHER_LAMP, VICTIM, APP, PORTAL].into_iter().enumerate() {
                    let mut command = Command::new("mosquitto_passwd");
                    command.arg("-b");
                    if i == 0 {
                        command.arg("-c");
                    }
                    command.arg(path.join("passwords")).arg(user).arg(password(user));
                    run(&mut command);
                }
                std::fs::write(path.join("acl.conf"), acl).unwrap();
            }
            Access::Dynsec => run(Command::new("mosquitto_ctrl")
                .args(["dynsec", "init"])
                .arg(path.join("dynamic-security.json"))
                .arg(PORTAL)
                .arg(password(PORTAL))),
        }
        let port = free_port();
        std::fs::write(path.join("mosquitto.conf"), instantiate(fleet, port, path)).unwrap();
        let log = std::fs::File::create(path.join("mosquitto.log")).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(path.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto is installed");
        let deadline = Instant::now() + common::TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start: {}",
                fleet_log(path)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let ca = std::fs::read(path.join("ca.pem")).unwrap();
        Fleet { port, ca, dir, child }
    }

    fn options(&self, user: Option<&str>, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", self.port);
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: self.ca.clone(),
            alpn: None,
            client_auth: None,
        }));
        if let Some(user) = user {
            options.set_credentials(user, password(user));
        }
        options
    }

    /// [`Fleet::start`] off the async threads (it runs openssl and Mosquitto's tools).
    async fn started(fleet: &str, access: Access) -> Fleet {
        let fleet = fleet.to_owned();
        tokio::task::spawn_blocking(move || Fleet::start(&fleet, &access))
            .await
            .unwrap()
    }

    /// The lamp `id`, connected and reporting.
    async fn working_lamp(&self, id: &str, state: &Path) -> RunningLamp {
        let lamp = self.lamp(id, state).await;
        let mut saved = lamp.handle.saved.clone();
        let reported = tokio::time::timeout(
            common::TIMEOUT,
            saved.wait_for(|s| s.shadow.reported.contains_key("connected_since")),
        )
        .await
        .is_ok();
        assert!(
            reported,
            "{id} works under the fleet config: {}",
            fleet_log(self.dir.path())
        );
        // Its subscriptions are made before it reports; a moment for the broker to take them.
        tokio::time::sleep(Duration::from_millis(100)).await;
        lamp
    }

    /// `user` logged in, asking for its own name as client id.
    async fn login(&self, user: &str) -> Client {
        self.login_as(user, user).await
    }

    async fn login_as(&self, user: &str, client_id: &str) -> Client {
        Client::login(self.options(Some(user), client_id))
            .await
            .unwrap_or_else(|e| panic!("{user} cannot log in: {e:?}; {}", fleet_log(self.dir.path())))
    }

    /// The lamp `id` configured as docs/mosquitto-fleet.conf tells a lamp to be.
    async fn lamp(&self, id: &str, state: &Path) -> RunningLamp {
        let ca = self.dir.path().join("ca.pem");
        RunningLamp::start_with(self.port, state, |c| {
            c.device.id = Some(id.into());
            c.mqtt.client_id = id.into();
            c.mqtt.topic_prefix = format!("devices/{id}/");
            c.mqtt.tls = true;
            c.mqtt.ca_file = Some(ca);
            c.mqtt.username = Some(id.into());
            c.mqtt.password = Some(serde_json::from_value(json!(password(id))).unwrap());
        })
        .await
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("mosquitto's tools are installed");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fleet_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("mosquitto's log:\n{}", fleet_log(self.dir.path()));
        }
    }
}

/// A fleet broker with the victim lamp running on it.
struct Scene {
    fleet: Fleet,
    lamp: RunningLamp,
    _state: tempfile::TempDir,
}

impl Scene {
    async fn start(fleet: &str, acl: &str) -> Scene {
        let fleet = Fleet::started(fleet, Access::AclFile(acl.to_owned())).await;
        let state = tempfile::tempdir().unwrap();
        let lamp = fleet.working_lamp(VICTIM, state.path()).await;
        Scene {
            fleet,
            lamp,
            _state: state,
        }
    }

    /// Has the lamp show a new code, and returns it.
    async fn show_code(&self) -> String {
        let mut pairing = self.lamp.handle.pairing.clone();
        let before = pairing.borrow().code.clone();
        self.lamp
            .handle
            .commands
            .send(LampCommand::RequestPairingCode)
            .await
            .unwrap();
        let code = tokio::time::timeout(
            common::TIMEOUT,
            pairing.wait_for(|p| p.code.is_some() && p.code != before),
        )
        .await
        .expect("the lamp shows a code")
        .unwrap()
        .code
        .clone()
        .unwrap()
        .0;
        // Published (retained) right after the view changes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        code
    }

    /// Pairs the lamp with `owner` the way the portal would, without the broker.
    async fn pair(&self, owner: &str) {
        let code = self.show_code().await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let owner = Owner::new(owner, owner).unwrap();
        let command = LampCommand::Associate { code, owner, reply };
        self.lamp.handle.commands.send(command).await.unwrap();
        answer.await.unwrap().expect("paired");
    }

    fn owner(&self) -> Option<String> {
        self.lamp.handle.pairing.borrow().owner.as_ref().map(|o| o.id.clone())
    }

    /// Whether the owner becomes `wanted` within QUIET.
    async fn owner_becomes(&self, wanted: Option<&str>) -> bool {
        let mut pairing = self.lamp.handle.pairing.clone();
        let became = pairing.wait_for(|p| p.owner.as_ref().map(|o| o.id.as_str()) == wanted);
        tokio::time::timeout(QUIET, became).await.is_ok()
    }

    async fn stop(self) {
        self.lamp.stop().await;
    }
}

/// What the victim alone may publish: its answers and its state.
const ANSWERS: [&str; 7] = [
    "$aws/things/lampB/shadow/update/accepted",
    "$aws/things/lampB/shadow/update/documents",
    "devices/lampB/lamp/changed",
    "devices/lampB/lamp/connection/lampB/state",
    "devices/lampB/lamp/associated",
    "lampi/lampB/pairing/code",
    "lampi/lampB/pairing/result",
];

#[derive(Clone, Copy, Debug)]
enum Attack {
    /// Nobody: no username at all.
    Anonymous,
    /// The app's account asking for the lamp's client id: is the lamp thrown off?
    SessionTakeover,
    /// The app's account with the lamp's client id subscribes to the lamp's pairing code.
    ImpostorReadsCode,
    /// The app subscribes wherever a code could be: the code topic, LAMPI's topic, `#`.
    AppReadsCode,
    OtherLampReadsCode,
    /// The app sends an association with the right code (learnt somehow) for its own owner.
    AppAssociates,
    AppUnpairs,
    AppDeletesShadow,
    OtherLampWritesShadow,
    /// `forger` publishes on the lamp's answer topics: does a reader see any forgery?
    Forge(&'static str, &'static [&'static str]),
}

/// Whether `attack` got through.
async fn attempt(scene: &Scene, attack: Attack) -> bool {
    let fleet = &scene.fleet;
    match attack {
        Attack::Anonymous => Client::login(fleet.options(None, "nobody")).await.is_ok(),
        Attack::SessionTakeover => {
            let mut online = scene.lamp.handle.online.clone();
            let _impostor = Client::login(fleet.options(Some(APP), VICTIM)).await;
            tokio::time::timeout(QUIET, online.wait_for(|up| !up)).await.is_ok()
        }
        Attack::ImpostorReadsCode => {
            let filters = [format!("lampi/{VICTIM}/pairing/code")];
            sees_code(scene, APP, VICTIM, &filters).await
        }
        Attack::AppReadsCode => {
            let filters = [
                format!("lampi/{VICTIM}/pairing/code"),
                "lampi/+/pairing/code".into(),
                format!("devices/{VICTIM}/lamp/associated"),
                "#".into(),
            ];
            sees_code(scene, APP, APP, &filters).await
        }
        Attack::OtherLampReadsCode => {
            let filters = [format!("lampi/{VICTIM}/pairing/code"), "lampi/+/pairing/code".into()];
            sees_code(scene, OTHER_LAMP, OTHER_LAMP, &filters).await
        }
        Attack::AppAssociates => {
            let code = scene.show_code().await;
            let app = fleet.login(APP).await;
            let claim = json!({"code": code, "owner": "mallory", "name": "Mallory"});
            app.publish(&format!("lampi/{VICTIM}/pairing/associate"), claim.to_string())
                .await;
            scene.owner_becomes(Some("mallory")).await
        }
        Attack::AppUnpairs => {
            scene.pair("bob").await;
            let app = fleet.login(APP).await;
            app.publish(&format!("lampi/{VICTIM}/pairing/unpair"), "{}").await;
            scene.owner_becomes(None).await
        }
        Attack::AppDeletesShadow => {
            let app = fleet.login(APP).await;
            app.publish(&format!("$aws/things/{VICTIM}/shadow/delete"), "{}").await;
            let mut saved = scene.lamp.handle.saved.clone();
            tokio::time::timeout(QUIET, saved.wait_for(|s| !s.shadow.exists))
                .await
                .is_ok()
        }
        Attack::OtherLampWritesShadow => {
            let lamp = fleet.login(OTHER_LAMP).await;
            let change = json!({"state": {"desired": {"alarms": {"intruder": {"time": "03:00"}}}}});
            lamp.publish(&format!("$aws/things/{VICTIM}/shadow/update"), change.to_string())
                .await;
            let mut saved = scene.lamp.handle.saved.clone();
            let changed = saved.wait_for(|s| {
                s.shadow
                    .desired
                    .get("alarms")
                    .is_some_and(|a| a.get("intruder").is_some())
            });
            tokio::time::timeout(QUIET, changed).await.is_ok()
        }
        Attack::Forge(forger, topics) => forged(fleet, forger, topics).await,
    }
}

/// Whether `user`, connecting as `client_id`, gets the code the lamp shows on any of `filters`.
async fn sees_code(scene: &Scene, user: &str, client_id: &str, filters: &[String]) -> bool {
    let code = scene.show_code().await;
    let mut client = scene.fleet.login_as(user, client_id).await;
    for filter in filters {
        client.subscribe(filter).await;
    }
    let seen = client.drain_all(QUIET).await;
    seen.iter().any(|m| {
        let payload = String::from_utf8_lossy(&m.payload);
        payload.contains(&code) || payload.contains(&display(&code))
    })
}

/// Whether `forger`'s messages on `topics` reach a reader (the portal, which may read all of
/// them, or for the portal's own forgeries the app).
async fn forged(fleet: &Fleet, forger: &str, topics: &[&str]) -> bool {
    let reader = if forger == PORTAL { APP } else { PORTAL };
    let mut reader = fleet.login(reader).await;
    for topic in topics {
        reader.subscribe(topic).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let forger_client = fleet.login(forger).await;
    let marker = format!("forged by {forger}");
    for topic in topics {
        forger_client.publish(topic, marker.clone()).await;
    }
    let seen = reader.drain_all(QUIET).await;
    seen.iter().any(|m| m.payload == marker.as_bytes())
}

const ATTACKS: [Attack; 12] = [
    Attack::Anonymous,
    Attack::SessionTakeover,
    Attack::ImpostorReadsCode,
    Attack::AppReadsCode,
    Attack::OtherLampReadsCode,
    Attack::AppAssociates,
    Attack::AppUnpairs,
    Attack::AppDeletesShadow,
    Attack::OtherLampWritesShadow,
    Attack::Forge(APP, &ANSWERS),
    Attack::Forge(PORTAL, &ANSWERS),
    Attack::Forge(OTHER_LAMP, &ANSWERS),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_on_the_shipped_fleet_config_is_refused() {
    let scene = Scene::start(FLEET, ACL).await;
    for attack in ATTACKS {
        assert!(!attempt(&scene, attack).await, "{attack:?} got through");
    }
    assert!(
        scene.lamp.handle.online.borrow().to_owned(),
        "the lamp stayed connected"
    );
    scene.stop().await;
}

/// What each principal is there for still works under the shipped config: the portal pairs the
/// lamp, an app drives it through LAMPI and the shadow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lamp_the_portal_and_an_app_do_their_jobs_under_the_shipped_fleet_config() {
    let scene = Scene::start(FLEET, ACL).await;
    let mut portal = scene.fleet.login(PORTAL).await;
    let result = format!("lampi/{VICTIM}/pairing/result");
    portal.subscribe("lampi/+/pairing/code").await;
    portal.subscribe(&result).await;
    let code = scene.show_code().await;
    let code_topic = format!("lampi/{VICTIM}/pairing/code");
    portal.next_matching(&code_topic, |j| j["code"] == json!(code)).await;
    let association = json!({"code": code, "owner": "bob", "name": "Bob", "token": "p1"});
    portal
        .publish(&format!("lampi/{VICTIM}/pairing/associate"), association.to_string())
        .await;
    let answer = common::json(&portal.next_on(&result).await);
    assert_eq!(answer["ok"], json!(true), "{answer}");
    assert_eq!(scene.owner().as_deref(), Some("bob"));

    let mut app = scene.fleet.login(APP).await;
    let changed = format!("devices/{VICTIM}/lamp/changed");
    let accepted = format!("$aws/things/{VICTIM}/shadow/update/accepted");
    app.subscribe(&changed).await;
    app.subscribe(&accepted).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.publish(
        &format!("devices/{VICTIM}/lamp/set_config"),
        r#"{"on": false, "client": "app"}"#,
    )
    .await;
    app.next_matching(&changed, |j| j["client"] == json!("app") && j["on"] == json!(false))
        .await;
    let update = json!({"state": {"desired": {"light": {"on": true}}}, "clientToken": "a1"});
    app.publish(&format!("$aws/things/{VICTIM}/shadow/update"), update.to_string())
        .await;
    app.next_matching(&accepted, |j| j["clientToken"] == json!("a1")).await;

    // What no broker can refuse, because it does not read payloads: an app allowed to update
    // the shadow may ask for a firmware version. docs/PROTOCOL.md ("Security") says whose job
    // that is; if this starts failing, say there what now refuses it.
    let firmware = json!({"state": {"desired": {"firmware": {"version": "9.9.9"}}}, "clientToken": "f1"});
    app.publish(&format!("$aws/things/{VICTIM}/shadow/update"), firmware.to_string())
        .await;
    app.next_matching(&accepted, |j| j["clientToken"] == json!("f1")).await;
    scene.stop().await;
}

/// One change to a shipped file: `line` (its `nth` occurrence) removed, or replaced by `by`.
struct Mutation {
    acl: bool,
    line: &'static str,
    nth: usize,
    by: &'static str,
    /// What then gets through.
    attack: Attack,
}

fn mutate(text: &str, line: &str, nth: usize, by: &str) -> String {
    let mut seen = 0;
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            if l != line {
                return l;
            }
            seen += 1;
            if seen == nth + 1 { by } else { l }
        })
        .collect();
    assert!(seen > nth, "the shipped file has no line {line:?} (occurrence {nth})");
    lines.join("\n") + "\n"
}

const REMOVED: &str = "";

const MUTATIONS: [Mutation; 11] = [
    Mutation {
        acl: false,
        line: "use_username_as_clientid true",
        nth: 0,
        by: REMOVED,
        attack: Attack::SessionTakeover,
    },
    Mutation {
        acl: false,
        line: "acl_file /etc/mosquitto/lampi-acl.conf",
        nth: 0,
        by: REMOVED,
        attack: Attack::AppReadsCode,
    },
    // Without its `user` line, the portal's grants belong to the app's block above it.
    Mutation {
        acl: true,
        line: "user portal",
        nth: 0,
        by: REMOVED,
        attack: Attack::AppReadsCode,
    },
    Mutation {
        acl: true,
        line: "user portal",
        nth: 0,
        by: REMOVED,
        attack: Attack::AppUnpairs,
    },
    Mutation {
        acl: true,
        line: "user portal",
        nth: 0,
        by: REMOVED,
        attack: Attack::AppDeletesShadow,
    },
    // The app's read-only grants on the lamp's answers (occurrence 0: the app's block).
    Mutation {
        acl: true,
        line: "topic read $aws/things/+/shadow/update/+",
        nth: 0,
        by: "topic readwrite $aws/things/+/shadow/update/+",
        attack: Attack::Forge(APP, &["$aws/things/lampB/shadow/update/accepted"]),
    },
    Mutation {
        acl: true,
        line: "topic read devices/+/lamp/changed",
        nth: 0,
        by: "topic readwrite devices/+/lamp/changed",
        attack: Attack::Forge(APP, &["devices/lampB/lamp/changed"]),
    },
    // The portal's (occurrence 1).
    Mutation {
        acl: true,
        line: "topic read devices/+/lamp/connection/+/state",
        nth: 1,
        by: "topic readwrite devices/+/lamp/connection/+/state",
        attack: Attack::Forge(PORTAL, &["devices/lampB/lamp/connection/lampB/state"]),
    },
    // A lamp's rights reach beyond its own name.
    Mutation {
        acl: true,
        line: "pattern readwrite $aws/things/%u/shadow/#",
        nth: 0,
        by: "pattern readwrite $aws/things/+/shadow/#",
        attack: Attack::OtherLampWritesShadow,
    },
    Mutation {
        acl: true,
        line: "pattern readwrite lampi/%u/#",
        nth: 0,
        by: "pattern readwrite lampi/+/#",
        attack: Attack::OtherLampReadsCode,
    },
    Mutation {
        acl: true,
        line: "pattern readwrite devices/%u/lamp/#",
        nth: 0,
        by: "pattern readwrite devices/+/lamp/#",
        attack: Attack::Forge(OTHER_LAMP, &["devices/lampB/lamp/associated"]),
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_protecting_line_of_the_shipped_config_stops_an_attack() {
    let mut runs = tokio::task::JoinSet::new();
    for (i, m) in MUTATIONS.iter().enumerate() {
        let (fleet, acl) = if m.acl {
            (FLEET.to_owned(), mutate(ACL, m.line, m.nth, m.by))
        } else {
            (mutate(FLEET, m.line, m.nth, m.by), ACL.to_owned())
        };
        runs.spawn(async move {
            let scene = Scene::start(&fleet, &acl).await;
            let through = attempt(&scene, MUTATIONS[i].attack).await;
            scene.stop().await;
            (i, through)
        });
    }
    while let Some(run) = runs.join_next().await {
        let (i, through) = run.unwrap();
        let m = &MUTATIONS[i];
        assert!(
            through,
            "{:?} still refused with {:?} changed to {:?}",
            m.attack, m.line, m.by
        );
    }
}

const DYNSEC_FLEET: &str = include_str!("../docs/mosquitto-fleet-dynsec.conf");
const DYNSEC_COMMANDS: &str = include_str!("../docs/mosquitto-dynsec.json");
const DYNSEC_TOPIC: &str = "$CONTROL/dynamic-security/v1";
const DYNSEC_RESPONSE: &str = "$CONTROL/dynamic-security/v1/response";

/// The commands `name` of `all` (docs/mosquitto-dynsec.json) with the placeholders filled in.
fn commands(all: &str, name: &str, fill: &[(&str, &str)]) -> String {
    let all: serde_json::Value = serde_json::from_str(all).unwrap();
    let mut commands = json!({"commands": all[name]}).to_string();
    for (placeholder, value) in fill {
        commands = commands.replace(placeholder, value);
    }
    commands
}

/// Sends the commands `name` of `all` as the portal, with the placeholders filled in, and
/// checks that the plugin took every one.
async fn dynsec(portal: &mut Client, all: &str, name: &str, fill: &[(&str, &str)]) {
    portal.publish(DYNSEC_TOPIC, commands(all, name, fill)).await;
    let answer = common::json(&portal.next_on(DYNSEC_RESPONSE).await);
    let failed: Vec<_> = answer["responses"]
        .as_array()
        .unwrap()
        .iter()
        // A grant widened to every lamp (a mutation below) is already there for the second.
        .filter(|r| {
            r.get("error")
                .is_some_and(|e| e != "ACL with this topic already exists")
        })
        .collect();
    assert!(failed.is_empty(), "{name}: {failed:?}");
}

/// Whether a local change on `lamp` reaches `app` on LAMPI's `lamp/changed`.
async fn app_sees_changes(app: &mut Client, lamp: &RunningLamp, id: &str, on: bool) -> bool {
    lamp.set_on(on, "button").await;
    let changed = format!("devices/{id}/lamp/changed");
    let seen = app.drain(&changed, QUIET).await;
    seen.iter().any(|m| common::json(m)["on"] == json!(on))
}

/// Whether an update from `app` reaches `lamp`'s shadow.
async fn app_writes(app: &Client, lamp: &RunningLamp, id: &str, alarm: &str) -> bool {
    let change = json!({"state": {"desired": {"alarms": {alarm: {"time": "03:00"}}}}});
    app.publish(&format!("$aws/things/{id}/shadow/update"), change.to_string())
        .await;
    let mut saved = lamp.handle.saved.clone();
    let written = saved.wait_for(|s| s.shadow.desired.get("alarms").is_some_and(|a| a.get(alarm).is_some()));
    tokio::time::timeout(QUIET, written).await.is_ok()
}

/// What alice's app got away with on a fleet with the dynamic-security plugin, where she owns
/// lamp A and, for a while, lamp B.
#[derive(Debug, Default, PartialEq)]
struct Breaches {
    took_over_b: bool,
    wrote_b: bool,
    read_b: bool,
    wrote_a_unpaired: bool,
    read_a_unpaired: bool,
    forged: bool,
}

/// Runs broker config `conf` with the portal's commands `all`, checking on the way that alice
/// drives what she owns.
async fn owners_fleet(conf: &str, all: &str) -> Breaches {
    let fleet = Fleet::started(conf, Access::Dynsec).await;
    // Changing the default access disconnects every client, the portal too: it logs in again.
    let mut admin = fleet.login(PORTAL).await;
    admin.publish(DYNSEC_TOPIC, commands(all, "setup", &[])).await;
    assert!(admin.dropped_within(common::TIMEOUT).await, "the setup took effect");
    let mut portal = fleet.login(PORTAL).await;
    portal.subscribe(DYNSEC_RESPONSE).await;
    for id in [OTHER_LAMP, VICTIM] {
        let fill = [("DEVICE_ID", id), ("PASSWORD", &password(id))];
        dynsec(&mut portal, all, "provision_lamp", &fill).await;
    }
    let fill = [("OWNER", "alice"), ("ACCOUNT", APP), ("PASSWORD", &password(APP))];
    dynsec(&mut portal, all, "create_app_account", &fill).await;
    // Alice owns lamp A; lamp B is somebody else's.
    let alices_lamp = [("OWNER", "alice"), ("DEVICE_ID", OTHER_LAMP)];
    dynsec(&mut portal, all, "paired", &alices_lamp).await;
    let states = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let lamp_a = fleet.working_lamp(OTHER_LAMP, states[0].path()).await;
    let lamp_b = fleet.working_lamp(VICTIM, states[1].path()).await;
    let mut breaches = Breaches::default();

    // Her account asking for lamp B's client id (before her app logs in: one connection each).
    let mut online = lamp_b.handle.online.clone();
    let _impostor = Client::login(fleet.options(Some(APP), VICTIM)).await;
    breaches.took_over_b = tokio::time::timeout(QUIET, online.wait_for(|up| !up)).await.is_ok();
    let mut app = fleet.login(APP).await;
    for id in [OTHER_LAMP, VICTIM] {
        app.subscribe(&format!("devices/{id}/lamp/changed")).await;
    }
    assert!(
        app_writes(&app, &lamp_a, OTHER_LAMP, "a1").await,
        "alice drives her lamp"
    );
    assert!(app_sees_changes(&mut app, &lamp_a, OTHER_LAMP, false).await);
    breaches.wrote_b = app_writes(&app, &lamp_b, VICTIM, "b1").await;
    breaches.read_b = app_sees_changes(&mut app, &lamp_b, VICTIM, false).await;

    // The same requests go through once she owns lamp B too: their refusal was the grant missing.
    let bs = [("OWNER", "alice"), ("DEVICE_ID", VICTIM)];
    dynsec(&mut portal, all, "paired", &bs).await;
    app.subscribe(&format!("devices/{VICTIM}/lamp/changed")).await;
    assert!(app_writes(&app, &lamp_b, VICTIM, "b2").await);
    assert!(app_sees_changes(&mut app, &lamp_b, VICTIM, true).await);

    // Unpaired, lamp A must close to her at once, even the subscription she already has.
    dynsec(&mut portal, all, "unpaired", &alices_lamp).await;
    breaches.wrote_a_unpaired = app_writes(&app, &lamp_a, OTHER_LAMP, "a2").await;
    breaches.read_a_unpaired = app_sees_changes(&mut app, &lamp_a, OTHER_LAMP, true).await;
    // What only lamps send (this logs her in again, ending the connection above: so it is last).
    breaches.forged = forged(&fleet, APP, &ANSWERS).await;
    lamp_a.stop().await;
    lamp_b.stop().await;
    breaches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dynamic_security_an_app_reaches_only_its_owners_lamps_while_they_are_paired() {
    let breaches = owners_fleet(DYNSEC_FLEET, DYNSEC_COMMANDS).await;
    assert_eq!(breaches, Breaches::default());
}

/// `all` with the plugin's default for `acltype` turned to allow.
fn allowed_by_default(all: &str, acltype: &str) -> String {
    let mut all: serde_json::Value = serde_json::from_str(all).unwrap();
    let defaults = all["setup"][0]["acls"].as_array_mut().unwrap();
    let default = defaults.iter_mut().find(|a| a["acltype"] == json!(acltype));
    default.expect("setup sets this default")["allow"] = json!(true);
    all.to_string()
}

/// `all` with an owner's grant `topic` widened to every lamp.
fn for_every_lamp(all: &str, topic: &str) -> String {
    let quoted = format!("\"{topic}\"");
    assert!(all.contains(&quoted), "no grant {topic}");
    all.replace(&quoted, &quoted.replace("DEVICE_ID", "+"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_protecting_line_of_the_dynamic_security_setup_stops_a_breach() {
    type Breached = fn(&Breaches) -> bool;
    let cases: [(&str, String, String, Breached); 5] = [
        (
            "use_username_as_clientid removed",
            mutate(DYNSEC_FLEET, "use_username_as_clientid true", 0, REMOVED),
            DYNSEC_COMMANDS.to_owned(),
            |b| b.took_over_b,
        ),
        (
            "receiving allowed by default",
            DYNSEC_FLEET.to_owned(),
            allowed_by_default(DYNSEC_COMMANDS, "publishClientReceive"),
            |b| b.read_a_unpaired,
        ),
        (
            "sending allowed by default",
            DYNSEC_FLEET.to_owned(),
            allowed_by_default(DYNSEC_COMMANDS, "publishClientSend"),
            |b| b.forged && b.wrote_b,
        ),
        (
            "an owner's update grant for every lamp",
            DYNSEC_FLEET.to_owned(),
            for_every_lamp(DYNSEC_COMMANDS, "$aws/things/DEVICE_ID/shadow/update"),
            |b| b.wrote_b,
        ),
        (
            "an owner's lamp/changed grant for every lamp",
            DYNSEC_FLEET.to_owned(),
            for_every_lamp(DYNSEC_COMMANDS, "devices/DEVICE_ID/lamp/changed"),
            |b| b.read_b,
        ),
    ];
    let mut runs = tokio::task::JoinSet::new();
    for (what, conf, all, breached) in cases {
        runs.spawn(async move {
            let breaches = owners_fleet(&conf, &all).await;
            assert!(breached(&breaches), "{what}: still refused: {breaches:?}");
        });
    }
    while let Some(run) = runs.join_next().await {
        run.unwrap();
    }
}
