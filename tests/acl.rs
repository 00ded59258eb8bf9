//! The fleet broker as shipped: a real Mosquitto runs docs/mosquitto-fleet.conf and
//! docs/mosquitto-acl.conf as they are (only the port and the paths changed), a real lamp logs
//! in with its device id, and hostile clients — an app, the portal, another lamp, nobody at
//! all — try what those files say they cannot. Then each line that stops an attack is removed,
//! or its read-only grant widened to readwrite, and that attack must get through: a protecting
//! line the attacks do not need, or an attack the config does not stop, fails a test.

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

impl Fleet {
    fn start(fleet: &str, acl: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        make_ca(path, "ca");
        issue(path, "ca", "broker", Some("IP:127.0.0.1"));
        for (i, user) in [OTHER_LAMP, VICTIM, APP, PORTAL].into_iter().enumerate() {
            let mut command = Command::new("mosquitto_passwd");
            command.arg("-b");
            if i == 0 {
                command.arg("-c");
            }
            let made = command
                .arg(path.join("passwords"))
                .arg(user)
                .arg(password(user))
                .status();
            assert!(made.expect("mosquitto_passwd is installed").success());
        }
        std::fs::write(path.join("acl.conf"), acl).unwrap();
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

fn fleet_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        let (fleet, acl) = (fleet.to_owned(), acl.to_owned());
        let fleet = tokio::task::spawn_blocking(move || Fleet::start(&fleet, &acl))
            .await
            .unwrap();
        let state = tempfile::tempdir().unwrap();
        let lamp = fleet.lamp(VICTIM, state.path()).await;
        let mut saved = lamp.handle.saved.clone();
        let reported = tokio::time::timeout(
            common::TIMEOUT,
            saved.wait_for(|s| s.shadow.reported.contains_key("connected_since")),
        )
        .await
        .is_ok();
        assert!(reported, "the lamp works under the fleet config");
        // Its subscriptions are made before it reports; a moment for the broker to take them.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Scene {
            fleet,
            lamp,
            _state: state,
        }
    }

    /// Has the lamp show a new code, and returns it.
    async fn show_code(&self) -> String {
        let mut pairing = self.lamp.handle.pairing.clone();
        pairing.mark_unchanged();
        self.lamp
            .handle
            .commands
            .send(LampCommand::RequestPairingCode)
            .await
            .unwrap();
        let code = tokio::time::timeout(common::TIMEOUT, pairing.wait_for(|p| p.code.is_some()))
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
        Attack::Forge(forger, topics) => forged(scene, forger, topics).await,
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
async fn forged(scene: &Scene, forger: &str, topics: &[&str]) -> bool {
    let reader = if forger == PORTAL { APP } else { PORTAL };
    let mut reader = scene.fleet.login(reader).await;
    for topic in topics {
        reader.subscribe(topic).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let forger_client = scene.fleet.login(forger).await;
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
