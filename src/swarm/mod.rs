//! `lampi swarm`: the fleet simulator (issue 14). `lampi swarm run` runs N real lamps
//! ([`crate::daemon::run`], simulated LED) and M apps in one process against a broker, and
//! measures what a lamp's users feel; `lampi swarm merge` adds up the reports of several
//! processes.
//!
//! - [`plan`]: the command line's plan and its hard bounds, checked before anything connects.
//! - [`naming`] (pure): lamp index → device id, client id, topic prefixes, its app; each lamp's
//!   config.
//! - [`lamps`]: the fleet on its own runtime; connected counts and reconnect convergence from
//!   each lamp's `online` flag.
//! - [`apps`]: one MQTT connection per app, driving its partition of the lamps at its share of
//!   the rate.
//! - [`ledger`] (pure): PUBACKs tied to publishes by packet id; which intents were reflected,
//!   superseded or lost.
//! - [`measure`]: the process's CPU and memory; [`rlimit`]: its descriptor limit;
//!   [`mosquitto`]: a private broker for `--mosquitto`, restartable for fault injection.
//! - [`raw`]: `lampi swarm raw`, the broker's ceiling measured by minimal MQTT clients (no lamp
//!   code), in the same report with its [`report::Baseline`].
//! - [`report`]: the report (JSON `"schema": "lampi-swarm/1"`), its merge, table and SVG.
//!
//! [`run`] is the whole run: preflight (descriptors, brokers) → ramp (lamps started at `--ramp`
//! a second until all are online) → apps connect and subscribe → steady sending for
//! `--duration` (a broker restart in it if asked) → grace → a final shadow `get` per lamp →
//! lamps stopped → report. A hard deadline bounds it all.

pub mod apps;
pub mod lamps;
pub mod ledger;
pub mod measure;
pub mod mosquitto;
pub mod naming;
pub mod plan;
pub mod raw;
pub mod report;
pub mod rlimit;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use crate::app::Stop;
use crate::config::{BrokerAddr, Config};

use self::apps::{AppResult, AppSetup, Progress, Schedule};
use self::ledger::Kind;
use self::mosquitto::LocalMosquitto;
use self::naming::Names;
use self::plan::Plan;
use self::report::{Fault, Parameters, Report, Source};

/// How long lamps may take to come online beyond the ramp itself: a third of the deadline's
/// slack, so the final `get`s still fit when some lamp never connects.
const CONNECT_SLACK: Duration = Duration::from_secs(10);
/// How long apps get to connect and subscribe.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the lamps get to stop cleanly.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the apps wait for the lamps' answers to the final `get` (plus 1 ms a lamp).
const FINAL_GET_WAIT: Duration = Duration::from_secs(10);
/// How often the fleet's `online` flags are looked at: the resolution of convergence times.
const POLL: Duration = Duration::from_millis(100);

/// Why a run could not start (the plan itself is checked by [`plan::Asked::validate`]).
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("{0}")]
    Descriptors(String),
    #[error("{0}")]
    Mosquitto(#[from] mosquitto::MosquittoError),
    #[error("broker {0} is unreachable: {1}")]
    Unreachable(String, std::io::Error),
    #[error("state directory {0}: {1}")]
    StateDir(String, std::io::Error),
    #[error("cannot start the runtimes: {0}")]
    Runtime(std::io::Error),
    #[error("TLS: {0}: {1}")]
    Credentials(String, std::io::Error),
}

impl SwarmError {
    /// sysexits(3): EX_UNAVAILABLE for what the machine or broker lacks, EX_CANTCREAT, EX_OSERR.
    pub fn exit_code(&self) -> u8 {
        match self {
            SwarmError::Descriptors(_) | SwarmError::Mosquitto(_) | SwarmError::Unreachable(..) => 69,
            SwarmError::Credentials(..) => 66,
            SwarmError::StateDir(..) => 73,
            SwarmError::Runtime(_) => 71,
        }
    }
}

/// Runs the plan to its end (or its deadline) and reports. `live` prints a progress line to
/// stderr once a second.
pub fn run(plan: Plan, base: Config, live: bool) -> Result<Report, SwarmError> {
    if let Some(tls) = &plan.tls {
        readable_credentials(tls, &plan)?;
    }
    let nofile = rlimit::raise_nofile(plan.descriptors()).map_err(SwarmError::Descriptors)?;
    let run_dir = plan.state_dir.join(&plan.run_id);
    std::fs::create_dir_all(&run_dir).map_err(|e| SwarmError::StateDir(run_dir.display().to_string(), e))?;
    let result = run_in(&plan, base, live, nofile, &run_dir);
    let _ = std::fs::remove_dir_all(&run_dir);
    result
}

