//! The `lampi` command: `lampi run` is the daemon.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use lampi::config::{self, Config, Overrides, Resolved};
use lampi::daemon::LampSetup;
use lampi::led::Console;
use lampi::ui::bridge::Touchscreen;
use lampi::ui::live::ScreenSetup;
use lampi::ui::{display, screenshot};
use lampi::{app, ctl};

/// A swarm is thousands of lamps allocating in one process, where jemalloc takes 28–37 % less
/// CPU than glibc's malloc (BENCHMARKS.md, "After jemalloc and one shadow copy fewer"). Only
/// with the `jemalloc` feature, for swarm builds: the tests and the packages use glibc's.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "lampi", version = lampi::VERSION, about = "Firmware daemon for the LAMPI smart lamp")]
struct Cli {
    /// Config file; when not given, /etc/lampi/lampi.toml is read if it exists.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the lamp daemon.
    Run {
        /// Use the simulated LED whatever the config says.
        #[arg(long)]
        sim: bool,
        /// Keep state here instead of the configured state directory.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// No touchscreen UI whatever the config says (fleet simulation, servers).
        #[arg(long)]
        no_ui: bool,
    },
    /// Render one screen of the touchscreen UI to a PNG, headless.
    Screenshot {
        /// home, alarm (ringing), alarms, natural, pairing or settings.
        #[arg(long)]
        screen: String,
        /// JSON laid over the screen's example state, e.g. '{"light": {"on": false}}'.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check the config file and print the settings that would be used.
    CheckConfig,
    /// Talk to a lamp over MQTT: its shadow, its pairing (broker and thing from the config
    /// unless given).
    Ctl {
        /// Broker host (default: mqtt.host, or the first of mqtt.brokers).
        #[arg(long, global = true)]
        host: Option<String>,
        /// Broker port (default: mqtt.port, or the first of mqtt.brokers).
        #[arg(long, global = true)]
        port: Option<u16>,
        /// The lamp's device id (default: this machine's, as `lampi run` would use).
        #[arg(long, global = true)]
        thing: Option<String>,
        #[command(subcommand)]
        action: CtlAction,
    },
    /// Talk to a lamp over Bluetooth LE: find lamps by the LAMPI service, read, set and watch
    /// one (JSON out).
    #[cfg(feature = "ble-client")]
    Ble {
        /// The Bluetooth adapter, e.g. hci0 (default: the lowest-numbered one).
        #[arg(long, global = true, value_name = "hciN")]
        adapter: Option<String>,
        /// The lamp: its address, its advertised name or the device id it advertises as
        /// `LAMPI <id>` (default: the only lamp in range).
        #[arg(long, global = true, value_name = "DEVICE")]
        id: Option<String>,
        /// How long to look for lamps, in seconds.
        #[arg(long, global = true, value_name = "SECONDS", default_value_t = 5.0, value_parser = scan_seconds)]
        scan_time: f64,
        #[command(subcommand)]
        action: BleAction,
    },
    /// The fleet simulator: run thousands of real lamps and their apps against a broker and
    /// measure loss and latency (`run`); add up several processes' reports (`merge`); measure
    /// the broker's own ceiling with minimal clients (`raw`).
    #[cfg(feature = "swarm")]
    Swarm {
        #[command(subcommand)]
        action: SwarmAction,
    },
}

#[cfg(feature = "swarm")]
#[derive(Subcommand)]
enum SwarmAction {
    /// Run N simulated lamps (the real lamp, simulated LED) and M apps sending shadow `desired`
    /// updates and `set_config` against a broker; print a table, write a JSON report. Exit
    /// status: 0 done, 1 cut short by its deadline (or a loss, with --fail-on-loss), 64 a bad
    /// plan, 69 no broker or too few file descriptors, 73 the state or report cannot be written.
    Run(Box<SwarmRun>),
    /// Merge the JSON reports of one run's processes and print the table (exit status 65 for a
    /// file that is not a report, or reports of different runs).
    Merge {
        /// Reports (schema lampi-swarm/1), e.g. one per machine.
        #[arg(required = true, value_name = "REPORT.json")]
        reports: Vec<PathBuf>,
        /// Write the merged report here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write the merged report's plot here.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Measure a broker's own ceiling with minimal MQTT clients and no lamp code: `firehose`
    /// (publishers to subscribers) or `echo` (the swarm's shape: apps → echo clients → apps).
    Raw(RawArgs),
}

#[cfg(feature = "swarm")]
#[derive(Args)]
struct RawArgs {
    /// The broker; nothing else is contacted.
    #[arg(long, value_name = "HOST:PORT")]
    broker: String,
    /// firehose or echo.
    #[arg(long)]
    pattern: lampi::swarm::raw::Pattern,
    /// firehose: publishers; echo: echo clients, each answering its own set_config.
    #[arg(long, default_value_t = 1, value_name = "N")]
    connections: u32,
    /// firehose: subscribers, each receiving every message (default 1).
    #[arg(long, value_name = "S")]
    subscribers: Option<u32>,
    /// echo: apps sending set_config, each to its share of the echo clients (default 1).
    #[arg(long, value_name = "M")]
    apps: Option<u32>,
    /// Messages a second the publishers (apps) send, all together.
    #[arg(
        long,
        value_name = "MSGS_PER_S",
        required_unless_present = "max",
        conflicts_with = "max"
    )]
    rate: Option<f64>,
    /// As fast as the broker acknowledges, 100 unacknowledged per connection.
    #[arg(long)]
    max: bool,
    /// How long to send (e.g. 30s, 500ms, 2m; at most 1h); answers are waited for 5 s more.
    #[arg(long, default_value = "10s", value_parser = lampi::swarm::plan::parse_duration)]
    duration: std::time::Duration,
    /// Stop sending after this many messages (default: 110 % of rate × duration; with --max,
    /// 100,000 a second of duration).
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Topics are PREFIX/RUN_ID/….
    #[arg(long, default_value = "raw")]
    prefix: String,
    /// Names the run and its client ids (default: raw-PID).
    #[arg(long)]
    run_id: Option<String>,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Write the report (lampi-swarm/1 JSON) here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[cfg(feature = "swarm")]
#[derive(Args)]
struct SwarmRun {
    /// A broker (repeatable; lamps spread over them, rotated by index). Default 127.0.0.1:1883.
    #[arg(long = "broker", value_name = "HOST:PORT")]
    brokers: Vec<String>,
    /// Start a private Mosquitto on loopback for the run (persistence on, enough descriptors).
    #[arg(long)]
    mosquitto: bool,
    /// Lamps in this process (at most 100000).
    #[arg(long, default_value_t = 100)]
    lamps: u64,
    /// The first lamp's index, so several processes make distinct lamps.
    #[arg(long, default_value_t = 0)]
    lamp_offset: u64,
    /// Names the run's ids and topics (A-Z a-z 0-9 - _); default from the time.
    #[arg(long)]
    run_id: Option<String>,
    /// Apps (MQTT connections), each driving its share of the lamps.
    #[arg(long, default_value_t = 10)]
    apps: u64,
    /// Messages a second, all apps and kinds together (at most 1e6).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// The share of each kind of message.
    #[arg(long, default_value = "desired=0.5,set_config=0.5")]
    mix: String,
    /// Lamps started a second (at least 1).
    #[arg(long, default_value_t = 200.0)]
    ramp: f64,
    /// How long the apps send, e.g. 60s (at most 1h).
    #[arg(long, default_value = "60s")]
    duration: String,
    /// How long answers are waited for after sending stops, before the final check.
    #[arg(long, default_value = "5s")]
    grace: String,
    /// Stop sending after this many messages (default: rate × duration × 1.1).
    #[arg(long)]
    max_messages: Option<u64>,
    /// QoS of the apps' messages: 0 or 1 (loss is measurable at 1 only).
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// Topics are {prefix}/{run}/a{lamp offset}-{app}/{device id}/….
    #[arg(long, default_value = "swarm")]
    prefix: String,
    /// Lamps' state goes under DIR/{run}/, removed at the end (tmpfs: no fsync storm).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the report's plot here.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// No progress line; only the table at the end.
    #[arg(long)]
    quiet: bool,
    /// Exit 1 when an acknowledged update was lost.
    #[arg(long)]
    fail_on_loss: bool,
    /// With --mosquitto: restart it (SIGTERM, so it saves) this long into the sending.
    #[arg(long, value_name = "DURATION")]
    restart_broker_at: Option<String>,
    /// How long the restarted broker stays down.
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    broker_down: String,
    /// TLS to the brokers, trusting this CA (PEM).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Each client's certificate (PEM); `{id}` stands for the lamp's device id or the app's
    /// client id, e.g. 'certs/{id}.pem'.
    #[arg(long, value_name = "TEMPLATE", requires = "tls_key")]
    tls_cert: Option<String>,
    /// Each client's private key, as --tls-cert.
    #[arg(long, value_name = "TEMPLATE", requires = "tls_cert")]
    tls_key: Option<String>,
}

#[cfg(feature = "ble-client")]
#[derive(Subcommand)]
enum BleAction {
    /// Print each lamp in range: address, name, signal strength.
    Scan,
    /// Print the lamp's address, name, device id and light.
    Get,
    /// Set the lamp's light, then print it as `get` does.
    Set(LightArgs),
    /// Print the lamp's light, then each change it notifies, one JSON line each.
    Watch,
}

#[cfg(feature = "ble-client")]
fn scan_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=600.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a number of seconds from 0 to 600")),
    }
}

