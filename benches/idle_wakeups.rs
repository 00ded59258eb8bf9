//! How often an idle lamp wakes: context switches of the whole `lampi run` process (every
//! thread) per minute, with nothing scheduled (the baseline), with twenty alarms hours away,
//! in real-time natural-light mode, and — for scale — with a blink alarm ringing.
//!
//! `cargo bench --bench idle_wakeups` (needs mosquitto); `IDLE_SECONDS` sets the measured
//! span per scenario (default 60).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/process.rs"]
mod process;

use std::os::unix::process::CommandExt;
use std::process::Child;
use std::time::Duration;

use common::{Broker, Client, write_config};
use serde_json::{Value, json};

struct Lamp(Child);

impl Drop for Lamp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hh_mm_from_now(minutes: i64) -> String {
    let at = std::time::SystemTime::now() + Duration::from_secs((minutes * 60) as u64);
    let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 86_400;
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

async fn measure(name: &str, desired: Value, seconds: u64) -> f64 {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), broker.port, &dir.path().join("state"), "idle");
    let lamp = Lamp(common::lampi_run(&config).process_group(0).spawn().unwrap());
    let mut app = Client::connect(broker.port, "bench").await;
    app.subscribe("$aws/things/test/shadow/update/accepted").await;
    app.subscribe("lamp/changed").await;
    app.next_on("lamp/changed").await;
    if !desired.is_null() {
        let update = json!({"state": {"desired": desired}});
        app.publish("$aws/things/test/shadow/update", update.to_string()).await;
        app.next_on("$aws/things/test/shadow/update/accepted").await;
    }
    // Let the fade-in, the reports and the first samples settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = lamp.0.id();
    let before = process::context_switches(pid);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let per_minute = process::growth(&before, &process::context_switches(pid)) as f64 * 60.0 / seconds as f64;
    println!("  {name:<44} {per_minute:>8.1}");
    per_minute
}

#[tokio::main]
async fn main() {
    let seconds = std::env::var("IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("lampi run, idle, context switches per minute (all threads, {seconds} s each, MQTT keep-alive 30 s):");
    let baseline = measure("baseline: manual, nothing scheduled", Value::Null, seconds).await;
    let alarms: serde_json::Map<String, Value> = (0..20)
        .map(|i| {
            let spec = json!({"time": hh_mm_from_now(120 + i), "timezone": "UTC", "action": "sunrise"});
            (format!("a{i}"), spec)
        })
        .collect();
    let scheduled = measure(
        "20 alarms, the next two hours away",
        json!({ "alarms": alarms }),
        seconds,
    )
    .await;
    let natural = json!({"mode": "natural", "natural_light": {"latitude": 51.5, "longitude": -0.12}});
    let natural = measure("natural light, real time", natural, seconds).await;
    let ringing = measure_ringing(seconds).await;
    natural_day_in_the_core();
    println!();
    println!(
        "alarms add {:+.1}/min and natural light {:+.1}/min over the baseline; a ringing blink alarm {:+.1}/min",
        scheduled - baseline,
        natural - baseline,
        ringing - baseline
    );
}

/// The daemon above was measured at whatever time it is; this counts the core's wake-ups
/// (scheduler samples and fade frames) through a whole simulated midsummer day in London, the
/// day with the fastest dawn and dusk changes there.
fn natural_day_in_the_core() {
    use lampi::core::alarm::AlarmMemory;
    use lampi::core::fade::Fader;
    use lampi::core::light::LightState;
    use lampi::core::schedule::{Scheduler, Show};
    use std::time::Instant;

    let settings = json!({"mode": "natural", "natural_light": {"latitude": 51.5, "longitude": -0.12}});
    let t0 = Instant::now();
    let wall0: chrono::DateTime<chrono::Utc> = "2026-06-21T00:00:00Z".parse().unwrap();
    let mut scheduler = Scheduler::new(AlarmMemory::default());
    scheduler.configure(settings.as_object().unwrap(), t0, wall0);
    let mut lamp = Fader::new(LightState::default(), Duration::ZERO, t0);
    let mut wakes_per_minute = vec![0u32; 1440];
    let mut now = t0;
    let end = t0 + Duration::from_secs(86_400);
    while now < end {
        let wall = wall0 + chrono::Duration::from_std(now - t0).unwrap();
        if let (_, Show::Output(output, fade)) = scheduler.tick(now, wall) {
            lamp.show(output, fade, now);
        }
        lamp.tick(now);
        wakes_per_minute[((now - t0).as_secs() / 60) as usize] += 1;
        let sample = scheduler
            .next_wake_wall(now, wall)
            .map(|at| t0 + (at - wall0).to_std().unwrap());
        now = [lamp.next_wake(now), sample].into_iter().flatten().min().unwrap_or(end);
    }
    // Minute 0 holds the two-second fade from the lamp's own light into natural light.
    let day = &wakes_per_minute[1..];
    let total: u32 = day.iter().sum();
    let busiest = day.iter().max().unwrap();
    let quiet = day.iter().filter(|&&w| w <= 1).count();
    println!(
        "  natural light, simulated 2026-06-21 in London (core only): {:.1} wake-ups/min on average, {busiest} in the busiest minute, {quiet} of 1439 minutes with at most one",
        f64::from(total) / 1439.0
    );
}

/// A blink alarm for the coming minute boundary, set five seconds before it, so that it rings
/// from about the second second of the (at most 30 s) measurement.
async fn measure_ringing(seconds: u64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let boundary = (now.as_secs() / 60 + 1) * 60;
    let lead = 5;
    let wait = (boundary - lead).saturating_sub(now.as_secs()) + if boundary - now.as_secs() < lead { 60 } else { 0 };
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let at = (now.as_secs() + wait + lead) % 86_400;
    let time = format!("{:02}:{:02}", at / 3600, at % 3600 / 60);
    let alarm = json!({"alarms": {"now": {"time": time, "timezone": "UTC", "action": "blink"}}});
    measure("a blink alarm ringing (for scale)", alarm, seconds.min(30)).await
}
