//! TLS for the gateway's associations (rustls with the ring provider): the listening side
//! requires client certificates from a configured CA; the sending side checks the destination's
//! certificate against a configured CA and may present its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::Deserialize;

use crate::error::{CliError, CliResult};

/// `[tls]`: the gateway's listening side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenTls {
    /// The gateway's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that a sender's client certificate must chain to; every
    /// association must present one.
    pub client_ca: PathBuf,
}

/// `[destination.tls]`: the sending side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendTls {
    /// CA certificates (PEM) the destination's certificate must chain to.
    pub ca: PathBuf,
    /// The name the destination's certificate must carry (default: its host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Our client certificate chain (PEM), when the destination asks for one.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

fn tls_err(path: &Path, what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Input {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
        source: None,
    }
}

fn certs(path: &Path) -> CliResult<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(path, "not a PEM file", e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(path, "a certificate does not parse", e))?;
    if certs.is_empty() {
        return Err(tls_err(path, "no certificate", "the file holds none"));
    }
    Ok(certs)
}

fn key(path: &Path) -> CliResult<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| tls_err(path, "no usable private key", e))
}

fn roots(path: &Path) -> CliResult<RootCertStore> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store
            .add(c)
            .map_err(|e| tls_err(path, "a CA certificate is unusable", e))?;
    }
    Ok(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ListenTls {
    /// The server configuration (TLS 1.2 and 1.3, client certificates required).
    pub fn server_config(&self) -> CliResult<Arc<ServerConfig>> {
        let p = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(&self.client_ca)?),
            p.clone(),
        )
        .build()
        .map_err(|e| tls_err(&self.client_ca, "client certificate verifier", e))?;
        let config = ServerConfig::builder_with_provider(p)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(&self.cert, "TLS versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.cert)?, key(&self.key)?)
            .map_err(|e| tls_err(&self.key, "the key does not match the certificate", e))?;
        Ok(Arc::new(config))
    }
}

impl SendTls {
    /// The client configuration and the server name to check.
    pub fn client_config(&self, host: &str) -> CliResult<(Arc<ClientConfig>, String)> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(&self.ca, "TLS versions", e))?
            .with_root_certificates(roots(&self.ca)?);
        let config = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(certs(c)?, key(k)?)
                .map_err(|e| tls_err(k, "the key does not match the certificate", e))?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(CliError::Usage(
                    "[destination.tls]: cert and key go together".into(),
                ));
            }
        };
        let name = self.server_name.clone().unwrap_or_else(|| host.to_string());
        ServerName::try_from(name.clone())
            .map_err(|e| CliError::Usage(format!("[destination.tls] server name {name:?}: {e}")))?;
        Ok((Arc::new(config), name))
    }
}