#[derive(Subcommand)]
enum CtlAction {
    /// Print the lamp's shadow document.
    Get,
    /// Ask the lamp for a light setting (written to `desired`).
    Set {
        #[command(flatten)]
        light: LightArgs,
        /// Fade duration for this and later changes.
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=60_000))]
        transition_ms: Option<u64>,
    },
    /// Print deltas and reported changes as they happen, one JSON line each.
    Watch,
    /// Ask the lamp for a pairing code (as its "Connect to cloud" button does) and print it.
    PairCode,
    /// Play the cloud portal: find the lamp showing CODE and make OWNER its owner.
    PortalAssociate {
        /// The code as shown on the lamp, e.g. ABCD-EFGH.
        #[arg(long)]
        code: String,
        /// The owner's account id.
        #[arg(long)]
        owner: String,
        /// The owner's display name.
        #[arg(long)]
        name: String,
    },
    /// Play the cloud portal: tell the lamp (--thing) it no longer has an owner.
    PortalUnpair,
    /// Snooze or dismiss the ringing alarm.
    Alarm {
        #[arg(value_parser = ["snooze", "dismiss"])]
        command: String,
    },
}

/// A light setting, as `lampi ctl set` and `lampi ble set` take it.
#[derive(Args)]
struct LightArgs {
    /// Switch the light on
    #[arg(long, conflicts_with = "off")]
    on: bool,
    /// Switch the light off
    #[arg(long)]
    off: bool,
    /// 0.0–1.0
    #[arg(long, value_parser = unit)]
    hue: Option<f64>,
    /// 0.0–1.0
    #[arg(long, value_parser = unit)]
    saturation: Option<f64>,
    /// 0.0–1.0, perceived brightness
    #[arg(long, value_parser = unit)]
    brightness: Option<f64>,
}

