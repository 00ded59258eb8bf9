//! The light's fader: target state, the fade towards it, and when to wake next.
//!
//! Sans-IO in the style of quinn-proto: every call takes `now`; nothing here reads a clock,
//! sleeps or touches hardware. The lamp core asks [`Fader::output`] for the duty cycles to show
//! and wakes at [`Fader::next_wake`], which is `None` whenever the light is still.

use std::time::{Duration, Instant};

use super::colour::{Rgb, duty_for, lightness_from_luminance, luminance_from_lightness};
use super::light::{LightChange, LightState};

/// How often the output is recomputed while a fade runs: 100 Hz is above the rate at which
/// steps in a dimming ramp are visible, and costs nothing when no fade runs.
pub const FADE_FRAME: Duration = Duration::from_millis(10);
/// The smallest change of lightness (L*/100) worth a frame: 0.05 L*, a tenth of the smallest
/// difference people see, so even the dark end of a sunrise moves without visible steps.
pub const MIN_LIGHTNESS_STEP: f64 = 0.0005;

#[derive(Clone, Copy, Debug)]
struct Fade {
    from: Rgb,
    to: Rgb,
    start: Instant,
    duration: Duration,
}

impl Fade {
    fn end(&self) -> Instant {
        self.start + self.duration
    }

    /// How long the fastest channel takes to move by [`MIN_LIGHTNESS_STEP`].
    fn time_per_step(&self) -> Duration {
        let distance = |a: f64, b: f64| (lightness_from_luminance(b) - lightness_from_luminance(a)).abs();
        let d = self.from.zip(self.to, distance);
        let widest = d.r.max(d.g).max(d.b);
        if widest <= 0.0 {
            return self.duration;
        }
        self.duration.mul_f64((MIN_LIGHTNESS_STEP / widest).min(1.0))
    }

    /// Each channel moves linearly in perceived lightness, so a fade looks even from start to
    /// end instead of rushing through the dark end as a linear duty ramp does.
    fn at(&self, now: Instant) -> Rgb {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= self.duration {
            return self.to;
        }
        let progress = elapsed.as_secs_f64() / self.duration.as_secs_f64();
        self.from.zip(self.to, |a, b| {
            let la = lightness_from_luminance(a);
            let lb = lightness_from_luminance(b);
            luminance_from_lightness(la + (lb - la) * progress)
        })
    }
}

#[derive(Debug)]
pub struct Fader {
    target: LightState,
    fade: Option<Fade>,
    output: Rgb,
}

impl Fader {
    /// A lamp that starts dark and fades in to `state` over `fade_in`, as a lamp coming back
    /// from a power cut should rather than flashing to full.
    pub fn new(state: LightState, fade_in: Duration, now: Instant) -> Fader {
        let mut lamp = Fader {
            target: state,
            fade: None,
            output: Rgb::OFF,
        };
        lamp.restore(fade_in, now);
        lamp
    }

    pub fn state(&self) -> LightState {
        self.target
    }

    /// Applies a partial change, fading to it over `transition` from whatever is shown now.
    pub fn apply(&mut self, change: LightChange, transition: Duration, now: Instant) {
        self.target = self.target.with(change);
        self.restore(transition, now);
    }

    /// Changes the state without touching the output, while a scheduler decides what shows.
    pub fn set_state(&mut self, change: LightChange) {
        self.target = self.target.with(change);
    }

    /// Fades to the state's own output, e.g. when an alarm that overrode it ends.
    pub fn restore(&mut self, transition: Duration, now: Instant) {
        let to = duty_for(
            self.target.on,
            self.target.hue.get(),
            self.target.saturation.get(),
            self.target.brightness.get(),
        );
        self.show(to, transition, now);
    }

    /// Fades to an output that a scheduler chose, leaving the state as it is.
    pub fn show(&mut self, to: Rgb, transition: Duration, now: Instant) {
        self.output = self.output(now);
        if transition.is_zero() || to == self.output {
            self.output = to;
            self.fade = None;
        } else {
            self.fade = Some(Fade {
                from: self.output,
                to,
                start: now,
                duration: transition,
            });
        }
    }

    /// The duty cycles to show at `now`.
    pub fn output(&self, now: Instant) -> Rgb {
        match &self.fade {
            Some(fade) => fade.at(now),
            None => self.output,
        }
    }

    /// Advances the fade to `now`, dropping it once it has finished, and returns the output.
    pub fn tick(&mut self, now: Instant) -> Rgb {
        self.output = self.output(now);
        if self.fade.is_some_and(|fade| now >= fade.end()) {
            self.fade = None;
        }
        self.output
    }

