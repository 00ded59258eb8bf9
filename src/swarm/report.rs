//! A swarm run's report: what was asked ([`Parameters`]), who ran it ([`Source`], with the
//! process's own CPU and memory), what happened ([`Connections`], [`Messages`], [`Loss`]), how
//! long it took ([`Latencies`], HDR histograms in µs) and when ([`Timeline`], per second).
//!
//! Reports of several processes (or machines) of one run [`merge`](Report::merge) into one by
//! adding: counters are summed, histograms added (so percentiles are those of all the samples,
//! never averages of percentiles), timeline buckets added by their wall-clock second.

pub mod hdr;
pub mod svg;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use hdr::Latency;

/// The JSON's `schema`; a reader refuses any other.
pub const SCHEMA: &str = "lampi-swarm/1";

/// How many lost updates a report lists (all are counted).
pub const FIRST_LOST: usize = 10;

/// The width of a timeline bucket.
pub const INTERVAL_MS: u64 = 1000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub schema: String,
    /// The `lampi` version that wrote it (of the first source, after a merge).
    pub lampi: String,
    pub parameters: Parameters,
    /// Why the run ended early (e.g. "deadline"), or null.
    pub aborted: Option<String>,
    /// One per process; a merge concatenates them.
    pub sources: Vec<Source>,
    pub connections: Connections,
    pub messages: Messages,
    pub loss: Loss,
    pub latency_us: Latencies,
    pub timeline: Timeline,
    /// Faults injected during the run (a broker restart) and how the fleet recovered.
    pub faults: Vec<Fault>,
    /// A raw baseline's broker traffic (`lampi swarm raw`); absent from a swarm's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

/// A fault the run injected, and the fleet's convergence after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// `broker_restart`.
    pub kind: String,
    /// When the broker was stopped, in ms since the run started.
    pub at_ms: u64,
    /// How long it was down: from the stop until its port accepted again.
    pub down_ms: u64,
    /// From the broker's return until every lamp was online again; null if some never were.
    pub all_reconnected_after_ms: Option<u64>,
    /// Lamps seen online again after it.
    pub reconnected: u64,
    /// Each lamp's time from the broker's return to its being online again.
    pub reconnect_us: Latency,
}

/// The run's parameters. Several processes of one run share `run_id`, `qos` and `mix`;
/// each has its own share of lamps, apps and rate, which a merge adds up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    pub run_id: String,
    pub brokers: Vec<String>,
    pub lamps: u64,
    pub apps: u64,
    /// Messages a second the apps send, all kinds together.
    pub rate_per_s: f64,
    /// The share of each kind of message (`desired`, `set_config`), summing to 1.
    pub mix: BTreeMap<String, f64>,
    pub qos: u8,
    /// Lamps started a second.
    pub ramp_per_s: f64,
    pub duration_ms: u64,
    pub topic_prefix: String,
}

/// One swarm process and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub host: String,
    pub pid: u32,
    pub started_unix_ms: u64,
    /// Its lamps' indexes, `[first, end)`.
    pub lamps: [u64; 2],
    /// User plus system CPU time of the whole process, in seconds.
    pub cpu_s: f64,
    /// Peak resident memory (VmHWM), in bytes.
    pub peak_rss_bytes: u64,
    /// Resident memory with every lamp connected, less before the first started, per lamp.
    pub bytes_per_lamp: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    /// Connections the lamps and apps made (CONNACK received), reconnections included.
    pub made: u64,
    /// Attempts that failed (refused, timed out, or no CONNACK).
    pub failed: u64,
    /// Lamps connected when the run ended.
    pub connected_at_end: u64,
    /// From the first lamp's start until every lamp was online; null if they never all were.
    pub all_connected_after_ms: Option<u64>,
}

