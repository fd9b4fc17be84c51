//! The cluster secret: what a caller must show to change data or membership.
//!
//! When a secret is configured, every *guarded* method (see
//! [`crate::rpc::Rpc::GUARDED`]: replication, reset, dump, a server's local
//! write and shutdown, the frontend's `addServer` and `shutdownServer`) is
//! refused with fault [`crate::fault::UNAUTHORIZED`] unless the call carries
//! the secret the way HTTP carries credentials: an `Authorization` header,
//! either `Basic` with the secret as the password (any user name; Python's
//! `ServerProxy("http://kvs:SECRET@host:8001")` sends exactly this) or
//! `Bearer SECRET`. With no secret configured, every method is open, as in
//! the course.
//!
//! The secret comes from a flag, an environment variable or a file (the
//! Kubernetes Secret way); [`ClusterSecret::from_sources`] reads them.

use std::fmt;
use std::path::{Path, PathBuf};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// The user name kvs's own clients send with the secret (any is accepted).
pub const USER: &str = "kvs";

/// A shared secret; never printed.
#[derive(Clone)]
pub struct ClusterSecret {
    secret: Vec<u8>,
    /// `Authorization` header value kvs's clients send.
    header: String,
}

/// Why no secret could be read.
#[derive(Debug, Error)]
pub enum SecretError {
    /// The secret file could not be read.
    #[error("cannot read the cluster secret file {path}: {source}")]
    File {
        /// The file named by the option or environment variable.
        path: PathBuf,
        /// What reading it gave.
        #[source]
        source: std::io::Error,
    },
    /// The secret (or its file, named by the payload) is empty.
    #[error("the cluster secret {0} is empty")]
    Empty(&'static str),
    /// Both a secret and a secret file were given.
    #[error("give the cluster secret either directly or as a file, not both")]
    Both,
}

impl ClusterSecret {
    /// A secret from its text (surrounding whitespace, e.g. a file's final
    /// newline, is not part of it).
    pub fn new(secret: &str) -> Result<Self, SecretError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(SecretError::Empty("given"));
        }
        let header = format!("Basic {}", STANDARD.encode(format!("{USER}:{secret}")));
        Ok(ClusterSecret {
            secret: secret.as_bytes().to_vec(),
            header,
        })
    }

    /// The secret given directly (`--cluster-secret`, `KVS_CLUSTER_SECRET`)
    /// or as a file (`--cluster-secret-file`, `KVS_CLUSTER_SECRET_FILE`);
    /// `None` when neither is set.
    pub fn from_sources(direct: Option<&str>, file: Option<&Path>) -> Result<Option<Self>, SecretError> {
        match (direct, file) {
            (Some(_), Some(_)) => Err(SecretError::Both),
            (Some(secret), None) => Self::new(secret).map(Some),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.to_owned(),
                    source,
                })?;
                if text.trim().is_empty() {
                    return Err(SecretError::Empty("file"));
                }
                Self::new(&text).map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    /// The `Authorization` header value that shows this secret.
    pub fn header_value(&self) -> &str {
        &self.header
    }

    /// Whether `headers` show this secret (compared in constant time).
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|shown| self.admits_credentials(shown))
    }

    /// Whether `shown`, an `Authorization` header's value, shows this
    /// secret (compared in constant time).
    pub fn admits_credentials(&self, shown: &str) -> bool {
        let (scheme, credentials) = shown.trim().split_once(' ').unwrap_or((shown, ""));
        let credentials = credentials.trim();
        let candidate = if scheme.eq_ignore_ascii_case("bearer") {
            credentials.as_bytes().to_vec()
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = STANDARD.decode(credentials) else {
                return false;
            };
            // user:password — the password is everything after the first colon.
            match decoded.iter().position(|byte| *byte == b':') {
                Some(colon) => decoded[colon + 1..].to_vec(),
                None => return false,
            }
        } else {
            return false;
        };
        bool::from(candidate.ct_eq(&self.secret))
    }
}

/// The command-line options (and environment variables) that give a
/// process the cluster secret; flattened into each binary's arguments.
#[derive(Clone, Default, clap::Args)]
pub struct SecretArgs {
    /// The cluster secret: guarded calls (replication, reset, dump, local
    /// writes, shutdown, addServer) must show it, and this process shows it
    /// on its own. Without one every method is open.
    #[arg(long, env = "KVS_CLUSTER_SECRET", hide_env_values = true, value_name = "SECRET")]
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret (e.g. a mounted Kubernetes Secret).
    #[arg(long, env = "KVS_CLUSTER_SECRET_FILE", value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
}

impl SecretArgs {
    /// The configured secret, if any.
    pub fn secret(&self) -> Result<Option<ClusterSecret>, SecretError> {
        ClusterSecret::from_sources(self.cluster_secret.as_deref(), self.cluster_secret_file.as_deref())
    }
}

impl fmt::Debug for SecretArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretArgs")
            .field("cluster_secret", &self.cluster_secret.as_ref().map(|_| "<redacted>"))
            .field("cluster_secret_file", &self.cluster_secret_file)
            .finish()
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn basic_with_any_user_and_bearer_are_admitted() {
        let secret = ClusterSecret::new("s3cret:with:colons").expect("secret");
        assert!(secret.admits(&headers(secret.header_value())));
        let python = format!("Basic {}", STANDARD.encode("anyone:s3cret:with:colons"));
        assert!(secret.admits(&headers(&python)));
        assert!(secret.admits(&headers("Bearer s3cret:with:colons")));
        assert!(secret.admits(&headers("bearer   s3cret:with:colons ")));
    }

    #[test]
    fn wrong_missing_or_malformed_credentials_are_refused() {
        let secret = ClusterSecret::new("s3cret").expect("secret");
        assert!(!secret.admits(&HeaderMap::new()));
        assert!(!secret.admits(&headers("Bearer s3cre")));
        assert!(!secret.admits(&headers("Bearer s3cret2")));
        assert!(!secret.admits(&headers(&format!("Basic {}", STANDARD.encode("kvs:wrong")))));
        assert!(!secret.admits(&headers(&format!("Basic {}", STANDARD.encode("s3cret")))));
        assert!(!secret.admits(&headers("Basic !!!not-base64")));
        assert!(!secret.admits(&headers("Digest s3cret")));
        assert!(!secret.admits(&headers("s3cret")));
    }

    #[test]
    fn sources() {
        assert!(ClusterSecret::from_sources(None, None).expect("none").is_none());
        assert!(matches!(ClusterSecret::new("  \n"), Err(SecretError::Empty(_))));
        let dir = std::env::temp_dir().join(format!("kvs-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("secret");
        std::fs::write(&file, "from-file\n").expect("write");
        let secret = ClusterSecret::from_sources(None, Some(&file))
            .expect("read")
            .expect("some");
        assert!(secret.admits(&headers("Bearer from-file")));
        assert!(matches!(
            ClusterSecret::from_sources(Some("x"), Some(&file)),
            Err(SecretError::Both)
        ));
        assert!(matches!(
            ClusterSecret::from_sources(None, Some(&dir.join("missing"))),
            Err(SecretError::File { .. })
        ));
        assert_eq!(format!("{secret:?}"), "ClusterSecret(<redacted>)");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
