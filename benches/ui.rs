//! The touchscreen's costs with Slint's software renderer at 800 × 480:
//! - rendering a full frame of each screen, and the partial redraw a clock tick causes, against
//!   the floor of filling the frame buffer once (measured in the same run);
//! - the daemon with the UI showing the home screen in a window under Xvfb, against the same
//!   daemon with `--no-ui`: resident memory, and CPU time and context switches over a minute
//!   of idling.
//!
//! `cargo bench --bench ui` (the daemon half needs Xvfb and mosquitto: `make bench` installs
//! them); `IDLE_SECONDS` sets the idle span (default 60).

#[path = "support/process.rs"]
mod process;

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lampi::ui::Screen;
use lampi::ui::screenshot::{HeadlessScreen, SCREENS};
use lampi::ui::view::{ViewInput, view};
use slint::ComponentHandle;

const FRAMES: usize = 40;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median milliseconds of `frame` over [`FRAMES`] runs.
fn time_ms(mut frame: impl FnMut()) -> f64 {
    median(
        (0..FRAMES)
            .map(|_| {
                let start = Instant::now();
                frame();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn render_costs() {
    println!("software renderer, 800 × 480, median of {FRAMES} frames:");
    let mut pixels = vec![0u8; 800 * 480 * 3];
    let floor = time_ms(|| {
        pixels.fill(black_box(7));
        black_box(&pixels);
    });
    println!("  {:<40} {floor:>8.3} ms", "baseline: fill the frame buffer once");
    for (name, screen) in SCREENS {
        let mut headless = HeadlessScreen::new(800, 480, false).unwrap();
        headless.show(view(&ViewInput::example_for(screen)));
        headless.set_screen(screen);
        headless.render();
        let full = time_ms(|| {
            headless.app.window().request_redraw();
            assert!(headless.render());
        });
        println!("  {:<40} {full:>8.3} ms", format!("full frame: {name}"));
    }
    // A clock tick on the home screen, drawn into the previous frame as a display would. The
    // views are worked out beforehand: this is the UI's share; the view's is timed apart.
    let mut headless = HeadlessScreen::new(800, 480, true).unwrap();
    let mut input = ViewInput::example();
    headless.show(view(&input));
    headless.set_screen(Screen::Home);
    headless.render();
    let minutes: Vec<_> = (0..FRAMES)
        .map(|_| {
            input.now += chrono::Duration::minutes(1);
            view(&input)
        })
        .collect();
    let mut next = minutes.into_iter();
    let tick = time_ms(|| {
        headless.show(next.next().unwrap());
        assert!(headless.render());
    });
    let share = headless.redrawn_pixels() as f64 / (800.0 * 480.0) * 100.0;
    println!(
        "  {:<40} {tick:>8.3} ms",
        format!("clock tick (redraws {share:.0} %), home")
    );
    let input = ViewInput::example();
    let view_cost = time_ms(|| {
        black_box(view(black_box(&input)));
    });
    println!("  {:<40} {view_cost:>8.3} ms", "working out the view (all screens)");
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn idle_daemon(name: &str, ui: bool, display: &str, seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lampi.toml");
    std::fs::write(&config, "[mqtt]\nenabled = false\n[ui]\ndisplay = \"winit\"\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_lampi"));
    command
        .arg("--config")
        .arg(&config)
        .args(["run", "--sim", "--state-dir"])
        .arg(dir.path().join("state"))
        .env("DISPLAY", display)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !ui {
        command.arg("--no-ui");
    }
    let lamp = Reaped(command.spawn().unwrap());
    // Fade-in, first frame, first reports.
    std::thread::sleep(Duration::from_secs(5));
    let pid = lamp.0.id();
    let (cpu, switches) = (process::cpu_ns(pid), process::context_switches(pid));
    std::thread::sleep(Duration::from_secs(seconds));
    let per_minute = |n: u64| n as f64 * 60.0 / seconds as f64;
    let cpu_ms = per_minute(process::growth(&cpu, &process::cpu_ns(pid))) / 1e6;
    let after = process::context_switches(pid);
    let wakeups = per_minute(process::growth(&switches, &after));
    let rss = process::resident_kib(pid) as f64 / 1024.0;
    println!("  {name:<28} {cpu_ms:>8.2} ms CPU/min {wakeups:>8.1} switches/min {rss:>8.1} MiB resident");
    // Which threads woke, so a figure can be traced to its cause.
    let names = process::thread_names(pid);
    let mut by_name: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (tid, n) in &after {
        let grown = n.saturating_sub(switches.get(tid).copied().unwrap_or(0));
        *by_name.entry(names.get(tid).map_or("?", String::as_str)).or_default() += grown;
    }
    for (thread, n) in by_name.iter().filter(|(_, n)| **n > 0) {
        println!("    thread {thread:<22} {:>8.1} switches/min", per_minute(*n));
    }
}

fn daemon_costs() {
    let seconds = std::env::var("IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let display = ":73";
    let Ok(xvfb) = Command::new("Xvfb")
        .args([display, "-screen", "0", "800x480x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        println!("no Xvfb: daemon figures skipped (apt-get install xvfb)");
        return;
    };
    let _xvfb = Reaped(xvfb);
    std::thread::sleep(Duration::from_secs(1));
    println!("lampi run --sim, idle {seconds} s, MQTT off (Xvfb, winit, software renderer):");
    idle_daemon("baseline: --no-ui", false, display, seconds);
    idle_daemon("home screen showing", true, display, seconds);
}

fn main() {
    // `cargo bench` passes --bench; a filter argument selects a half.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if only.as_deref().is_none_or(|o| "render".contains(o)) {
        render_costs();
    }
    if only.as_deref().is_none_or(|o| "daemon".contains(o)) {
        daemon_costs();
    }
}
