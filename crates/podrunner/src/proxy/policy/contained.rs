//! `docker_policy = "contained"` (docs/docker.md, "The proxy's boundary"): what a job may ask
//! of its runner's engine, as allowlists. Every field of every JSON body the proxy lets through
//! is listed here with the values it may take; a field that is not listed is refused, so a field
//! Podman reads that this file does not know (a libpod extension on a Docker route, a field of
//! a newer API) never reaches the engine. Pure: the proxy ([`crate::proxy`]) parses bodies
//! strictly ([`super::json`]) and hands them here.
//!
//! Bind sources are the one place the host's file system is named: a source must be an
//! absolute path that, resolved on the host (symlinks, `..`), lies inside the runner's work
//! folder or one of the runner's mapped files; the engine then gets the resolved path, and a
//! start checks the created container's sources again ([`Policy::check_inspected_mounts`]).

use serde_json::{Map, Value};

mod fields;
use fields::*;
pub use fields::{plain_name, ALLOWED_CAPS, HOST_NETWORK_CAPS};

use super::refusal::{why, Refused, Why};

/// A rule for one field's value.
#[derive(Clone, Copy)]
enum R {
    /// Any value: the field acts inside the container only.
    Any,
    /// Unset: absent, `null`, `false`, `0`, `""`, `[]` or `{}` (the Docker CLI sends every
    /// field, zero when not asked for).
    Zero,
    /// Absent or `null` only (`MaskedPaths: []` would unmask everything).
    Null,
    /// Absent, `null`, or one of these strings.
    Str(&'static [&'static str]),
    /// An object with these fields (each once, exact case).
    Obj(&'static [(&'static str, R)]),
    /// `null` or an array whose elements follow the rule.
    Each(&'static R),
    /// `null` or an object whose values follow the rule (keys are names: labels, ports).
    Values(&'static R),
    /// Checked by a function; `Err` is why.
    Fn(fn(&Value) -> Result<(), Why>),
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// Checks `v` at `path` against `rule`; the error is the refused field and value.
fn check(path: &str, v: &Value, rule: R) -> Result<(), Refused> {
    let bad = |why: Why| {
        Err(Refused::Value {
            field: path.to_string(),
            value: short(v),
            why,
        })
    };
    match rule {
        R::Any => Ok(()),
        R::Zero if is_zero(v) => Ok(()),
        R::Zero => bad("only its empty value is allowed".into()),
        R::Null if v.is_null() => Ok(()),
        R::Null => bad("only null is allowed".into()),
        R::Str(allowed) => match v {
            Value::Null => Ok(()),
            Value::String(s) if allowed.contains(&s.as_str()) => Ok(()),
            _ => bad(why!("allowed: {allowed:?}")),
        },
        R::Obj(fields) => {
            let Some(o) = v.as_object() else {
                return if v.is_null() {
                    Ok(())
                } else {
                    bad("not an object".into())
                };
            };
            for (k, x) in o {
                let Some((_, r)) = fields.iter().find(|(name, _)| name == k) else {
                    return Err(Refused::UnknownField {
                        field: format!("{path}.{k}"),
                    });
                };
                check(&format!("{path}.{k}"), x, *r)?;
            }
            Ok(())
        }
        R::Each(r) => match v {
            Value::Null => Ok(()),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, x)| check(&format!("{path}[{i}]"), x, *r)),
            _ => bad("not a list".into()),
        },
        R::Values(r) => match v {
            Value::Null => Ok(()),
            Value::Object(o) => o
                .iter()
                .try_for_each(|(k, x)| check(&format!("{path}[{k:?}]"), x, *r)),
            _ => bad("not an object".into()),
        },
        R::Fn(f) => f(v).or_else(bad),
    }
}

/// Checks the top-level fields of a body.
fn check_body(
    what: &'static str,
    body: &Map<String, Value>,
    fields: &'static [(&str, R)],
) -> Result<(), Refused> {
    for (k, x) in body {
        let Some((_, r)) = fields.iter().find(|(name, _)| name == k) else {
            return Err(Refused::UnknownBodyField {
                field: k.clone(),
                body: what,
            });
        };
        check(k, x, *r)?;
    }
    Ok(())
}

