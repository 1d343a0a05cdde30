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
//!
//! Answers: the `/version` numbers, and the few answers whose fields changed from 1.42 on are
//! rewritten as a daemon of the client's version writes them ([`Answer`], [`answer_for_client`];
//! docs/docker.md lists what was checked).

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

/// An engine answer rewritten for a client newer than [`ENGINE`]: what a Docker daemon of the
/// client's version writes differently from a 1.41 one (docs/docker.md, "Docker API version").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `GET /containers/{id}/json`.
    ContainerInspect,
    /// `GET /images/{name}/json`.
    ImageInspect,
    /// `GET /images/json`.
    ImageList,
    /// `GET /system/df`.
    SystemDf,
}

/// The answer of a route (method and allowlisted path, `{}` for an id) that is rewritten for a
/// client of version `client` (unversioned: the one advertised); `None` when the engine's
/// answer is already what that client expects.
pub fn answer_of(method: &str, path: &str, client: Option<(u32, u32)>) -> Option<Answer> {
    if client.unwrap_or(ADVERTISED) <= ENGINE || method != "GET" {
        return None;
    }
    match path {
        "containers/{}/json" => Some(Answer::ContainerInspect),
        "images/{*}/json" => Some(Answer::ImageInspect),
        "images/json" => Some(Answer::ImageList),
        "system/df" => Some(Answer::SystemDf),
        _ => None,
    }
}

/// Rewrites an engine's 200 answer of kind `kind` for a client of version `client`
/// (unversioned: the one advertised). By the Docker Engine API's changelog (docs/docker.md):
/// - container inspect: from 1.42 `HostConfig.KernelMemory` and `KernelMemoryTCP` are left out
///   when not set; from 1.44 every endpoint in `NetworkSettings.Networks` has `DNSNames` ([`dns_names`]);
///   from 1.45 `Aliases` holds only the aliases the client asked for (Podman adds the short id);
/// - image inspect: from 1.44 no `VirtualSize`, and no `Created` when the image has none (the
///   zero time); from 1.45 no `Container` and `ContainerConfig`;
/// - image list: from 1.43 untagged images have empty `RepoTags`/`RepoDigests` (not null and
///   never `<none>:<none>`); from 1.44 no `VirtualSize`;
/// - disk usage: from 1.42 no `BuilderSize` and no `BuildCache[].Parent`; from 1.44 no
///   `Images[].VirtualSize`.
pub fn answer_for_client(kind: Answer, v: &mut Value, client: Option<(u32, u32)>) {
    let c = client.unwrap_or(ADVERTISED);
    match kind {
        Answer::ContainerInspect => container_for_client(v, c),
        Answer::ImageInspect => {
            if c >= (1, 44) {
                remove(v, &["VirtualSize"]);
                if v.get("Created").and_then(Value::as_str) == Some(ZERO_TIME) {
                    remove(v, &["Created"]);
                }
            }
            if c >= (1, 45) {
                remove(v, &["Container", "ContainerConfig"]);
            }
        }
        Answer::ImageList => {
            for image in v.as_array_mut().into_iter().flatten() {
                image_summary_for_client(image, c);
            }
        }
        Answer::SystemDf => {
            if c >= (1, 42) {
                remove(v, &["BuilderSize"]);
                if let Some(Value::Array(cache)) = v.get_mut("BuildCache") {
                    cache.iter_mut().for_each(|b| remove(b, &["Parent"]));
                }
            }
            if c >= (1, 44) {
                if let Some(Value::Array(images)) = v.get_mut("Images") {
                    images.iter_mut().for_each(|i| remove(i, &["VirtualSize"]));
                }
            }
        }
    }
}

/// Go's zero time, which Podman writes for an image without a creation time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Networks that are not user-defined in Docker's sense (its default `bridge`, which Podman
/// calls `podman`, and the modes that are no network): no DNS names on them.
const NOT_USER_DEFINED: &[&str] = &["bridge", "podman", "default", "host", "none"];

/// Characters of a short container id.
const SHORT_ID: usize = 12;

fn remove(v: &mut Value, keys: &[&str]) {
    if let Some(o) = v.as_object_mut() {
        keys.iter().for_each(|k| {
            o.remove(*k);
        });
    }
}

fn image_summary_for_client(image: &mut Value, c: (u32, u32)) {
    if c >= (1, 43) {
        for (key, none) in [
            ("RepoTags", "<none>:<none>"),
            ("RepoDigests", "<none>@<none>"),
        ] {
            if let Some(o) = image.as_object_mut() {
                let kept: Vec<Value> = match o.get(key) {
                    Some(Value::Array(a)) => a.iter().filter(|t| *t != none).cloned().collect(),
                    _ => Vec::new(),
                };
                o.insert(key.into(), Value::Array(kept));
            }
        }
    }
    if c >= (1, 44) {
        remove(image, &["VirtualSize"]);
    }
}

