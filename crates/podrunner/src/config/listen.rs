//! `[manager] listen`: where the metrics and status page listener binds (docs/metrics.md).
//! `HOST:PORT` is TCP; an absolute path is a Unix socket (mode 0600, for a local scraper or
//! a reverse proxy that adds its own authentication).

use serde::{Deserialize, Deserializer, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A `listen` value that is neither an address nor a socket path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("listen {0:?} is neither HOST:PORT (e.g. \"127.0.0.1:9464\", \"[::1]:9464\") nor an absolute Unix socket path")]
pub struct ListenError(String);

impl Listen {
    pub fn parse(s: &str) -> Result<Listen, ListenError> {
        let t = s.trim();
        if t.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(t)));
        }
        t.parse::<SocketAddr>()
            .map(Listen::Tcp)
            .map_err(|_| ListenError(s.into()))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Listen::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            Listen::parse("127.0.0.1:9464"),
            Ok(Listen::Tcp("127.0.0.1:9464".parse().unwrap()))
        );
        assert_eq!(
            Listen::parse("[::1]:9464"),
            Ok(Listen::Tcp("[::1]:9464".parse().unwrap()))
        );
        assert_eq!(
            Listen::parse("/run/podrunner/metrics.sock"),
            Ok(Listen::Unix("/run/podrunner/metrics.sock".into()))
        );
        assert!(Listen::parse("localhost:9464")
            .unwrap_err()
            .to_string()
            .contains("neither HOST:PORT"));
        assert!(Listen::parse("9464").is_err());
        assert!(Listen::parse("metrics.sock").is_err());
    }

    fn parse(manager: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        let env = crate::config::Env::fixed(1000);
        let text = format!("[manager]\n{manager}\n[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n");
        crate::config::Config::parse(&text, std::path::Path::new("/c.toml"), &env)
    }

    #[test]
    fn manager_keys() {
        let c = parse("").unwrap();
        assert_eq!(c.manager.listen, None);
        assert!(c.manager.history);
        assert_eq!(c.manager.history_max_age.as_secs(), 30 * 24 * 3600);
        assert_eq!(c.manager.history_max_bytes, 64 * 1024 * 1024);
        let c = parse("listen = \"127.0.0.1:9464\"\nhistory = false\nhistory_max_age = \"7d\"\nhistory_max_size = \"8m\"").unwrap();
        assert_eq!(
            c.manager.listen,
            Some(Listen::Tcp("127.0.0.1:9464".parse().unwrap()))
        );
        assert!(!c.manager.history);
        assert_eq!(c.manager.history_max_age.as_secs(), 7 * 24 * 3600);
        assert_eq!(c.manager.history_max_bytes, 8 * 1024 * 1024);
        let e = parse("listen = \"localhost:9464\"")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/c.toml:2:"), "{e}");
        assert!(e.contains("neither HOST:PORT"), "{e}");
    }
}