impl LightArgs {
    /// `Some(true)` for --on, `Some(false)` for --off, `None` for neither.
    fn on(&self) -> Option<bool> {
        (self.on || self.off).then_some(self.on)
    }
}

fn unit(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a number from 0.0 to 1.0")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Thousands of lamps in one process would log thousands of lines at each connect, and one
    // per lamp per failed reconnect during an outage; the swarm counts those itself.
    #[cfg(feature = "swarm")]
    let quiet_lamps = matches!(
        cli.command,
        Commands::Swarm {
            action: SwarmAction::Run(_)
        }
    );
    #[cfg(not(feature = "swarm"))]
    let quiet_lamps = false;
    let console = init_logging(if quiet_lamps { "warn,lampi::mqtt=error" } else { "info" });
    let (path, must_exist) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from(config::DEFAULT_PATH), false),
    };
    let loaded = match Config::load(&path, must_exist) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("lampi: {e}");
            return ExitCode::from(78); // EX_CONFIG: systemd will not restart-loop on it.
        }
    };
    for key in &loaded.unknown_keys {
        tracing::warn!(file = %path.display(), "unknown config key `{key}` ignored");
    }
    for warning in &loaded.warnings {
        tracing::warn!(file = %path.display(), "{warning}");
    }
    let config = loaded.config;
    match cli.command {
        Commands::CheckConfig => {
            let resolved = Resolved::new(&config, Overrides::default());
            println!("{}: OK", path.display());
            println!("device id: {}", resolved.device_id());
            println!("state dir: {}", resolved.state_dir().display());
            // The package's postinst reads this line: keep its wording.
            println!("bluetooth le: {}", if config.ble.enabled { "on" } else { "off" });
            println!("{config:#?}");
            ExitCode::SUCCESS
        }
        Commands::Run { sim, state_dir, no_ui } => {
            let overrides = Overrides::default().state_dir(state_dir).sim(sim).no_ui(no_ui);
            let resolved = Resolved::new(&config, overrides);
            run(config, &resolved, sim, &console)
        }
        Commands::Screenshot { screen, state, out } => screenshot(&config, &screen, state.as_deref(), &out),
        Commands::Ctl {
            host,
            port,
            thing,
            action,
        } => {
            let resolved = Resolved::new(&config, Overrides::default().device_id(thing));
            let first = config.mqtt.brokers().swap_remove(0);
            let target = ctl::Target::new(host.unwrap_or(first.host), port.unwrap_or(first.port), &resolved);
            ctl_main(&target, action)
        }
        #[cfg(feature = "ble-client")]
        Commands::Ble {
            adapter,
            id,
            scan_time,
            action,
        } => {
            let options = lampi::ble_client::Options {
                adapter,
                id,
                scan: std::time::Duration::from_secs_f64(scan_time),
            };
            ble_main(&options, action)
        }
        #[cfg(feature = "swarm")]
        Commands::Swarm { action } => swarm_main(action, config),
    }
}

