//! TLS for listeners and sinks, with rustls (ring): a listener serves a
//! certificate chain and key from PEM files; a sink trusts the CAs of a PEM
//! file (by default the system's bundle) and checks the server's name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A listener's certificate chain and key, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a sink trusts, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    /// PEM file of the CAs to trust (None: the system's bundle).
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must carry (None: the host of the
    /// address connected to).
    pub server_name: Option<String>,
}

/// Where Debian keeps the system's CA bundle.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from `files`; the error names the file.
pub fn server_config(files: &ServerFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("tls.key {}: {e}", files.key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls.cert and tls.key: {e}"))?;
    Ok(Arc::new(config))
}

/// A client configuration trusting what `files` names.
pub fn client_config(files: &ClientFiles) -> Result<Arc<rustls::ClientConfig>, String> {
    let path = files
        .ca
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CAS));
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(&path)? {
        roots
            .add(certificate)
            .map_err(|e| format!("tls.ca {}: {e}", path.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name to check the server's certificate against: the configured
/// one, or the address's host.
pub fn server_name(files: &ClientFiles, host: &str) -> Result<ServerName<'static>, String> {
    let name = files.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_owned()).map_err(|e| format!("tls server name {name:?}: {e}"))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect();
    let certificates = certificates.map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certificates)
}
