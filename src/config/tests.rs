use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    Config::parse(text, Path::new("/etc/lampi/lampi.toml"))
}

#[test]
fn empty_file_is_all_defaults() {
    let loaded = parse("").unwrap();
    assert_eq!(loaded.config.mqtt.port, 1883);
    assert_eq!(
        loaded.config.led.pins,
        Pins {
            red: 19,
            green: 26,
            blue: 13
        }
    );
    assert_eq!(loaded.config.led.frequency_hz, 1000.0);
    assert!(loaded.unknown_keys.is_empty());
}

#[test]
fn ble_is_off_by_default_and_its_names_are_checked() {
    let ble = parse("").unwrap().config.ble;
    assert!(!ble.enabled);
    assert_eq!(
        (ble.adapter, ble.name, ble.manufacturer.as_str()),
        (None, None, "LAMPI")
    );
    let ble = parse("[ble]\nenabled = true\nadapter = \"hci1\"\nname = \"Desk lamp\"\n")
        .unwrap()
        .config
        .ble;
    assert_eq!(
        (ble.adapter.as_deref(), ble.name.as_deref()),
        (Some("hci1"), Some("Desk lamp"))
    );
    let err = parse("[ble]\nadapter = \"../hci0\"\n").unwrap_err().to_string();
    assert!(err.contains("`ble.adapter`"), "{err}");
    let err = parse("[ble]\nname = \"a lamp with a name far too long\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`ble.name`") && err.contains("1–22"), "{err}");
    let err = parse(&format!("[ble]\nmanufacturer = \"{}\"\n", "m".repeat(65)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`ble.manufacturer`"), "{err}");
    // A device id too long for the default name, `LAMPI <id>`, needs a name of its own.
    let long_id = "[device]\nid = \"kitchen-ceiling-lamp\"\n[ble]\nenabled = true\n";
    let err = parse(long_id).unwrap_err().to_string();
    assert!(
        err.contains("`ble.name`") && err.contains("LAMPI kitchen-ceiling-lamp"),
        "{err}"
    );
    parse(&format!("{long_id}name = \"Kitchen\"\n")).unwrap();
}

#[test]
fn unknown_keys_are_named_not_fatal() {
    let loaded = parse("[mqtt]\nhots = \"x\"\n[ledd]\na = 1\n").unwrap();
    assert_eq!(loaded.unknown_keys, vec!["mqtt.hots".to_string(), "ledd".to_string()]);
}

#[test]
fn wrong_type_names_file_and_key() {
    let err = parse("[mqtt]\nport = \"eighteen\"\n").unwrap_err().to_string();
    assert!(err.starts_with("/etc/lampi/lampi.toml"), "{err}");
    assert!(err.contains("port"), "{err}");
}

#[test]
fn out_of_range_names_key_and_reason() {
    let err = parse("[led]\nfrequency_hz = 0\n").unwrap_err().to_string();
    assert!(err.contains("`led.frequency_hz`") && err.contains("1–100000"), "{err}");
    let err = parse("[led.pins]\nred = 1\ngreen = 1\nblue = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`led.pins`"), "{err}");
    let err = parse("[mqtt]\ntopic_prefix = \"a/#/\"\n").unwrap_err().to_string();
    assert!(err.contains("`mqtt.topic_prefix`"), "{err}");
    let err = parse("[shadow]\ntopic_prefix = \"things/x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`shadow.topic_prefix`"), "{err}");
    let err = parse("[device]\nid = \"a/b\"\n").unwrap_err().to_string();
    assert!(err.contains("`device.id`"), "{err}");
    let err = parse("[ui]\nnight_start = \"10pm\"\n").unwrap_err().to_string();
    assert!(err.contains("`ui.night_start`") && err.contains("HH:MM"), "{err}");
    let err = parse("[ui]\ndim_level = 1.5\n").unwrap_err().to_string();
    assert!(err.contains("`ui.dim_level`"), "{err}");
    let err = parse("[ui]\nwidth = 0\n").unwrap_err().to_string();
    assert!(err.contains("`ui.width`"), "{err}");
    let err = parse("[ui]\ndisplay = \"x11\"\n").unwrap_err().to_string();
    assert!(err.contains("display") && err.contains("linuxkms"), "{err}");
}

