//! What the proxy does with a request, decided from its head alone (pure): the route, its
//! query, the target the engine gets, how the body is checked; and the JSON body as the
//! engine gets it.

use super::policy::caps::{self, Rejected, Rules};
use super::policy::{self, json, version, Refused};
use super::request::{self, parse_target, Body, Schema, Special};

/// What the proxy does with a request.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// The target the engine gets.
    pub target: String,
    pub body: Body,
    pub special: Special,
    /// `POST /libpod/containers/create` under `open`: capped as libpod's spec.
    pub libpod_create: bool,
    /// The client's API version, for translating bodies and answers.
    pub client_version: Option<(u32, u32)>,
    /// An answer the proxy reads whole and rewrites for the client's version.
    pub answer: Option<version::Answer>,
    /// The container of a start, checked again before it starts.
    pub container: Option<String>,
    /// A build context to check as it streams ([`tar::TarCheck`]): `Some(dockerfile)`.
    pub context_check: Option<Option<String>>,
}

/// Libpod routes that create containers the proxy cannot cap (under `open`).
pub(super) fn uncappable_libpod(method: &str, segments: &[String]) -> bool {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    method == "POST"
        && matches!(
            s.as_slice(),
            ["libpod", "containers", _, "update"]
                | ["libpod", "play", "kube"]
                | ["libpod", "kube", "play"]
                | ["libpod", "pods", "create"]
                | ["libpod", "build"]
        )
}

/// Decides what to do with a request (pure); the error is the status and message to answer.
pub fn plan(method: &str, raw_target: &str, rules: &Rules) -> Result<Plan, (&'static str, String)> {
    let forbid = |what: Refused| ("403 Forbidden", what.in_pool(&rules.pool_hint).to_string());
    let t =
        parse_target(raw_target).map_err(|why| ("400 Bad Request", format!("podrunner: {why}")))?;
    let contained = rules.policy.is_some();
    if t.is_libpod() {
        if contained {
            return Err(forbid(Refused::Libpod {
                method: method.to_string(),
                path: t.path(),
            }));
        }
        if uncappable_libpod(method, &t.segments) {
            return Err((
                "403 Forbidden",
                format!(
                    "podrunner: {} is not available to jobs: the runner's engine holds every container to the runner's cpus, memory and pids limits, which it can do for the Docker API and `podman --remote create/run` only",
                    t.path()
                ),
            ));
        }
        let segs: Vec<&str> = t.segments.iter().map(String::as_str).collect();
        let create = method == "POST" && segs == ["libpod", "containers", "create"];
        let upgrade = method == "POST"
            && matches!(
                segs.as_slice(),
                ["libpod", "containers", _, "attach"] | ["libpod", "exec", _, "start"]
            );
        return Ok(Plan {
            target: t.encode(None),
            body: if create {
                Body::Json(Schema::Opaque)
            } else {
                Body::Stream
            },
            special: if upgrade {
                Special::Upgrade
            } else {
                Special::None
            },
            libpod_create: create,
            client_version: None,
            answer: None,
            container: None,
            context_check: None,
        });
    }
    let Some(spec) = request::find(method, &t.segments) else {
        if contained {
            return Err(forbid(Refused::Route {
                method: method.to_string(),
                path: t.path(),
            }));
        }
        return Ok(Plan {
            target: t.encode(version::engine_version(t.version)),
            body: Body::Stream,
            special: Special::None,
            libpod_create: false,
            client_version: t.version,
            answer: None,
            container: None,
            context_check: None,
        });
    };
    request::check_query(spec, &t).map_err(forbid)?;
    if t.version.is_some_and(|v| v < version::MIN_CLIENT) {
        return Err((
            "400 Bad Request",
            format!(
                "podrunner: API version {} is too old; the minimum is {}",
                version::text(t.version.unwrap_or_default()),
                version::text(version::MIN_CLIENT)
            ),
        ));
    }
    let mut t = t;
    if contained {
        if spec.special == Special::Build {
            policy::contained::check_build_query(&t.query).map_err(forbid)?;
        }
        if spec.path == "images/create" {
            policy::contained::check_image_create_query(&t.query).map_err(forbid)?;
        }
    }
    if spec.special == Special::Build {
        // Not the budget's cgroup parent: Podman 4.3's builder then runs a step's container in
        // the parent's `conmon` cgroup, next to conmon, and runc refuses it (measured).
        caps::cap_build_query(&mut t, &rules.caps);
    }
    let container =
        matches!(spec.special, Special::Start | Special::CopyIn).then(|| t.segments[1].clone());
    let context_check = (contained && spec.special == Special::Build)
        .then(|| t.param("dockerfile").map(str::to_string));
    Ok(Plan {
        target: t.encode(version::engine_version(t.version)),
        body: spec.body,
        special: spec.special,
        libpod_create: false,
        client_version: t.version,
        answer: version::answer_of(spec.method, spec.path, t.version),
        container,
        context_check,
    })
}

/// The host's real path of a bind source: symlinks (which a job can plant in its work folder)
/// and `..` resolved. `None` when it does not exist.
pub(super) fn resolve_on_host(p: &str) -> Option<String> {
    std::fs::canonicalize(p)
        .ok()
        .map(|r| r.display().to_string())
}

/// A JSON request body as the engine gets it: parsed strictly, translated from the client's
/// API version, checked and capped.
pub fn engine_body(
    raw: &[u8],
    plan: &Plan,
    schema: Schema,
    rules: &Rules,
) -> Result<Vec<u8>, Rejected> {
    let raw = if raw.is_empty() {
        b"{}".as_slice()
    } else {
        raw
    };
    let mut m = json::parse_object(raw).map_err(|why| {
        Rejected::BadBody(format!(
            "podrunner: the request body is not the JSON object the engine expects: {why}"
        ))
    })?;
    if plan.libpod_create {
        caps::rewrite_libpod_create(&mut m, rules);
    } else {
        if schema == Schema::ContainerCreate {
            version::create_body_for_engine(&mut m, plan.client_version);
        }
        caps::rewrite(schema, &mut m, rules, &resolve_on_host)?;
    }
    Ok(serde_json::to_vec(&m).expect("a JSON value serializes"))
}