/// A finished run's exit status: 128 + the signal that stopped it, 1 when the deadline cut it
/// short or (with `fail_on_loss`) an acknowledged update was lost, else 0.
pub fn exit_status(report: &Report, fail_on_loss: bool) -> u8 {
    let signal = [Stop::Int, Stop::Term]
        .into_iter()
        .find(|signal| report.aborted.as_deref() == Some(signal.name()));
    match (signal, &report.aborted) {
        (Some(signal), _) => signal.exit_status(),
        (None, Some(_)) => 1,
        (None, None) if fail_on_loss && report.loss.lost > 0 => 1,
        (None, None) => 0,
    }
}

/// Every client's certificate and key is there before anything starts: a lamp missing its own
/// would only show as never online.
fn readable_credentials(tls: &plan::Credentials, plan: &Plan) -> Result<(), SwarmError> {
    let names = Names::of(plan);
    let lamps = (0..plan.lamps).map(|i| names.lamp(i).device_id);
    let apps = (0..plan.apps).map(|a| names.app_client_id(a));
    let files = lamps.chain(apps).flat_map(|id| {
        let (cert, key) = tls.client(&id);
        cert.into_iter().chain(key)
    });
    for file in std::iter::once(tls.ca.clone()).chain(files) {
        std::fs::File::open(&file).map_err(|e| SwarmError::Credentials(file.display().to_string(), e))?;
    }
    Ok(())
}

fn run_in(plan: &Plan, base: Config, live: bool, nofile: u64, run_dir: &std::path::Path) -> Result<Report, SwarmError> {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let lamps_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .max_blocking_threads(8)
        .thread_name("swarm-lamp")
        .enable_all()
        .build()
        .map_err(SwarmError::Runtime)?;
    let apps_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("swarm-app")
        .enable_all()
        .build()
        .map_err(SwarmError::Runtime)?;
    // Listened for before the broker starts: from here a signal cuts the run short as the
    // deadline does (lamps stopped, report written, state and broker removed), and a second
    // one ends the process at once (the broker follows its keeper thread out).
    let (stop_tx, stop) = watch::channel(None);
    let first = {
        let _runtime = lamps_rt.enter();
        crate::app::signalled()
    };
    let leftovers = run_dir.to_owned();
    lamps_rt.spawn(async move {
        let Some(signal) = first.await else {
            tracing::warn!("cannot listen for SIGINT/SIGTERM: a stopped swarm leaves its state behind");
            return;
        };
        eprintln!("\nlampi swarm: {}: stopping (again to stop at once)", signal.name());
        let _ = stop_tx.send(Some(signal));
        if let Some(again) = crate::app::signalled().await {
            let _ = std::fs::remove_dir_all(&leftovers);
            std::process::exit(again.exit_status().into());
        }
    });
    let mut broker = match plan.mosquitto {
        true => Some(LocalMosquitto::start(&run_dir.join("mosquitto"), nofile)?),
        false => None,
    };
    let brokers = match &broker {
        Some(b) => vec![BrokerAddr {
            host: "127.0.0.1".into(),
            port: b.port,
        }],
        None => plan.brokers.clone(),
    };
    for b in &brokers {
        reachable(b).map_err(|e| SwarmError::Unreachable(b.to_string(), e))?;
    }
    let started_unix_ms = measure::unix_ms(SystemTime::now());
    let rss_before = measure::rss_bytes();
    let names = Names::of(plan);
    let tls = (0..plan.apps)
        .map(|a| {
            let Some(credentials) = &plan.tls else { return Ok(None) };
            let (cert, key) = credentials.client(&names.app_client_id(a));
            crate::mqtt::tls::from_files(Some(&credentials.ca), cert.as_deref(), key.as_deref())
                .map(Some)
                .map_err(|e| SwarmError::Credentials(names.app_client_id(a), e))
        })
        .collect::<Result<_, _>>()?;
    let run = Run {
        plan,
        tls,
        names,
        brokers: brokers.clone(),
        live,
        epoch: Instant::now(),
        progress: Arc::new(Progress::default()),
        stop,
    };
    let fleet = lamps::Fleet::new(
        lamps_rt.handle().clone(),
        base,
        run.names.clone(),
        brokers.clone(),
        plan.tls.clone(),
        run_dir.join("lamps"),
    );
    let outcome = apps_rt.block_on(run.drive(fleet, &mut broker, rss_before));
    lamps_rt.shutdown_timeout(Duration::from_secs(5));
    apps_rt.shutdown_timeout(Duration::from_secs(5));
    drop(broker);

    let desired_share = plan.desired_share;
    let parameters = Parameters {
        run_id: plan.run_id.clone(),
        brokers: brokers.iter().map(ToString::to_string).collect(),
        lamps: plan.lamps,
        apps: plan.apps,
        rate_per_s: plan.rate,
        mix: BTreeMap::from([
            ("desired".to_owned(), desired_share),
            ("set_config".to_owned(), 1.0 - desired_share),
        ]),
        qos: plan.qos,
        ramp_per_s: plan.ramp,
        duration_ms: plan.duration.as_millis() as u64,
        topic_prefix: plan.prefix.clone(),
    };
    let source = Source {
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| "localhost".to_owned(), |h| h.trim().to_owned()),
        pid: std::process::id(),
        started_unix_ms,
        lamps: [plan.lamp_offset, plan.lamp_offset + plan.lamps],
        cpu_s: measure::cpu_seconds(),
        peak_rss_bytes: measure::peak_rss_bytes(),
        bytes_per_lamp: outcome.bytes_per_lamp,
    };
    let mut report = Report::new(parameters, source, apps::timeline_latency(timeline_kind(plan)));
    report.aborted = outcome.aborted;
    report.connections.made = outcome.connects;
    report.connections.failed = outcome.failed;
    report.connections.connected_at_end = outcome.connected_at_end;
    report.connections.all_connected_after_ms = outcome.all_connected_after_ms;
    report.faults = outcome.faults;
    let mut lost = Vec::new();
    for app in outcome.apps {
        report.messages.desired.add(&app.desired);
        report.messages.set_config.add(&app.set_config);
        for ((_, mine), (_, theirs)) in report.latency_us.all_mut().into_iter().zip(app.latency_us.all()) {
            mine.add(theirs).expect("histograms of one run have the same bounds");
        }
        for point in app.timeline.points {
            let mine = report.timeline.at(point.unix_ms);
            mine.sent += point.sent;
            mine.received += point.received;
            mine.latency_us.add(&point.latency_us).expect("same bounds");
        }
        lost.extend(app.lost);
        report.loss.unanswered += app.unanswered;
    }
    report.loss.lost = lost.len() as u64;
    lost.sort_by_key(|l| l.sent_unix_ms);
    lost.truncate(report::FIRST_LOST);
    report.loss.first = lost;
    Ok(report)
}