/// Counters per kind of message the apps send.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messages {
    pub desired: Counts,
    pub set_config: Counts,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Published by the apps.
    pub sent: u64,
    /// Acknowledged by the broker (PUBACK; 0 at QoS 0).
    pub acked: u64,
    /// Answers the apps received (reported states for `desired`, `lamp/changed` for
    /// `set_config`).
    pub received: u64,
    /// Answers received a second time (QoS 1 redelivery, or the lamp's republish of
    /// `lamp/changed` at a reconnect).
    pub duplicates: u64,
    /// Refused by the lamp (`update/rejected`, `set_config/rejected`).
    pub rejected: u64,
    /// Seen in a reported state (`update/documents`, `lamp/changed`, or the final `get`).
    pub reflected: u64,
    /// Not seen, but a later one for the same lamp was: the lamp coalesced them.
    pub superseded: u64,
    /// Acknowledged, not refused, and neither reflected nor superseded (part of `loss.lost`).
    pub lost: u64,
    /// Never acknowledged (or sent at QoS 0), and neither reflected nor superseded.
    pub unresolved: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.reflected += other.reflected;
        self.superseded += other.superseded;
        self.lost += other.lost;
        self.unresolved += other.unresolved;
    }
}

/// Acknowledged updates never reflected in a reported state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loss {
    pub lost: u64,
    /// Lamps that never answered the final shadow `get`: their last intents, if unreflected,
    /// count as lost.
    pub unanswered: u64,
    /// The first [`FIRST_LOST`] by the time they were sent.
    pub first: Vec<Lost>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lost {
    pub lamp: String,
    pub seq: u64,
    /// `desired` or `set_config`.
    pub kind: String,
    pub sent_unix_ms: u64,
    /// What was asked for.
    pub values: serde_json::Value,
    /// The lamp's last reported light, if any was seen.
    pub last_reported: Option<serde_json::Value>,
}

/// The three latencies a user feels, in µs from the app's `publish` call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latencies {
    /// To the broker's PUBACK.
    pub publish_puback: Latency,
    /// A shadow `desired` update to the lamp's `reported` state showing it.
    pub desired_reported: Latency,
    /// `lamp/set_config` to the `lamp/changed` that echoes its `client`.
    pub set_config_changed: Latency,
}

impl Latencies {
    pub fn all(&self) -> [(&'static str, &Latency); 3] {
        [
            ("publish_puback", &self.publish_puback),
            ("desired_reported", &self.desired_reported),
            ("set_config_changed", &self.set_config_changed),
        ]
    }

    pub fn all_mut(&mut self) -> [(&'static str, &mut Latency); 3] {
        [
            ("publish_puback", &mut self.publish_puback),
            ("desired_reported", &mut self.desired_reported),
            ("set_config_changed", &mut self.set_config_changed),
        ]
    }
}

/// Per-second buckets, keyed by wall-clock time so processes on several machines line up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    pub interval_ms: u64,
    /// Which of [`Latencies`] the points' histograms hold.
    pub latency: String,
    /// Ordered by `unix_ms`, one per interval that saw anything.
    pub points: Vec<Point>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// The bucket's start, a multiple of `interval_ms`.
    pub unix_ms: u64,
    pub sent: u64,
    pub received: u64,
    /// Samples of the timeline's latency in this interval (2 significant figures).
    pub latency_us: Latency,
}

impl Timeline {
    /// An empty timeline whose points keep `latency` (one of [`Latencies::all`]'s names).
    pub fn new(latency: &str) -> Self {
        Self {
            interval_ms: INTERVAL_MS,
            latency: latency.to_owned(),
            points: Vec::new(),
        }
    }

    /// The bucket holding `unix_ms`, made if new.
    pub fn at(&mut self, unix_ms: u64) -> &mut Point {
        let start = unix_ms - unix_ms % self.interval_ms;
        let index = match self.points.binary_search_by_key(&start, |p| p.unix_ms) {
            Ok(index) => index,
            Err(index) => {
                let point = Point {
                    unix_ms: start,
                    sent: 0,
                    received: 0,
                    latency_us: Latency::interval(),
                };
                self.points.insert(index, point);
                index
            }
        };
        &mut self.points[index]
    }
}

/// What `lampi swarm raw` measured beside the counters: the broker's traffic with no lamp in
/// it, from which its ceiling and the load generator's cost per message follow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// `firehose` or `echo`.
    pub pattern: String,
    /// Clients that send: firehose publishers, echo apps.
    pub publishers: u64,
    /// Clients that receive what they send: firehose subscribers (each gets every message),
    /// echo clients (each answers its own `set_config`).
    pub subscribers: u64,
    /// PUBLISH packets the clients sent to the broker (echo: the apps' and the echoes), counted
    /// at the clients.
    pub publish_in: u64,
    /// PUBLISH packets the broker sent to the clients.
    pub publish_out: u64,
    /// From the first message sent to the last one received (or the end of sending, if later):
    /// the span the rates are taken over.
    pub window_ms: u64,
}