fn container_for_client(v: &mut Value, c: (u32, u32)) {
    if c >= (1, 42) {
        if let Some(Value::Object(h)) = v.get_mut("HostConfig") {
            for k in ["KernelMemory", "KernelMemoryTCP"] {
                if h.get(k).and_then(Value::as_i64) == Some(0) {
                    h.remove(k);
                }
            }
        }
    }
    let str_at = |v: &Value, path: &[&str]| {
        path.iter()
            .try_fold(v, |v, k| v.get(*k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = str_at(v, &["Name"]);
    let hostname = str_at(v, &["Config", "Hostname"]);
    let short: String = str_at(v, &["Id"]).chars().take(SHORT_ID).collect();
    let Some(Value::Object(nets)) = v
        .get_mut("NetworkSettings")
        .and_then(|n| n.get_mut("Networks"))
    else {
        return;
    };
    for (net, ep) in nets.iter_mut() {
        let Some(ep) = ep.as_object_mut() else {
            continue;
        };
        let asked: Vec<String> = match ep.get("Aliases") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .filter(|a| *a != short)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let user_defined =
            !NOT_USER_DEFINED.contains(&net.as_str()) && !net.starts_with("container:");
        if c >= (1, 44) {
            let names = user_defined.then(|| dns_names(&name, &asked, &short, &hostname));
            ep.insert("DNSNames".into(), serde_json::json!(names));
        }
        if c >= (1, 45) {
            let asked = (!asked.is_empty()).then_some(asked);
            ep.insert("Aliases".into(), serde_json::json!(asked));
        }
    }
}

/// A container's DNS names on a user-defined network as Docker 1.44 lists them
/// (docs/docker.md, "Docker API version"): its name without the leading `/`, the aliases
/// asked for, its short id and its hostname, each once, in that order (the first one names
/// the address in reverse lookups).
pub fn dns_names(name: &str, aliases: &[String], short_id: &str, hostname: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = std::iter::once(name.strip_prefix('/').unwrap_or(name))
        .chain(aliases.iter().map(String::as_str))
        .chain([short_id, hostname]);
    for n in all {
        if !n.is_empty() && !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
    }
    out
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

    /// Podman 4.3.1's inspect of a container created on the user network `net1` with the alias
    /// `web` (trimmed to what changes), and one on Podman's default network.
    fn podman_container() -> Value {
        json!({"Id": "56c4ee28ed2fde432595034a3a3841c7ac1f661a0208b77d762446c7f3cd9b37",
            "Name": "/s8c", "Config": {"Hostname": "56c4ee28ed2f"},
            "HostConfig": {"NetworkMode": "bridge", "KernelMemory": 0, "KernelMemoryTCP": 0, "Memory": 0},
            "NetworkSettings": {"IPAddress": "", "Networks": {
                "net1": {"Aliases": ["web", "56c4ee28ed2f"], "NetworkID": "net1", "MacAddress": ""},
                "podman": {"Aliases": ["56c4ee28ed2f"], "NetworkID": "podman"}}}})
    }

    #[test]
    fn container_inspect_for_1_44() {
        let mut v = podman_container();
        answer_for_client(Answer::ContainerInspect, &mut v, Some((1, 44)));
        assert_eq!(
            v,
            json!({"Id": "56c4ee28ed2fde432595034a3a3841c7ac1f661a0208b77d762446c7f3cd9b37",
                "Name": "/s8c", "Config": {"Hostname": "56c4ee28ed2f"},
                "HostConfig": {"NetworkMode": "bridge", "Memory": 0},
                "NetworkSettings": {"IPAddress": "", "Networks": {
                    "net1": {"Aliases": ["web", "56c4ee28ed2f"], "NetworkID": "net1", "MacAddress": "",
                             "DNSNames": ["s8c", "web", "56c4ee28ed2f"]},
                    "podman": {"Aliases": ["56c4ee28ed2f"], "NetworkID": "podman", "DNSNames": null}}}})
        );
        // Unversioned is the advertised 1.44.
        let mut u = podman_container();
        answer_for_client(Answer::ContainerInspect, &mut u, None);
        assert_eq!(u, v);
    }

    #[test]
    fn container_inspect_for_1_45_and_older() {
        let mut v = podman_container();
        v["Config"]["Hostname"] = json!("box");
        answer_for_client(Answer::ContainerInspect, &mut v, Some((1, 52)));
        let nets = &v["NetworkSettings"]["Networks"];
        assert_eq!(
            nets["net1"],
            json!({"Aliases": ["web"], "NetworkID": "net1", "MacAddress": "",
                   "DNSNames": ["s8c", "web", "56c4ee28ed2f", "box"]})
        );
        assert_eq!(
            nets["podman"],
            json!({"Aliases": null, "NetworkID": "podman", "DNSNames": null})
        );
        let mut old = podman_container();
        answer_for_client(Answer::ContainerInspect, &mut old, Some((1, 43)));
        let mut want = podman_container();
        remove(
            &mut want["HostConfig"],
            &["KernelMemory", "KernelMemoryTCP"],
        );
        assert_eq!(old, want);
        let mut v41 = podman_container();
        answer_for_client(Answer::ContainerInspect, &mut v41, Some((1, 41)));
        assert_eq!(v41, podman_container());
    }

    #[test]
    fn dns_names_in_order_once() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            dns_names(
                "/db",
                &s(&["db", "postgres"]),
                "0123456789ab",
                "0123456789ab"
            ),
            s(&["db", "postgres", "0123456789ab"])
        );
        assert_eq!(dns_names("", &[], "0123456789ab", ""), s(&["0123456789ab"]));
    }

    #[test]
    fn image_inspect() {
        let podman = json!({"Id": "sha256:1", "Created": "2026-12-02T00:29:21.309972011Z",
            "Container": "", "ContainerConfig": {"Env": []}, "Size": 5, "VirtualSize": 5});
        let mut v44 = podman.clone();
        answer_for_client(Answer::ImageInspect, &mut v44, Some((1, 44)));
        assert_eq!(
            v44,
            json!({"Id": "sha256:1", "Created": "2026-12-02T00:29:21.309972011Z",
                "Container": "", "ContainerConfig": {"Env": []}, "Size": 5})
        );
        let mut v45 = podman.clone();
        v45["Created"] = json!(ZERO_TIME);
        answer_for_client(Answer::ImageInspect, &mut v45, Some((1, 45)));
        assert_eq!(v45, json!({"Id": "sha256:1", "Size": 5}));
        let mut v43 = podman.clone();
        answer_for_client(Answer::ImageInspect, &mut v43, Some((1, 43)));
        assert_eq!(v43, podman);
    }

    #[test]
    fn image_list_and_disk_usage() {
        let list = json!([{"Id": "a", "RepoTags": null, "RepoDigests": [], "Size": 1, "VirtualSize": 1},
            {"Id": "b", "RepoTags": ["<none>:<none>", "x:1"], "RepoDigests": ["<none>@<none>"], "Size": 2, "VirtualSize": 2}]);
        let mut v = list.clone();
        answer_for_client(Answer::ImageList, &mut v, Some((1, 44)));
        assert_eq!(
            v,
            json!([{"Id": "a", "RepoTags": [], "RepoDigests": [], "Size": 1},
                {"Id": "b", "RepoTags": ["x:1"], "RepoDigests": [], "Size": 2}])
        );
        let mut v43 = list.clone();
        answer_for_client(Answer::ImageList, &mut v43, Some((1, 43)));
        assert_eq!(v43[0]["VirtualSize"], 1);
        assert_eq!(v43[0]["RepoTags"], json!([]));
        let df = json!({"LayersSize": 3, "BuilderSize": 0, "Images": [{"Id": "a", "Size": 1, "VirtualSize": 1}],
            "Containers": [], "Volumes": [], "BuildCache": [{"ID": "c", "Parent": "p", "Parents": ["p"]}]});
        let mut d = df.clone();
        answer_for_client(Answer::SystemDf, &mut d, None);
        assert_eq!(
            d,
            json!({"LayersSize": 3, "Images": [{"Id": "a", "Size": 1}],
                "Containers": [], "Volumes": [], "BuildCache": [{"ID": "c", "Parents": ["p"]}]})
        );
    }

    #[test]
    fn answers_rewritten() {
        assert_eq!(
            answer_of("GET", "containers/{}/json", Some((1, 44))),
            Some(Answer::ContainerInspect)
        );
        assert_eq!(
            answer_of("GET", "images/{*}/json", None),
            Some(Answer::ImageInspect)
        );
        assert_eq!(
            answer_of("GET", "images/json", Some((1, 42))),
            Some(Answer::ImageList)
        );
        assert_eq!(answer_of("GET", "system/df", Some((1, 41))), None);
        assert_eq!(answer_of("GET", "containers/{}/json", Some((1, 40))), None);
        assert_eq!(answer_of("GET", "containers/json", Some((1, 44))), None);
        assert_eq!(answer_of("POST", "images/json", Some((1, 44))), None);
    }
}