/// The timeline follows set_config's latency unless the mix sends none.
fn timeline_kind(plan: &Plan) -> Kind {
    if plan.desired_share >= 1.0 {
        Kind::Desired
    } else {
        Kind::SetConfig
    }
}

fn reachable(broker: &BrokerAddr) -> std::io::Result<()> {
    let addrs = (broker.host.as_str(), broker.port).to_socket_addrs()?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

struct Run<'p> {
    plan: &'p Plan,
    names: Names,
    brokers: Vec<BrokerAddr>,
    /// Each app's TLS configuration, with its own certificate.
    tls: Vec<Option<rumqttc::TlsConfiguration>>,
    live: bool,
    epoch: Instant,
    progress: Arc<Progress>,
    /// Set by SIGINT or SIGTERM.
    stop: watch::Receiver<Option<Stop>>,
}

struct Outcome {
    apps: Vec<AppResult>,
    aborted: Option<String>,
    connects: u64,
    failed: u64,
    connected_at_end: u64,
    all_connected_after_ms: Option<u64>,
    bytes_per_lamp: u64,
    faults: Vec<Fault>,
}

/// The broker restart, told to the controller as it happens.
enum FaultStep {
    Down(Instant),
    Back(Instant, Option<mosquitto::MosquittoError>),
}

