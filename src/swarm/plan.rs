//! What a swarm run is asked to do, and the bounds it is held to before anything connects: a
//! run is bounded in lamps, rate, time and messages, and stops by itself.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::BrokerAddr;

pub const MAX_LAMPS: u64 = 100_000;
pub const MAX_APPS: u64 = 10_000;
pub const MAX_RATE: f64 = 1_000_000.0;
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
pub const MAX_GRACE: Duration = Duration::from_secs(600);
pub const MAX_BROKER_DOWN: Duration = Duration::from_secs(300);
/// Intents per lamp: an intent's light values are its tag, unique among 9000 (`ledger`), and
/// every intent is kept until the end.
pub const MAX_INTENTS_PER_LAMP: u64 = 9000;
/// Added to ramp + duration + grace for the hard deadline: the final shadow `get`s and
/// stopping the lamps.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(30);

/// A validated plan; [`Plan::validate`] is the only way to trust one.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Brokers as given (`--broker`); empty with `mosquitto` until it has started.
    pub brokers: Vec<BrokerAddr>,
    /// Start a private Mosquitto on loopback.
    pub mosquitto: bool,
    pub lamps: u64,
    /// The first lamp's index, so several processes make distinct lamps.
    pub lamp_offset: u64,
    pub run_id: String,
    pub apps: u64,
    /// Messages a second, all apps and kinds together.
    pub rate: f64,
    /// The share of shadow `desired` updates; the rest are `set_config`.
    pub desired_share: f64,
    /// Lamps started a second.
    pub ramp: f64,
    pub duration: Duration,
    pub grace: Duration,
    pub max_messages: u64,
    pub qos: u8,
    pub prefix: String,
    /// Per lamp `{state_dir}/{run}/{id}`; `{state_dir}/{run}` is removed at the end.
    pub state_dir: PathBuf,
    pub restart_broker_at: Option<Duration>,
    pub broker_down: Duration,
    /// TLS for every lamp and app, each with its own certificate.
    pub tls: Option<Credentials>,
}

/// TLS to the brokers: one CA, and client certificate and key paths in which `{id}` stands for
/// the lamp's device id or the app's client id, so every client has its own.
#[derive(Clone, Debug, PartialEq)]
pub struct Credentials {
    pub ca: PathBuf,
    pub cert: Option<String>,
    pub key: Option<String>,
}

impl Credentials {
    /// `(cert, key)` of the client `id`.
    pub fn client(&self, id: &str) -> (Option<PathBuf>, Option<PathBuf>) {
        let fill = |template: &Option<String>| template.as_ref().map(|t| PathBuf::from(t.replace("{id}", id)));
        (fill(&self.cert), fill(&self.key))
    }
}

/// A plan as typed, before [`Plan::validate`].
#[derive(Clone, Debug)]
pub struct Asked {
    pub brokers: Vec<String>,
    pub mosquitto: bool,
    pub lamps: u64,
    pub lamp_offset: u64,
    pub run_id: Option<String>,
    pub apps: u64,
    pub rate: f64,
    pub mix: String,
    pub ramp: f64,
    pub duration: String,
    pub grace: String,
    pub max_messages: Option<u64>,
    pub qos: u8,
    pub prefix: String,
    pub state_dir: Option<PathBuf>,
    pub restart_broker_at: Option<String>,
    pub broker_down: String,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct PlanError(String);

fn refuse<T>(message: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(message.into()))
}

