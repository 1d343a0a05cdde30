//! What a request asks for, read the one way the proxy and the engine can agree on
//! (docs/docker.md, "The proxy's boundary"): an origin-form target (`/path?query`, never
//! `http://host/path`), an optional Docker version prefix of exactly the shape `/vMAJOR.MINOR`
//! (Podman accepts any `/v[0-9][0-9A-Za-z.-]*`; the proxy takes the plain numeric subset and
//! refuses the rest instead of guessing), path segments of plain characters (no `%`, `.`, `..`
//! or empty segments the engine's router would clean up differently), and a query whose names
//! are decoded (`%74=x` is `t=x`), checked against the route's allowlist and sent on
//! re-encoded, so the engine reads exactly the parameters that were checked.
//!
//! [`ROUTES`] is the allowlist: the Docker API routes the Docker CLI, Compose and GitHub's
//! runner use (docs/github-runner.md, "Docker commands the runner runs"), by method. Anything
//! else is refused under `docker_policy = "contained"`.

/// A parsed request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The Docker API version of the prefix (`/v1.44/...` → `(1, 44)`); `None` without one or
    /// with a libpod one.
    pub version: Option<(u32, u32)>,
    /// The prefix's version as sent, when it has the libpod shape `MAJOR.MINOR.PATCH`.
    pub libpod_version: Option<String>,
    /// Path segments after the version: `/v1.44/containers/abc/start` → `containers/abc/start`.
    pub segments: Vec<String>,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
}

/// Characters of a path segment: container and network names, image references
/// (`registry:5000/name:tag@sha256:...` spread over segments), ids.
fn segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '@' | '+')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Why a request target is not accepted (a 400 answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadTarget {
    #[error("only origin-form request targets (/path?query) are accepted")]
    NotOriginForm,
    #[error("a request target with a fragment")]
    Fragment,
    #[error("the API version prefix /v{0} is not /vMAJOR.MINOR")]
    Version(String),
    #[error("the path segment {0:?} is not accepted")]
    Segment(String),
    #[error("a query with ';'")]
    Semicolon,
    #[error("a bad escape in the query part {0:?}")]
    Escape(String),
    #[error("the query part {0:?} is not UTF-8")]
    NotUtf8(String),
}

/// Decodes a query name or value as Go's `url.ParseQuery` does (`+` is a space, `%XX` a byte),
/// refusing what Go would refuse (a `%` without two hex digits) and anything not UTF-8.
fn decode(s: &str) -> Result<String, BadTarget> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(BadTarget::Escape(s.to_string()));
                };
                out.push(h << 4 | l);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| BadTarget::NotUtf8(s.to_string()))
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| Some((major.parse().ok()?, minor.parse().ok()?)))?
}

/// Parses a request target; the error says what is wrong with it.
pub fn parse_target(raw: &str) -> Result<Target, BadTarget> {
    if !raw.starts_with('/') {
        return Err(BadTarget::NotOriginForm);
    }
    if raw.contains('#') {
        return Err(BadTarget::Fragment);
    }
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    let mut segments: Vec<&str> = path[1..].split('/').collect();
    if segments.last() == Some(&"") && segments.len() > 1 {
        segments.pop();
    }
    let mut version = None;
    let mut libpod_version = None;
    if let Some(v) = segments.first().and_then(|s| s.strip_prefix('v')) {
        if v.starts_with(|c: char| c.is_ascii_digit()) {
            let libpod = segments.get(1) == Some(&"libpod");
            match v.rsplit_once('.') {
                Some((mm, patch))
                    if libpod
                        && parse_version(mm).is_some()
                        && !patch.is_empty()
                        && patch.len() <= 4
                        && patch.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    libpod_version = Some(v.to_string());
                }
                _ => {
                    version =
                        Some(parse_version(v).ok_or_else(|| BadTarget::Version(v.to_string()))?);
                }
            }
            segments.remove(0);
        }
    }
    for s in &segments {
        if s.is_empty() || *s == "." || *s == ".." || !s.chars().all(segment_char) {
            return Err(BadTarget::Segment(s.to_string()));
        }
    }
    let mut pairs = Vec::new();
    if query.contains(';') {
        return Err(BadTarget::Semicolon);
    }
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    Ok(Target {
        version,
        libpod_version,
        segments: segments.into_iter().map(str::to_string).collect(),
        query: pairs,
    })
}