impl Baseline {
    /// The broker's PUBLISH packets in and out a second.
    pub fn broker_msgs_per_s(&self) -> f64 {
        per_s(self.publish_in + self.publish_out, self.window_ms)
    }
}

fn per_s(count: u64, ms: u64) -> f64 {
    if ms == 0 {
        0.0
    } else {
        count as f64 * 1000.0 / ms as f64
    }
}

/// Why a file is not a report, or two reports do not merge.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("not a swarm report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("schema {found:?} is not {SCHEMA:?}")]
    Schema { found: String },
    #[error("timeline: {0}")]
    Timeline(String),
    #[error("different runs: {0}")]
    Mismatch(String),
    #[error("histogram {name}: {source}")]
    Histogram {
        name: String,
        source: hdrhistogram::AdditionError,
    },
}

impl Report {
    /// An empty report of one process's run.
    pub fn new(parameters: Parameters, source: Source, timeline_latency: &str) -> Self {
        Self {
            schema: SCHEMA.to_owned(),
            lampi: crate::VERSION.to_owned(),
            parameters,
            aborted: None,
            sources: vec![source],
            connections: Connections::default(),
            messages: Messages::default(),
            loss: Loss::default(),
            latency_us: Latencies::default(),
            timeline: Timeline::new(timeline_latency),
            faults: Vec::new(),
            baseline: None,
        }
    }

    /// Reads a report, checking its schema first (so a report of a later schema says so rather
    /// than naming a field it does not know).
    pub fn from_json(text: &str) -> Result<Self, ReportError> {
        #[derive(Deserialize)]
        struct Header {
            schema: Option<String>,
        }
        let header: Header = serde_json::from_str(text)?;
        match header.schema {
            Some(schema) if schema == SCHEMA => {}
            found => {
                return Err(ReportError::Schema {
                    found: found.unwrap_or_else(|| "(none)".to_owned()),
                });
            }
        }
        let report: Report = serde_json::from_str(text)?;
        report.check()?;
        Ok(report)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises") + "\n"
    }

    fn check(&self) -> Result<(), ReportError> {
        let timeline = &self.timeline;
        if timeline.interval_ms == 0 {
            return Err(ReportError::Timeline("interval_ms is 0".to_owned()));
        }
        if !self.latency_us.all().iter().any(|(name, _)| *name == timeline.latency) {
            return Err(ReportError::Timeline(format!("unknown latency {:?}", timeline.latency)));
        }
        let ordered = timeline.points.windows(2).all(|w| w[0].unix_ms < w[1].unix_ms);
        let aligned = timeline.points.iter().all(|p| p.unix_ms % timeline.interval_ms == 0);
        if !ordered || !aligned {
            return Err(ReportError::Timeline(
                "points must be in order, one per interval, each starting on a multiple of interval_ms".to_owned(),
            ));
        }
        Ok(())
    }

