//! TLS to the broker: the certificates named in the config, read when the lamp connects.

use rumqttc::TlsConfiguration;

use crate::config::MqttConfig;

pub(super) fn configuration(config: &MqttConfig) -> std::io::Result<TlsConfiguration> {
    let read = |path: &Option<std::path::PathBuf>| path.as_ref().map(std::fs::read).transpose();
    let ca = read(&config.ca_file)?.unwrap_or_default();
    let client_auth = read(&config.cert_file)?.zip(read(&config.key_file)?);
    Ok(TlsConfiguration::Simple {
        ca,
        alpn: None,
        client_auth,
    })
}
