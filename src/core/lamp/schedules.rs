//! What the light shows: the alarm clock (its commands and events, the wall clock it trusts),
//! natural light, and a person taking over from either.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{AlarmCommand, ClockStatus, Lamp, Refusal, wall_time};
use crate::core::alarm::{AlarmEvent, Dismissal};
use crate::core::colour::{Rgb, state_for};
use crate::core::light::{LightChange, Unit};
use crate::core::schedule::Show;

impl Lamp {
    /// What the wall clock is worth. Nothing rings on an unsynchronised clock when
    /// synchronisation is required; when it becomes synchronised, nothing it missed rings.
    pub(super) fn set_clock(&mut self, clock: ClockStatus, timestamp: u64) {
        if clock != self.clock {
            self.clock = clock;
            self.scheduler
                .alarms_mut()
                .set_trusted(clock.synchronised || !clock.require_sync, wall_time(timestamp));
            self.report_due = true;
        }
    }

    /// The wall clock was set (NTP stepped it, or a person did): alarms it skipped do not ring.
    pub(super) fn clock_stepped(&mut self, timestamp: u64) {
        self.scheduler.alarms_mut().clock_stepped(wall_time(timestamp));
        self.report_due = true;
    }

    /// Snooze or dismiss the ringing alarm; why not when there is none.
    pub(super) fn alarm_command(&mut self, command: AlarmCommand, now: Instant, timestamp: u64) -> Result<(), Refusal> {
        let events = match command {
            AlarmCommand::Snooze => self.scheduler.alarms_mut().snooze(wall_time(timestamp)),
            AlarmCommand::Dismiss => self.scheduler.alarms_mut().dismiss(Dismissal::User),
        }
        .map_err(Refusal::Alarm)?;
        self.alarm_events(events, now, timestamp);
        Ok(())
    }

    /// Acts on what the alarm clock says: analytics, and one-off alarms disabling themselves.
    pub(super) fn alarm_events(&mut self, events: Vec<AlarmEvent>, now: Instant, timestamp: u64) {
        if events.is_empty() {
            return;
        }
        for event in events {
            if let AlarmEvent::Disable { id } = &event {
                let alarms = self.pending_patch(now).entry("alarms").or_insert_with(|| json!({}));
                alarms[id.as_str()] = json!({"enabled": false});
            }
            self.events.extend(event.analytics().map(|e| e.to_json(timestamp)));
        }
        self.scheduler.resample();
        self.report_due = true;
    }

    /// A person changed the light (here or through the shadow): a ringing alarm counts as
    /// dismissed, and natural light gives way to manual, starting from the colour it showed.
    /// True when natural light ended, so the caller records `mode: manual` in `desired`.
    pub(super) fn person_takes_over(&mut self, now: Instant, timestamp: u64) -> bool {
        if self.scheduler.alarms().is_ringing() {
            let events = self
                .scheduler
                .alarms_mut()
                .dismiss(Dismissal::Manual)
                .unwrap_or_default();
            self.alarm_events(events, now, timestamp);
        }
        if !self.scheduler.person_takes_over() {
            return false;
        }
        let shown = self.fader.output(now);
        let (hue, saturation, brightness) = state_for(shown);
        let unit = |v: f64| Unit::try_from(v.clamp(0.0, 1.0)).ok();
        let natural_colour = LightChange {
            on: Some(shown != Rgb::OFF),
            hue: unit(hue),
            saturation: unit(saturation),
            brightness: unit(brightness),
        };
        self.fader.apply(natural_colour, Duration::ZERO, now);
        self.report_due = true;
        true
    }

    /// Lets the schedulers decide what the light shows.
    pub(super) fn run_schedules(&mut self, now: Instant, timestamp: u64) {
        if self.settings_changed {
            self.settings_changed = false;
            self.update_requests
                .extend(self.firmware.desire(self.shadow.desired.get("firmware")));
            let events = self.scheduler.configure(&self.settings(), now, self.wall);
            self.alarm_events(events, now, timestamp);
            self.report_due = true;
        }
        let (events, show) = self.scheduler.tick(now, self.wall);
        self.alarm_events(events, now, timestamp);
        match show {
            Show::Same => {}
            Show::Person => self.fader.restore(Duration::from_millis(self.transition_ms), now),
            Show::Output(output, fade) => self.fader.show(output, fade, now),
        }
    }
}
