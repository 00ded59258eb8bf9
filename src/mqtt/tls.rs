//! TLS to the broker: the certificates named in the config, read when the lamp connects.

use std::path::Path;

use rumqttc::TlsConfiguration;

use crate::config::MqttConfig;

pub(super) fn configuration(config: &MqttConfig) -> std::io::Result<TlsConfiguration> {
    from_files(
        config.ca_file.as_deref(),
        config.cert_file.as_deref(),
        config.key_file.as_deref(),
    )
}

/// A CA to trust, and a client certificate and key when both are given. The swarm's apps load
/// theirs here too, so they connect as the lamps do.
pub(crate) fn from_files(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> std::io::Result<TlsConfiguration> {
    let read = |path: Option<&Path>| path.map(std::fs::read).transpose();
    let ca = read(ca)?.unwrap_or_default();
    let client_auth = read(cert)?.zip(read(key)?);
    Ok(TlsConfiguration::Simple {
        ca,
        alpn: None,
        client_auth,
    })
}
