//! TLS as Jina offers it. A gateway or Executor server given a certificate and its key (Jina's
//! `--ssl-certfile` / `--ssl-keyfile`, or `with: {ssl_certfile, ssl_keyfile}` in a Flow YAML)
//! serves gRPC over TLS only; a client of `grpcs://host:port` (Jina's `tls=True`) checks the
//! server's certificate against the system's roots, or against the CA it is given.
//!
//! Like gRPC's own clients (and so Jina's), a client given no CA reads the roots from the file
//! `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` names, when that variable is set.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The environment variable gRPC's clients read their trusted roots from.
pub const ROOTS_ENV: &str = "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH";

/// TLS material that cannot be used, named by where it came from.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
}

/// A server's certificate chain and private key, PEM-encoded.
#[derive(Clone)]
pub struct ServerTls {
    cert: Vec<u8>,
    key: Vec<u8>,
    /// Where they came from, for errors: the files, or "the given certificate".
    from: String,
}

impl std::fmt::Debug for ServerTls {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A certificate chain and its private key, both PEM. Checked for their PEM blocks now;
    /// whether the key fits is checked when a server starts with them.
    pub fn from_pem(cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Result<Self, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        pem_block(&cert, "CERTIFICATE", "the given certificate")?;
        pem_block(&key, "PRIVATE KEY", "the given private key")?;
        Ok(ServerTls {
            cert,
            key,
            from: "the given certificate and key".into(),
        })
    }

    /// Reads Jina's `ssl_certfile` and `ssl_keyfile`.
    pub fn from_files(certfile: &Path, keyfile: &Path) -> Result<Self, TlsError> {
        let cert = read(certfile)?;
        let key = read(keyfile)?;
        pem_block(&cert, "CERTIFICATE", &certfile.display().to_string())?;
        pem_block(&key, "PRIVATE KEY", &keyfile.display().to_string())?;
        Ok(ServerTls {
            cert,
            key,
            from: format!("{} and {}", certfile.display(), keyfile.display()),
        })
    }

    /// Where the certificate and key came from.
    pub fn source(&self) -> &str {
        &self.from
    }

    pub(crate) fn config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key))
    }
}

/// How a client checks a TLS server: which roots it trusts.
#[derive(Clone, Debug, Default)]
pub(crate) enum Roots {
    /// The system's roots, or [`ROOTS_ENV`]'s file when it is set.
    #[default]
    System,
    /// Only this CA (PEM).
    Ca(Vec<u8>),
}

impl Roots {
    /// The client side of TLS for a server named `host` (the name its certificate must hold).
    pub(crate) fn config(&self, host: &str) -> Result<ClientTlsConfig, TlsError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tls = ClientTlsConfig::new().domain_name(host);
        let ca = match self {
            Roots::Ca(pem) => Some((pem.clone(), "the trusted CA".to_owned())),
            Roots::System => match std::env::var_os(ROOTS_ENV) {
                Some(path) if !path.is_empty() => {
                    let path = Path::new(&path);
                    let what = format!("{ROOTS_ENV}={}", path.display());
                    Some((read(path)?, what))
                }
                _ => None,
            },
        };
        match ca {
            Some((pem, what)) => {
                pem_block(&pem, "CERTIFICATE", &what)?;
                Ok(tls.ca_certificate(Certificate::from_pem(pem)))
            }
            None => Ok(tls.with_native_roots()),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// `pem` holds a `-----BEGIN … <label>-----` block (`PRIVATE KEY` matches RSA and EC keys too).
fn pem_block(pem: &[u8], label: &str, what: &str) -> Result<(), TlsError> {
    let text = String::from_utf8_lossy(pem);
    let found = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")));
    if found {
        Ok(())
    } else {
        Err(TlsError::Pem {
            what: what.into(),
            reason: format!("no PEM block \"{label}\" (expected -----BEGIN {label}-----)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_found_by_label() {
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(pem_block(cert.as_bytes(), "CERTIFICATE", "c").is_ok());
        for key in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            let pem = format!("-----BEGIN {key}-----\nMIIE\n-----END {key}-----\n");
            assert!(
                pem_block(pem.as_bytes(), "PRIVATE KEY", "k").is_ok(),
                "{key}"
            );
        }
        let e = pem_block(cert.as_bytes(), "PRIVATE KEY", "key.pem").unwrap_err();
        assert_eq!(
            e.to_string(),
            "key.pem: no PEM block \"PRIVATE KEY\" (expected -----BEGIN PRIVATE KEY-----)"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = ServerTls::from_files(Path::new("/nonexistent/cert.pem"), Path::new("k.pem"))
            .unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/cert.pem: "), "{e}");
    }
}
