//! `lampi swarm`: the fleet simulator (issue 14).
//!
//! Built so far:
//! - [`report`]: the run's measurement report: parameters, counters, loss, HDR latency
//!   histograms, a per-second timeline and the swarm's own resources; JSON
//!   (`"schema": "lampi-swarm/1"`, histograms in HdrHistogram's V2+deflate format, base64),
//!   [`report::Report::merge`] for reports of several processes, a table (`Display`) and an SVG
//!   plot. `lampi swarm merge` is this module on files.
//! - [`raw`]: `lampi swarm raw`, the broker's ceiling measured by minimal MQTT clients (no lamp
//!   code), in the same report with its [`report::Baseline`].
//!
//! Not built yet: running the lamps and apps (`lampi swarm run`), which fills a
//! [`report::Report`].

pub mod raw;
pub mod report;