    /// Adds `other`, a report of other processes of the same run (same run id, QoS, mix and
    /// timeline; no source in both). On an error `self` may be partly merged; callers drop it.
    pub fn merge(&mut self, other: Report) -> Result<(), ReportError> {
        let (mine, theirs) = (&mut self.parameters, &other.parameters);
        let same = |what: &str, equal: bool| {
            if equal {
                Ok(())
            } else {
                Err(ReportError::Mismatch(format!("{what} differs")))
            }
        };
        same("run_id", mine.run_id == theirs.run_id)?;
        same("qos", mine.qos == theirs.qos)?;
        same("mix", mine.mix == theirs.mix)?;
        same(
            "timeline interval",
            self.timeline.interval_ms == other.timeline.interval_ms,
        )?;
        same("timeline latency", self.timeline.latency == other.timeline.latency)?;
        // A raw baseline merges only with baselines of the same pattern.
        let pattern = |b: &Option<Baseline>| b.as_ref().map(|b| b.pattern.clone());
        same("baseline pattern", pattern(&self.baseline) == pattern(&other.baseline))?;
        // The same process's report twice (`merge a.json a.json`) would double every count.
        let id = |s: &Source| (s.host.clone(), s.pid, s.started_unix_ms);
        if let Some(again) = other
            .sources
            .iter()
            .find(|s| self.sources.iter().any(|m| id(m) == id(s)))
        {
            return Err(ReportError::Mismatch(format!(
                "process {} on {} started at {} ms is in both",
                again.pid, again.host, again.started_unix_ms
            )));
        }
        // Two processes with the same lamps were the same lamps twice (the same client ids,
        // each taking over the other's connections), not twice as many: a forgotten
        // --lamp-offset. Raw baselines have no lamps to share.
        let overlap = |a: &Source, b: &Source| a.lamps[0] < b.lamps[1] && b.lamps[0] < a.lamps[1];
        if self.baseline.is_none()
            && let Some((a, b)) = other
                .sources
                .iter()
                .find_map(|b| self.sources.iter().find(|a| overlap(a, b)).map(|a| (a, b)))
        {
            return Err(ReportError::Mismatch(format!(
                "lamps {}..{} and {}..{} overlap (give each process its own --lamp-offset)",
                a.lamps[0], a.lamps[1], b.lamps[0], b.lamps[1]
            )));
        }

        mine.lamps += theirs.lamps;
        mine.apps += theirs.apps;
        mine.rate_per_s += theirs.rate_per_s;
        mine.ramp_per_s += theirs.ramp_per_s;
        mine.duration_ms = mine.duration_ms.max(theirs.duration_ms);
        for broker in &theirs.brokers {
            if !mine.brokers.contains(broker) {
                mine.brokers.push(broker.clone());
            }
        }
        if self.aborted.is_none() {
            self.aborted = other.aborted;
        }
        self.sources.extend(other.sources);
        if let (Some(mine), Some(theirs)) = (&mut self.baseline, &other.baseline) {
            mine.publishers += theirs.publishers;
            mine.subscribers += theirs.subscribers;
            mine.publish_in += theirs.publish_in;
            mine.publish_out += theirs.publish_out;
            // The processes of one run send at the same time.
            mine.window_ms = mine.window_ms.max(theirs.window_ms);
        }

        let (c, o) = (&mut self.connections, &other.connections);
        c.made += o.made;
        c.failed += o.failed;
        c.connected_at_end += o.connected_at_end;
        // The fleet was all up once each process's lamps were.
        c.all_connected_after_ms = c
            .all_connected_after_ms
            .zip(o.all_connected_after_ms)
            .map(|(a, b)| a.max(b));
        self.messages.desired.add(&other.messages.desired);
        self.messages.set_config.add(&other.messages.set_config);
        self.faults.extend(other.faults);

        self.loss.lost += other.loss.lost;
        self.loss.unanswered += other.loss.unanswered;
        self.loss.first.extend(other.loss.first);
        // Stable: within one source, its own order stands.
        self.loss.first.sort_by_key(|lost| lost.sent_unix_ms);
        self.loss.first.truncate(FIRST_LOST);

        for ((name, mine), (_, theirs)) in self.latency_us.all_mut().into_iter().zip(other.latency_us.all()) {
            add(name, mine, theirs)?;
        }
        for point in other.timeline.points {
            let mine = self.timeline.at(point.unix_ms);
            mine.sent += point.sent;
            mine.received += point.received;
            add(
                &format!("timeline {}", point.unix_ms),
                &mut mine.latency_us,
                &point.latency_us,
            )?;
        }
        Ok(())
    }

    /// Every kind's counters added up.
    pub fn totals(&self) -> Counts {
        let mut totals = self.messages.desired.clone();
        totals.add(&self.messages.set_config);
        totals
    }
}

