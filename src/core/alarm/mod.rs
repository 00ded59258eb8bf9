//! The alarm clock: when alarms ring, what the light does while they do, snooze and dismiss.
//!
//! LAMPI has no speaker, so alarms wake people with light: `blink` flashes full white in a
//! pattern no ordinary use of the lamp makes ([`BLINK_PATTERN`]); `sunrise` brightens from
//! dark deep red through warm white over `ramp_minutes`, reaching full light *at* the alarm
//! time, then holds.
//!
//! Rules, as docs/PROTOCOL.md states them:
//! - Occurrences are computed in the alarm's zone (default the lamp's). A time that a
//!   spring-forward skips rings at the first instant after the gap; a time a fall-back repeats
//!   rings once, at its first occurrence.
//! - Each alarm remembers the latest occurrence it has dealt with (`settled`); nothing at or
//!   before it rings again. A new or edited alarm, a clock step (NTP after a boot without a
//!   real-time clock) and the clock becoming synchronised all settle every alarm at `now`, so
//!   nothing "missed" across them rings. An occurrence missed by at most [`GRACE`] (the lamp
//!   was restarting) still rings, once; older ones are reported as missed.
//! - While the clock is unsynchronised and synchronisation is required, nothing rings.
//! - Alarms due while another rings ring once, with it; one due while another is snoozed
//!   wakes it, and they ring together. Snooze or dismiss acts on all of them.
//! - Deleting or disabling a ringing alarm stops the ring. An alarm without days rings once
//!   and is disabled when its ring ends.

mod clock;
mod event;
mod light;
mod spec;
#[cfg(test)]
mod tests;

pub use clock::*;
pub use event::*;
pub use light::*;
pub use spec::*;