impl Target {
    /// The target as the engine gets it, with `version` as its prefix and the query re-encoded.
    pub fn encode(&self, version: Option<(u32, u32)>) -> String {
        let mut out = match (version, &self.libpod_version) {
            (Some((a, b)), _) => format!("/v{a}.{b}"),
            (None, Some(v)) => format!("/v{v}"),
            (None, None) => String::new(),
        };
        for s in &self.segments {
            out.push('/');
            out.push_str(s);
        }
        if self.segments.is_empty() {
            out.push('/');
        }
        if !self.query.is_empty() {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.query {
                q.append_pair(k, v);
            }
            out.push('?');
            out.push_str(&q.finish());
        }
        out
    }

    /// The value of query parameter `name` (names are unique once [`check_query`] passed).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets parameter `name` in place, or adds it at the end.
    pub fn set_param(&mut self, name: &str, value: String) {
        match self.query.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.query.push((name.to_string(), value)),
        }
    }

    /// Whether this is a libpod (`podman --remote`) request.
    pub fn is_libpod(&self) -> bool {
        self.segments.first().map(String::as_str) == Some("libpod")
    }

    /// The path without version and query, for messages and logs.
    pub fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// How a route's body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body: one sent anyway is refused.
    None,
    /// A JSON object, read whole (at most [`super::MAX_JSON_BODY`]), parsed strictly and checked.
    Json(Schema),
    /// A stream passed on as it comes (build context, image tarball, archive).
    Stream,
}

/// Which check a JSON body gets ([`super::policy::contained`], [`super::policy::caps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    ContainerCreate,
    ContainerUpdate,
    ExecCreate,
    ExecStart,
    NetworkCreate,
    NetworkConnect,
    NetworkDisconnect,
    VolumeCreate,
    /// Parsed strictly, passed on unchanged: `POST /auth` (credentials for a registry),
    /// `POST /commit` (the new image's config).
    Opaque,
}

/// What happens around the forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    None,
    /// Attach and exec start: may switch to a raw stream, only on a real `101`.
    Upgrade,
    /// Start and restart: the container's bind sources are checked again first, and the
    /// start is retried after the firewall race ([`super::transient_setup_failure`]).
    Start,
    /// `GET /_ping`, `GET /version`: answered with the API version the proxy speaks.
    Version,
    /// `POST /build`: query values checked and resources capped.
    Build,
    /// `PUT /containers/{id}/archive`: Podman writes through a read-only bind to its host
    /// source, so a container that binds a read-only folder gets nothing copied in.
    CopyIn,
}

/// One allowed route.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    pub method: &'static str,
    /// Segments; `{}` is one segment (an id or name), `{*}` one or more (an image reference).
    pub path: &'static str,
    /// Query parameter names accepted (exact case, each at most once, except [`REPEATABLE`]).
    pub query: &'static [&'static str],
    pub body: Body,
    pub special: Special,
}

/// Query parameters that may appear more than once: `docker build -t a -t b`.
pub const REPEATABLE: &[&str] = &["t"];

const fn spec(
    method: &'static str,
    path: &'static str,
    query: &'static [&'static str],
    body: Body,
    special: Special,
) -> Spec {
    Spec {
        method,
        path,
        query,
        body,
        special,
    }
}

use super::policy::Refused;
use Body::{Json, Stream};
use Special as S;

const LOGS: &[&str] = &[
    "follow",
    "stdout",
    "stderr",
    "since",
    "until",
    "timestamps",
    "tail",
    "details",
];
const ATTACH: &[&str] = &["detachKeys", "logs", "stream", "stdin", "stdout", "stderr"];
const FILTERS: &[&str] = &["filters"];
const BUILD: &[&str] = &[
    "t",
    "dockerfile",
    "extrahosts",
    "remote",
    "q",
    "nocache",
    "cachefrom",
    "pull",
    "rm",
    "forcerm",
    "memory",
    "memswap",
    "cpushares",
    "cpusetcpus",
    "cpusetmems",
    "cpuperiod",
    "cpuquota",
    "buildargs",
    "shmsize",
    "squash",
    "labels",
    "networkmode",
    "platform",
    "target",
    "outputs",
    "version",
    "cgroupparent",
    "ulimits",
    "isolation",
    "session",
    "buildid",
];

