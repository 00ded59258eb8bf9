//! Who each lamp and app is: ids, client ids and topic prefixes, and each lamp's config. Pure.
//!
//! `lamp/set_config` carries no device id, so every lamp has its own `mqtt.topic_prefix`; the
//! prefix holds the app that owns the lamp (`a{lamp offset}-{app}`), so an app subscribes with
//! one wildcard per topic to its own lamps only and nothing fans out to every app.

use chrono::{DateTime, Utc};

use crate::config::{BrokerAddr, Config, LedBackendName, ShadowService};

use super::plan::{Credentials, Plan};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LampIds {
    /// The lamp's index in the whole run (offset included).
    pub index: u64,
    pub device_id: String,
    pub client_id: String,
    /// `{prefix}/{run}/a{lamp offset}-{app}/{id}/`: LAMPI's topics.
    pub topic_prefix: String,
    /// `{topic_prefix}shadow/`: the lamp-hosted shadow.
    pub shadow_prefix: String,
    /// The app (of this process) that drives it.
    pub app: u64,
}

/// The names of a run: enough of the plan to name lamps and apps.
#[derive(Clone, Debug)]
pub struct Names {
    pub prefix: String,
    pub run_id: String,
    pub lamp_offset: u64,
    pub apps: u64,
}

impl Names {
    pub fn of(plan: &Plan) -> Self {
        Names {
            prefix: plan.prefix.clone(),
            run_id: plan.run_id.clone(),
            lamp_offset: plan.lamp_offset,
            apps: plan.apps,
        }
    }

    /// Lamp `local` of this process (0-based).
    pub fn lamp(&self, local: u64) -> LampIds {
        let index = self.lamp_offset + local;
        let device_id = format!("{}-{index:05}", self.run_id);
        let app = local % self.apps;
        let topic_prefix = format!("{}/{device_id}/", self.app_root(app));
        LampIds {
            index,
            client_id: format!("lampi-{device_id}"),
            shadow_prefix: format!("{topic_prefix}shadow/"),
            topic_prefix,
            device_id,
            app,
        }
    }

    /// App `app`'s topics. The lamp offset is in it because every process of a run numbers its
    /// apps from 0: without it, each app would also receive the other processes' answers.
    fn app_root(&self, app: u64) -> String {
        format!("{}/{}/a{}-{app}", self.prefix, self.run_id, self.lamp_offset)
    }

    /// The app's MQTT client id: fixed, so its persistent session survives a broker restart.
    pub fn app_client_id(&self, app: u64) -> String {
        format!("app-{}-{}-{app}", self.run_id, self.lamp_offset)
    }

    /// The filters app `app` subscribes to: its own lamps' answers, one wildcard level for the
    /// lamp.
    pub fn app_filters(&self, app: u64) -> Vec<String> {
        let base = format!("{}/+/", self.app_root(app));
        [
            "lamp/changed",
            "lamp/set_config/rejected",
            "shadow/update/accepted",
            "shadow/update/rejected",
            "shadow/update/documents",
            "shadow/get/accepted",
            "shadow/get/rejected",
        ]
        .iter()
        .map(|topic| format!("{base}{topic}"))
        .collect()
    }

    /// A topic an app received → (the lamp's local index, the topic under the lamp's prefix).
    pub fn parse_topic<'t>(&self, topic: &'t str) -> Option<(u64, &'t str)> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let rest = rest.strip_prefix(&self.run_id)?.strip_prefix("/a")?;
        let (_app, rest) = rest.split_once('/')?;
        let (device_id, what) = rest.split_once('/')?;
        let index: u64 = device_id.strip_prefix(&self.run_id)?.strip_prefix('-')?.parse().ok()?;
        let local = index.checked_sub(self.lamp_offset)?;
        Some((local, what))
    }
}

