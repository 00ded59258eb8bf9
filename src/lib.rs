//! `lampi`: the firmware daemon of the LAMPI smart lamp.
//!
//! # Layout
//!
//! Pure core (no I/O, no tokio, no clock reads; every input carries `now`):
//! - [`core::lamp`]: **the lamp's core**, [`core::lamp::Lamp`]: one way in,
//!   `handle(`[`Input`](core::lamp::Input)`, `[`Now`](core::lamp::Now)`)`; one way out,
//!   `poll_output() -> Option<`[`Output`](core::lamp::Output)`>` and `next_wake() ->`
//!   [`Wake`](core::lamp::Wake). Its parts: `io` (the types in and out), `host` (the shadow
//!   service), `cloud` (a cloud shadow's client), `report` (`reported`, local changes
//!   coalesced), `pairing`. A new input source (BLE, a fleet simulator) is a new `Input` and
//!   `Output` variant, handled here and routed in [`lamp_task`].
//! - [`core::light`]: the lamp's state (on, hue, saturation, brightness) and partial changes.
//! - [`core::colour`]: the colour pipeline, state → perceptual brightness → PWM duty cycles.
//! - [`core::fade`]: the fader: target, fades, and when it next needs waking.
//! - [`core::shadow`]: a device shadow with AWS IoT semantics (merge, metadata, delta, errors).
//! - [`core::schema`]: what the lamp's shadow may contain, validated field by field.
//! - [`core::report`]: the typed sections of `reported` the core writes and the screen reads.
//! - [`core::analytics`]: the analytics events the core makes.
//! - [`core::alarm`]: an alarm and its defaults (`spec`), the alarm clock's rules (`clock`),
//!   its light (`light`: blink, sunrise), occurrences across zones and DST.
//! - [`core::sun`]: the sun's elevation, sunrise and sunset (NOAA's equations).
//! - [`core::natural`]: natural-light mode: sun elevation to colour temperature and brightness.
//! - [`core::schedule`]: what shows — an alarm, natural light or the person's setting.
//! - [`core::pairing`]: one-minute, single-use pairing codes and the lamp's owner.
//! - [`core::screen`]: when the touchscreen's backlight dims, goes dark and wakes.
//! - [`core::firmware`]: whether to ask for a firmware version, and how the update went.
//! - [`core::backoff`]: reconnect delays with jitter.
//! - [`protocol::lampi`]: LAMPI's `set_config` / `changed` JSON, parsed and validated.
//! - [`protocol::homeassistant`]: Home Assistant's discovery, state and command JSON.
//! - [`protocol::pairing`]: the pairing topics' JSON between the lamp and the cloud portal.
//! - [`protocol::ble`]: the LAMPI Bluetooth LE GATT service: UUIDs, descriptors, encodings,
//!   writes decoded or refused with their ATT error.
//!
//! Shell (tokio tasks around the core):
//! - [`lamp_task`]: the one owner of a [`core::lamp::Lamp`]: each command becomes an `Input`,
//!   every `Output` goes to its watch channel or queue, and it sleeps until `next_wake()`.
//! - [`mqtt`]: LAMPI's and the shadow's MQTT topics over rumqttc: `topics` (pure routing: topic
//!   and retain flag → what it is for this lamp), the `poller` (reconnects with backoff, messages
//!   in → lamp commands), the `publisher` (state, replies, analytics and their spool out), `tls`.
//! - `ble` (feature `ble`): the lamp as a Bluetooth LE peripheral through BlueZ (bluer): the
//!   LAMPI GATT service of [`protocol::ble`] and its advertisement, one task per lamp that
//!   outlives BlueZ and adapter outages and tells the lamp ([`core::lamp::Input::BleServing`]).
//! - [`ctl`]: `lampi ctl`, a command-line client for a lamp's shadow.
//! - `ble_client` (feature `ble-client`): `lampi ble`, a Bluetooth LE central (btleplug) that
//!   finds lamps by the Lamp Service and reads, sets and watches them with [`protocol::ble`].
//! - `swarm` (feature `swarm`): `lampi swarm`, the fleet simulator: `run` starts N real lamps
//!   (`daemon::run`, simulated LED) and M apps against a broker; its `plan` (bounds), `naming`
//!   (ids, topics, per-lamp config), `lamps` (the fleet, online and reconnect tracking), `apps`
//!   (MQTT senders), `ledger` (pure: PUBACKs by packet id, reflected/superseded/lost),
//!   `measure`, `rlimit`, `mosquitto` (a private, restartable broker), `raw` (the broker's own
//!   ceiling by minimal clients, no lamp code) and `report` (HDR
//!   histograms, counters, loss, faults, a timeline; JSON that merges across processes, a table
//!   and an SVG).
//! - [`events`]: usage analytics events and their offline spool.
//! - [`store`]: atomic, coalesced persistence of the state in the state directory.
//! - [`updater`]: hands firmware update requests to the privileged `lampi-update` service.
//! - [`led`]: the LED trait and its backends (`sim`, and `rpi` behind the `rpi` feature).
//! - [`clock`]: the wall clock: the system's (NTP sync flag, clock-set notice) or a virtual one.
//! - [`daemon`]: wires one lamp's tasks together; no globals, so many lamps fit one process.
//! - [`config`]: the TOML config (`file`), its validation (`validate`), and [`config::Resolved`]:
//!   the device id, state directory and shadow role settled once at start with the command
//!   line's [`config::Overrides`]; the only code that reads `/sys/class/net` and the environment
//!   for them.
//! - [`ui`]: the touchscreen (Slint): a pure view of the lamp's state, the bridge to the UI's
//!   `Api` global, the live screen's task ([`ui::live`], with its `session` bookkeeping, on
//!   tokio's clock), its preferences ([`ui::prefs`]), the backend choice ([`ui::display`]),
//!   headless screenshots, the backlight.
//! - [`sys`]: the machine's network addresses ([`sys::net`], the `getifaddrs` FFI).
//! - [`app`]: the process around one lamp: its runtime, systemd's readiness and watchdog,
//!   signals, and the screen's event loop beside the lamp's thread (whichever ends first ends
//!   the other).
//!
//! Errors that cross a module are named types ([`core::shadow::Invalid`], [`protocol::Refused`],
//! [`core::lamp::Refusal`], [`config::ConfigError`]), never bare strings.
//!
//! The `lampi` binary (`src/main.rs`) parses the command line, sets up logging, resolves the
//! config and hands over to [`app`].

pub mod app;
#[cfg(feature = "ble")]
pub mod ble;
#[cfg(feature = "ble-client")]
pub mod ble_client;
pub mod clock;
pub mod config;
pub mod core;
pub mod ctl;
pub mod daemon;
pub mod events;
pub mod lamp_task;
pub mod led;
pub mod mqtt;
pub mod protocol;
pub mod store;
#[cfg(feature = "swarm")]
pub mod swarm;
pub mod sys;
pub mod ui;
pub mod updater;

/// The firmware version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("LAMPI_GIT_COMMIT"), ")");