#[test]
fn clock_sync_requirement_follows_the_backend_and_a_virtual_clock_is_checked() {
    assert_eq!(parse("").unwrap().config.require_sync(), cfg!(feature = "rpi"));
    assert!(parse("[led]\nbackend = \"rpi\"\n").unwrap().config.require_sync());
    let explicit = parse("[led]\nbackend = \"rpi\"\n[clock]\nrequire_sync = false\n").unwrap();
    assert!(!explicit.config.require_sync());
    let virtual_clock = parse("[clock]\nstart = \"2026-11-27T06:58:00Z\"\nspeed = 60\n").unwrap();
    assert!(virtual_clock.config.virtual_clock_start().is_some());
    let err = parse("[clock]\nstart = \"tomorrow\"\n").unwrap_err().to_string();
    assert!(err.contains("`clock.start`"), "{err}");
    let err = parse("[clock]\nspeed = 60\n").unwrap_err().to_string();
    assert!(err.contains("`clock.speed`") && err.contains("virtual"), "{err}");
    let err = parse("[clock]\nstart = \"2026-11-27T06:58:00Z\"\nspeed = 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`clock.speed`"), "{err}");
}

#[test]
fn the_shipped_config_documents_valid_defaults() {
    let shipped = parse(include_str!("../../config/lampi.toml")).unwrap();
    assert!(shipped.unknown_keys.is_empty(), "{:?}", shipped.unknown_keys);
}

#[test]
fn tls_settings_must_be_complete_and_readable_and_secrets_stay_hidden() {
    let err = parse("[mqtt]\ntls = true\n").unwrap_err().to_string();
    assert!(err.contains("`mqtt.ca_file`: required"), "{err}");
    let err = parse("[mqtt]\ntls = true\nca_file = \"/nonexistent/ca.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`mqtt.ca_file`: cannot read /nonexistent/ca.pem"), "{err}");
    let err = parse("[mqtt]\npassword = \"hunter2\"\n").unwrap_err().to_string();
    assert!(err.contains("`mqtt.username`"), "{err}");
    let loaded = parse("[mqtt]\nusername = \"lamp\"\npassword = \"hunter2\"\n").unwrap();
    let shown = format!("{:?}", loaded.config);
    assert!(!shown.contains("hunter2") && shown.contains("(secret)"), "{shown}");
}

#[test]
fn explicit_missing_file_is_an_error_default_one_is_not() {
    let missing = Path::new("/nonexistent/lampi.toml");
    assert!(Config::load(missing, true).is_err());
    assert!(Config::load(missing, false).is_ok());
}

#[test]
fn device_id_from_first_physical_lan_interface() {
    let dir = tempfile::tempdir().unwrap();
    let add = |name: &str, mac: &str, physical: bool| {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("address"), format!("{mac}\n")).unwrap();
        if physical {
            std::fs::create_dir(path.join("device")).unwrap();
        }
    };
    add("lo", "00:00:00:00:00:00", false);
    add("docker0", "02:42:ac:11:00:02", false);
    add("enx0", "02:00:00:00:00:01", false);
    add("wlan0", "B8:27:EB:12:34:56", true);
    add("eth0", "b8:27:eb:ab:cd:ef", true);
    assert_eq!(mac_device_id(dir.path()).as_deref(), Some("b827ebabcdef"));
}

#[test]
fn a_password_sent_off_this_machine_without_tls_is_warned_about() {
    let creds = "username = \"lamp\"\npassword = \"hunter2\"\n";
    for host in ["broker.example.com", "192.168.1.10", "localhost.example.com"] {
        let loaded = parse(&format!("[mqtt]\nhost = \"{host}\"\n{creds}")).unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{host}");
        assert!(
            loaded.warnings[0].contains("`mqtt.password`")
                && loaded.warnings[0].contains(host)
                && !loaded.warnings[0].contains("hunter2"),
            "{:?}",
            loaded.warnings
        );
    }
    for quiet in [
        format!("[mqtt]\n{creds}"),
        format!("[mqtt]\nhost = \"127.0.0.2\"\n{creds}"),
        format!("[mqtt]\nhost = \"::1\"\n{creds}"),
        "[mqtt]\nhost = \"broker.example.com\"\nusername = \"lamp\"\n".to_owned(),
        format!("[mqtt]\nenabled = false\nhost = \"broker.example.com\"\n{creds}"),
        format!(
            "[mqtt]\nhost = \"broker.example.com\"\ntls = true\nca_file = \"{}/Cargo.toml\"\n{creds}",
            env!("CARGO_MANIFEST_DIR")
        ),
    ] {
        assert_eq!(parse(&quiet).unwrap().warnings, Vec::<String>::new(), "{quiet}");
    }
}

