//! Strict JSON for request bodies (docs/docker.md, "The proxy's boundary"). The engine decodes
//! bodies with Go's `encoding/json`, which matches object keys to fields case-insensitively
//! (with Unicode case folding) and keeps the last of duplicate keys. A check that reads
//! `HostConfig` while the engine reads a later `hostconfig` checks nothing, so a body the proxy
//! accepts has no key twice, not even in another case, and only ASCII keys (no `K` that folds
//! to `k` in Go and not in Rust). Exact-case keys are then enforced by the field allowlists
//! ([`super::contained`]).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;

/// A JSON value parsed strictly.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        serde_json::Number::from_f64(v)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom("a number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut v = Vec::new();
        while let Some(Strict(x)) = seq.next_element()? {
            v.push(x);
        }
        Ok(Strict(Value::Array(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut m = Map::new();
        let mut folded = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !key.is_ascii() {
                return Err(de::Error::custom(format!("the key {key:?} is not ASCII")));
            }
            if !folded.insert(key.to_ascii_lowercase()) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice (keys are matched without regard to case)"
                )));
            }
            let Strict(v) = map.next_value()?;
            m.insert(key, v);
        }
        Ok(Strict(Value::Object(m)))
    }
}

/// Parses `body` as one JSON object, refusing duplicate, case-folded duplicate and non-ASCII
/// keys at every depth, and anything after the object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, NotAnObject> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let Strict(v) = Strict::deserialize(&mut de)?;
    de.end()?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(NotAnObject::Other),
    }
}

/// Why a body is not one strict JSON object ([`parse_object`]).
#[derive(Debug, thiserror::Error)]
pub enum NotAnObject {
    /// Not JSON, or keys that strict parsing refuses.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not an object.
    #[error("not a JSON object")]
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_objects_parse() {
        let m = parse_object(
            br#"{"Image":"x","HostConfig":{"Binds":["/a:/b"],"Memory":5,"X":null,"F":1.5}}"#,
        )
        .unwrap();
        assert_eq!(m["HostConfig"]["Memory"], 5);
        assert_eq!(m["HostConfig"]["F"], 1.5);
    }

    #[test]
    fn duplicates_and_odd_keys_are_refused() {
        for (body, why) in [
            (
                r#"{"HostConfig":{},"HostConfig":{"Privileged":true}}"#,
                "the key \"HostConfig\" appears twice",
            ),
            (
                r#"{"HostConfig":{},"hostconfig":{"Privileged":true}}"#,
                "the key \"hostconfig\" appears twice",
            ),
            (
                r#"{"HostConfig":{"Binds":[],"BINDS":["/:/h"]}}"#,
                "the key \"BINDS\" appears twice",
            ),
            (
                r#"{"HostConfig":{"Privileged":false,"\u0070rivileged":true}}"#,
                "the key \"privileged\" appears twice",
            ),
            (r#"{"Hostconfi\u212a":{}}"#, "is not ASCII"),
            (r#"{"a":1} {"b":2}"#, "trailing characters"),
            ("[1]", "not a JSON object"),
            ("{", "EOF"),
        ] {
            let err = parse_object(body.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(why), "{body}: {err}");
        }
    }
}
