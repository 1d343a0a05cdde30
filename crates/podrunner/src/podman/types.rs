//! Typed views of Podman's JSON output. They accept what Podman 4.3 (Debian 12) and 5.x print:
//! every field podrunner does not strictly need has a default, and fields whose type changed
//! between versions (event `Time`: an RFC 3339 string in 4.x, epoch seconds in 5.x) are read as
//! raw JSON values.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One row of `podman ps -a --format json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PsEntry {
    #[serde(rename = "Id", alias = "ID")]
    pub id: String,
    #[serde(rename = "Names", default)]
    pub names: Vec<String>,
    #[serde(rename = "Labels", default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "Exited", default)]
    pub exited: bool,
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i32,
    /// Epoch seconds (both 4.x and 5.x print an integer here).
    #[serde(rename = "Created", default, deserialize_with = "lenient_i64")]
    pub created: i64,
    #[serde(rename = "StartedAt", default, deserialize_with = "lenient_i64")]
    pub started_at: i64,
    #[serde(rename = "Image", default)]
    pub image: String,
}

impl PsEntry {
    pub fn name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or("")
    }
    /// Running or about to run: podrunner treats `created`, `configured` and `initialized` as
    /// starting, `running`, `paused` and `stopping` as alive.
    pub fn is_alive(&self) -> bool {
        matches!(
            self.state.as_str(),
            "running" | "paused" | "stopping" | "created" | "configured" | "initialized"
        )
    }
}

/// One line of `podman events --format json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Event {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "Type", default)]
    pub kind: String,
    #[serde(rename = "ContainerExitCode", default)]
    pub exit_code: Option<i32>,
    #[serde(rename = "Attributes", default, deserialize_with = "null_as_default")]
    pub attributes: BTreeMap<String, String>,
}

/// `podman version --format json`: the parts podrunner reads.
#[derive(Debug, Clone, Deserialize)]
pub struct VersionInfo {
    #[serde(rename = "Client")]
    pub client: ComponentVersion,
    #[serde(rename = "Server", default)]
    pub server: Option<ComponentVersion>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ComponentVersion {
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "APIVersion", default)]
    pub api_version: String,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn lenient_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    })
}

/// Parses `podman ps --format json`: an array, or `null`/empty output when nothing matches.
pub fn parse_ps(bytes: &[u8]) -> Result<Vec<PsEntry>, serde_json::Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice::<Option<Vec<PsEntry>>>(bytes)?.unwrap_or_default())
}

/// Parses one event line; `None` for lines that are not container events.
pub fn parse_event(line: &str) -> Option<Event> {
    let ev: Event = serde_json::from_str(line.trim()).ok()?;
    (ev.kind == "container").then_some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Podman 4.3.1 on Debian 12.
    const PS_4_3: &str = r#"[
  {
    "AutoRemove": true, "Command": ["sh","-c","x"], "CreatedAt": "Less than a second ago",
    "Exited": false, "ExitedAt": -62135596800, "ExitCode": 0,
    "Id": "71eb96e5c7b9", "Image": "localhost/bbtest:latest", "ImageID": "4e88",
    "IsInfra": false, "Labels": {"podrunner.pool": "p"}, "Mounts": [], "Names": ["t1"],
    "Namespaces": {}, "Networks": [], "Pid": 6526, "Pod": "", "PodName": "", "Ports": null,
    "Size": null, "StartedAt": 1796013810, "State": "running",
    "Status": "Up Less than a second ago", "Created": 1796013810
  }
]"#;

    /// The shape Podman 5.x prints (Labels may be null; CreatedAt is a string; extra fields).
    const PS_5: &str = r#"[{"AutoRemove":false,"Command":null,"Created":1717000000,"CreatedAt":"2 minutes ago",
      "CIDFile":"","Exited":true,"ExitedAt":1717000100,"ExitCode":137,"Id":"abc","Image":"img",
      "ImageID":"x","IsInfra":false,"Labels":null,"Mounts":[],"Names":["r2"],"Namespaces":{},
      "Networks":["podman"],"Pid":0,"Pod":"","PodName":"","Ports":null,"Restarts":0,"Size":null,
      "StartedAt":1717000001,"State":"exited","Status":"Exited (137) 1 minute ago"}]"#;

    #[test]
    fn ps_both_versions() {
        let v = parse_ps(PS_4_3.as_bytes()).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].id, "71eb96e5c7b9");
        assert_eq!(v[0].name(), "t1");
        assert_eq!(
            v[0].labels.get("podrunner.pool").map(String::as_str),
            Some("p")
        );
        assert!(v[0].is_alive());
        assert_eq!(v[0].created, 1796013810);
        let v = parse_ps(PS_5.as_bytes()).unwrap();
        assert_eq!(v[0].exit_code, 137);
        assert!(v[0].labels.is_empty());
        assert!(!v[0].is_alive());
        assert!(parse_ps(b"").unwrap().is_empty());
        assert!(parse_ps(b"null\n").unwrap().is_empty());
        assert!(parse_ps(b"[]").unwrap().is_empty());
        assert!(parse_ps(b"{").is_err());
    }

    #[test]
    fn events_both_versions() {
        // Podman 4.3.1: Time is an RFC 3339 string.
        let e = parse_event(r#"{"ContainerExitCode":3,"ID":"71eb","Image":"i","Name":"t1","Status":"died","Time":"2026-11-30T04:43:32.360799815Z","Type":"container","Attributes":{"podrunner.x":"1"}}"#).unwrap();
        assert_eq!(e.status, "died");
        assert_eq!(e.exit_code, Some(3));
        assert_eq!(
            e.attributes.get("podrunner.x").map(String::as_str),
            Some("1")
        );
        // Podman 5.x: Time is epoch seconds, timeNano added.
        let e = parse_event(r#"{"ID":"ab","Image":"i","Name":"r","Status":"remove","Time":1717000000,"timeNano":1717000000123456789,"Type":"container","Attributes":null}"#).unwrap();
        assert_eq!(e.status, "remove");
        assert_eq!(e.exit_code, None);
        assert!(
            parse_event(r#"{"Name":"img","Status":"pull","Type":"image","Attributes":null}"#)
                .is_none()
        );
        assert!(parse_event("garbage").is_none());
    }
}
