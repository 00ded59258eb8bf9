//! The real binary, killed with SIGKILL at random moments during bursts of updates: every
//! restart must find a readable state file holding one of the states it was sent.

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::{Broker, Client, RunningLamp, rss_kib, write_config};
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

/// A downgrade: the state file was last written by a newer firmware, with the same format and
/// fields this one does not know. The owner and the alarms survive, and nothing is moved aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_from_a_newer_firmware_keeps_the_owner_and_the_alarms() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let mut app = Client::connect(broker.port, "app").await;
    app.subscribe("lamp/changed").await;
    app.subscribe("$aws/things/lamp1/shadow/update/#").await;
    let lamp = RunningLamp::start(broker.port, &state_dir).await;
    app.next_on("lamp/changed").await;
    let alarm = json!({"time": "06:45", "days": ["mon", "tue"], "action": "sunrise", "ramp_minutes": 30});
    let update = json!({"state": {"desired": {"alarms": {"wake": alarm}}}});
    app.publish("$aws/things/lamp1/shadow/update", update.to_string()).await;
    let answer = app
        .next_where(|p| p.topic.ends_with("/accepted") || p.topic.ends_with("/rejected"))
        .await;
    assert!(answer.topic.ends_with("/accepted"), "{:?}", answer.payload);
    let has_alarm = |saved: &lampi::core::lamp::Saved| {
        saved
            .shadow
            .reported
            .get("alarms")
            .is_some_and(|a| a.get("wake").is_some())
    };
    let mut saved = lamp.handle.saved.clone();
    tokio::time::timeout(common::TIMEOUT, saved.wait_for(has_alarm))
        .await
        .expect("the alarm is reported")
        .unwrap();
    lamp.stop().await;

    let path = Store::new(&state_dir).path();
    let mut file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    file["owner"] = json!({"id": "u-1", "name": "Ada"});
    file["screen"] = json!({"theme": "dark", "brightness": 0.4});
    file["ble"] = json!({"bonds": ["aa:bb:cc:dd:ee:ff"]});
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();

    let lamp = RunningLamp::start(broker.port, &state_dir).await;
    let saved = lamp.handle.saved.borrow().clone();
    assert_eq!(saved.memory.owner.as_ref().map(|o| o.name.as_str()), Some("Ada"));
    assert!(has_alarm(&saved), "alarms lost: {:?}", saved.shadow.reported);
    assert_eq!(saved.shadow.desired["alarms"]["wake"]["time"], json!("06:45"));
    lamp.stop().await;
    let names: Vec<_> = std::fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("state.json"))
        .collect();
    assert_eq!(names, ["state.json"]);
}

/// Stops the daemon however the test ends, so a failed test leaves no lamp running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
