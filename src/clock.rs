//! The wall clock behind a small trait: the real one (with the kernel's view of whether NTP
//! has synchronised it, and notice when it is set), or a virtual one that can start anywhere
//! and run faster than time, for tests and demonstrations.
//!
//! Fades and every other interval run on tokio's monotonic clock; only the schedulers (alarm
//! times, the sun) read this one.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

/// Why a [`WallClock::sleep_until`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The time came.
    Due,
    /// The clock was set (stepped), so every wall-clock plan must be made again.
    Stepped,
}

pub type Sleep<'a> = Pin<Box<dyn Future<Output = Wake> + Send + 'a>>;

pub trait WallClock: Debug + Send {
    fn now(&self) -> DateTime<Utc>;
    /// Whether the kernel considers the clock synchronised.
    fn synchronised(&self) -> bool;
    /// Sleeps until the wall clock reads `at` (forever if `None`), returning early if the
    /// clock is set.
    fn sleep_until(&mut self, at: Option<DateTime<Utc>>) -> Sleep<'_>;
    /// Another clock that reads the same time, for a second task (the screen's clock).
    fn replica(&self) -> Box<dyn WallClock>;
}

/// Seconds since the epoch, for shadow timestamps; 0 before 1970.
pub fn timestamp(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).unwrap_or(0)
}

/// How often the wall clock is polled when the kernel cannot notify clock changes.
const POLL: Duration = Duration::from_secs(60);

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock {
    timer: Option<realtime::Timer>,
}

impl WallClock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        SystemTime::now().into()
    }

    fn synchronised(&self) -> bool {
        realtime::synchronised()
    }

    fn sleep_until(&mut self, at: Option<DateTime<Utc>>) -> Sleep<'_> {
        Box::pin(async move {
            if self.timer.is_none() {
                match realtime::Timer::new() {
                    Ok(timer) => self.timer = Some(timer),
                    Err(e) => {
                        // Without a timerfd, sleep by the monotonic clock and look again
                        // within a minute, so a clock step costs at most that.
                        tracing::warn!("no realtime timer ({e}); polling the wall clock");
                        let wait = at.map_or(POLL, |at| (at - self.now()).to_std().unwrap_or_default().min(POLL));
                        tokio::time::sleep(wait).await;
                        return Wake::Due;
                    }
                }
            }
            let timer = self.timer.as_mut().expect("created above");
            timer.wait(at).await
        })
    }

    fn replica(&self) -> Box<dyn WallClock> {
        Box::new(SystemClock::default())
    }
}

/// A clock that starts at a chosen time and runs `speed` times faster than tokio's clock.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    start: DateTime<Utc>,
    origin: tokio::time::Instant,
    speed: f64,
    synchronised: bool,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>, speed: f64, synchronised: bool) -> VirtualClock {
        VirtualClock {
            start,
            origin: tokio::time::Instant::now(),
            speed,
            synchronised,
        }
    }

    fn instant_of(&self, at: DateTime<Utc>) -> tokio::time::Instant {
        let wall = (at - self.start).to_std().unwrap_or_default();
        self.origin + wall.div_f64(self.speed)
    }
}

impl WallClock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.origin.elapsed().mul_f64(self.speed);
        self.start + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }

    fn synchronised(&self) -> bool {
        self.synchronised
    }

    fn replica(&self) -> Box<dyn WallClock> {
        Box::new(self.clone())
    }

    fn sleep_until(&mut self, at: Option<DateTime<Utc>>) -> Sleep<'_> {
        let deadline = at.map(|at| self.instant_of(at));
        Box::pin(async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
            Wake::Due
        })
    }
}

/// Linux specifics: `adjtimex` for the synchronisation flag, and a `timerfd` on
/// `CLOCK_REALTIME` with `TFD_TIMER_CANCEL_ON_SET`, which fires at a wall-clock time and also
/// wakes at once when the clock is set — so a sleep never overshoots a clock step.
mod realtime {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use chrono::{DateTime, Utc};
    use tokio::io::unix::AsyncFd;

    use super::Wake;

