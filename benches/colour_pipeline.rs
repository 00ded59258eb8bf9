//! The pure core's costs: the colour pipeline (cost per conversion and smoothness at the bottom
//! of the dimming range) against LAMPI's original pipeline (HSV→RGB, linear brightness, 8-bit),
//! and a shadow update against parsing its JSON, each baseline measured in the same run.
//!
//! `cargo bench --bench colour_pipeline`

use std::hint::black_box;
use std::time::{Duration, Instant};

use lampi::core::colour::{Rgb, duty_for, hue_saturation_to_rgb};
use lampi::core::fade::Fader;
use lampi::core::light::{LightChange, LightState, Unit};

/// LAMPI's `lamp_service.py`: `colorsys.hsv_to_rgb(h, s, 1.0)` scaled by brightness, then
/// `int(x * 255)` to pigpio.
fn lampi_original(on: bool, h: f64, s: f64, brightness: f64) -> [u8; 3] {
    if !on {
        return [0; 3];
    }
    let rgb = hue_saturation_to_rgb(h, s);
    let scale = |c: f64| (c * brightness * 255.0) as u8;
    [scale(rgb.r), scale(rgb.g), scale(rgb.b)]
}

const INPUTS: usize = 4096;

/// Median nanoseconds per call over several timed batches.
fn time_per_call(mut batch: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            batch();
            start.elapsed().as_nanos() as f64 / INPUTS as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let inputs: Vec<(f64, f64, f64)> = (0..INPUTS)
        .map(|i| {
            let x = i as f64 / INPUTS as f64;
            (x, (x * 7.0).fract(), (x * 13.0).fract())
        })
        .collect();

    let baseline = time_per_call(|| {
        for &(h, s, b) in &inputs {
            black_box(lampi_original(true, black_box(h), black_box(s), black_box(b)));
        }
    });
    let ours = time_per_call(|| {
        for &(h, s, b) in &inputs {
            black_box(duty_for(true, black_box(h), black_box(s), black_box(b)));
        }
    });
    // A fade frame: what the lamp computes 100 times a second while the light changes.
    let t0 = Instant::now();
    let mut lamp = Fader::new(LightState::default(), Duration::from_millis(400), t0);
    lamp.apply(
        LightChange {
            hue: Some(Unit::try_from(0.6).unwrap()),
            saturation: Some(Unit::ONE),
            brightness: Some(Unit::try_from(0.05).unwrap()),
            ..Default::default()
        },
        Duration::from_millis(400),
        t0,
    );
    let frames: Vec<Instant> = (0..INPUTS).map(|i| t0 + Duration::from_micros(i as u64 * 97)).collect();
    let fade_frame = time_per_call(|| {
        for &now in &frames {
            black_box(lamp.output(black_box(now)));
        }
    });

    println!("colour pipeline, ns per conversion (median of 15 batches of {INPUTS}):");
    println!("  LAMPI original (linear, 8-bit)   {baseline:8.1} ns");
    println!(
        "  lampi duty_for (CIE L*, f64)     {ours:8.1} ns   ({:.1}x)",
        ours / baseline
    );
    println!("  lampi fade frame (3 channels)    {fade_frame:8.1} ns");

    // Smoothness: slider at 0.1 % steps over its bottom 10 %.
    let white = |b: f64| duty_for(true, 0.0, 0.0, b);
    let steps: Vec<f64> = (0..=100).map(|i| f64::from(i) / 1000.0).collect();
    let lampi_levels: std::collections::BTreeSet<u8> =
        steps.iter().map(|&b| lampi_original(true, 0.0, 0.0, b)[0]).collect();
    let ours_levels: std::collections::BTreeSet<u64> = steps.iter().map(|&b| white(b).r.to_bits()).collect();
    let largest_jump = steps
        .windows(2)
        .map(|w| white(w[1]).r - white(w[0]).r)
        .fold(0.0, f64::max);
    let lampi_largest_jump = steps
        .windows(2)
        .map(|w| {
            f64::from(lampi_original(true, 0.0, 0.0, w[1])[0]) / 255.0
                - f64::from(lampi_original(true, 0.0, 0.0, w[0])[0]) / 255.0
        })
        .fold(0.0, f64::max);
    println!("bottom 10 % of the slider in 0.1 % steps (101 positions):");
    println!(
        "  LAMPI original: {:3} distinct duty levels, largest jump {:.4} of full scale",
        lampi_levels.len(),
        lampi_largest_jump
    );
    println!(
        "  lampi:          {:3} distinct duty levels, largest jump {:.6} of full scale",
        ours_levels.len(),
        largest_jump
    );
    let one_percent: Rgb = white(0.01);
    println!(
        "  duty at 1 % brightness: LAMPI {:.4}, lampi {:.6}",
        f64::from(lampi_original(true, 0.0, 0.0, 0.01)[0]) / 255.0,
        one_percent.r
    );
    shadow_update_cost();
}

/// The core's cost of one shadow update (parse, validate, merge, act, report, five response
/// documents), against the least any implementation must do: parse the request's JSON.
fn shadow_update_cost() {
    use lampi::core::lamp::{ClockStatus, Identity, Input, Lamp, Now, ShadowOp};

    let now = Instant::now();
    let identity = Identity {
        thing: "bench".into(),
        firmware: "0".into(),
        role: Default::default(),
    };
    let mut lamp = Lamp::new(Default::default(), identity, Duration::ZERO, Now::at(now, 0));
    let clock = ClockStatus {
        synchronised: true,
        require_sync: false,
    };
    lamp.handle(Input::Tick(clock), Now::at(now, 1));
    while lamp.poll_output().is_some() {}
    let payloads: Vec<Vec<u8>> = (0..INPUTS)
        .map(|i| {
            let b = if i % 2 == 0 { 0.25 } else { 0.75 };
            format!(r#"{{"state":{{"desired":{{"light":{{"on":true,"brightness":{b}}}}}}},"clientToken":"c{i}"}}"#)
                .into_bytes()
        })
        .collect();
    let parse_only = time_per_call(|| {
        for p in &payloads {
            black_box(serde_json::from_slice::<serde_json::Value>(black_box(p)).unwrap());
        }
    });
    let full = time_per_call(|| {
        for p in &payloads {
            let payload = black_box(p).clone();
            lamp.handle(
                Input::Shadow {
                    op: ShadowOp::Update,
                    payload,
                },
                Now::at(now, 2),
            );
            while let Some(output) = lamp.poll_output() {
                black_box(output);
            }
        }
    });
    println!("shadow update through the lamp core, ns per request:");
    println!("  parse the request JSON only (floor) {parse_only:8.0} ns");
    println!(
        "  Lamp::handle + poll_output (complete) {full:8.0} ns   ({:.1}x)",
        full / parse_only
    );
}