fn run(config: Config, resolved: &Resolved, sim: bool, console: &Console) -> ExitCode {
    let led = match lampi::led::open(&config.led, sim, console) {
        Ok(led) => led,
        Err(e) => {
            eprintln!("lampi: {e}");
            return ExitCode::FAILURE;
        }
    };
    let backend = match display::backend_for(resolved.display()) {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!("lampi: {e}");
            return ExitCode::from(78);
        }
    };
    tracing::info!(version = lampi::VERSION, device = %resolved.device_id(), "lampi starting");
    let state_dir = resolved.state_dir().to_owned();
    let setup = LampSetup { config, state_dir, led };
    let shutdown = CancellationToken::new();
    let Some(backend) = backend else {
        tracing::info!("no touchscreen UI");
        return app::run_lamp(setup, shutdown, |_, _| {});
    };
    match Touchscreen::open(backend, setup.config.ui.width, setup.config.ui.height) {
        Ok((screen, actions)) => {
            let screen_setup = ScreenSetup::new(&setup.config, resolved);
            app::run_with_screen(setup, shutdown, screen, actions, screen_setup)
        }
        Err(e) => {
            // The light matters more than the screen: run without it.
            tracing::error!(backend, "cannot start the touchscreen UI, running without it: {e}");
            app::run_lamp(setup, shutdown, |_, _| {})
        }
    }
}