impl Asked {
    /// Checks every bound; `default_run_id` names the run when `--run-id` is not given.
    pub fn validate(self, default_run_id: &str) -> Result<Plan, PlanError> {
        if !(1..=MAX_LAMPS).contains(&self.lamps) {
            return refuse(format!("--lamps {}: 1 to {MAX_LAMPS}", self.lamps));
        }
        if self.lamp_offset > 10 * MAX_LAMPS {
            return refuse(format!(
                "--lamp-offset {}: at most {}",
                self.lamp_offset,
                10 * MAX_LAMPS
            ));
        }
        if self.apps == 0 || self.apps > MAX_APPS.min(self.lamps) {
            return refuse(format!(
                "--apps {}: 1 to {} (at most one per lamp)",
                self.apps,
                MAX_APPS.min(self.lamps)
            ));
        }
        if !(self.rate.is_finite() && (0.0..=MAX_RATE).contains(&self.rate)) {
            return refuse(format!("--rate {}: 0 to {MAX_RATE} messages a second", self.rate));
        }
        if !(self.ramp.is_finite() && self.ramp >= 1.0) {
            return refuse(format!("--ramp {}: at least 1 lamp a second", self.ramp));
        }
        let duration = parse_duration(&self.duration).map_err(|e| PlanError(format!("--duration: {e}")))?;
        if duration.is_zero() || duration > MAX_DURATION {
            return refuse(format!("--duration {}: more than 0, at most 1h", self.duration));
        }
        let grace = parse_duration(&self.grace).map_err(|e| PlanError(format!("--grace: {e}")))?;
        if grace > MAX_GRACE {
            return refuse(format!("--grace {}: at most 10m", self.grace));
        }
        if self.qos > 1 {
            return refuse(format!("--qos {}: 0 or 1", self.qos));
        }
        let desired_share = parse_mix(&self.mix)?;
        let run_id = self.run_id.unwrap_or_else(|| default_run_id.to_owned());
        check_name("--run-id", &run_id, false)?;
        check_name("--prefix", &self.prefix, true)?;
        let mut brokers = Vec::new();
        for text in &self.brokers {
            brokers.push(parse_broker(text)?);
        }
        if self.mosquitto && !brokers.is_empty() {
            return refuse("--mosquitto starts its own broker: no --broker with it");
        }
        if !self.mosquitto && brokers.is_empty() {
            brokers.push(BrokerAddr {
                host: "127.0.0.1".into(),
                port: 1883,
            });
        }
        let broker_down = parse_duration(&self.broker_down).map_err(|e| PlanError(format!("--broker-down: {e}")))?;
        let restart_broker_at = match &self.restart_broker_at {
            None => None,
            Some(_) if !self.mosquitto => return refuse("--restart-broker-at needs --mosquitto"),
            Some(text) => {
                let at = parse_duration(text).map_err(|e| PlanError(format!("--restart-broker-at: {e}")))?;
                if at >= duration {
                    return refuse(format!("--restart-broker-at {text}: within --duration"));
                }
                if broker_down > MAX_BROKER_DOWN {
                    return refuse(format!("--broker-down {}: at most 5m", self.broker_down));
                }
                Some(at)
            }
        };
        let tls = match (self.tls_ca, self.tls_cert, self.tls_key) {
            (None, None, None) => None,
            (None, _, _) => return refuse("--tls-cert and --tls-key need --tls-ca"),
            (Some(_), Some(_), None) | (Some(_), None, Some(_)) => {
                return refuse("--tls-cert and --tls-key go together");
            }
            (Some(_), _, _) if self.mosquitto => {
                return refuse("--mosquitto's broker has no TLS listener: give a --broker with TLS");
            }
            (Some(ca), cert, key) => Some(Credentials { ca, cert, key }),
        };
        let max_messages = self
            .max_messages
            .unwrap_or_else(|| (self.rate * duration.as_secs_f64() * 1.1).ceil() as u64);
        if max_messages > MAX_INTENTS_PER_LAMP * self.lamps {
            return refuse(format!(
                "{max_messages} messages to {} lamps: at most {MAX_INTENTS_PER_LAMP} a lamp (each one's values must tell it apart; lower --rate, --duration or --max-messages, or add lamps)",
                self.lamps
            ));
        }
        Ok(Plan {
            brokers,
            mosquitto: self.mosquitto,
            lamps: self.lamps,
            lamp_offset: self.lamp_offset,
            run_id,
            apps: self.apps,
            rate: self.rate,
            desired_share,
            ramp: self.ramp,
            duration,
            grace,
            max_messages,
            qos: self.qos,
            prefix: self.prefix,
            state_dir: self.state_dir.unwrap_or_else(|| PathBuf::from("/dev/shm/lampi-swarm")),
            restart_broker_at,
            broker_down,
            tls,
        })
    }
}

impl Plan {
    /// How long starting every lamp takes at `ramp` a second.
    pub fn ramp_time(&self) -> Duration {
        Duration::from_secs_f64(self.lamps as f64 / self.ramp)
    }

    /// Past this from the start the run is cancelled and its report says `"deadline"`.
    pub fn deadline(&self) -> Duration {
        self.ramp_time() + self.duration + self.grace + DEADLINE_SLACK
    }

    /// Descriptors the run needs: per lamp its socket (its clock is virtual: no timerfd), per
    /// app its socket (and slack), plus the runtime's and the files'.
    pub fn descriptors(&self) -> u64 {
        self.lamps + 2 * self.apps + 256
    }
}

/// `500ms`, `20s`, `2m`, `1h`, or plain seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?}: a number with ms, s, m or h")),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n * scale <= 1e7 => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(format!("{text:?}: a number with ms, s, m or h")),
    }
}

/// `desired=0.5,set_config=0.5` → the desired share; the shares must add up to 1.
pub fn parse_mix(text: &str) -> Result<f64, PlanError> {
    let (mut desired, mut set_config) = (None, None);
    for part in text.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            return refuse(format!("--mix {text:?}: desired=X,set_config=Y"));
        };
        let value: f64 = match value.trim().parse() {
            Ok(v) if (0.0..=1.0).contains(&v) => v,
            _ => return refuse(format!("--mix {text:?}: {value:?} is not a share from 0 to 1")),
        };
        let slot = match key.trim() {
            "desired" => &mut desired,
            "set_config" => &mut set_config,
            other => return refuse(format!("--mix {text:?}: {other:?} is not desired or set_config")),
        };
        if slot.replace(value).is_some() {
            return refuse(format!("--mix {text:?}: {key} given twice"));
        }
    }
    let desired = desired.unwrap_or_else(|| 1.0 - set_config.unwrap_or(0.0));
    let set_config = set_config.unwrap_or(1.0 - desired);
    if (desired + set_config - 1.0).abs() > 1e-9 {
        return refuse(format!(
            "--mix {text:?}: the shares add up to {}, not 1",
            desired + set_config
        ));
    }
    Ok(desired)
}

/// Ids and prefixes become topic levels and client ids, on RabbitMQ too (which maps `/` to `.`):
/// no `.`, `+`, `#`, spaces or control characters; a prefix may have `/` between levels.
fn check_name(what: &str, text: &str, levels: bool) -> Result<(), PlanError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || (levels && c == '/');
    let ok_levels = !levels || text.split('/').all(|level| !level.is_empty());
    if text.is_empty() || text.len() > 64 || !text.chars().all(ok_char) || !ok_levels {
        return refuse(format!(
            "{what} {text:?}: 1 to 64 of A-Z a-z 0-9 - _{}",
            if levels { " and / between levels" } else { "" }
        ));
    }
    Ok(())
}

/// `HOST:PORT`, port not 0.
pub fn parse_broker(text: &str) -> Result<BrokerAddr, PlanError> {
    let parsed = text
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)));
    match parsed {
        Some((host, port)) if !host.is_empty() && port != 0 => Ok(BrokerAddr {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
        }),
        _ => refuse(format!("--broker {text:?}: HOST:PORT")),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
