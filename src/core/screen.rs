//! How bright the touchscreen's backlight should be: full while used, dim when left alone,
//! dark when left alone at night, and full again whenever an alarm rings.

use std::time::{Duration, Instant};

use chrono::NaiveTime;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScreenPolicy {
    pub idle_dim: Duration,
    pub dim_level: f64,
    pub night_start: NaiveTime,
    pub night_end: NaiveTime,
}

/// What the screen's state calls for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backlight {
    /// 0.0 (dark) to 1.0.
    pub level: f64,
    /// Dimmed or dark: the next touch only wakes the screen.
    pub asleep: bool,
    /// When the level changes by itself if nothing else happens.
    pub next_change: Option<Instant>,
}

/// The screen's inputs at one moment.
#[derive(Clone, Copy, Debug)]
pub struct ScreenState {
    pub last_touch: Instant,
    /// The level the person chose for a screen in use.
    pub brightness: f64,
    /// The person allows dimming.
    pub dimming: bool,
    pub ringing: bool,
    /// The local time of day, when the clock is trusted.
    pub local_time: Option<NaiveTime>,
}

impl ScreenPolicy {
    pub fn is_night(&self, time: NaiveTime) -> bool {
        if self.night_start <= self.night_end {
            (self.night_start..self.night_end).contains(&time)
        } else {
            time >= self.night_start || time < self.night_end
        }
    }

    pub fn backlight(&self, state: &ScreenState, now: Instant) -> Backlight {
        let awake = Backlight {
            level: state.brightness,
            asleep: false,
            next_change: None,
        };
        if state.ringing || !state.dimming {
            return awake;
        }
        let dims_at = state.last_touch + self.idle_dim;
        if now < dims_at {
            return Backlight {
                next_change: Some(dims_at),
                ..awake
            };
        }
        let night = state.local_time.is_some_and(|t| self.is_night(t));
        Backlight {
            // Dim never brightens a screen the person has set darker.
            level: if night {
                0.0
            } else {
                self.dim_level.min(state.brightness)
            },
            asleep: true,
            // Night starting or ending changes the level: look again within a minute.
            next_change: Some(now + Duration::from_secs(60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScreenPolicy {
        ScreenPolicy {
            idle_dim: Duration::from_secs(30),
            dim_level: 0.15,
            night_start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            night_end: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
        }
    }

    fn at(h: u32, m: u32) -> Option<NaiveTime> {
        NaiveTime::from_hms_opt(h, m, 0)
    }

    #[test]
    fn night_spans_midnight_or_not() {
        let p = policy();
        assert!(p.is_night(at(23, 0).unwrap()) && p.is_night(at(0, 0).unwrap()) && p.is_night(at(6, 59).unwrap()));
        assert!(!p.is_night(at(7, 0).unwrap()) && !p.is_night(at(21, 59).unwrap()));
        let day_sleeper = ScreenPolicy {
            night_start: at(9, 0).unwrap(),
            night_end: at(17, 0).unwrap(),
            ..p
        };
        assert!(day_sleeper.is_night(at(12, 0).unwrap()) && !day_sleeper.is_night(at(20, 0).unwrap()));
    }

    #[test]
    fn dims_after_idle_darkens_at_night_and_wakes_for_alarms() {
        let p = policy();
        let t0 = Instant::now();
        let mut state = ScreenState {
            last_touch: t0,
            brightness: 0.8,
            dimming: true,
            ringing: false,
            local_time: at(12, 0),
        };
        let fresh = p.backlight(&state, t0 + Duration::from_secs(10));
        assert_eq!((fresh.level, fresh.asleep), (0.8, false));
        assert_eq!(fresh.next_change, Some(t0 + Duration::from_secs(30)));

        let idle = p.backlight(&state, t0 + Duration::from_secs(30));
        assert_eq!((idle.level, idle.asleep), (0.15, true));

        state.local_time = at(23, 30);
        assert_eq!(p.backlight(&state, t0 + Duration::from_secs(31)).level, 0.0);
        // Before the clock is trusted, never dark: the person could not find the lamp.
        state.local_time = None;
        assert_eq!(p.backlight(&state, t0 + Duration::from_secs(31)).level, 0.15);

        state.ringing = true;
        assert_eq!(p.backlight(&state, t0 + Duration::from_secs(31)).level, 0.8);
        state.ringing = false;
        state.dimming = false;
        assert!(!p.backlight(&state, t0 + Duration::from_secs(3600)).asleep);
        state.dimming = true;
        state.brightness = 0.1;
        assert_eq!(p.backlight(&state, t0 + Duration::from_secs(3600)).level, 0.1);
    }
}