    pub fn synchronised() -> bool {
        // SAFETY: adjtimex with `modes == 0` only reads the kernel's state into `timex`.
        let mut timex: libc::timex = unsafe { std::mem::zeroed() };
        let state = unsafe { libc::adjtimex(&mut timex) };
        state >= 0 && state != libc::TIME_ERROR && timex.status & libc::STA_UNSYNC == 0
    }

    #[derive(Debug)]
    pub struct Timer {
        fd: AsyncFd<OwnedFd>,
        armed: Option<Option<DateTime<Utc>>>,
        failed: bool,
    }

    /// Far enough to mean "never", near enough for every `time_t`.
    const NEVER_SECS: i64 = 1 << 40;

    impl Timer {
        pub fn new() -> io::Result<Timer> {
            // SAFETY: plain syscall; the descriptor is owned at once.
            let fd = unsafe { libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: the OwnedFd keeps the descriptor open for as long as the AsyncFd holds it.
            let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
            Ok(Timer {
                fd,
                armed: None,
                failed: false,
            })
        }

        fn arm(&mut self, at: Option<DateTime<Utc>>) -> io::Result<()> {
            let (secs, nanos) = at.map_or((NEVER_SECS, 0), |at| (at.timestamp(), at.timestamp_subsec_nanos()));
            let spec = libc::itimerspec {
                it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: libc::timespec {
                    // A 32-bit time_t (older armhf) cannot say "never": the latest it can.
                    tv_sec: libc::time_t::try_from(secs.max(0)).unwrap_or(libc::time_t::MAX),
                    tv_nsec: nanos.max(1) as libc::c_long,
                },
            };
            let flags = libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET;
            // SAFETY: `spec` is a valid itimerspec and the descriptor is ours.
            let result = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), flags, &spec, std::ptr::null_mut()) };
            if result < 0 {
                return Err(io::Error::last_os_error());
            }
            self.armed = Some(at);
            Ok(())
        }

        pub async fn wait(&mut self, at: Option<DateTime<Utc>>) -> Wake {
            if self.armed != Some(at)
                && let Err(e) = self.arm(at)
            {
                // Wall-clock wake-ups are then lost; say so once, not at every frame.
                if !self.failed {
                    tracing::error!("cannot arm the realtime timer: {e}");
                    self.failed = true;
                }
                std::future::pending::<()>().await;
            }
            loop {
                let Ok(mut ready) = self.fd.readable().await else {
                    std::future::pending::<()>().await;
                    unreachable!()
                };
                let mut expirations = [0u8; 8];
                // SAFETY: reads at most 8 bytes into a buffer of 8.
                let n = unsafe { libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
                if n == 8 {
                    self.armed = None;
                    return Wake::Due;
                }
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::ECANCELED) => {
                        self.armed = None;
                        return Wake::Stepped;
                    }
                    Some(libc::EAGAIN) => ready.clear_ready(),
                    _ => {
                        self.armed = None;
                        return Wake::Due;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_virtual_clock_runs_fast_and_wakes_on_its_own_time() {
        let start: DateTime<Utc> = "2026-11-27T06:58:00Z".parse().unwrap();
        let mut clock = VirtualClock::new(start, 60.0, true);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(clock.now(), start + chrono::Duration::minutes(1));
        let alarm: DateTime<Utc> = "2026-11-27T07:00:00Z".parse().unwrap();
        assert_eq!(clock.sleep_until(Some(alarm)).await, Wake::Due);
        assert_eq!(clock.now(), alarm);
    }

    #[tokio::test]
    async fn the_system_clock_wakes_at_a_wall_time() {
        let mut clock = SystemClock::default();
        let at = clock.now() + chrono::Duration::milliseconds(50);
        let woke = tokio::time::timeout(Duration::from_secs(5), clock.sleep_until(Some(at)))
            .await
            .expect("the timer fires");
        assert_eq!(woke, Wake::Due);
        assert!(clock.now() >= at);
        // Asked again for the same past time: fires at once instead of waiting forever.
        let again = tokio::time::timeout(Duration::from_secs(5), clock.sleep_until(Some(at))).await;
        assert_eq!(again, Ok(Wake::Due));
    }
}