#[test]
fn the_command_line_overrides_the_config_which_overrides_the_machine() {
    let config = parse("[device]\nid = \"lamp7\"\nstate_dir = \"/srv/lamp7\"\n")
        .unwrap()
        .config;
    let resolved = Resolved::new(&config, Overrides::default());
    assert_eq!(resolved.device_id(), "lamp7");
    assert_eq!(resolved.state_dir(), Path::new("/srv/lamp7"));
    assert_eq!(resolved.shadow_prefix(), "$aws/things/lamp7/shadow/");
    let overridden = Resolved::new(
        &config,
        Overrides::default()
            .device_id(Some("other".into()))
            .state_dir(Some("/tmp/x".into()))
            .sim(true)
            .no_ui(true),
    );
    assert_eq!(resolved.display(), Display::Auto);
    assert_eq!(overridden.display(), Display::None);
    assert_eq!(overridden.device_id(), "other");
    assert_eq!(overridden.state_dir(), Path::new("/tmp/x"));
    assert_eq!(overridden.shadow_prefix(), "$aws/things/other/shadow/");
    let prefixed = parse("[device]\nid = \"lamp7\"\n[shadow]\ntopic_prefix = \"things/lamp7/\"\n").unwrap();
    let prefixed = Resolved::new(&prefixed.config, Overrides::default().device_id(Some("other".into())));
    assert_eq!(prefixed.shadow_prefix(), "things/lamp7/");
}

#[test]
fn the_shadow_service_decides_the_lamps_role() {
    use crate::core::lamp::ShadowRole;
    for (service, role) in [
        ("device", ShadowRole::Host),
        ("aws", ShadowRole::Client),
        ("off", ShadowRole::Host),
    ] {
        let config = parse(&format!("[device]\nid = \"a\"\n[shadow]\nservice = \"{service}\"\n"))
            .unwrap()
            .config;
        assert_eq!(
            Resolved::new(&config, Overrides::default()).shadow_role(),
            role,
            "{service}"
        );
        assert_eq!(config.shadow.service.name(), service);
    }
}

#[test]
fn brokers_are_an_ordered_list_that_replaces_host_and_port() {
    let addr = |host: &str, port| BrokerAddr {
        host: host.into(),
        port,
    };
    let simple = parse("[mqtt]\nhost = \"a.example\"\nport = 8883\n").unwrap().config;
    assert_eq!(simple.mqtt.brokers(), vec![addr("a.example", 8883)]);
    let text = "[mqtt]\nbrokers = [{ host = \"b.example\", port = 1884 }, { host = \"127.0.0.1\", port = 1883 }]\n";
    let listed = parse(text).unwrap();
    assert!(listed.unknown_keys.is_empty(), "{:?}", listed.unknown_keys);
    assert_eq!(
        listed.config.mqtt.brokers(),
        vec![addr("b.example", 1884), addr("127.0.0.1", 1883)]
    );
    let tables = parse("[[mqtt.brokers]]\nhost = \"n1\"\nport = 1\n[[mqtt.brokers]]\nhost = \"n2\"\nport = 65535\n")
        .unwrap()
        .config;
    assert_eq!(tables.mqtt.brokers(), vec![addr("n1", 1), addr("n2", 65535)]);

    let many = (0..17)
        .map(|i| format!("{{ host = \"n{i}\", port = 1883 }}"))
        .collect::<Vec<_>>()
        .join(", ");
    for (text, wanted) in [
        ("brokers = []".to_owned(), "lists 0 brokers; it takes 1–16"),
        (format!("brokers = [{many}]"), "lists 17 brokers"),
        (
            "brokers = [{ host = \"\", port = 1883 }]".to_owned(),
            "broker 1: host must not be empty",
        ),
        (
            "brokers = [{ host = \"a\", port = 1 }, { host = \"b\", port = 0 }]".to_owned(),
            "broker 2 (b): port must be 1–65535",
        ),
        (
            "brokers = [{ host = \"a\", port = 1 }, { host = \"b\", port = 2 }, { host = \"A\", port = 1 }]".to_owned(),
            "broker 3 (A:1) repeats broker 1",
        ),
        (
            "host = \"a\"\nbrokers = [{ host = \"b\", port = 1 }]".to_owned(),
            "replaces mqtt.host and mqtt.port",
        ),
        (
            "port = 8883\nbrokers = [{ host = \"b\", port = 1 }]".to_owned(),
            "replaces mqtt.host and mqtt.port",
        ),
    ] {
        let err = parse(&format!("[mqtt]\n{text}\n")).unwrap_err().to_string();
        assert!(err.contains("`mqtt.brokers`") && err.contains(wanted), "{text}: {err}");
    }
    for text in [
        "brokers = [{ host = \"a\", port = 70000 }]",
        "brokers = [{ host = \"a\" }]",
        "brokers = [\"a:1883\"]",
    ] {
        let err = parse(&format!("[mqtt]\n{text}\n")).unwrap_err().to_string();
        assert!(err.contains("brokers"), "{text}: {err}");
    }

    let creds = "username = \"lamp\"\npassword = \"hunter2\"\n";
    let text = format!(
        "[mqtt]\nbrokers = [{{ host = \"127.0.0.1\", port = 1 }}, {{ host = \"far.example\", port = 1 }}]\n{creds}"
    );
    let warnings = parse(&text).unwrap().warnings;
    assert!(
        warnings.len() == 1 && warnings[0].contains("far.example"),
        "{warnings:?}"
    );
}
