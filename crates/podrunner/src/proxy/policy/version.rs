//! The Docker API version the proxy speaks (docs/docker.md, "Docker API version"). Docker
//! CLI 29, in GitHub's runner image, refuses an engine whose API is below 1.44; Podman up to
//! 5.7 serves 1.41. The proxy answers `/_ping` and `/version` with [`ADVERTISED`], takes
//! requests of any version up to the newest the CLI sends, and hands the engine
//! [`ENGINE`]-versioned requests, translating the few request fields the Docker CLI sends
//! differently since 1.41:
//! - 1.44 moved a container's MAC address into its network endpoint
//!   (`NetworkingConfig.EndpointsConfig.*.MacAddress`); 1.41 reads `MacAddress` at the top;
//! - 1.44 added `Healthcheck.StartInterval`, which 1.41 does not have (dropped).
//!
//! Responses of 1.41 are read the same by 1.44 clients for everything the CLI and GitHub's
//! runner use (fields added since are optional to them); only the version numbers change.

use serde_json::{Map, Value};

/// What the proxy tells clients: the least version Docker CLI 29 accepts.
pub const ADVERTISED: (u32, u32) = (1, 44);
/// The oldest version the proxy accepts from clients (Docker's own minimum).
pub const MIN_CLIENT: (u32, u32) = (1, 24);
/// What the proxy asks of the engine: Podman 4.3 to 5.7 serve 1.41, and newer Podman still
/// serves 1.41 requests.
pub const ENGINE: (u32, u32) = (1, 41);

/// The version prefix the engine gets for a client's: newer ones become [`ENGINE`].
pub fn engine_version(client: Option<(u32, u32)>) -> Option<(u32, u32)> {
    client.map(|v| v.min(ENGINE))
}

pub fn text((major, minor): (u32, u32)) -> String {
    format!("{major}.{minor}")
}

/// A `POST /containers/create` body of API `client` for the engine's [`ENGINE`].
pub fn create_body_for_engine(m: &mut Map<String, Value>, client: Option<(u32, u32)>) {
    if client.is_none_or(|v| v <= ENGINE) {
        return;
    }
    let mac = m
        .get("NetworkingConfig")
        .and_then(|n| n.get("EndpointsConfig"))
        .and_then(Value::as_object)
        .and_then(|eps| {
            eps.values()
                .filter_map(|e| e.get("MacAddress").and_then(Value::as_str))
                .find(|mac| !mac.is_empty())
        })
        .map(str::to_string);
    let top_empty = m
        .get("MacAddress")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if let (Some(mac), true) = (mac, top_empty) {
        m.insert("MacAddress".into(), Value::String(mac));
    }
    if let Some(Value::Object(h)) = m.get_mut("Healthcheck") {
        h.remove("StartInterval");
    }
    // The default network by Docker's names: Podman's is called `podman`, and it looks up
    // endpoint keys by name ("unable to find network with name or ID bridge").
    let mode = m
        .get("HostConfig")
        .and_then(|h| h.get("NetworkMode"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if matches!(mode, "" | "default" | "bridge") {
        if let Some(Value::Object(eps)) = m
            .get_mut("NetworkingConfig")
            .and_then(|n| n.get_mut("EndpointsConfig"))
        {
            eps.remove("bridge");
            eps.remove("default");
        }
    }
}

/// The `/version` body for clients: the advertised API version wherever the engine names its
/// own (`ApiVersion`, each component's `Details.ApiVersion`), Docker's minimum kept.
pub fn version_body_for_client(v: &mut Value) {
    let adv = Value::String(text(ADVERTISED));
    if let Some(o) = v.as_object_mut() {
        o.insert("ApiVersion".into(), adv.clone());
        o.insert("MinAPIVersion".into(), Value::String(text(MIN_CLIENT)));
    }
    if let Some(Value::Array(cs)) = v.get_mut("Components") {
        for c in cs {
            if let Some(Value::Object(d)) = c.get_mut("Details") {
                if d.contains_key("ApiVersion") {
                    d.insert("ApiVersion".into(), adv.clone());
                    d.insert("MinAPIVersion".into(), Value::String(text(MIN_CLIENT)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions() {
        assert_eq!(engine_version(Some((1, 52))), Some((1, 41)));
        assert_eq!(engine_version(Some((1, 44))), Some((1, 41)));
        assert_eq!(engine_version(Some((1, 40))), Some((1, 40)));
        assert_eq!(engine_version(None), None);
    }

    #[test]
    fn create_bodies() {
        let mut m = json!({"Image": "x", "Healthcheck": {"Test": ["NONE"], "StartInterval": 5},
            "NetworkingConfig": {"EndpointsConfig": {"n": {"MacAddress": "02:42:ac:11:00:02"}}}})
        .as_object()
        .unwrap()
        .clone();
        let mut old = m.clone();
        create_body_for_engine(&mut m, Some((1, 44)));
        assert_eq!(m["MacAddress"], "02:42:ac:11:00:02");
        assert_eq!(m["Healthcheck"], json!({"Test": ["NONE"]}));
        let mut d =
            json!({"NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": "x"}}}})
                .as_object()
                .unwrap()
                .clone();
        create_body_for_engine(&mut d, Some((1, 44)));
        assert_eq!(
            Value::Object(d),
            json!({"MacAddress": "x", "NetworkingConfig": {"EndpointsConfig": {}}})
        );
        let before = old.clone();
        create_body_for_engine(&mut old, Some((1, 41)));
        assert_eq!(old, before);
    }

    #[test]
    fn version_bodies() {
        let mut v = json!({"ApiVersion": "1.41", "MinAPIVersion": "1.24", "Version": "4.3.1",
            "Components": [{"Name": "Podman Engine", "Details": {"APIVersion": "4.3.1", "MinAPIVersion": "4.0.0"}},
                           {"Name": "Docker Engine", "Details": {"ApiVersion": "1.41", "MinAPIVersion": "1.24"}}]});
        version_body_for_client(&mut v);
        assert_eq!(v["ApiVersion"], "1.44");
        assert_eq!(v["Components"][0]["Details"]["APIVersion"], "4.3.1");
        assert_eq!(v["Components"][1]["Details"]["ApiVersion"], "1.44");
    }
}