fn add(name: &str, mine: &mut Latency, theirs: &Latency) -> Result<(), ReportError> {
    mine.add(theirs).map_err(|source| ReportError::Histogram {
        name: name.to_owned(),
        source,
    })
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The table `lampi swarm merge` prints: the run, then latencies in ms, then counters and loss.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.parameters;
        let cpu_s: f64 = self.sources.iter().map(|s| s.cpu_s).sum();
        writeln!(
            f,
            "run {}: {} lamps ({} connected at the end), {} apps, {:.0} msgs/s asked, QoS {}, {} s, {} process(es), {:.1} CPU s",
            p.run_id,
            p.lamps,
            self.connections.connected_at_end,
            p.apps,
            p.rate_per_s,
            p.qos,
            p.duration_ms as f64 / 1000.0,
            self.sources.len(),
            cpu_s,
        )?;
        if let Some(why) = &self.aborted {
            writeln!(f, "ABORTED: {why}")?;
        }
        for s in &self.sources {
            writeln!(
                f,
                "  {} pid {}: lamps {}..{}, CPU {:.1} s, peak RSS {:.1} MiB, {} bytes/lamp",
                s.host,
                s.pid,
                s.lamps[0],
                s.lamps[1],
                s.cpu_s,
                s.peak_rss_bytes as f64 / (1024.0 * 1024.0),
                s.bytes_per_lamp,
            )?;
        }
        if let Some(b) = &self.baseline {
            let answered = match b.pattern.as_str() {
                "echo" => format!(
                    "{:.0} round trips/s",
                    per_s(self.messages.set_config.received, b.window_ms)
                ),
                _ => format!("{:.0} deliveries/s", per_s(b.publish_out, b.window_ms)),
            };
            writeln!(
                f,
                "raw {}: {} publishers, {} subscribers; broker PUBLISH in {} + out {} in {:.1} s = {:.0} msgs/s ({answered}); {:.0} msgs per CPU-second of the load generator",
                b.pattern,
                b.publishers,
                b.subscribers,
                b.publish_in,
                b.publish_out,
                b.window_ms as f64 / 1000.0,
                b.broker_msgs_per_s(),
                if cpu_s > 0.0 {
                    (b.publish_in + b.publish_out) as f64 / cpu_s
                } else {
                    0.0
                },
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<20} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for (name, latency) in self.latency_us.all() {
            writeln!(
                f,
                "{:<20} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                latency.count(),
                ms(latency.quantile(0.5)),
                ms(latency.quantile(0.9)),
                ms(latency.quantile(0.99)),
                ms(latency.quantile(0.999)),
                ms(latency.max()),
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10} {:>8}",
            "messages", "sent", "acked", "received", "dupl.", "rejected", "reflected", "supers.", "unresolved", "lost"
        )?;
        let totals = self.totals();
        for (name, c) in [
            ("desired", &self.messages.desired),
            ("set_config", &self.messages.set_config),
            ("total", &totals),
        ] {
            writeln!(
                f,
                "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10} {:>8}",
                name,
                c.sent,
                c.acked,
                c.received,
                c.duplicates,
                c.rejected,
                c.reflected,
                c.superseded,
                c.unresolved,
                c.lost
            )?;
        }
        let all_up = self
            .connections
            .all_connected_after_ms
            .map_or("never".to_owned(), |ms| format!("after {:.1} s", ms as f64 / 1000.0));
        writeln!(
            f,
            "connections: {} made, {} failed; every lamp online {all_up}",
            self.connections.made, self.connections.failed
        )?;
        for fault in &self.faults {
            let back = fault
                .all_reconnected_after_ms
                .map_or("not every lamp came back".to_owned(), |ms| {
                    format!("every lamp back {:.2} s after it", ms as f64 / 1000.0)
                });
            writeln!(
                f,
                "fault {} at {:.1} s, down {:.1} s: {back}; reconnects p50 {} p99 {} max {} ms",
                fault.kind,
                fault.at_ms as f64 / 1000.0,
                fault.down_ms as f64 / 1000.0,
                ms(fault.reconnect_us.quantile(0.5)),
                ms(fault.reconnect_us.quantile(0.99)),
                ms(fault.reconnect_us.max()),
            )?;
        }
        writeln!(
            f,
            "lost: {} (lamps without a final state: {})",
            self.loss.lost, self.loss.unanswered
        )?;
        for lost in &self.loss.first {
            writeln!(
                f,
                "  {} {} #{} sent at {} ms: {} (last reported: {})",
                lost.lamp,
                lost.kind,
                lost.seq,
                lost.sent_unix_ms,
                lost.values,
                lost.last_reported.as_ref().map_or("none".to_owned(), |v| v.to_string()),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
