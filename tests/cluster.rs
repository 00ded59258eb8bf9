//! Lamps and apps on a real three-node RabbitMQ cluster (Debian's rabbitmq-server 3.10 with its
//! MQTT plugin, loopback only): lamps spread over the nodes by rotating their `mqtt.brokers`,
//! each app on another node than its lamp; one node is stopped mid-run while the apps keep
//! sending. What it asserts is what docs/PROTOCOL.md ("Broker clusters") says the cluster keeps.
//!
//! One test: the cluster takes tens of seconds to start, and the phases build on each other.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::rabbit::Cluster;
use common::{Client, RunningLamp, json};
use lampi::config::BrokerAddr;
use serde_json::{Value, json};

const LAMPS: usize = 9;
/// The node stopped mid-run; no app is on it, so only lamps move.
const STOPPED: usize = 2;
/// Each app sends one update every this often, alternating set_config and shadow desired.
const PACE: Duration = Duration::from_millis(300);
/// How long the apps send in the failover phase; the node stops after `STOP_AFTER`.
const SENDING: Duration = Duration::from_secs(16);
const STOP_AFTER: Duration = Duration::from_secs(4);
/// A lamp whose node stopped is online on another within this (measured: about a second).
const BACK_WITHIN: Duration = Duration::from_secs(30);
/// After the apps stop, every acknowledged update is reflected within this.
const GRACE: Duration = Duration::from_secs(30);
const PUBACK_WITHIN: Duration = Duration::from_secs(5);

/// One lamp's names. RabbitMQ turns `/` into `.` in its routing keys, so there is no dot in any
/// topic or id, and set_config carries no device id, so each lamp has its own prefixes.
struct Names {
    id: String,
    changed: String,
    set_config: String,
    connection: String,
    shadow: String,
}

impl Names {
    fn new(i: usize) -> Names {
        let id = format!("lamp{i}");
        Names {
            changed: format!("l{i}/lamp/changed"),
            set_config: format!("l{i}/lamp/set_config"),
            connection: format!("l{i}/lamp/connection/{id}/state"),
            shadow: format!("l{i}/shadow/"),
            id,
        }
    }
}

/// Lamp `i`'s first broker; its list goes on from there, so lamps spread over the nodes.
fn home(i: usize) -> usize {
    i % 3
}

/// Where lamp `i`'s app connects: another node than the lamp's, and never the one stopped.
fn app_node(i: usize) -> usize {
    (1..3).map(|k| (home(i) + k) % 3).find(|&n| n != STOPPED).unwrap()
}

/// The brightness that tags update `seq`: every update sets a value of its own, so the lamp's
/// reported state tells which one it reflects, whichever way it was sent.
fn brightness(seq: usize) -> f64 {
    0.1 + (seq % 800) as f64 / 1000.0
}

fn is_brightness(value: &Value, b: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - b).abs() < 1e-6)
}

/// Sends update `seq` for lamp `names`: set_config when even, a shadow desired update when odd.
/// True if the broker acknowledged it.
async fn send(app: &Client, names: &Names, seq: usize) -> bool {
    let b = brightness(seq);
    if seq.is_multiple_of(2) {
        let payload = json!({"brightness": b, "on": true, "client": format!("app-{seq}")});
        app.publish_acked(&names.set_config, payload.to_string(), PUBACK_WITHIN)
            .await
    } else {
        let payload = json!({"state": {"desired": {"light": {"brightness": b, "on": true}}}, "clientToken": format!("app-{seq}")});
        app.publish_acked(&format!("{}update", names.shadow), payload.to_string(), PUBACK_WITHIN)
            .await
    }
}

/// The app of one lamp: its client (on another node) subscribed to the lamp's answers.
async fn app(cluster: &Cluster, i: usize) -> Client {
    let names = Names::new(i);
    let client = Client::connect(cluster.mqtt[app_node(i)], &format!("app{i}")).await;
    client.subscribe(&names.changed).await;
    client.subscribe(&names.connection).await;
    client.subscribe(&format!("{}get/accepted", names.shadow)).await;
    client.subscribe(&format!("{}update/accepted", names.shadow)).await;
    client
}

/// The lamp's reported light, live, from a shadow `get` sent through `client`.
async fn shadow_get(client: &mut Client, names: &Names, token: &str) -> Value {
    client
        .publish(
            &format!("{}get", names.shadow),
            json!({"clientToken": token}).to_string(),
        )
        .await;
    let answer = client
        .next_matching(&format!("{}get/accepted", names.shadow), |j| {
            j["clientToken"] == json!(token)
        })
        .await;
    json(&answer)["state"]["reported"]["light"].clone()
}