/// The contained policy of one runner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Host folders and files a job container may bind (and what is below them): the runner's
    /// work folder and the targets of the runner's path map. Canonical paths.
    pub allowed: Vec<String>,
    /// Of those, the folders a job container may bind only read-only: the runner's externals
    /// copy, which later `container:` jobs execute (docs/docker.md, "The externals"). Every bind
    /// of them is made read-only at create ([`Policy::force_read_only`]) and a container that
    /// holds one writable is not started ([`Policy::check_inspected_mounts`]). Canonical paths.
    pub read_only: Vec<String>,
}

/// Whether the host path `real` is one of `roots` or below one.
fn inside_any(roots: &[String], real: &str) -> bool {
    roots.iter().any(|root| {
        real == *root
            || real
                .strip_prefix(root.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// What the caller does with a checked bind source.
pub type Resolve<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Policy {
    /// Whether `path` (as `resolve` sees it on the host) is inside an allowed folder.
    fn bind_allowed(&self, path: &str, resolve: Resolve) -> bool {
        let Some(real) = resolve(path) else {
            return false;
        };
        self.inside(&real)
    }

    fn inside(&self, real: &str) -> bool {
        inside_any(&self.allowed, real)
    }

    /// Makes every bind of a read-only folder in a checked Docker `HostConfig` (sources already
    /// replaced by the host paths that were checked) read-only: `Binds` get the option `ro`
    /// instead of any `rw`/`ro`, `Mounts` of type bind `ReadOnly: true`.
    pub fn force_read_only(&self, h: &mut Map<String, Value>) {
        if self.read_only.is_empty() {
            return;
        }
        if let Some(Value::Array(binds)) = h.get_mut("Binds") {
            for b in binds.iter_mut() {
                let Some(text) = b.as_str() else { continue };
                let parts: Vec<&str> = text.splitn(3, ':').collect();
                let (src, dst, opts) = match parts.as_slice() {
                    [src, dst] => (*src, *dst, ""),
                    [src, dst, opts] => (*src, *dst, *opts),
                    _ => continue,
                };
                if !inside_any(&self.read_only, src) {
                    continue;
                }
                let mut kept: Vec<&str> = opts
                    .split(',')
                    .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
                    .collect();
                kept.push("ro");
                *b = Value::String(format!("{src}:{dst}:{}", kept.join(",")));
            }
        }
        if let Some(Value::Array(mounts)) = h.get_mut("Mounts") {
            for m in mounts.iter_mut().filter_map(Value::as_object_mut) {
                let bind = m.get("Type").and_then(Value::as_str) == Some("bind");
                let source = m.get("Source").and_then(Value::as_str).unwrap_or("");
                if bind && inside_any(&self.read_only, source) {
                    m.insert("ReadOnly".into(), Value::Bool(true));
                }
            }
        }
    }

    fn check_source(&self, field: &str, source: &str, resolve: Resolve) -> Result<(), Refused> {
        if !source.starts_with('/') {
            // Podman resolves relative sources (`./x`, `../x`) against its own working folder.
            if plain_name(source) {
                return Ok(()); // a named volume of the engine
            }
            return Err(Refused::RelativeSource {
                field: field.to_string(),
                path: source.to_string(),
            });
        }
        if self.bind_allowed(source, resolve) {
            Ok(())
        } else {
            Err(Refused::HostPath {
                field: field.to_string(),
                path: source.to_string(),
            })
        }
    }

    /// `HostConfig.Binds` entries, `SRC:DST[:OPTIONS]`.
    fn check_binds(&self, h: &Map<String, Value>, resolve: Resolve) -> Result<(), Refused> {
        let binds = h
            .get("Binds")
            .map(strings)
            .transpose()
            .map_err(Refused::Malformed)?
            .unwrap_or_default();
        for (i, b) in binds.into_iter().enumerate() {
            let field = format!("HostConfig.Binds[{i}]");
            let parts: Vec<&str> = b.split(':').collect();
            let (src, dst, opts) = match parts.as_slice() {
                [src, dst] => (*src, *dst, ""),
                [src, dst, opts] => (*src, *dst, *opts),
                _ => {
                    return Err(Refused::BindSyntax {
                        field,
                        bind: b.to_string(),
                    })
                }
            };
            self.check_source(&field, src, resolve)?;
            let within = |why| Refused::Within {
                field: field.clone(),
                why,
            };
            container_path(dst).map_err(within)?;
            option_list(opts, BIND_OPTIONS).map_err(within)?;
        }
        Ok(())
    }

    fn check_mounts(&self, h: &Map<String, Value>, resolve: Resolve) -> Result<(), Refused> {
        let Some(Value::Array(mounts)) = h.get("Mounts") else {
            return Ok(());
        };
        for (i, m) in mounts.iter().enumerate() {
            let field = format!("HostConfig.Mounts[{i}]");
            let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
            let source = text("Source");
            container_path(text("Target")).map_err(|why| Refused::Within {
                field: format!("{field}.Target"),
                why,
            })?;
            if source.contains([',', '"', '\n', '\r', '\0', '=']) {
                return Err(Refused::MountSource {
                    field,
                    path: source.to_string(),
                });
            }
            match text("Type") {
                "bind" => self.check_source(&format!("{field}.Source"), source, resolve)?,
                "volume" if source.is_empty() || plain_name(source) => {}
                "tmpfs" if source.is_empty() => {}
                t => {
                    return Err(Refused::MountKind {
                        field,
                        path: source.to_string(),
                        kind: t.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// A Docker `POST /containers/create` body (bind sources already translated).
    pub fn check_docker_create(
        &self,
        body: &Map<String, Value>,
        resolve: Resolve,
    ) -> Result<(), Refused> {
        check_body("a container", body, CREATE)?;
        let empty = Map::new();
        let h = body
            .get("HostConfig")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.check_binds(h, resolve)?;
        self.check_mounts(h, resolve)?;
        check_network_caps(h)
    }

    /// `POST /containers/{id}/update`.
    pub fn check_update(&self, body: &Map<String, Value>) -> Result<(), Refused> {
        check_body("an update", body, UPDATE)
    }

    /// `POST /containers/{id}/exec`.
    pub fn check_exec(&self, body: &Map<String, Value>) -> Result<(), Refused> {
        check_body("an exec", body, EXEC).map_err(|e| {
            if e.to_string().starts_with("Privileged") {
                Refused::PrivilegedExec(Box::new(e))
            } else {
                e
            }
        })
    }

    pub fn check_exec_start(&self, body: &Map<String, Value>) -> Result<(), Refused> {
        check_body("an exec start", body, EXEC_START)
    }

    pub fn check_network_create(&self, body: &Map<String, Value>) -> Result<(), Refused> {
        check_body("a network", body, NETWORK_CREATE)
    }

    pub fn check_network_connect(&self, body: &Map<String, Value>) -> Result<(), Refused> {
        check_body("a network connect", body, NETWORK_CONNECT)
    }

    pub fn check_network_disconnect(&self, body: &Map<String, Value>) -> Result<(), Refused> {
        check_body("a network disconnect", body, NETWORK_DISCONNECT)
    }

    pub fn check_volume_create(&self, body: &Map<String, Value>) -> Result<(), Refused> {
        check_body("a volume", body, VOLUME_CREATE)
    }

    /// `PUT /containers/{id}/archive` into container `inspect` (`GET /containers/{id}/json`):
    /// Podman copies into a bind mount's host source even when the bind is read-only, so a
    /// container that binds a read-only folder, or takes another's mounts (`VolumesFrom`,
    /// whose mounts Podman lists only once started), gets nothing copied in.
    pub fn check_copy_in(&self, inspect: &Value) -> Result<(), Refused> {
        if self.read_only.is_empty() {
            return Ok(());
        }
        let h = &inspect["HostConfig"];
        let from = h["VolumesFrom"].as_array().is_some_and(|v| !v.is_empty());
        let binds = h["Binds"].as_array().into_iter().flatten().filter_map(|b| {
            b.as_str()
                .map(|b| b.split(':').next().unwrap_or("").to_string())
        });
        let mounts = [&inspect["Mounts"], &h["Mounts"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|m| m["Source"].as_str().map(str::to_string));
        let mut sources = binds.chain(mounts);
        if from || sources.any(|s| inside_any(&self.read_only, &s)) {
            return Err(Refused::CopyIn);
        }
        Ok(())
    }

    /// A created container's bind sources as the engine holds them (`GET /containers/{id}/json`
    /// `Mounts`), checked again before it starts: each must still be the path it was when
    /// checked at create (no symlink planted since: resolving it gives itself) and allowed.
    pub fn check_inspected_mounts(&self, inspect: &Value, resolve: Resolve) -> Result<(), Refused> {
        let Some(mounts) = inspect.get("Mounts").and_then(Value::as_array) else {
            return Ok(());
        };
        for m in mounts {
            if m.get("Type").and_then(Value::as_str) != Some("bind") {
                continue;
            }
            let source = m.get("Source").and_then(Value::as_str).unwrap_or("");
            let real = resolve(source);
            if real.as_deref() != Some(source) || !self.inside(source) {
                return Err(Refused::SourceChanged {
                    path: source.to_string(),
                    now: real.unwrap_or_else(|| "missing".to_string()),
                });
            }
            // `RW` is what the engine will mount; `VolumesFrom` with `:rw` can make a
            // read-only bind of another container writable.
            if inside_any(&self.read_only, source) && m.get("RW") != Some(&Value::Bool(false)) {
                return Err(Refused::WritableReadOnly {
                    path: source.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// A container on the host's network may not add capabilities that act on it.
fn check_network_caps(h: &Map<String, Value>) -> Result<(), Refused> {
    if h.get("NetworkMode").and_then(Value::as_str) != Some("host") {
        return Ok(());
    }
    let caps = h
        .get("CapAdd")
        .map(strings)
        .transpose()
        .map_err(Refused::Malformed)?
        .unwrap_or_default();
    if let Some(c) = caps
        .into_iter()
        .find(|c| HOST_NETWORK_CAPS.contains(&cap_name(c).as_str()))
    {
        return Err(Refused::HostNetworkCap { cap: c.to_string() });
    }
    if let Some(k) = h
        .get("Sysctls")
        .and_then(Value::as_object)
        .and_then(|o| o.keys().find(|k| k.starts_with("net.")))
    {
        return Err(Refused::HostNetworkSysctl { key: k.clone() });
    }
    Ok(())
}

/// Query values of `POST /build` that podrunner checks (names are checked by the route).
pub fn check_build_query(query: &[(String, String)]) -> Result<(), Refused> {
    for (k, v) in query {
        let ok = match k.as_str() {
            "networkmode" => matches!(v.as_str(), "" | "default" | "bridge" | "host" | "none"),
            // A remote context would reach the engine unchecked (proxy/policy/tar.rs).
            "remote" => v.is_empty(),
            "dockerfile" => {
                !v.starts_with('/') && !v.split('/').any(|p| p == "..") && !v.ends_with(".in")
                // Podman runs `*.in` through cpp on the host
            }
            "outputs" | "cgroupparent" | "session" | "buildid" => v.is_empty(),
            "isolation" => matches!(v.as_str(), "" | "default"),
            _ => true,
        };
        if !ok {
            return Err(Refused::BuildParameter {
                name: k.clone(),
                value: v.clone(),
            });
        }
    }
    Ok(())
}

/// `POST /images/create`: an import reads the request body (`fromSrc=-`) or a URL, never a
/// path on the host.
pub fn check_image_create_query(query: &[(String, String)]) -> Result<(), Refused> {
    for (k, v) in query {
        if k == "fromSrc" && !(v == "-" || v.starts_with("https://") || v.starts_with("http://")) {
            return Err(Refused::ImportSource { value: v.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
