//! The `lampi` command: `lampi run` is the daemon.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use lampi::config::{self, Config, Display};
use lampi::ctl;
use lampi::daemon::{self, LampSetup};
use lampi::led::Console;
use lampi::ui::bridge::{self, Action, Touchscreen};
use lampi::ui::{live, screenshot};

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
        /// Broker host (default: mqtt.host).
        #[arg(long, global = true)]
        host: Option<String>,
        /// Broker port (default: mqtt.port).
        #[arg(long, global = true)]
        port: Option<u16>,
        /// The lamp's device id (default: this machine's, as `lampi run` would use).
        #[arg(long, global = true)]
        thing: Option<String>,
        #[command(subcommand)]
        action: CtlAction,
    },
}

#[derive(Subcommand)]
enum CtlAction {
    /// Print the lamp's shadow document.
    Get,
    /// Ask the lamp for a light setting (written to `desired`).
    Set {
        #[arg(long, conflicts_with = "off")]
        on: bool,
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

fn unit(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a number from 0.0 to 1.0")),
    }
}

fn main() -> ExitCode {
    let console = init_logging();
    let cli = Cli::parse();
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
            println!("{}: OK", path.display());
            println!("device id: {}", config.device_id());
            println!("state dir: {}", config.state_dir().display());
            println!("{config:#?}");
            ExitCode::SUCCESS
        }
        Commands::Run { sim, state_dir, no_ui } => run(config, sim, state_dir, no_ui, &console),
        Commands::Screenshot { screen, state, out } => screenshot(&config, &screen, state.as_deref(), &out),
        Commands::Ctl {
            host,
            port,
            thing,
            action,
        } => {
            let mut config = config;
            if let Some(thing) = thing {
                config.device.id = Some(thing);
            }
            let target = ctl::Target {
                host: host.unwrap_or_else(|| config.mqtt.host.clone()),
                port: port.unwrap_or(config.mqtt.port),
                shadow_prefix: config.shadow_topic_prefix(),
                device_id: config.device_id(),
            };
            ctl_main(&target, action)
        }
    }
}

fn run(config: Config, sim: bool, state_dir: Option<PathBuf>, no_ui: bool, console: &Console) -> ExitCode {
    let state_dir = state_dir.unwrap_or_else(|| {
        // A developer trying `lampi run --sim` has no /var/lib/lampi; use their own state dir.
        let unconfigured = config.device.state_dir.is_none() && std::env::var_os("STATE_DIRECTORY").is_none();
        match (sim && unconfigured, user_state_dir()) {
            (true, Some(dir)) => dir,
            _ => config.state_dir(),
        }
    });
    let led = match lampi::led::open(&config.led, sim, console) {
        Ok(led) => led,
        Err(e) => {
            eprintln!("lampi: {e}");
            return ExitCode::FAILURE;
        }
    };
    let display = if no_ui { Display::None } else { config.ui.display };
    let backend = match live::backend_for(display) {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!("lampi: {e}");
            return ExitCode::from(78);
        }
    };
    tracing::info!(version = lampi::VERSION, device = %config.device_id(), "lampi starting");
    let setup = LampSetup { config, state_dir, led };
    let shutdown = CancellationToken::new();
    let Some(backend) = backend else {
        tracing::info!("no touchscreen UI");
        return run_lamp(setup, shutdown, |_, _| {});
    };
    match Touchscreen::open(backend, setup.config.ui.width, setup.config.ui.height) {
        Ok((screen, actions)) => run_with_screen(setup, shutdown, screen, actions),
        Err(e) => {
            // The light matters more than the screen: run without it.
            tracing::error!(backend, "cannot start the touchscreen UI, running without it: {e}");
            run_lamp(setup, shutdown, |_, _| {})
        }
    }
}

/// The lamp's tasks on a tokio runtime until a signal; `with_lamp` starts whatever else needs
/// the lamp (the screen).
fn run_lamp(
    setup: LampSetup,
    shutdown: CancellationToken,
    with_lamp: impl FnOnce(&lampi::lamp_task::LampHandle, Box<dyn lampi::clock::WallClock>),
) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        daemon::run(setup, shutdown, |handle, clock| {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            let mut usec = 0;
            if sd_notify::watchdog_enabled(false, &mut usec) {
                // Ping at twice the rate systemd needs, so one late tick is not fatal.
                let interval = Duration::from_micros(usec) / 2;
                tokio::spawn(daemon::watchdog(handle.clone(), interval));
            }
            with_lamp(handle, clock);
        })
        .await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    });
    ExitCode::SUCCESS
}

/// Slint owns the main thread (some backends insist); the lamp runs on a thread of its own,
/// and whichever ends first ends the other.
fn run_with_screen(
    setup: LampSetup,
    shutdown: CancellationToken,
    screen: Touchscreen,
    actions: tokio::sync::mpsc::UnboundedReceiver<Action>,
) -> ExitCode {
    let weak = screen.handle();
    let screen_setup = live::ScreenSetup::new(&setup.config, &setup.state_dir);
    let lamp_shutdown = shutdown.clone();
    let lamp = std::thread::Builder::new().name("lamp".into()).spawn(move || {
        let stop = lamp_shutdown.clone();
        let code = run_lamp(setup, lamp_shutdown, move |handle, clock| {
            tokio::spawn(live::drive(weak, handle.clone(), clock, actions, screen_setup, stop));
        });
        // The lamp has stopped: so does the screen.
        bridge::quit();
        code
    });
    let lamp = match lamp {
        Ok(lamp) => lamp,
        Err(e) => {
            eprintln!("lampi: cannot start the lamp thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    let closed = shutdown.clone();
    if let Err(e) = screen.run(move || closed.cancel()) {
        tracing::error!("touchscreen UI: {e}");
    }
    shutdown.cancel();
    lamp.join().unwrap_or(ExitCode::FAILURE)
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

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("lampi: cannot start the async runtime: {e}"))
        .ok()
}

fn ctl_main(target: &ctl::Target, action: CtlAction) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        match action {
            CtlAction::Get => ctl::request(target, "get", serde_json::json!({})).await,
            CtlAction::Set {
                on,
                off,
                hue,
                saturation,
                brightness,
                transition_ms,
            } => {
                let settings = ctl::LightSettings {
                    on: (on || off).then_some(on),
                    hue,
                    saturation,
                    brightness,
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

fn user_state_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))?;
    Some(base.join("lampi"))
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the lamp with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

/// Logs go to stderr, through the console the simulated LED draws its swatch on; under systemd
/// (JOURNAL_STREAM set) journald adds its own timestamps, so ours are left out. `RUST_LOG`
/// overrides the default `info` level.
fn init_logging() -> Console {
    let console = Console::new();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