fn screenshot(config: &Config, screen: &str, state: Option<&str>, out: &std::path::Path) -> ExitCode {
    let rendered = screenshot::screen_named(screen)
        .and_then(|screen| {
            let input = screenshot::input_with(screen, state)?;
            screenshot::render(screen, &input, config.ui.width, config.ui.height)
        })
        .and_then(|rendered| rendered.write_png(out));
    match rendered {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lampi screenshot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn ctl_main(target: &ctl::Target, action: CtlAction) -> ExitCode {
    let Some(runtime) = app::runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        match action {
            CtlAction::Get => ctl::request(target, "get", serde_json::json!({})).await,
            CtlAction::Set { light, transition_ms } => {
                let settings = ctl::LightSettings {
                    on: light.on(),
                    hue: light.hue,
                    saturation: light.saturation,
                    brightness: light.brightness,
                    transition_ms,
                };
                let Some(request) = settings.desired() else {
                    anyhow::bail!(
                        "nothing to set: give --on, --off, --hue, --saturation, --brightness or --transition-ms"
                    );
                };
                ctl::request(target, "update", request).await
            }
            CtlAction::Watch => ctl::watch(target).await.map(|()| serde_json::Value::Null),
            CtlAction::PairCode => ctl::pair_code(target).await,
            CtlAction::PortalAssociate { code, owner, name } => {
                ctl::portal_associate(target, &code, &owner, &name).await
            }
            CtlAction::PortalUnpair => ctl::portal_unpair(target).await,
            CtlAction::Alarm { command } => ctl::alarm(target, &command).await,
        }
    });
    match result {
        Ok(doc) => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lampi ctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "ble-client")]
