//! A rustls server configuration from PEM files.

use std::path::Path;
use std::sync::Arc;

use crate::config_file::{ConfigError, invalid};

/// Loads a PEM certificate chain and key into a rustls server configuration; errors name
/// `cert_key` or `key_key`, the settings the paths came from.
pub fn load_tls(
    cert: &Path,
    key: &Path,
    cert_key: &'static str,
    key_key: &'static str,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect())
        .map_err(|e| invalid(cert_key, format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(invalid(
            cert_key,
            format!("{}: no certificate", cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid(key_key, format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| invalid(key_key, format!("does not match {cert_key}: {e}")))?;
    Ok(Arc::new(config))
}
