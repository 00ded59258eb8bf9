//! The fleet: each lamp is the real one, [`daemon::run`] with a simulated LED, spawned on the
//! lamps' runtime. The fleet watches every lamp's `online` flag (no MQTT needed) for the
//! connected count and, after a broker restart, for how long the fleet takes to come back.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerAddr, Config};
use crate::daemon::{self, LampSetup};
use crate::led::SimLed;

use super::naming::{self, Names};
use super::plan::Credentials;
use super::report::Latency;

struct Lamp {
    ready: Option<oneshot::Receiver<watch::Receiver<bool>>>,
    online: Option<watch::Receiver<bool>>,
    done: JoinHandle<()>,
    /// Seen online again since the current fault's broker stop.
    back: bool,
}

/// A broker outage being watched.
struct Outage {
    /// When the broker accepted connections again (unknown while it is down).
    back_at: Option<Instant>,
    reconnect_us: Latency,
    reconnected: u64,
    last_back: Option<Instant>,
}

pub struct Fleet {
    runtime: Handle,
    base: Config,
    names: Names,
    brokers: Vec<BrokerAddr>,
    tls: Option<Credentials>,
    state_dir: PathBuf,
    shutdown: CancellationToken,
    lamps: Vec<Lamp>,
    /// Times a lamp was seen coming online (its reconnections included).
    pub connects: u64,
    outage: Option<Outage>,
}

/// How the fleet came back from an outage.
pub struct Recovery {
    pub reconnected: u64,
    /// From the broker's return until the last lamp was back, if every lamp was.
    pub all_back_after: Option<Duration>,
    pub reconnect_us: Latency,
}

impl Fleet {
    pub fn new(
        runtime: Handle,
        base: Config,
        names: Names,
        brokers: Vec<BrokerAddr>,
        tls: Option<Credentials>,
        state_dir: PathBuf,
    ) -> Self {
        Fleet {
            runtime,
            base,
            names,
            brokers,
            tls,
            state_dir,
            shutdown: CancellationToken::new(),
            lamps: Vec::new(),
            connects: 0,
            outage: None,
        }
    }

    pub fn started(&self) -> usize {
        self.lamps.len()
    }

    /// Starts the next lamp.
    pub fn start_next(&mut self) {
        let ids = self.names.lamp(self.lamps.len() as u64);
        let config = naming::lamp_config(&self.base, &ids, &self.brokers, self.tls.as_ref(), chrono::Utc::now());
        let setup = LampSetup {
            config,
            state_dir: self.state_dir.join(&ids.device_id),
            led: Box::new(SimLed::new()),
        };
        let (ready_tx, ready) = oneshot::channel();
        let done = self.runtime.spawn(daemon::run(
            setup,
            self.shutdown.child_token(),
            move |handle, _clock| {
                let _ = ready_tx.send(handle.online.clone());
            },
        ));
        self.lamps.push(Lamp {
            ready: Some(ready),
            online: None,
            done,
            back: false,
        });
    }

    /// Looks at every lamp once: returns how many are online now. Call it often (every 100 ms):
    /// a reconnection is timed when it is seen.
    pub fn poll(&mut self, now: Instant) -> usize {
        let mut online = 0;
        for lamp in &mut self.lamps {
            if let Some(ready) = &mut lamp.ready
                && let Ok(rx) = ready.try_recv()
            {
                lamp.online = Some(rx);
                lamp.ready = None;
            }
            let Some(rx) = &mut lamp.online else { continue };
            // `send_replace` marks every Connected, so a drop and reconnect between two polls
            // still shows as a change.
            if rx.has_changed().unwrap_or(false) && *rx.borrow_and_update() {
                self.connects += 1;
                if let Some(outage) = &mut self.outage
                    && !lamp.back
                {
                    // A lamp can only connect once the broker listens again, which the run may
                    // not have noticed yet: then it counts as back at once.
                    let after = outage
                        .back_at
                        .map_or(Duration::ZERO, |back_at| now.saturating_duration_since(back_at));
                    lamp.back = true;
                    outage.reconnected += 1;
                    outage.last_back = Some(now);
                    outage.reconnect_us.record(after.as_micros() as u64);
                }
            }
            if *rx.borrow() {
                online += 1;
            }
        }
        online
    }

    /// The broker is going down now: from here every lamp must be seen coming online again.
    pub fn outage_begins(&mut self) {
        for lamp in &mut self.lamps {
            lamp.back = false;
            if let Some(rx) = &mut lamp.online {
                rx.mark_unchanged();
            }
        }
        self.outage = Some(Outage {
            back_at: None,
            reconnect_us: Latency::new(),
            reconnected: 0,
            last_back: None,
        });
    }

    /// The broker accepts connections again.
    pub fn broker_back(&mut self, at: Instant) {
        if let Some(outage) = &mut self.outage {
            outage.back_at = Some(at);
        }
    }

    /// How the fleet came back, once the outage is over (or the run is).
    pub fn recovery(&mut self) -> Option<Recovery> {
        let outage = self.outage.take()?;
        let every = outage.reconnected == self.lamps.len() as u64;
        Some(Recovery {
            reconnected: outage.reconnected,
            all_back_after: outage
                .back_at
                .zip(outage.last_back)
                .filter(|_| every)
                .map(|(back, last)| last.saturating_duration_since(back)),
            reconnect_us: outage.reconnect_us,
        })
    }

    /// Stops every lamp cleanly (state flushed, broker told), waiting at most `limit`.
    /// Returns how many did not stop in time.
    pub async fn stop(self, limit: Duration) -> usize {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + limit;
        let mut late = 0;
        for lamp in self.lamps {
            let abort = lamp.done.abort_handle();
            if tokio::time::timeout_at(deadline, lamp.done).await.is_err() {
                abort.abort();
                late += 1;
            }
        }
        late
    }
}