/// Lamp `ids`'s config: the base config with the lamp's names, the simulated LED, no Home
/// Assistant, no Bluetooth, no fades (10k fading lamps would be a load of their own), and the
/// brokers rotated by the lamp's index so lamps spread over a cluster's nodes.
///
/// The lamp keeps time on a virtual clock at real speed from `now`: the system clock holds a
/// timerfd per lamp (to notice clock steps, which a swarm never makes), and that second
/// descriptor per lamp is what kept 10,000 lamps from fitting under a hard limit of 20,000.
pub fn lamp_config(
    base: &Config,
    ids: &LampIds,
    brokers: &[BrokerAddr],
    tls: Option<&Credentials>,
    now: DateTime<Utc>,
) -> Config {
    let mut config = base.clone();
    // The base is a real lamp's config (by default /etc/lampi/lampi.toml): nothing of where and
    // how that lamp connects may reach the swarm's lamps, which go only where the run was told.
    let defaults = crate::config::MqttConfig::default();
    config.mqtt.brokers = None;
    (config.mqtt.host, config.mqtt.port) = (defaults.host, defaults.port);
    (
        config.mqtt.tls,
        config.mqtt.ca_file,
        config.mqtt.cert_file,
        config.mqtt.key_file,
    ) = (false, None, None, None);
    (config.mqtt.username, config.mqtt.password) = (None, None);
    config.shadow.service = ShadowService::Device;
    config.device.id = Some(ids.device_id.clone());
    config.device.state_dir = None;
    config.mqtt.enabled = true;
    config.mqtt.client_id = ids.client_id.clone();
    config.mqtt.topic_prefix = ids.topic_prefix.clone();
    config.shadow.topic_prefix = Some(ids.shadow_prefix.clone());
    let mut rotated = brokers.to_vec();
    if let [only] = brokers {
        config.mqtt.host = only.host.clone();
        config.mqtt.port = only.port;
    } else if !rotated.is_empty() {
        // As the config file demands: a list, and host and port left at their defaults.
        let shift = (ids.index % rotated.len() as u64) as usize;
        rotated.rotate_left(shift);
        config.mqtt.brokers = Some(rotated);
    }
    if let Some(tls) = tls {
        config.mqtt.tls = true;
        config.mqtt.ca_file = Some(tls.ca.clone());
        (config.mqtt.cert_file, config.mqtt.key_file) = tls.client(&ids.device_id);
    }
    config.clock.start = Some(now.to_rfc3339());
    config.clock.speed = None;
    config.led.backend = LedBackendName::Sim;
    config.homeassistant.enabled = false;
    config.ble.enabled = false;
    config.light.transition_ms = 0;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            prefix: "swarm".into(),
            run_id: "r7".into(),
            lamp_offset: 100,
            apps: 3,
        }
    }

    #[test]
    fn lamps_get_unique_ids_and_their_apps_prefix() {
        let n = names();
        let lamp = n.lamp(4);
        assert_eq!(lamp.index, 104);
        assert_eq!(lamp.device_id, "r7-00104");
        assert_eq!(lamp.client_id, "lampi-r7-00104");
        assert_eq!(lamp.app, 1);
        assert_eq!(lamp.topic_prefix, "swarm/r7/a100-1/r7-00104/");
        assert_eq!(lamp.shadow_prefix, "swarm/r7/a100-1/r7-00104/shadow/");
        let ids: std::collections::HashSet<_> = (0..1000).map(|i| n.lamp(i).client_id).collect();
        assert_eq!(ids.len(), 1000);
        for i in 0..50 {
            let lamp = n.lamp(i);
            assert!(!lamp.shadow_prefix.contains(['.', '+', '#']));
        }
    }

    #[test]
    fn an_apps_filters_match_its_lamps_topics_only() {
        let n = names();
        let filters = n.app_filters(1);
        assert_eq!(filters[0], "swarm/r7/a100-1/+/lamp/changed");
        let matches = |filter: &str, topic: &str| {
            let (f, t): (Vec<_>, Vec<_>) = (filter.split('/').collect(), topic.split('/').collect());
            f.len() == t.len() && f.iter().zip(&t).all(|(f, t)| *f == "+" || f == t)
        };
        let mine = format!("{}lamp/changed", n.lamp(4).topic_prefix);
        let theirs = format!("{}lamp/changed", n.lamp(5).topic_prefix);
        assert!(matches(&filters[0], &mine));
        assert!(!matches(&filters[0], &theirs));
        // App 1 of the run's process for lamps 0–99 is not sent this process's answers.
        let first_process = Names {
            lamp_offset: 0,
            ..names()
        };
        assert!(!matches(&first_process.app_filters(1)[0], &mine));
        let documents = format!("{}update/documents", n.lamp(4).shadow_prefix);
        assert!(filters.iter().any(|f| matches(f, &documents)));
        assert_eq!(n.parse_topic(&documents), Some((4, "shadow/update/documents")));
        assert_eq!(n.parse_topic(&mine), Some((4, "lamp/changed")));
        assert_eq!(n.parse_topic("swarm/r8/a100-1/r8-00104/lamp/changed"), None);
        assert_eq!(n.parse_topic("swarm/r7/a100-1/r7-00099/lamp/changed"), None);
        assert_ne!(n.app_client_id(0), n.app_client_id(1));
    }

    #[test]
    fn a_lamps_config_is_its_own() {
        let base = Config::default();
        let brokers: Vec<BrokerAddr> = (1..=3)
            .map(|p| BrokerAddr {
                host: "127.0.0.1".into(),
                port: p,
            })
            .collect();
        let lamp = names().lamp(0); // index 100: 100 mod 3 = 1
        let now = "2026-11-29T23:00:00Z".parse().unwrap();
        let tls = Credentials {
            ca: "ca.pem".into(),
            cert: Some("certs/{id}.pem".into()),
            key: Some("certs/{id}.key".into()),
        };
        let config = lamp_config(&base, &lamp, &brokers, Some(&tls), now);
        assert_eq!(config.device.id.as_deref(), Some("r7-00100"));
        assert_eq!(config.mqtt.client_id, "lampi-r7-00100");
        assert_eq!(config.mqtt.topic_prefix, lamp.topic_prefix);
        assert_eq!(config.shadow.topic_prefix.as_deref(), Some(lamp.shadow_prefix.as_str()));
        let ports: Vec<u16> = config.mqtt.brokers().iter().map(|b| b.port).collect();
        assert_eq!(ports, [2, 3, 1]);
        let defaults = crate::config::MqttConfig::default();
        assert_eq!((&config.mqtt.host, config.mqtt.port), (&defaults.host, defaults.port));
        assert_eq!(config.virtual_clock_start(), Some(now), "no timerfd per lamp");
        assert!(config.mqtt.tls);
        assert_eq!(config.mqtt.cert_file, Some("certs/r7-00100.pem".into()));
        assert_eq!(config.mqtt.key_file, Some("certs/r7-00100.key".into()));
        assert!(!config.homeassistant.enabled);
        assert_eq!(config.light.transition_ms, 0);
        let one = lamp_config(&base, &lamp, &brokers[..1], None, now);
        assert!(!one.mqtt.tls);
        // A real lamp's config as the base: its brokers and credentials stay out of the swarm.
        let mut real = Config::default();
        real.mqtt.brokers = Some(vec![BrokerAddr {
            host: "prod.example".into(),
            port: 8883,
        }]);
        real.mqtt.tls = true;
        real.mqtt.username = Some("lamp".into());
        real.shadow.service = ShadowService::Aws;
        let swarm = lamp_config(&real, &lamp, &brokers[..1], None, now);
        assert_eq!(swarm.mqtt.brokers(), brokers[..1]);
        assert!(!swarm.mqtt.tls && swarm.mqtt.username.is_none());
        assert!(matches!(swarm.shadow.service, ShadowService::Device));
        assert_eq!(one.mqtt.brokers, None);
        assert_eq!((one.mqtt.host.as_str(), one.mqtt.port), ("127.0.0.1", 1));
    }
}