/// The Docker API routes a job may use (unversioned; each also with a `/vX.Y` prefix).
pub const ROUTES: &[Spec] = &[
    spec("GET", "_ping", &[], Body::None, S::Version),
    spec("HEAD", "_ping", &[], Body::None, S::Version),
    spec("GET", "version", &[], Body::None, S::Version),
    spec("GET", "info", &[], Body::None, S::None),
    spec(
        "GET",
        "events",
        &["since", "until", "filters"],
        Body::None,
        S::None,
    ),
    spec("GET", "system/df", &["type"], Body::None, S::None),
    spec("POST", "auth", &[], Json(Schema::Opaque), S::None),
    // Containers.
    spec(
        "GET",
        "containers/json",
        &["all", "limit", "size", "filters", "since", "before"],
        Body::None,
        S::None,
    ),
    spec(
        "POST",
        "containers/create",
        &["name", "platform"],
        Json(Schema::ContainerCreate),
        S::None,
    ),
    spec("POST", "containers/prune", FILTERS, Body::None, S::None),
    spec("GET", "containers/{}/json", &["size"], Body::None, S::None),
    spec(
        "GET",
        "containers/{}/top",
        &["ps_args"],
        Body::None,
        S::None,
    ),
    spec("GET", "containers/{}/logs", LOGS, Body::None, S::None),
    spec("GET", "containers/{}/changes", &[], Body::None, S::None),
    spec("GET", "containers/{}/export", &[], Body::None, S::None),
    spec(
        "GET",
        "containers/{}/stats",
        &["stream", "one-shot"],
        Body::None,
        S::None,
    ),
    spec(
        "POST",
        "containers/{}/resize",
        &["h", "w"],
        Body::None,
        S::None,
    ),
    spec(
        "POST",
        "containers/{}/start",
        &["detachKeys"],
        Body::None,
        S::Start,
    ),
    spec(
        "POST",
        "containers/{}/stop",
        &["t", "signal"],
        Body::None,
        S::None,
    ),
    spec(
        "POST",
        "containers/{}/restart",
        &["t", "signal"],
        Body::None,
        S::Start,
    ),
    spec(
        "POST",
        "containers/{}/kill",
        &["signal"],
        Body::None,
        S::None,
    ),
    spec(
        "POST",
        "containers/{}/update",
        &[],
        Json(Schema::ContainerUpdate),
        S::None,
    ),
    spec(
        "POST",
        "containers/{}/rename",
        &["name"],
        Body::None,
        S::None,
    ),
    spec("POST", "containers/{}/pause", &[], Body::None, S::None),
    spec("POST", "containers/{}/unpause", &[], Body::None, S::None),
    spec(
        "POST",
        "containers/{}/attach",
        ATTACH,
        Body::None,
        S::Upgrade,
    ),
    spec(
        "POST",
        "containers/{}/wait",
        &["condition"],
        Body::None,
        S::None,
    ),
    spec(
        "DELETE",
        "containers/{}",
        &["v", "force", "link"],
        Body::None,
        S::None,
    ),
    spec(
        "HEAD",
        "containers/{}/archive",
        &["path"],
        Body::None,
        S::None,
    ),
    spec(
        "GET",
        "containers/{}/archive",
        &["path"],
        Body::None,
        S::None,
    ),
    spec(
        "PUT",
        "containers/{}/archive",
        &["path", "noOverwriteDirNonDir", "copyUIDGID"],
        Stream,
        S::CopyIn,
    ),
    spec(
        "POST",
        "containers/{}/exec",
        &[],
        Json(Schema::ExecCreate),
        S::None,
    ),
    spec(
        "POST",
        "exec/{}/start",
        &[],
        Json(Schema::ExecStart),
        S::Upgrade,
    ),
    spec("POST", "exec/{}/resize", &["h", "w"], Body::None, S::None),
    spec("GET", "exec/{}/json", &[], Body::None, S::None),
    // Images and builds.
    spec(
        "GET",
        "images/json",
        &["all", "filters", "shared-size", "digests", "manifests"],
        Body::None,
        S::None,
    ),
    spec("POST", "build", BUILD, Stream, S::Build),
    spec(
        "POST",
        "build/prune",
        &["keep-storage", "all", "filters"],
        Body::None,
        S::None,
    ),
    spec(
        "POST",
        "images/create",
        &[
            "fromImage",
            "fromSrc",
            "repo",
            "tag",
            "message",
            "changes",
            "platform",
        ],
        Stream,
        S::None,
    ),
    spec(
        "GET",
        "images/search",
        &["term", "limit", "filters"],
        Body::None,
        S::None,
    ),
    spec("POST", "images/prune", FILTERS, Body::None, S::None),
    spec("GET", "images/get", &["names"], Body::None, S::None),
    spec("POST", "images/load", &["quiet"], Stream, S::None),
    spec(
        "POST",
        "commit",
        &[
            "container",
            "repo",
            "tag",
            "comment",
            "author",
            "pause",
            "changes",
        ],
        Json(Schema::Opaque),
        S::None,
    ),
    spec("GET", "images/{*}/json", &[], Body::None, S::None),
    spec("GET", "images/{*}/history", &[], Body::None, S::None),
    spec("GET", "images/{*}/get", &[], Body::None, S::None),
    spec(
        "POST",
        "images/{*}/push",
        &["tag", "platform"],
        Body::None,
        S::None,
    ),
    spec(
        "POST",
        "images/{*}/tag",
        &["repo", "tag"],
        Body::None,
        S::None,
    ),
    spec(
        "DELETE",
        "images/{*}",
        &["force", "noprune"],
        Body::None,
        S::None,
    ),
    // Networks (compose and the runner's job network).
    spec("GET", "networks", FILTERS, Body::None, S::None),
    spec(
        "POST",
        "networks/create",
        &[],
        Json(Schema::NetworkCreate),
        S::None,
    ),
    spec("POST", "networks/prune", FILTERS, Body::None, S::None),
    spec(
        "GET",
        "networks/{}",
        &["verbose", "scope"],
        Body::None,
        S::None,
    ),
    spec("DELETE", "networks/{}", &[], Body::None, S::None),
    spec(
        "POST",
        "networks/{}/connect",
        &[],
        Json(Schema::NetworkConnect),
        S::None,
    ),
    spec(
        "POST",
        "networks/{}/disconnect",
        &[],
        Json(Schema::NetworkDisconnect),
        S::None,
    ),
    // Volumes.
    spec("GET", "volumes", FILTERS, Body::None, S::None),
    spec(
        "POST",
        "volumes/create",
        &[],
        Json(Schema::VolumeCreate),
        S::None,
    ),
    spec("POST", "volumes/prune", FILTERS, Body::None, S::None),
    spec("GET", "volumes/{}", &[], Body::None, S::None),
    spec("DELETE", "volumes/{}", &["force"], Body::None, S::None),
];