impl Run<'_> {
    async fn drive(&self, mut fleet: lamps::Fleet, broker: &mut Option<LocalMosquitto>, rss_before: u64) -> Outcome {
        let plan = self.plan;
        let deadline = self.epoch + plan.deadline();
        let mut aborted = None;
        let mut last_line = Instant::now();

        // Ramp: lamps started at `ramp` a second, until every one is online.
        let mut all_connected_after_ms = None;
        let connect_by = self.epoch + plan.ramp_time() + CONNECT_SLACK;
        let mut polled = self.epoch;
        loop {
            let now = Instant::now();
            let due = ((now - self.epoch).as_secs_f64() * plan.ramp) as u64 + 1;
            while (fleet.started() as u64) < due.min(plan.lamps) {
                fleet.start_next();
            }
            // Lamps start every 10 ms; looking at 10,000 of them that often would cost more.
            if now - polled < POLL {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            polled = now;
            if let Some(signal) = *self.stop.borrow() {
                aborted = Some(signal.name().to_owned());
                break;
            }
            let online = fleet.poll(now);
            self.progress_line(&mut last_line, "ramp", online);
            if online as u64 == plan.lamps {
                all_connected_after_ms = Some((now - self.epoch).as_millis() as u64);
                break;
            }
            if now > connect_by {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let bytes_per_lamp = measure::rss_bytes().saturating_sub(rss_before) / plan.lamps;

        // Apps: connected and subscribed before anything is sent.
        let (schedule_tx, schedule_rx) = watch::channel(None);
        let (subscribed_tx, mut subscribed) = mpsc::channel(plan.apps as usize);
        let mut partitions: Vec<Vec<u64>> = vec![Vec::new(); plan.apps as usize];
        for local in 0..plan.lamps {
            partitions[self.names.lamp(local).app as usize].push(local);
        }
        let share =
            |total: f64, a: u64| total * (a + 1) as f64 / plan.apps as f64 - total * a as f64 / plan.apps as f64;
        let mut handles = Vec::new();
        for (a, lamps) in partitions.into_iter().enumerate() {
            let a = a as u64;
            let setup = AppSetup {
                app: a,
                names: self.names.clone(),
                lamps,
                tls: self.tls[a as usize].clone(),
                brokers: {
                    let mut rotated = self.brokers.clone();
                    rotated.rotate_left((a as usize) % self.brokers.len());
                    rotated
                },
                qos: if plan.qos == 0 {
                    rumqttc::QoS::AtMostOnce
                } else {
                    rumqttc::QoS::AtLeastOnce
                },
                rate: share(plan.rate, a),
                desired_share: plan.desired_share,
                max_messages: share(plan.max_messages as f64, a).round() as u64,
                epoch: self.epoch,
                timeline_kind: timeline_kind(plan),
            };
            handles.push(tokio::spawn(apps::run(
                setup,
                self.progress.clone(),
                subscribed_tx.clone(),
                schedule_rx.clone(),
            )));
        }
        let subscribe_by = tokio::time::Instant::from_std((Instant::now() + SUBSCRIBE_TIMEOUT).min(deadline));
        let mut ready = 0;
        let mut stop = self.stop.clone();
        while ready < plan.apps && aborted.is_none() {
            tokio::select! {
                subscribed = tokio::time::timeout_at(subscribe_by, subscribed.recv()) => match subscribed {
                    Ok(Some(_)) => ready += 1,
                    _ => break,
                },
                _ = stop.wait_for(Option::is_some) => break,
            }
        }

        // Steady, grace, final gets.
        let now = Instant::now();
        let final_get = now + plan.duration + plan.grace;
        // The apps end by themselves a second before the deadline, with what they saw.
        let wanted = final_get + FINAL_GET_WAIT + Duration::from_millis(plan.lamps);
        let schedule = Schedule {
            send_from: now,
            send_until: now + plan.duration,
            final_get,
            done_by: wanted.min(deadline - POLL * 10),
        };
        let _ = schedule_tx.send(Some(schedule));
        let (fault_tx, mut fault_rx) = mpsc::unbounded_channel();
        let mut fault_task = None;
        if let Some(at) = plan.restart_broker_at
            && let Some(mosquitto) = broker.take()
        {
            let down = plan.broker_down;
            fault_task = Some(tokio::spawn(restart_broker(mosquitto, now + at, down, fault_tx)));
        }
        let mut faults = Vec::new();
        let mut fault_at = None;
        let mut apps_done = false;
        while !apps_done {
            let now = Instant::now();
            if now > deadline {
                aborted = Some("deadline".to_owned());
                break;
            }
            if let Some(signal) = *self.stop.borrow() {
                aborted = Some(signal.name().to_owned());
                break;
            }
            while let Ok(step) = fault_rx.try_recv() {
                match step {
                    FaultStep::Down(at) => {
                        fleet.outage_begins();
                        fault_at = Some(at);
                    }
                    FaultStep::Back(at, error) => {
                        if let Some(e) = error {
                            tracing::error!("the broker did not come back: {e}");
                        }
                        fleet.broker_back(at);
                        faults.push((fault_at.take().unwrap_or(at), at));
                    }
                }
            }
            let online = fleet.poll(now);
            self.progress_line(&mut last_line, "run", online);
            apps_done = handles.iter().all(|h| h.is_finished());
            tokio::time::sleep(POLL).await;
        }
        if let Some(task) = fault_task {
            if aborted.is_some() {
                // A restart still to come is not waited for: the broker stops with the task.
                task.abort();
            }
            // The broker comes back to be stopped with the run.
            if let Ok(mosquitto) = task.await {
                *broker = Some(mosquitto);
            }
        }
        let connected_at_end = fleet.poll(Instant::now()) as u64;
        let recovery = fleet.recovery();
        let faults = faults
            .into_iter()
            .zip(recovery)
            .map(|((down, back), recovery)| Fault {
                kind: "broker_restart".to_owned(),
                at_ms: (down - self.epoch).as_millis() as u64,
                down_ms: (back - down).as_millis() as u64,
                all_reconnected_after_ms: recovery.all_back_after.map(|d| d.as_millis() as u64),
                reconnected: recovery.reconnected,
                reconnect_us: recovery.reconnect_us,
            })
            .collect();

        // Apps stuck past the deadline (their broker gone) get one moment together, then are
        // dropped and said to be: one at a time, thousands of them would outlast any deadline.
        let mut results = Vec::new();
        let mut dropped = 0;
        let moment = tokio::time::Instant::now() + Duration::from_secs(2);
        for handle in handles {
            let abort = handle.abort_handle();
            match tokio::time::timeout_at(moment, handle).await {
                Ok(Ok(result)) => results.push(result),
                Ok(Err(_)) => dropped += 1,
                Err(_) => {
                    abort.abort();
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            tracing::warn!("{dropped} apps did not finish: their counts are missing from the report");
            aborted.get_or_insert_with(|| "deadline".to_owned());
        }
        // Cut short if the deadline came before the sending ended or every lamp answered the
        // final get (lamps slow to connect and apps slow to subscribe eat into its slack).
        let unanswered: u64 = results.iter().map(|r| r.unanswered).sum();
        if schedule.done_by < wanted && (schedule.send_until > schedule.done_by || unanswered > 0) {
            aborted.get_or_insert_with(|| "deadline".to_owned());
        }
        let connects = fleet.connects + results.iter().map(|r| r.connects).sum::<u64>();
        let failed = results.iter().map(|r| r.failed_connects).sum();
        let late = fleet.stop(STOP_TIMEOUT).await;
        if late > 0 {
            tracing::warn!("{late} lamps did not stop within {STOP_TIMEOUT:?}");
        }
        if self.live {
            eprintln!();
        }
        Outcome {
            apps: results,
            aborted,
            connects,
            failed,
            connected_at_end,
            all_connected_after_ms,
            bytes_per_lamp,
            faults,
        }
    }

    /// Once a second: `[  12s] run  | lamps 200/200 up | sent 1200 acked 1200 reflected 1100 | p99 8.0 ms | errors 0 | cpu 2.1 s rss 150 MiB`.
    fn progress_line(&self, last: &mut Instant, phase: &str, online: usize) {
        if !self.live || last.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last = Instant::now();
        let p = &self.progress;
        let p99 = p
            .latency
            .quantile(0.99)
            .map_or_else(|| "-".to_owned(), |us| format!("{:.1} ms", us as f64 / 1000.0));
        let line = format!(
            "[{:>4}s] {phase:<4} | lamps {online}/{} up | sent {} acked {} reflected {} | p99 {p99} | errors {} | cpu {:.1} s rss {} MiB",
            self.epoch.elapsed().as_secs(),
            self.plan.lamps,
            p.sent.load(Ordering::Relaxed),
            p.acked.load(Ordering::Relaxed),
            p.received.load(Ordering::Relaxed),
            p.errors.load(Ordering::Relaxed),
            measure::cpu_seconds(),
            measure::rss_bytes() >> 20,
        );
        let mut err = std::io::stderr().lock();
        if err.is_terminal() {
            let _ = write!(err, "\r{line}\x1b[K");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

/// Stops the broker at `at` (SIGTERM: it saves sessions and queued messages), waits `down`,
/// starts it again on the same port; gives the broker back.
async fn restart_broker(
    mosquitto: LocalMosquitto,
    at: Instant,
    down: Duration,
    steps: mpsc::UnboundedSender<FaultStep>,
) -> LocalMosquitto {
    tokio::time::sleep_until(at.into()).await;
    let _ = steps.send(FaultStep::Down(Instant::now()));
    let mosquitto = tokio::task::spawn_blocking(move || {
        let error = mosquitto.restart(down).err();
        (mosquitto, error)
    })
    .await;
    match mosquitto {
        Ok((mosquitto, error)) => {
            let _ = steps.send(FaultStep::Back(Instant::now(), error));
            mosquitto
        }
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
