//! TLS for `wss://`: the trusted roots, the handshake, and what a failed handshake means.
//!
//! The roots are the Mozilla set compiled in by `webpki-roots`, plus the app's own CAs
//! ([`ClientOptions::extra_ca_pem`](crate::ClientOptions::extra_ca_pem)). Compiled-in
//! roots behave the same on every platform and in a minimal container without a
//! `ca-certificates` package; a self-hosted deployment with its own CA says so with
//! `extra_ca_pem` instead of installing that CA system-wide.

use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{Argument, ConnectError, ConnectErrorKind, Error, Result};

/// The client side of TLS, built once per [`Client`](crate::Client): for `wss://` and
/// for `turns:` relays alike.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// The Mozilla roots plus the CA certificates in `extra_ca_pem` (PEM, any number);
    /// a PEM without a certificate, or one rustls refuses, is an invalid argument.
    pub(crate) fn new(extra_ca_pem: Option<&[u8]>) -> Result<Tls> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = extra_ca_pem {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| Error::invalid(Argument::ExtraCa, e))?;
            if certs.is_empty() {
                return Err(Error::invalid(
                    Argument::ExtraCa,
                    "no certificate in the PEM",
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::invalid(Argument::ExtraCa, e))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid(Argument::ExtraCa, e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let config = Arc::new(config);
        Ok(Tls {
            connector: TlsConnector::from(Arc::clone(&config)),
            config,
        })
    }

    /// The configuration, for the peer connection's `turns:` relays.
    pub(crate) fn config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.config)
    }

    /// The TLS handshake with `host` over `socket`; the certificate must be valid for
    /// `host` (a name or an IP address).
    pub(crate) async fn handshake(
        &self,
        host: &str,
        socket: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ConnectError> {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            let message = format!("{host:?} is not a name TLS can check a certificate for");
            ConnectError::new(ConnectErrorKind::Tls, message, Some(Arc::new(e)))
        })?;
        self.connector
            .connect(name, socket)
            .await
            .map_err(|e| handshake_error(host, e))
    }
}

/// Which check of the server's certificate failed; see
/// [`ConnectError::tls_failure`](crate::ConnectError::tls_failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// No trusted root signs the chain: a self-signed or private-CA certificate that
    /// [`ClientOptions::extra_ca_pem`](crate::ClientOptions::extra_ca_pem) does not name.
    UnknownIssuer,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet (or this machine's clock is behind).
    NotValidYet,
    /// The certificate is not for the URL's host name or address.
    NameMismatch,
    /// The certificate was revoked.
    Revoked,
    /// Another problem with the certificate (bad signature, wrong purpose, …).
    OtherCertificate,
    /// TLS failed for another reason than the certificate (no common version or cipher
    /// suite, a TLS alert from the server, a server that does not speak TLS).
    Handshake,
}

impl TlsFailure {
    /// Classifies a rustls error.
    pub(crate) fn of(e: &rustls::Error) -> TlsFailure {
        let rustls::Error::InvalidCertificate(cert) = e else {
            return TlsFailure::Handshake;
        };
        match cert {
            CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsFailure::NotValidYet
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::NameMismatch
            }
            CertificateError::Revoked => TlsFailure::Revoked,
            _ => TlsFailure::OtherCertificate,
        }
    }

    fn says(self, host: &str) -> String {
        match self {
            TlsFailure::UnknownIssuer => format!(
                "the certificate of {host} is not signed by a trusted CA (for a private CA, \
                 pass it in ClientOptions::extra_ca_pem)"
            ),
            TlsFailure::Expired => format!("the certificate of {host} has expired"),
            TlsFailure::NotValidYet => format!("the certificate of {host} is not valid yet"),
            TlsFailure::NameMismatch => format!("the certificate of {host} is not for {host}"),
            TlsFailure::Revoked => format!("the certificate of {host} was revoked"),
            TlsFailure::OtherCertificate => format!("the certificate of {host} is not valid"),
            TlsFailure::Handshake => format!("the TLS handshake with {host} failed"),
        }
    }
}

/// A failed handshake as a [`ConnectErrorKind::Tls`] error; rustls's own error, when there
/// is one, is the source itself (not hidden inside an `io::Error`, whose `source` would
/// skip it).
fn handshake_error(host: &str, e: io::Error) -> ConnectError {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(tls) => {
            let message = TlsFailure::of(tls).says(host);
            ConnectError::new(ConnectErrorKind::Tls, message, Some(Arc::new(tls.clone())))
        }
        None => {
            let message = format!("the TLS handshake with {host} failed");
            ConnectError::new(ConnectErrorKind::Tls, message, Some(Arc::new(e)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_ca_that_is_not_a_certificate_is_an_invalid_argument() {
        for pem in [&b""[..], b"not pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n"] {
            let e = Tls::new(Some(pem)).err().unwrap();
            assert!(
                matches!(
                    e,
                    Error::Invalid {
                        what: Argument::ExtraCa,
                        ..
                    }
                ),
                "{e:?}"
            );
        }
        assert!(Tls::new(None).is_ok());
    }

    #[test]
    fn certificate_errors_say_which_check_failed() {
        let cases = [
            (CertificateError::UnknownIssuer, TlsFailure::UnknownIssuer),
            (CertificateError::Expired, TlsFailure::Expired),
            (CertificateError::NotValidForName, TlsFailure::NameMismatch),
            (CertificateError::BadSignature, TlsFailure::OtherCertificate),
        ];
        for (cert, failure) in cases {
            assert_eq!(
                TlsFailure::of(&rustls::Error::InvalidCertificate(cert)),
                failure
            );
        }
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        let e = handshake_error("example.test", io);
        assert_eq!(e.kind(), ConnectErrorKind::Tls);
        assert_eq!(e.tls_failure(), Some(TlsFailure::Expired));
        assert!(e.to_string().contains("expired"), "{e}");
    }
}
