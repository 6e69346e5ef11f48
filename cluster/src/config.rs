//! `ClusterConfig`, and the URL as it may be shown (password redacted).

use std::fmt;
use std::time::Duration;

use crate::{ClusterError, NodeId};

/// The shortest lease: it is refreshed every `lease / 3`.
const MIN_LEASE: Duration = Duration::from_millis(30);

/// How to reach Redis and how this node appears in it.
#[derive(Clone)]
pub struct ClusterConfig {
    /// `redis://[[user]:password@]host:port[/db]`, or `rediss://…` for TLS (checked against
    /// the Mozilla roots compiled in). Never logged or shown with its password.
    pub url: String,
    /// This node's id.
    pub node: NodeId,
    /// How long a node's entries outlive it: its lease key expires this long after its
    /// last refresh (every `lease / 3`). Default 10 s.
    pub lease: Duration,
    /// Bound on `Cluster::connect` (TCP, TLS, AUTH and the first PING). Default 5 s.
    pub connect_timeout: Duration,
    /// Prefix of every key. Default `"sb:"`; tests use a unique prefix to share a server.
    pub key_prefix: String,
}

impl ClusterConfig {
    /// The defaults for everything but the URL and the node.
    pub fn new(url: impl Into<String>, node: NodeId) -> Self {
        Self {
            url: url.into(),
            node,
            lease: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            key_prefix: "sb:".to_owned(),
        }
    }

    /// Checks what Redis or the background tasks could not work with.
    pub(crate) fn validate(&self) -> Result<(), ClusterError> {
        let bad = |key, reason| Err(ClusterError::BadConfig { key, reason });
        if self.lease < MIN_LEASE {
            return bad("lease", "must be at least 30 ms");
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "must be more than zero");
        }
        Ok(())
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("url", &self.redacted_url())
            .field("node", &self.node)
            .field("lease", &self.lease)
            .field("connect_timeout", &self.connect_timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// `url` with the password of its user info and any `password=`/`pass=` query value
/// replaced by `***`. Works on text that does not parse as a URL too (best effort: anything
/// between `://` and `@` after a `:` is hidden).
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((info, host)) => match info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = redact_query(tail);
    if scheme.is_empty() && !url.contains("://") {
        format!("{authority}{tail}")
    } else {
        format!("{scheme}://{authority}{tail}")
    }
}

/// The query's `pass…` values hidden.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().contains("pass") => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:s3cret@h:1/2", "redis://:***@h:1/2"),
            ("rediss://default:s3cret@h:1", "rediss://default:***@h:1"),
            ("redis://user@h", "redis://user@h"),
            ("redis://u:p@ss@h/0", "redis://u:***@h/0"),
            (
                "redis+unix:///run/r.sock?db=1&pass=s3cret",
                "redis+unix:///run/r.sock?db=1&pass=***",
            ),
            (":s3cret@h:1", ":***@h:1"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn a_too_short_lease_is_refused() {
        let mut config = ClusterConfig::new("redis://h", NodeId::new("n").unwrap());
        assert!(config.validate().is_ok());
        config.lease = Duration::from_millis(1);
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("lease"), "{err}");
    }

    #[test]
    fn debug_hides_the_password() {
        let config = ClusterConfig::new("redis://:s3cret@h:1", NodeId::new("n").unwrap());
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("redis://:***@h:1"),
            "{shown}"
        );
    }
}
