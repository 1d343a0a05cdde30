//! Value types of the config file that need parsing beyond TOML's own: sizes, durations,
//! commands. Each rejects bad input inside serde so that the error carries a position.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::time::Duration;

/// A memory limit in bytes. Accepts `"4g"`, `"512m"`, `"1024k"`, `"2G"`, `"1.5g"`, or a plain
/// number (integer or string) of megabytes, as the original module's `vmMemory = "4096"` had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory(pub u64);

/// The smallest memory limit Podman accepts for a container (it refuses anything below 6 MiB).
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// What a memory or CPU value should look like, said in every refusal of one.
const EXPECTED_MEMORY: &str =
    "expected a size like \"4g\", \"512m\" or a number of megabytes like \"4096\"";

/// Why a `memory` or `cpus` value was refused; the messages are the config errors users see.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("memory {0:?}: unknown unit; {EXPECTED_MEMORY}")]
    MemoryUnit(String),
    #[error("memory {0:?}: {EXPECTED_MEMORY}")]
    MemoryNotNumber(String),
    #[error("memory {0:?} must be positive; {EXPECTED_MEMORY}")]
    MemoryNotPositive(String),
    #[error("memory {0} must be positive")]
    MemoryNotPositiveNumber(i64),
    #[error("memory {0:?} is below Podman's minimum of 6m")]
    MemoryBelowMinimum(String),
    #[error("cpus = {0} must be a number above 0, such as 2 or 1.5")]
    Cpus(f64),
}

impl Memory {
    pub fn parse(s: &str) -> Result<Memory, ValueError> {
        let t = s.trim();
        let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
            None => (t, 1024 * 1024),
            Some((i, _)) => {
                let mult: u64 = match t[i..].to_ascii_lowercase().as_str() {
                    "b" => 1,
                    "k" | "kb" | "kib" => 1024,
                    "m" | "mb" | "mib" => 1024 * 1024,
                    "g" | "gb" | "gib" => 1024 * 1024 * 1024,
                    "t" | "tb" | "tib" => 1024u64.pow(4),
                    _ => return Err(ValueError::MemoryUnit(s.into())),
                };
                (t[..i].trim(), mult)
            }
        };
        let value: f64 = num
            .parse()
            .map_err(|_| ValueError::MemoryNotNumber(s.into()))?;
        if !value.is_finite() || value <= 0.0 {
            return Err(ValueError::MemoryNotPositive(s.into()));
        }
        let bytes = (value * mult as f64) as u64;
        if bytes < MIN_MEMORY {
            return Err(ValueError::MemoryBelowMinimum(s.into()));
        }
        Ok(Memory(bytes))
    }

    /// The value for `podman run --memory`, in bytes (`b` suffix) so nothing is rounded.
    pub fn podman_arg(&self) -> String {
        format!("{}b", self.0)
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a size like \"4g\", \"512m\" or a number of megabytes",
            )
        })? {
            Raw::Int(n) if n > 0 => Memory::parse(&n.to_string()),
            Raw::Int(n) => Err(ValueError::MemoryNotPositiveNumber(n)),
            Raw::Str(s) => Memory::parse(&s),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Memory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = self.0 / (1024 * 1024);
        if mib >= 1024 && mib.is_multiple_of(1024) {
            write!(f, "{}g", mib / 1024)
        } else {
            write!(f, "{mib}m")
        }
    }
}

/// A duration written as `"10s"`, `"2m"`, `"1h 30m"`, or a plain number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub Duration);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        let expected = "expected a duration like \"10s\", \"2m\", \"1h\" or a number of seconds";
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(expected))? {
            Raw::Int(n) if n >= 0 => Ok(Secs(Duration::from_secs(n as u64))),
            Raw::Int(n) => Err(serde::de::Error::custom(format!(
                "duration {n} must not be negative"
            ))),
            Raw::Str(s) => {
                let t = s.trim();
                if let Ok(n) = t.parse::<u64>() {
                    return Ok(Secs(Duration::from_secs(n)));
                }
                humantime::parse_duration(t).map(Secs).map_err(|e| {
                    serde::de::Error::custom(format!("duration {s:?}: {e}; {expected}"))
                })
            }
        }
    }
}

impl Serialize for Secs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// The command a runner container runs: a string (one program path) or an argv array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command(pub Vec<String>);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a program path or an array of strings")
        })?;
        let argv = match raw {
            Raw::One(s) => vec![s],
            Raw::Many(v) => v,
        };
        if argv.is_empty() || argv[0].trim().is_empty() {
            return Err(serde::de::Error::custom("command must name a program"));
        }
        Ok(Command(argv))
    }
}

/// CPUs for `podman run --cpus`: a positive number, integer or fractional.
pub fn check_cpus(cpus: f64) -> Result<(), ValueError> {
    if !(cpus.is_finite() && cpus > 0.0 && cpus <= 1024.0) {
        return Err(ValueError::Cpus(cpus));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_forms() {
        assert_eq!(Memory::parse("4g").unwrap().0, 4 * 1024 * 1024 * 1024);
        assert_eq!(Memory::parse("512m").unwrap().0, 512 * 1024 * 1024);
        assert_eq!(Memory::parse("4096").unwrap().0, 4096 * 1024 * 1024);
        assert_eq!(Memory::parse("1.5G").unwrap().0, 1536 * 1024 * 1024);
        assert_eq!(Memory::parse("8192k").unwrap().0, 8 * 1024 * 1024);
        assert_eq!(Memory::parse("512m").unwrap().podman_arg(), "536870912b");
        assert_eq!(Memory::parse("4g").unwrap().to_string(), "4g");
        assert!(Memory::parse("4x")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(Memory::parse("-1g")
            .unwrap_err()
            .to_string()
            .contains("must be positive"));
        assert!(Memory::parse("1k")
            .unwrap_err()
            .to_string()
            .contains("minimum"));
        assert!(Memory::parse("lots").is_err());
    }

    #[test]
    fn durations() {
        #[derive(Deserialize)]
        struct T {
            d: Secs,
        }
        let p = |s: &str| toml::from_str::<T>(s).map(|t| t.d.0);
        assert_eq!(p("d = \"10s\"").unwrap(), Duration::from_secs(10));
        assert_eq!(p("d = \"2m\"").unwrap(), Duration::from_secs(120));
        assert_eq!(p("d = 5").unwrap(), Duration::from_secs(5));
        assert_eq!(p("d = \"7\"").unwrap(), Duration::from_secs(7));
        assert!(p("d = \"soon\"").is_err());
        assert!(p("d = -3").is_err());
    }

    #[test]
    fn cpus() {
        assert!(check_cpus(1.5).is_ok());
        assert!(check_cpus(0.0).is_err());
        assert!(check_cpus(f64::NAN).is_err());
    }
}
