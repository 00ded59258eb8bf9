//! The real binary, killed with SIGKILL at random moments during bursts of updates: every
//! restart must find a readable state file holding one of the states it was sent.

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::{Broker, Client, rss_kib, write_config};
use lampi::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const ROUNDS: u32 = 8;
const UPDATES: u32 = 1000;

fn spawn_lamp(config: &std::path::Path) -> Child {
    common::lampi_run(config).spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_updates_never_leaves_an_unreadable_state_file() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let config = write_config(dir.path(), broker.port, &state_dir, "crashy");
    let connection = "lamp/connection/crashy/state";
    let mut watcher = Client::connect(broker.port, "watcher").await;
    watcher.subscribe(connection).await;
    let flooder = Client::connect(broker.port, "flooder").await;

    let seed = rand::rng().random::<u64>();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let store = Store::new(&state_dir);
    for round in 0..ROUNDS {
        let mut lamp = KillOnDrop(spawn_lamp(&config));
        watcher.next_matching(connection, |j| *j == json!(1)).await;

        let kill_after = Duration::from_millis(rng.random_range(50..1000));
        let client = flooder.client.clone();
        let flood = tokio::spawn(async move {
            for i in 1..=UPDATES {
                let payload = format!(
                    r#"{{"brightness":{},"client":"round{round}"}}"#,
                    f64::from(i) / f64::from(UPDATES)
                );
                client
                    .publish("lamp/set_config", rumqttc::QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        tokio::time::sleep(kill_after).await;
        lamp.0.kill().unwrap();
        lamp.0.wait().unwrap();
        flood.await.unwrap();

        // The broker saw the socket die and published the lamp's last will.
        watcher.next_matching(connection, |j| *j == json!(0)).await;

        let text = std::fs::read_to_string(store.path());
        let corrupt: Vec<_> = std::fs::read_dir(&state_dir)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("corrupt"))
            .collect();
        assert!(
            corrupt.is_empty(),
            "round {round} (kill after {kill_after:?}): state moved aside: {corrupt:?}"
        );
        if let Ok(text) = text {
            let saved: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("round {round}: unreadable state file ({e}): {text:?}"));
            let brightness = saved["light"]["brightness"].as_f64().unwrap();
            let sent = (brightness * f64::from(UPDATES)).round() / f64::from(UPDATES);
            assert!(
                brightness == 1.0 || brightness == sent,
                "round {round}: {brightness} was never sent"
            );
        }
        let loaded = store.load();
        assert!(store.path().exists() || loaded.light == lampi::core::light::LightState::default());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_message_is_refused_without_being_read() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), broker.port, &dir.path().join("state"), "big");
    let connection = "lamp/connection/big/state";
    let mut watcher = Client::connect(broker.port, "watcher").await;
    watcher.subscribe(connection).await;
    watcher.subscribe("lamp/changed").await;
    let lamp = KillOnDrop(spawn_lamp(&config));
    watcher.next_matching(connection, |j| *j == json!(1)).await;
    let before = rss_kib(lamp.0.id());

    let huge = dir.path().join("huge");
    std::fs::write(&huge, vec![b'x'; 10 * 1024 * 1024]).unwrap();
    for topic in ["lamp/set_config", "$aws/things/test/shadow/update"] {
        // mosquitto_pub, because the test's own client refuses to send anything that big.
        let sent = Command::new("mosquitto_pub")
            .args(["-p", &broker.port.to_string(), "-q", "1", "-t", topic, "-f"])
            .arg(&huge)
            .status()
            .unwrap();
        assert!(sent.success());
        // The lamp drops the connection rather than buffer it, then comes back.
        watcher.next_matching(connection, |j| *j == json!(0)).await;
        watcher.next_matching(connection, |j| *j == json!(1)).await;
    }
    let after = rss_kib(lamp.0.id());
    assert!(after < before + 4096, "RSS grew from {before} KiB to {after} KiB");
    // And it still works.
    watcher
        .publish("lamp/set_config", r#"{"on":false,"client":"after"}"#)
        .await;
    watcher
        .next_matching("lamp/changed", |j| j["client"] == json!("after"))
        .await;
}

/// Stops the daemon however the test ends, so a failed test leaves no lamp running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