fn matches(pattern: &str, segments: &[String]) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    match pat.iter().position(|p| *p == "{*}") {
        None => {
            pat.len() == segments.len()
                && pat
                    .iter()
                    .zip(segments)
                    .all(|(p, s)| *p == "{}" || *p == s.as_str())
        }
        Some(star) => {
            let tail = pat.len() - star - 1;
            segments.len() > star + tail
                && pat[..star]
                    .iter()
                    .zip(segments)
                    .all(|(p, s)| *p == s.as_str())
                && pat[star + 1..]
                    .iter()
                    .zip(&segments[segments.len() - tail..])
                    .all(|(p, s)| *p == s.as_str())
        }
    }
}

/// The allowed route for `method` and `segments`. Literal routes win over ones with a
/// placeholder (`images/json` is not the image `json`).
pub fn find(method: &str, segments: &[String]) -> Option<&'static Spec> {
    let literal = ROUTES
        .iter()
        .filter(|s| !s.path.contains('{'))
        .find(|s| s.method == method && matches(s.path, segments));
    literal.or_else(|| {
        ROUTES
            .iter()
            .find(|s| s.method == method && matches(s.path, segments))
    })
}

/// Checks the query's names against the route: known, exact case, once.
pub fn check_query(spec: &Spec, t: &Target) -> Result<(), Refused> {
    let mut seen = std::collections::HashSet::new();
    for (k, _) in &t.query {
        if !spec.query.contains(&k.as_str()) {
            return Err(Refused::QueryParameter {
                name: k.clone(),
                method: spec.method.to_string(),
                path: t.path(),
            });
        }
        if !seen.insert(k.as_str()) && !REPEATABLE.contains(&k.as_str()) {
            return Err(Refused::QueryRepeated { name: k.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