fn ble_main(options: &lampi::ble_client::Options, action: BleAction) -> ExitCode {
    use lampi::ble_client;
    use lampi::core::light::{LightChange, Unit};

    let Some(runtime) = app::runtime() else {
        return ExitCode::FAILURE;
    };
    let print = |line: serde_json::Value| println!("{line}");
    let result = runtime.block_on(async {
        let result = match action {
            BleAction::Scan => ble_client::scan(options, print).await,
            BleAction::Get => ble_client::get(options).await.map(print),
            BleAction::Set(light) => {
                // The parser kept them within 0.0–1.0.
                let to_unit = |value: Option<f64>| value.and_then(|v| Unit::try_from(v).ok());
                let change = LightChange {
                    on: light.on(),
                    hue: to_unit(light.hue),
                    saturation: to_unit(light.saturation),
                    brightness: to_unit(light.brightness),
                };
                if change == LightChange::default() {
                    eprintln!("lampi ble: nothing to set: give --on, --off, --hue, --saturation or --brightness");
                    return Err(None);
                }
                ble_client::set(options, change).await.map(print)
            }
            BleAction::Watch => ble_client::watch(options, print, stopped()).await,
        };
        result.map_err(Some)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(None) => ExitCode::from(2),
        Err(Some(e)) => {
            eprintln!("lampi ble: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(feature = "swarm")]
fn swarm_main(action: SwarmAction, config: Config) -> ExitCode {
    match action {
        SwarmAction::Run(args) => swarm_run(*args, config),
        SwarmAction::Merge { reports, out, svg } => swarm_merge(&reports, out, svg),
        SwarmAction::Raw(args) => swarm_raw(args),
    }
}

/// sysexits(3): EX_CONFIG for a plan out of bounds, EX_UNAVAILABLE when the broker or the
/// descriptors are not there, EX_CANTCREAT.
#[cfg(feature = "swarm")]
fn swarm_raw(args: RawArgs) -> ExitCode {
    use lampi::swarm::raw::{self, Pattern};
    let usage = |flag: &str, pattern: &str| {
        eprintln!("lampi swarm raw: {flag} is for --pattern {pattern}");
        ExitCode::from(78)
    };
    let peers = match (args.pattern, args.subscribers, args.apps) {
        (Pattern::Echo, Some(_), _) => return usage("--subscribers", "firehose"),
        (Pattern::Firehose, _, Some(_)) => return usage("--apps", "echo"),
        (_, subscribers, apps) => subscribers.or(apps).unwrap_or(1),
    };
    let plan = raw::Plan {
        broker: args.broker,
        pattern: args.pattern,
        connections: args.connections,
        peers,
        rate: args.rate,
        duration: args.duration,
        max_messages: args.max_messages,
        qos: if args.qos == 0 {
            rumqttc::QoS::AtMostOnce
        } else {
            rumqttc::QoS::AtLeastOnce
        },
        run_id: args.run_id.unwrap_or_else(|| format!("raw-{}", std::process::id())),
        prefix: args.prefix,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads))
        .thread_name("swarm-raw")
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let report = match runtime.block_on(raw::run(&plan)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("lampi swarm raw: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    if let Some(path) = &args.out
        && let Err(e) = lampi::store::write_atomic(path, report.to_json().as_bytes())
    {
        eprintln!("lampi swarm raw: {}: {e}", path.display());
        return ExitCode::from(73);
    }
    print!("{report}");
    ExitCode::SUCCESS
}

/// sysexits(3): EX_DATAERR, EX_NOINPUT, EX_CANTCREAT.
#[cfg(feature = "swarm")]
fn swarm_merge(reports: &[PathBuf], out: Option<PathBuf>, svg_path: Option<PathBuf>) -> ExitCode {
    use lampi::swarm::report::{Report, svg};
    let mut merged: Option<Report> = None;
    for path in reports {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("lampi swarm merge: {}: {e}", path.display());
                return ExitCode::from(66);
            }
        };
        let result = Report::from_json(&text).and_then(|report| match &mut merged {
            None => {
                merged = Some(report);
                Ok(())
            }
            Some(merged) => merged.merge(report),
        });
        if let Err(e) = result {
            eprintln!("lampi swarm merge: {}: {e}", path.display());
            return ExitCode::from(65);
        }
    }
    let merged = merged.expect("clap asks for at least one report");
    for (path, bytes) in [(out, merged.to_json()), (svg_path, svg::render(&merged))] {
        let Some(path) = path else { continue };
        if let Err(e) = lampi::store::write_atomic(&path, bytes.as_bytes()) {
            eprintln!("lampi swarm merge: {}: {e}", path.display());
            return ExitCode::from(73);
        }
    }
    print!("{merged}");
    ExitCode::SUCCESS
}

/// `lampi swarm run`: sysexits(3) EX_USAGE for a bad plan, EX_UNAVAILABLE for a broker or
/// descriptors it cannot have, EX_CANTCREAT for a report it cannot write.
#[cfg(feature = "swarm")]
fn swarm_run(args: SwarmRun, base: Config) -> ExitCode {
    use lampi::swarm::{self, plan::Asked, report::svg};
    let asked = Asked {
        brokers: args.brokers,
        mosquitto: args.mosquitto,
        lamps: args.lamps,
        lamp_offset: args.lamp_offset,
        run_id: args.run_id,
        apps: args.apps,
        rate: args.rate,
        mix: args.mix,
        ramp: args.ramp,
        duration: args.duration,
        grace: args.grace,
        max_messages: args.max_messages,
        qos: args.qos,
        prefix: args.prefix,
        state_dir: args.state_dir,
        restart_broker_at: args.restart_broker_at,
        broker_down: args.broker_down,
        tls_ca: args.tls_ca,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
    };
    let default_run_id = format!(
        "r{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % 100_000_000)
    );
    let plan = match asked.validate(&default_run_id) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("lampi swarm run: {e}");
            return ExitCode::from(64);
        }
    };
    let report = match swarm::run(plan, base, !args.quiet) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("lampi swarm run: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    for (path, bytes) in [(args.out, report.to_json()), (args.svg, svg::render(&report))] {
        let Some(path) = path else { continue };
        if let Err(e) = lampi::store::write_atomic(&path, bytes.as_bytes()) {
            eprintln!("lampi swarm run: {}: {e}", path.display());
            return ExitCode::from(73);
        }
    }
    print!("{report}");
    ExitCode::from(swarm::exit_status(&report, args.fail_on_loss))
}

/// SIGINT or SIGTERM, for `lampi ble watch` to end its connection on; listened for from the
/// call, so a signal while it connects counts too.
#[cfg(feature = "ble-client")]
fn stopped() -> impl Future<Output = ()> {
    let signalled = lampi::app::signalled();
    async move {
        if signalled.await.is_none() {
            // Then the default actions end the process.
            std::future::pending::<()>().await;
        }
    }
}

/// Logs go to stderr, through the console the simulated LED draws its swatch on; under systemd
/// (JOURNAL_STREAM set) journald adds its own timestamps, so ours are left out. `RUST_LOG`
/// overrides the default `info` level.
fn init_logging(default: &str) -> Console {
    let console = Console::new();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(console.clone())
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_target(false).init();
    } else {
        builder.init();
    }
    console
}