    /// When the shell must call [`Fader::tick`] again; `None` when nothing is changing. A
    /// slow fade (a sunrise, natural light) wakes only as often as its output moves by a
    /// [`MIN_LIGHTNESS_STEP`], a fast one at most every [`FADE_FRAME`].
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.fade.map(|fade| {
            let frame = FADE_FRAME.max(fade.time_per_step());
            (now + frame).min(fade.end())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::light::Unit;

    const FADE: Duration = Duration::from_millis(400);

    fn unit(v: f64) -> Unit {
        Unit::try_from(v).unwrap()
    }

    fn settled(state: LightState, now: Instant) -> Fader {
        let mut lamp = Fader::new(state, FADE, now);
        lamp.tick(now + FADE);
        lamp
    }

    #[test]
    fn starts_dark_and_fades_in() {
        let t0 = Instant::now();
        let mut lamp = Fader::new(LightState::default(), FADE, t0);
        assert_eq!(lamp.tick(t0), Rgb::OFF);
        let half = lamp.tick(t0 + FADE / 2);
        assert!(half.r > 0.1 && half.r < 0.3, "{half:?}");
        assert_eq!(lamp.tick(t0 + FADE), Rgb { r: 1.0, g: 1.0, b: 1.0 });
        assert_eq!(lamp.next_wake(t0 + FADE), None);
    }

    #[test]
    fn still_lamp_needs_no_wake_ups() {
        let t0 = Instant::now();
        let mut lamp = settled(LightState::default(), t0);
        assert_eq!(lamp.next_wake(t0 + FADE), None);
        // A change to the same state does not start a fade either.
        lamp.apply(
            LightChange {
                on: Some(true),
                ..Default::default()
            },
            FADE,
            t0 + FADE,
        );
        assert_eq!(lamp.next_wake(t0 + FADE), None);
    }

    #[test]
    fn fade_wakes_every_frame_and_exactly_at_its_end() {
        let t0 = Instant::now();
        let mut lamp = settled(LightState::default(), t0);
        let t1 = t0 + FADE;
        lamp.apply(
            LightChange {
                brightness: Some(unit(0.2)),
                ..Default::default()
            },
            FADE,
            t1,
        );
        assert_eq!(lamp.next_wake(t1), Some(t1 + FADE_FRAME));
        let near_end = t1 + FADE - Duration::from_millis(3);
        assert_eq!(lamp.next_wake(near_end), Some(t1 + FADE));
        lamp.tick(t1 + FADE);
        assert_eq!(lamp.next_wake(t1 + FADE), None);
    }

    #[test]
    fn fade_is_even_in_perceived_lightness() {
        let t0 = Instant::now();
        let mut lamp = settled(LightState::default(), t0);
        let t1 = t0 + FADE;
        lamp.apply(
            LightChange {
                on: Some(false),
                ..Default::default()
            },
            FADE,
            t1,
        );
        let quarter = lightness_from_luminance(lamp.tick(t1 + FADE / 4).g);
        let half = lightness_from_luminance(lamp.tick(t1 + FADE / 2).g);
        assert!((quarter - 0.75).abs() < 1e-9, "{quarter}");
        assert!((half - 0.5).abs() < 1e-9, "{half}");
    }

    #[test]
    fn retarget_mid_fade_continues_from_what_is_shown() {
        let t0 = Instant::now();
        let mut lamp = settled(LightState::default(), t0);
        let t1 = t0 + FADE;
        lamp.apply(
            LightChange {
                on: Some(false),
                ..Default::default()
            },
            FADE,
            t1,
        );
        let mid = t1 + FADE / 2;
        let shown = lamp.output(mid);
        lamp.apply(
            LightChange {
                on: Some(true),
                ..Default::default()
            },
            FADE,
            mid,
        );
        assert_eq!(lamp.output(mid), shown, "no jump when a fade is retargeted");
        assert_eq!(lamp.tick(mid + FADE), Rgb { r: 1.0, g: 1.0, b: 1.0 });
    }

    #[test]
    fn zero_transition_applies_at_once() {
        let t0 = Instant::now();
        let mut lamp = settled(LightState::default(), t0);
        lamp.apply(
            LightChange {
                hue: Some(unit(2.0 / 3.0)),
                saturation: Some(Unit::ONE),
                ..Default::default()
            },
            Duration::ZERO,
            t0,
        );
        assert_eq!(lamp.next_wake(t0), None);
        let blue = lamp.output(t0);
        assert!(blue.b == 1.0 && blue.r < 1e-9 && blue.g < 1e-9);
    }

    #[test]
    fn slow_fades_wake_only_as_often_as_the_output_visibly_moves() {
        let t0 = Instant::now();
        let mut lamp = settled(LightState::default(), t0);
        let frames = |lamp: &mut Fader, from: Instant| {
            let (mut now, mut frames) = (from, 0);
            while let Some(wake) = lamp.next_wake(now) {
                lamp.tick(wake);
                now = wake;
                frames += 1;
            }
            frames
        };
        // A minute of natural light: 1 % of lightness over the five-second fade.
        let dimmer = Rgb {
            r: 0.97,
            g: 0.97,
            b: 0.97,
        };
        lamp.show(dimmer, Duration::from_secs(5), t0);
        let slow = frames(&mut lamp, t0);
        assert!((10..=30).contains(&slow), "{slow} frames");
        // A full-range fade still runs at the full frame rate.
        let t1 = t0 + Duration::from_secs(10);
        lamp.show(Rgb::OFF, Duration::from_millis(400), t1);
        assert!((39..=41).contains(&frames(&mut lamp, t1)));
    }
}
