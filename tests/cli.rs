//! The `lampi` command line: version, config errors, unknown-key warnings.

use std::process::{Command, Output};

fn lampi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lampi"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Runs `lampi --config <file holding config> args…`; returns the output, its stderr, and the
/// config's path.
fn with_config(config: &str, args: &[&str]) -> (Output, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lampi.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap().to_owned();
    let out = lampi(&[&["--config", &path][..], args].concat());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr, path)
}

#[test]
fn version_names_release_and_commit() {
    let out = lampi(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("lampi {} (", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

#[test]
fn bad_config_fails_fast_naming_file_key_and_reason() {
    let (out, err, path) = with_config("[mqtt]\nport = 0\n", &["run", "--sim"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        err.contains(&path) && err.contains("`mqtt.port`") && err.contains("1–65535"),
        "{err}"
    );

    let (out, err, _) = with_config("[led]\nbackend = \"laser\"\n", &["check-config"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(err.contains("backend") && err.contains("laser"), "{err}");
}

#[test]
fn missing_explicit_config_is_an_error() {
    let out = lampi(&["--config", "/nonexistent/lampi.toml", "check-config"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("/nonexistent/lampi.toml")
    );
}

#[test]
fn unknown_keys_are_warned_about_by_name() {
    let (out, err, _) = with_config("[mqtt]\nhots = \"broker\"\n", &["check-config"]);
    assert!(out.status.success());
    assert!(err.contains("unknown config key `mqtt.hots`"), "{err}");
}

#[cfg(not(feature = "rpi"))]
#[test]
fn rpi_backend_without_the_feature_says_how_to_get_it() {
    let (out, err, _) = with_config("[led]\nbackend = \"rpi\"\n[mqtt]\nenabled = false\n", &["run"]);
    assert!(!out.status.success());
    assert!(err.contains("--features rpi") && err.contains("--sim"), "{err}");
}

#[cfg(not(feature = "linuxkms"))]
#[test]
fn a_display_the_build_lacks_is_a_config_error_naming_the_feature() {
    let (out, err, _) = with_config(
        "[ui]\ndisplay = \"linuxkms\"\n[mqtt]\nenabled = false\n",
        &["run", "--sim"],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(
        err.contains("ui.display") && err.contains("`linuxkms` feature"),
        "{err}"
    );
}

#[test]
fn a_clear_text_password_to_another_machine_is_warned_about() {
    let (out, err, _) = with_config(
        "[mqtt]\nhost = \"broker.example.com\"\nusername = \"lamp\"\npassword = \"hunter2\"\n",
        &["check-config"],
    );
    assert!(out.status.success());
    assert!(
        err.contains("`mqtt.password`") && err.contains("broker.example.com") && err.contains("tls"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}

/// The package's postinst asks `check-config` whether Bluetooth LE is on (to put the lamp in the
/// `bluetooth` group): every way TOML can say it must be seen, and a commented-out one not.
#[test]
fn check_config_says_whether_bluetooth_le_is_on_however_the_toml_puts_it() {
    for (config, expected) in [
        ("[ble]\nenabled = true\n", "on"),
        ("[ble]   # the radio\n  enabled=true\n", "on"),
        ("ble.enabled = true\n", "on"),
        ("ble = { enabled = true }\n", "on"),
        ("[led]\nbackend = \"sim\"\n\n[ble]\n\tenabled = true\n", "on"),
        ("[ble]\n# enabled = true\n", "off"),
        ("[ble]\nenabled = false\n", "off"),
        ("", "off"),
    ] {
        let (out, err, _) = with_config(config, &["check-config"]);
        assert!(out.status.success(), "{config:?}: {err}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.lines().any(|line| line == format!("bluetooth le: {expected}")),
            "{config:?}: {stdout}"
        );
    }
}
