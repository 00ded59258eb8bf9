//! TLS with client certificates, as AWS IoT requires, against a Mosquitto TLS listener that
//! insists on them. The certificates are made by the test with the `openssl` command.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::pki::{issue, make_ca};
use common::{Broker, Client, RunningLamp, free_port};
use serde_json::json;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        make_ca(dir.path(), "ca");
        make_ca(dir.path(), "rogue-ca");
        issue(dir.path(), "ca", "broker", Some("IP:127.0.0.1,DNS:localhost"));
        issue(dir.path(), "ca", "lamp1", None);
        issue(dir.path(), "rogue-ca", "impostor", None);
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// A broker with a plain listener for the test's own client and a TLS one requiring client
/// certificates from `ca`.
fn tls_broker(pki: &Pki) -> (Broker, u16) {
    let tls_port = free_port();
    let extra = format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        pki.path("ca.pem").display(),
        pki.path("broker.pem").display(),
        pki.path("broker.key").display()
    );
    (Broker::start_custom(false, "", extra), tls_port)
}

async fn lamp_over_tls(tls_port: u16, pki: &Pki, cert: Option<&str>, state: &Path) -> RunningLamp {
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        cert.map(|c| pki.path(&format!("{c}.pem"))),
        cert.map(|c| pki.path(&format!("{c}.key"))),
    );
    RunningLamp::start_with(tls_port, state, move |c| {
        c.mqtt.tls = true;
        c.mqtt.ca_file = Some(ca);
        c.mqtt.cert_file = cert;
        c.mqtt.key_file = key;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lamp_with_a_certificate_from_the_ca_is_let_in() {
    let pki = Pki::new();
    let (broker, tls_port) = tls_broker(&pki);
    let mut watcher = Client::connect(broker.port, "watcher").await;
    watcher.subscribe("lamp/connection/lamp_service/state").await;
    let state = tempfile::tempdir().unwrap();
    let lamp = lamp_over_tls(tls_port, &pki, Some("lamp1"), state.path()).await;
    watcher
        .next_matching("lamp/connection/lamp_service/state", |j| *j == json!(1))
        .await;
    // And it works through the TLS connection.
    watcher.subscribe("lamp/changed").await;
    watcher
        .publish("lamp/set_config", r#"{"on":false,"client":"plain"}"#)
        .await;
    watcher
        .next_matching("lamp/changed", |j| j["client"] == json!("plain"))
        .await;
    lamp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lamps_without_a_valid_certificate_are_refused_and_keep_working() {
    let pki = Pki::new();
    let (broker, tls_port) = tls_broker(&pki);
    let mut watcher = Client::connect(broker.port, "watcher").await;
    watcher.subscribe("lamp/connection/lamp_service/state").await;
    for cert in [None, Some("impostor")] {
        let state = tempfile::tempdir().unwrap();
        let mut lamp = lamp_over_tls(tls_port, &pki, cert, state.path()).await;
        let connected = watcher
            .drain("lamp/connection/lamp_service/state", Duration::from_millis(1500))
            .await;
        assert!(connected.is_empty(), "{cert:?} got in: {connected:?}");
        // The lamp itself is fine.
        let change = lampi::core::light::LightChange {
            on: Some(false),
            ..Default::default()
        };
        lamp.handle
            .commands
            .send(lampi::lamp_task::Command::Set {
                change,
                transition: None,
                client: "button".into(),
            })
            .await
            .unwrap();
        lamp.output_settles_at(lampi::core::colour::Rgb::OFF).await;
        lamp.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password_as_the_alternative() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["lamp1", "correct horse"])
        .status()
        .unwrap();
    assert!(made.success());
    let auth_port = free_port();
    // Settings per listener: the test's own client stays anonymous on the plain one.
    let extra = format!(
        "listener {auth_port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
        passwords.display()
    );
    let broker = Broker::start_custom(false, "per_listener_settings true\n", extra);
    let mut watcher = Client::connect(broker.port, "watcher").await;
    watcher.subscribe("lamp/connection/lamp_service/state").await;

    let state = tempfile::tempdir().unwrap();
    let wrong = RunningLamp::start_with(auth_port, state.path(), |c| {
        c.mqtt.username = Some("lamp1".into());
        c.mqtt.password = Some(toml::from_str::<Secret>("p = 'battery staple'").unwrap().p);
    })
    .await;
    let connected = watcher
        .drain("lamp/connection/lamp_service/state", Duration::from_millis(1000))
        .await;
    assert!(connected.is_empty(), "a wrong password got in");
    wrong.stop().await;

    let right = RunningLamp::start_with(auth_port, state.path(), |c| {
        c.mqtt.username = Some("lamp1".into());
        c.mqtt.password = Some(toml::from_str::<Secret>("p = 'correct horse'").unwrap().p);
    })
    .await;
    watcher
        .next_matching("lamp/connection/lamp_service/state", |j| *j == json!(1))
        .await;
    right.stop().await;
}

/// A password as a config file would give it.
#[derive(serde::Deserialize)]
struct Secret {
    p: lampi::config::Secret,
}
