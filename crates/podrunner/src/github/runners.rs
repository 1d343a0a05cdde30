//! The runner endpoints of the REST API: registration tokens, runner groups, JIT configs,
//! listing, probing and deleting runners, and the server check for GHES.

use super::diagnose::{self, Answer};
use super::model::{error_message, JitRequest, JitResponse};
use super::{
    ghes, parse_runner_list, Client, Error, JitConfig, Probe, Runner, RunnerGroup, Secret,
};
use super::{MAX_PAGES, PER_PAGE};
use crate::config::names::Scope;
use reqwest::Method;
use serde::Deserialize;

impl Client {
    /// POST `/SCOPE/actions/runners/registration-token`: a token valid one hour, which the
    /// runner-registration exchange of scale sets takes (github/scaleset/).
    pub async fn registration_token(&self, scope: &Scope) -> Result<Secret, Error> {
        #[derive(Deserialize)]
        struct T {
            token: String,
        }
        let url = format!(
            "{}/{}/actions/runners/registration-token",
            self.base,
            scope.api_path()
        );
        let answer = self.send(Method::POST, &url, None, scope).await?;
        if !answer.0.is_success() {
            return Err(self.fail(scope, &answer, &scope.to_string()));
        }
        let t: T = serde_json::from_slice(&answer.2).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Secret::new(t.token))
    }

    /// The id of the runner group `name` of `scope` (organization or enterprise), looked up
    /// once and remembered; names compare without regard to case, as on GitHub.
    pub async fn runner_group_id(&self, scope: &Scope, name: &str) -> Result<u64, Error> {
        let key = (scope.api_path(), name.to_lowercase());
        if let Some(id) = self.groups.lock().expect("groups lock").get(&key) {
            return Ok(*id);
        }
        let groups = self.list_runner_groups(scope).await?;
        let found = groups
            .iter()
            .find(|g| g.name.to_lowercase() == key.1)
            .map(|g| g.id);
        match found {
            Some(id) => {
                self.groups.lock().expect("groups lock").insert(key, id);
                Ok(id)
            }
            None => Err(Error::NoSuchRunnerGroup {
                name: name.to_string(),
                scope: scope.to_string(),
                existing: groups.into_iter().map(|g| g.name).collect(),
            }),
        }
    }

    /// GET `/SCOPE/actions/runner-groups`, every page (organizations and enterprises).
    pub async fn list_runner_groups(&self, scope: &Scope) -> Result<Vec<RunnerGroup>, Error> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            runner_groups: Vec<RunnerGroup>,
        }
        let mut url = format!(
            "{}/{}/actions/runner-groups?per_page={PER_PAGE}",
            self.base,
            scope.api_path()
        );
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.send(Method::GET, &url, None, scope).await?;
            if !answer.0.is_success() {
                return Err(self.fail(scope, &answer, &format!("the runner groups of {scope}")));
            }
            let page: Page =
                serde_json::from_slice(&answer.2).map_err(|e| Error::Decode(e.to_string()))?;
            all.extend(page.runner_groups);
            match self.next_page(&answer.1) {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(all)
    }

    /// Asks the server for its version (GHES answers with `X-GitHub-Enterprise-Version` on
    /// every response; github.com does not) and refuses a GHES that lacks one of `needs`
    /// (docs/ghes.md). `Ok(None)` on github.com.
    pub async fn check_server(
        &self,
        scope: &Scope,
        needs: &[ghes::Feature],
    ) -> Result<Option<String>, Error> {
        let url = format!("{}/meta", self.base);
        let answer = self.send(Method::GET, &url, None, scope).await?;
        let version = answer
            .1
            .get(ghes::VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(v) = &version {
            ghes::require_all(v, needs).map_err(Error::Unsupported)?;
        }
        Ok(version)
    }

    /// POST `/SCOPE/actions/runners/generate-jitconfig`.
    pub async fn generate_jitconfig(
        &self,
        scope: &Scope,
        name: &str,
        runner_group_id: u64,
        labels: &[String],
        work_folder: Option<&str>,
    ) -> Result<JitConfig, Error> {
        let url = format!(
            "{}/{}/actions/runners/generate-jitconfig",
            self.base,
            scope.api_path()
        );
        let body = serde_json::to_value(JitRequest {
            name,
            runner_group_id,
            labels,
            work_folder,
        })
        .expect("request serializes");
        let answer = self.send(Method::POST, &url, Some(&body), scope).await?;
        match answer.0.as_u16() {
            201 | 200 => {
                let r: JitResponse =
                    serde_json::from_slice(&answer.2).map_err(|e| Error::Decode(e.to_string()))?;
                Ok(JitConfig {
                    runner: r.runner,
                    encoded: Secret::new(r.encoded_jit_config),
                })
            }
            409 => Err(Error::Conflict(name.to_string())),
            404 => match self
                .server_version()
                .and_then(|v| ghes::require(&v, ghes::Feature::JitRunners).err())
            {
                Some(old) => Err(Error::Unsupported(old)),
                None => Err(self.fail(
                    scope,
                    &answer,
                    &format!("{scope} (does it exist, and can the credential see it?)"),
                )),
            },
            _ => Err(self.fail(
                scope,
                &answer,
                &format!("{scope} (does it exist, and can the credential see it?)"),
            )),
        }
    }

    /// GET `/SCOPE/actions/runners`, following every `Link: rel="next"`.
    pub async fn list_runners(&self, scope: &Scope) -> Result<Vec<Runner>, Error> {
        let mut url = format!(
            "{}/{}/actions/runners?per_page={PER_PAGE}",
            self.base,
            scope.api_path()
        );
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.send(Method::GET, &url, None, scope).await?;
            if !answer.0.is_success() {
                return Err(self.fail(scope, &answer, &scope.to_string()));
            }
            all.extend(parse_runner_list(&answer.2)?);
            match self.next_page(&answer.1) {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(all)
    }

    /// GET `/SCOPE/actions/runners?per_page=1` for `podrunner doctor`: the final status, the
    /// `x-oauth-scopes` header (classic tokens only), GitHub's message and, for a refusal,
    /// its diagnosis. 401, 403 and 404 come back as answers, not errors; transport failures,
    /// rate limits and App failures (no installation, a rejected JWT) are errors.
    pub async fn probe_runners(&self, scope: &Scope) -> Result<Probe, Error> {
        let url = format!(
            "{}/{}/actions/runners?per_page=1",
            self.base,
            scope.api_path()
        );
        let answer = self.send(Method::GET, &url, None, scope).await?;
        let (status, headers, bytes) = &answer;
        let refused = Answer::from_headers(status.as_u16(), error_message(bytes), headers);
        Ok(Probe {
            status: status.as_u16(),
            oauth_scopes: refused.oauth_scopes.clone(),
            message: if status.is_success() {
                String::new()
            } else {
                refused.message.clone()
            },
            diagnosis: (!status.is_success()).then(|| {
                diagnose::diagnose(self.creds.kind(scope), scope, &refused).on(&self.base)
            }),
            server_version: headers
                .get(ghes::VERSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        })
    }

    /// GET `/SCOPE/actions/runners/{id}`; `None` when it does not exist.
    pub async fn get_runner(&self, scope: &Scope, id: u64) -> Result<Option<Runner>, Error> {
        let url = format!("{}/{}/actions/runners/{id}", self.base, scope.api_path());
        let answer = self.send(Method::GET, &url, None, scope).await?;
        match answer.0.as_u16() {
            200 => serde_json::from_slice(&answer.2)
                .map(Some)
                .map_err(|e| Error::Decode(e.to_string())),
            404 => Ok(None),
            _ => Err(self.fail(scope, &answer, &format!("runner {id}"))),
        }
    }

    /// DELETE `/SCOPE/actions/runners/{id}`. `Ok(true)` deleted, `Ok(false)` already gone,
    /// [`Error::StillBusy`] on 422.
    pub async fn delete_runner(&self, scope: &Scope, id: u64) -> Result<bool, Error> {
        let url = format!("{}/{}/actions/runners/{id}", self.base, scope.api_path());
        let answer = self.send(Method::DELETE, &url, None, scope).await?;
        match answer.0.as_u16() {
            204 | 200 => Ok(true),
            404 => Ok(false),
            422 => Err(Error::StillBusy(id)),
            _ => Err(self.fail(scope, &answer, &format!("runner {id}"))),
        }
    }
}
