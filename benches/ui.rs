//! The touchscreen's costs with Slint's software renderer at 800 × 480:
//! - rendering a full frame of each screen, and the partial redraw a clock tick causes, against
//!   the floor of filling the frame buffer once (measured in the same run);
//! - the daemon with the UI showing the home screen in a window under Xvfb, against the same
//!   daemon with `--no-ui`: resident memory, and CPU time over a minute of idling.
//!
//! `cargo bench --bench ui` (the daemon half needs Xvfb and mosquitto: `make bench` installs
//! them); `IDLE_SECONDS` sets the idle span (default 60).

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
    // A clock tick on the home screen, drawn into the previous frame as a display would.
    let mut headless = HeadlessScreen::new(800, 480, true).unwrap();
    let mut input = ViewInput::example();
    headless.show(view(&input));
    headless.set_screen(Screen::Home);
    headless.render();
    let tick = time_ms(|| {
        input.now += chrono::Duration::minutes(1);
        headless.show(view(&input));
        assert!(headless.render());
    });
    println!("  {:<40} {tick:>8.3} ms", "clock tick (partial redraw), home");
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User + system CPU seconds and resident kB of a process.
fn cpu_and_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    (ticks as f64 / hz, rss)
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
    let (cpu_before, _) = cpu_and_rss(pid);
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu_after, rss) = cpu_and_rss(pid);
    let cpu_ms_per_minute = (cpu_after - cpu_before) * 1e3 * 60.0 / seconds as f64;
    println!(
        "  {name:<40} {cpu_ms_per_minute:>8.1} ms CPU/min {:>8.1} MiB resident",
        rss as f64 / 1024.0
    );
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