/// What one node keeps retained on a topic, compared with what the lamp last said there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kept {
    Current,
    Stale,
    None,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lamps_fail_over_between_rabbitmq_nodes_and_lose_no_acknowledged_update() {
    let started = Instant::now();
    let cluster = Cluster::start();
    println!("cluster up in {:?}", started.elapsed());

    // Lamps, each starting on its home node with the others after it.
    let states: Vec<_> = (0..LAMPS).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut apps = Vec::new();
    for i in 0..LAMPS {
        apps.push(app(&cluster, i).await);
    }
    let mut lamps = Vec::new();
    for (i, state) in states.iter().enumerate() {
        let names = Names::new(i);
        let brokers: Vec<BrokerAddr> = (0..3)
            .map(|k| BrokerAddr {
                host: "127.0.0.1".into(),
                port: cluster.mqtt[(home(i) + k) % 3],
            })
            .collect();
        let lamp = RunningLamp::start_with(brokers[0].port, state.path(), |config| {
            config.device.id = Some(names.id.clone());
            config.mqtt.client_id = names.id.clone();
            config.mqtt.topic_prefix = format!("l{i}/");
            config.shadow.topic_prefix = Some(names.shadow.clone());
            config.mqtt.brokers = Some(brokers);
        })
        .await;
        lamps.push(lamp);
    }
    for (i, app) in apps.iter_mut().enumerate() {
        let names = Names::new(i);
        app.next_within(common::TIMEOUT * 3, |p| {
            p.topic == names.connection && &p.payload[..] == b"1"
        })
        .await;
    }
    println!("{LAMPS} lamps online at {:?}", started.elapsed());

    // (i) Every lamp answers set_config and a shadow desired update sent through another node.
    for (i, app) in apps.iter_mut().enumerate() {
        let names = Names::new(i);
        for seq in [900, 901] {
            assert!(send(app, &names, seq).await, "lamp {i}: no PUBACK");
            app.next_matching(&names.changed, |j| is_brightness(&j["brightness"], brightness(seq)))
                .await;
        }
    }

    // (ii) The apps keep sending while one node stops; a watcher on a node that stays notes
    // when each lamp's connection state and first answer arrive.
    let mut watcher = Client::connect(cluster.mqtt[app_node(0)], "watcher").await;
    watcher.subscribe("+/lamp/connection/+/state").await;
    watcher.subscribe("+/lamp/changed").await;
    let stop = cluster.node("stop-node", STOPPED);
    let phase = Instant::now();
    let watching = tokio::spawn(async move {
        let mut arrivals = Vec::new();
        while phase.elapsed() < SENDING {
            for message in watcher.drain_all(Duration::from_millis(20)).await {
                arrivals.push((message.topic.clone(), message.payload.to_vec(), phase.elapsed()));
            }
        }
        arrivals
    });
    let mut senders = Vec::new();
    for (i, app) in apps.into_iter().enumerate() {
        senders.push(tokio::spawn(async move {
            let names = Names::new(i);
            let mut acked = Vec::new();
            let mut seq = 0;
            while phase.elapsed() < SENDING {
                if send(&app, &names, seq).await {
                    acked.push(seq);
                }
                seq += 1;
                tokio::time::sleep(PACE).await;
            }
            (app, acked, seq)
        }));
    }
    tokio::time::sleep(STOP_AFTER).await;
    let stopped_at = phase.elapsed();
    tokio::task::spawn_blocking(stop).await.unwrap();
    println!(
        "node lampi{} stopped in {:?}",
        STOPPED + 1,
        phase.elapsed() - stopped_at
    );

    let mut results = Vec::new();
    for sender in senders {
        results.push(sender.await.unwrap());
    }
    let arrivals = watching.await.unwrap();
    let moved: Vec<usize> = (0..LAMPS).filter(|&i| home(i) == STOPPED).collect();
    // A moved lamp is back when it says "1" again, and answers with the first lamp/changed
    // after the one it republishes at connect.
    let mut back = BTreeMap::new();
    let mut answering = BTreeMap::new();
    for &i in &moved {
        let names = Names::new(i);
        let after_stop = || arrivals.iter().filter(|(_, _, at)| *at > stopped_at);
        let online = after_stop()
            .find(|(topic, payload, _)| *topic == names.connection && payload == b"1")
            .map(|(_, _, at)| *at)
            .unwrap_or_else(|| panic!("lamp {i} never came back online"));
        let answer = after_stop()
            .filter(|(topic, _, at)| *topic == names.changed && *at >= online)
            .nth(1)
            .map(|(_, _, at)| *at)
            .unwrap_or_else(|| panic!("lamp {i} never answered after coming back"));
        back.insert(i, online - stopped_at);
        answering.insert(i, answer - stopped_at);
    }
    let wills: Vec<_> = arrivals
        .iter()
        .filter(|(topic, payload, _)| topic.contains("/lamp/connection/") && payload == b"0")
        .collect();
    println!(
        "after the stop, moved lamps online again after {back:?}, answering after {answering:?}; wills (\"0\"): {wills:?}"
    );
    let slowest = answering.values().max().unwrap();
    println!(
        "all {} moved lamps back and answering {slowest:?} after the node stopped",
        moved.len()
    );
    assert!(*slowest < BACK_WITHIN, "a lamp took {slowest:?} to come back");
    // A graceful stop closes the lamps' connections without their last will: nothing says "0".
    assert!(wills.is_empty(), "a last will was published: {wills:?}");

    // Every acknowledged shadow update is answered (`update/accepted` with its clientToken: the
    // lamp answers each request). Every acknowledged set_config is reflected in lamp/changed, or
    // superseded by a later update that is (the lamp coalesces its reports, not its answers).
    // And the lamp's last report is the last acknowledged update.
    let mut lost = Vec::new();
    let mut superseded = 0;
    let (mut sent_total, mut acked_total) = (0, 0);
    let mut apps = Vec::new();
    for (i, (mut app, acked, sent)) in results.into_iter().enumerate() {
        let names = Names::new(i);
        sent_total += sent;
        acked_total += acked.len();
        let last = *acked.last().expect("some update acknowledged");
        let accepted_topic = format!("{}update/accepted", names.shadow);
        let (mut seen, mut accepted) = (Vec::new(), Vec::new());
        let answered = |accepted: &[Value], seq: usize| accepted.contains(&json!(format!("app-{seq}")));
        let deadline = Instant::now() + GRACE;
        loop {
            for message in app.drain_all(Duration::from_millis(200)).await {
                if message.topic == names.changed {
                    seen.push(json(&message)["brightness"].clone());
                } else if message.topic == accepted_topic {
                    accepted.push(json(&message)["clientToken"].clone());
                }
            }
            let reflected_last = seen.iter().any(|b| is_brightness(b, brightness(last)));
            let all_answered = acked
                .iter()
                .all(|&seq| seq.is_multiple_of(2) || answered(&accepted, seq));
            if (reflected_last && all_answered) || Instant::now() > deadline {
                break;
            }
        }
        let reflected = |seq: usize| seen.iter().any(|b| is_brightness(b, brightness(seq)));
        for (k, &seq) in acked.iter().enumerate() {
            if !seq.is_multiple_of(2) {
                if !answered(&accepted, seq) {
                    lost.push((i, seq));
                }
            } else if !reflected(seq) {
                if acked[k + 1..].iter().any(|&later| reflected(later)) {
                    superseded += 1;
                } else {
                    lost.push((i, seq));
                }
            }
        }
        let reported = shadow_get(&mut app, &names, "final").await;
        assert!(
            is_brightness(&reported["brightness"], brightness(last)),
            "lamp {i} reports {reported} after its last acknowledged update {last}"
        );
        apps.push(app);
    }
    println!(
        "failover: {} of {LAMPS} lamps moved; sent {sent_total}, acknowledged {acked_total}, superseded {superseded}, lost {lost:?}",
        moved.len()
    );
    assert!(lost.is_empty(), "acknowledged updates lost: {lost:?}");

    // (iii) What the cluster keeps. The stopped node comes back; then, on every node, a fresh
    // subscriber to a moved lamp's exact retained topics.
    let restarting = Instant::now();
    tokio::task::spawn_blocking(cluster.node("start-node", STOPPED))
        .await
        .unwrap();
    println!("node lampi{} back in {:?}", STOPPED + 1, restarting.elapsed());
    let mut kept = BTreeMap::new();
    for &i in &moved {
        let names = Names::new(i);
        let current = shadow_get(&mut apps[i], &names, "current").await;
        for node in 0..3 {
            let mut probe = Client::connect(cluster.mqtt[node], &format!("probe{i}n{node}")).await;
            probe.subscribe(&names.changed).await;
            probe.subscribe(&names.connection).await;
            let retained = probe.drain_all(Duration::from_millis(1500)).await;
            let on = |topic: &str| retained.iter().rfind(|m| m.topic == topic && m.retain);
            let changed = match on(&names.changed) {
                None => Kept::None,
                Some(m) if is_brightness(&json(m)["brightness"], current["brightness"].as_f64().unwrap()) => {
                    Kept::Current
                }
                Some(_) => Kept::Stale,
            };
            let connection = on(&names.connection).map(|m| String::from_utf8_lossy(&m.payload).into_owned());
            kept.insert((i, node), (changed, connection));
            // The shadow is the lamp's, answered live: the same through every node.
            probe.subscribe(&format!("{}get/accepted", names.shadow)).await;
            let live = shadow_get(&mut probe, &names, &format!("probe{node}")).await;
            assert_eq!(live, current, "lamp {i}'s shadow through node {node}");
        }
    }
    println!("retained (lamp/changed, connection) per (lamp, node): {kept:?}");
    // Retained messages are each node's own: the node a lamp moved to has its current state,
    // the node it left the state of the moment it left (and "1": no will was published), a node
    // it was never on nothing.
    let online = Some("1".to_owned());
    for &i in &moved {
        assert_eq!(
            kept[&(i, (STOPPED + 1) % 3)],
            (Kept::Current, online.clone()),
            "lamp {i}, node it moved to"
        );
        assert_eq!(
            kept[&(i, STOPPED)],
            (Kept::Stale, online.clone()),
            "lamp {i}, node it left"
        );
        assert_eq!(
            kept[&(i, (STOPPED + 2) % 3)],
            (Kept::None, None),
            "lamp {i}, node it was never on"
        );
    }

    for lamp in lamps {
        lamp.stop().await;
    }
    println!("cluster test took {:?}", started.elapsed());
}
