//! Credentials against the fake GitHub (issue 14): a GitHub App with several installations,
//! its tokens cached, renewed and replaced after a 401; enterprise pools with a classic token;
//! runner groups by name; a GitHub Enterprise Server's version; the diagnosis a refused call
//! carries; credentials podrunner cannot use refused by `config check`.

mod common;

use common::rsa_key_pair;
use fake_github::auth::Registry;
use fake_github::FakeGithub;
use podrunner::config::names::Scope;
use podrunner::github::auth::{App, Credentials};
use podrunner::github::ghes::Feature;
use podrunner::github::{Client, Error, Secret};
use std::time::Duration;

const TOKEN: &str = "ghp_credentialsTEST";
const RUNNERS: &[(&str, &str)] = &[("organization_self_hosted_runners", "write")];

fn labels() -> Vec<String> {
    vec!["self-hosted".into(), "linux".into(), "x64".into()]
}

async fn app_client(gh: &FakeGithub, installation_id: Option<u64>) -> Client {
    let (private, public) = rsa_key_pair();
    gh.add_app(11, "Iv23liCRED", &public);
    let app = App::new("Iv23liCRED", &private, installation_id).unwrap();
    Client::with_credentials(&gh.api_url(), Credentials::app(app, None)).unwrap()
}

#[tokio::test]
async fn app_with_two_installations_caches_renews_and_retries_once() {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let c = app_client(&gh, None).await;
    let alpha_id = gh.install_app(11, "alpha", RUNNERS);
    let beta_id = gh.install_app(11, "beta", RUNNERS);
    let (alpha, beta) = (
        Scope::organization("alpha").unwrap(),
        Scope::organization("beta").unwrap(),
    );
    for i in 0..5 {
        c.generate_jitconfig(&alpha, &format!("a{i}"), 1, &labels(), None)
            .await
            .unwrap();
        c.generate_jitconfig(&beta, &format!("b{i}"), 1, &labels(), None)
            .await
            .unwrap();
    }
    assert_eq!(
        gh.installation_tokens_issued(),
        2,
        "one token per installation, cached"
    );
    assert_eq!(
        c.credentials()
            .app_ref()
            .unwrap()
            .installations_with_tokens(),
        vec![alpha_id.min(beta_id), alpha_id.max(beta_id)]
    );
    // Every token the client holds expires at once: the next call gets a 401, renews and
    // succeeds.
    gh.advance_clock(Duration::from_secs(3600));
    assert_eq!(c.list_runners(&alpha).await.unwrap().len(), 5);
    assert_eq!(gh.installation_tokens_issued(), 3);
    // Short-lived tokens are renewed before they run out, without a 401. 4 s tokens (at least
    // 3 s, as GitHub's expiry is in whole seconds) leave a loaded machine time to use each
    // fresh one; after 3.1 s less than a quarter of any such token's life is left.
    gh.set_installation_token_ttl(Duration::from_secs(4));
    c.list_runners(&beta).await.unwrap();
    let issued = gh.installation_tokens_issued();
    let refused_before = gh.stats().api_calls;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    c.list_runners(&beta).await.unwrap();
    assert_eq!(
        gh.installation_tokens_issued(),
        issued + 1,
        "renewed at a quarter of its life"
    );
    assert_eq!(
        gh.stats().api_calls,
        refused_before + 2,
        "one token request and one list: no 401"
    );
    // An organization without the App: the error says to install it.
    let e = c
        .list_runners(&Scope::organization("gamma").unwrap())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("the GitHub App is not installed on org gamma\n  fix: install it"),
        "{e}"
    );
    // Permissions the installation lacks: diagnosed.
    gh.with_state(|st| {
        st.auth
            .installations
            .get_mut(&beta_id)
            .unwrap()
            .permissions
            .clear()
    });
    gh.advance_clock(Duration::from_secs(3600));
    let e = c
        .generate_jitconfig(&beta, "nope", 1, &labels(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");
    assert!(e.to_string().starts_with("the GitHub App's installation lacks the organization permission Self-hosted runners: write for org beta"), "{e}");
    // A fixed installation id is used without a lookup (a new key for the App: the old
    // client is done).
    let fixed = app_client(&gh, Some(alpha_id)).await;
    let lookups = gh
        .stats()
        .by_route
        .get("GET installation")
        .copied()
        .unwrap_or(0);
    fixed.list_runners(&alpha).await.unwrap();
    assert_eq!(
        gh.stats()
            .by_route
            .get("GET installation")
            .copied()
            .unwrap_or(0),
        lookups
    );
    gh.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_is_diagnosed() {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let (_, public) = rsa_key_pair();
    let (other, _) = rsa_key_pair();
    gh.add_app(12, "Iv23liX", &public);
    gh.install_app(12, "alpha", RUNNERS);
    let c = Client::with_credentials(
        &gh.url(),
        Credentials::app(App::new("12", &other, None).unwrap(), None),
    )
    .unwrap();
    let e = c
        .list_runners(&Scope::organization("alpha").unwrap())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("GitHub rejected the GitHub App's credentials (GitHub answered 401"),
        "{text}"
    );
    assert!(
        text.contains(
            "fix: check that app_id (or client_id) is the App the private key belongs to"
        ),
        "{text}"
    );
    gh.shutdown().await;
}

#[tokio::test]
async fn enterprise_pools_and_runner_groups_by_name() {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    gh.add_token(
        "ghp_enterprise",
        Registry::classic(&["manage_runners:enterprise"]),
    );
    let c = Client::new(&gh.url(), Secret::new("ghp_enterprise".into())).unwrap();
    let ent = Scope::enterprise("big-co").unwrap();
    let gid = gh.add_runner_group("enterprises/big-co", "GPU Fleet");
    let id = c.runner_group_id(&ent, "gpu fleet").await.unwrap();
    assert_eq!(id as i64, gid);
    let j = c
        .generate_jitconfig(&ent, "e1", id, &labels(), None)
        .await
        .unwrap();
    assert_eq!(gh.runner(j.runner.id).unwrap().runner_group_id, gid);
    assert_eq!(c.list_runners(&ent).await.unwrap().len(), 1);
    // Looked up once.
    let calls = gh.api_calls();
    c.runner_group_id(&ent, "GPU Fleet").await.unwrap();
    assert_eq!(gh.api_calls(), calls);
    let e = c.runner_group_id(&ent, "cpu").await.unwrap_err();
    assert_eq!(e.to_string(), "runner group \"cpu\" does not exist in enterprise big-co; its runner groups are: Default, GPU Fleet\n  fix: set runner_group to one of them (names are compared without regard to case), or create the group in the enterprise big-co settings > Actions > Runner groups");
    // An organization's groups; the org token cannot reach the enterprise.
    gh.add_token("ghp_org", Registry::classic(&["admin:org"]));
    let org_client = Client::new(&gh.url(), Secret::new("ghp_org".into())).unwrap();
    let org = Scope::organization("acme").unwrap();
    let gid = gh.add_runner_group("orgs/acme", "linux");
    assert_eq!(
        org_client.runner_group_id(&org, "Linux").await.unwrap() as i64,
        gid
    );
    let e = org_client.list_runners(&ent).await.unwrap_err();
    assert_eq!(e.to_string(), "the classic personal access token lacks the manage_runners:enterprise scope for enterprise big-co (it has: admin:org)\n  fix: edit the token at https://github.com/settings/tokens, tick manage_runners:enterprise, and save (the token itself stays the same)");
    // A fine-grained token cannot manage enterprise runners at all.
    gh.add_token(
        "github_pat_fg",
        Registry::fine_grained("big-co", &[("administration", "write")]),
    );
    let fg = Client::new(&gh.url(), Secret::new("github_pat_fg".into())).unwrap();
    let e = fg
        .generate_jitconfig(&ent, "e2", 1, &labels(), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("GitHub accepts only a classic personal access token with the manage_runners:enterprise scope there"), "{e}");
    gh.shutdown().await;
}

#[tokio::test]
async fn sso_and_expired_tokens_are_diagnosed() {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let mut t = Registry::classic(&["admin:org"]);
    t.sso_blocked_org = Some("acme".into());
    gh.add_token("ghp_sso", t);
    let mut t = Registry::fine_grained("acme", RUNNERS);
    t.expires_at = Some(1);
    gh.add_token("github_pat_old", t);
    let org = Scope::organization("acme").unwrap();
    let c = Client::new(&gh.url(), Secret::new("ghp_sso".into())).unwrap();
    let e = c
        .generate_jitconfig(&org, "x", 1, &labels(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("the classic personal access token is not authorized for the SAML single sign-on that org acme enforces"), "{e}");
    assert!(
        e.contains("fix: open https://github.com/orgs/acme/sso?authorization_request="),
        "{e}"
    );
    let c = Client::new(&gh.url(), Secret::new("github_pat_old".into())).unwrap();
    let e = c.list_runners(&org).await.unwrap_err().to_string();
    assert!(e.starts_with("GitHub rejected the fine-grained personal access token: it is wrong, expired or revoked"), "{e}");
    assert!(
        e.contains("organization permission Self-hosted runners: write"),
        "{e}"
    );
    gh.shutdown().await;
}

async fn ghes(version: &str) -> FakeGithub {
    FakeGithub::start_ghes(TOKEN, version).await.unwrap()
}

#[tokio::test]
async fn ghes_base_path_version_and_app() {
    let gh = ghes("3.14.2").await;
    assert!(gh.api_url().ends_with("/api/v3"));
    let c = Client::new(&gh.api_url(), Secret::new(TOKEN.into())).unwrap();
    let repo = Scope::repository("octo/hello").unwrap();
    let version = c.check_server(&repo, &[Feature::JitRunners]).await.unwrap();
    assert_eq!(version.as_deref(), Some("3.14.2"));
    for i in 0..120 {
        c.generate_jitconfig(&repo, &format!("g{i}"), 1, &labels(), None)
            .await
            .unwrap();
    }
    // Pagination links stay under /api/v3.
    assert_eq!(c.list_runners(&repo).await.unwrap().len(), 120);
    // The App flow works the same there.
    let app = app_client(&gh, None).await;
    gh.install_app(11, "acme", RUNNERS);
    let org = Scope::organization("acme").unwrap();
    app.generate_jitconfig(&org, "a", 1, &labels(), None)
        .await
        .unwrap();
    assert_eq!(app.server_version().as_deref(), Some("3.14.2"));
    // A refused token's fix points at the server's own settings pages, not github.com's.
    gh.add_token("ghp_repo_only", Registry::classic(&["repo"]));
    let c = Client::new(&gh.api_url(), Secret::new("ghp_repo_only".into())).unwrap();
    let e = c.list_runners(&org).await.unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "fix: edit the token at {}/settings/tokens, tick admin:org",
            gh.url()
        )),
        "{e}"
    );
    gh.shutdown().await;

    let old = ghes("3.9.4").await;
    let c = Client::new(&old.api_url(), Secret::new(TOKEN.into())).unwrap();
    let e = c
        .check_server(&repo, &[Feature::JitRunners])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().starts_with("this GitHub Enterprise Server is version 3.9.4; just-in-time runners (generate-jitconfig) need 3.10 or later\n  fix: upgrade"), "{e}");
    // Scale sets need only 3.9 (tests/scaleset_client.rs runs their flow on a GHES).
    let version = c.check_server(&repo, &[Feature::ScaleSets]).await.unwrap();
    assert_eq!(version.as_deref(), Some("3.9.4"));
    old.shutdown().await;
}

fn config_check(dir: &std::path::Path, github: &str, pool: &str) -> (i32, String) {
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!("[github]\n{github}\n[[pool]]\nname = \"p\"\n{pool}\n"),
    )
    .unwrap();
    let (code, out, err) =
        common::podrunner(&["--config", cfg.to_str().unwrap(), "config", "check"]);
    (code, out + &err)
}

#[test]
fn config_check_refuses_unusable_credentials() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "AABF3JGZDX3P5PMEXLND6TS6FCWO6\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let tf = format!("token_file = \"{}\"", token.display());
    let (code, out) = config_check(dir.path(), &tf, "repository = \"o/r\"");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("holds a runner registration (or remove) token, the kind GitHub shows on the \"New self-hosted runner\" page"), "{out}");
    assert!(!out.contains("AABF3JGZ"), "the token is not echoed: {out}");
    // An App cannot manage enterprise runners: explained with the position and the fix.
    let (private, _) = rsa_key_pair();
    let key = dir.path().join("app.pem");
    std::fs::write(&key, private).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let app = format!("app_id = 5\nprivate_key_file = \"{}\"", key.display());
    let (code, out) = config_check(dir.path(), &app, "enterprise = \"big\"");
    assert_ne!(code, 0);
    assert!(out.contains("c.toml:6:14: pool \"p\" is an enterprise pool, and a GitHub App cannot manage enterprise runners"), "{out}");
    // The App for an organization: fine, and the key's mode is checked like the token's.
    let (code, out) = config_check(
        dir.path(),
        &app,
        "organization = \"acme\"\nrunner_group = \"Linux\"",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("GitHub App 5 (key") && out.contains("runner group \"Linux\""),
        "{out}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = config_check(dir.path(), &app, "organization = \"acme\"");
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!(
            "the GitHub App private key file {} has mode 644",
            key.display()
        )),
        "{out}"
    );
}

#[tokio::test]
async fn doctor_judges_the_app_and_runner_groups() {
    use podrunner::doctor::{self, Status};
    use std::os::unix::fs::PermissionsExt;
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let (private, public) = rsa_key_pair();
    gh.add_app(21, "Iv23liDOC", &public);
    gh.install_app(21, "acme", RUNNERS);
    gh.add_runner_group("orgs/acme", "Linux");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    std::fs::write(&key, private).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[github]\napi_url = \"{}\"\napp_id = 21\nprivate_key_file = \"{}\"\n[[pool]]\nname = \"p\"\norganization = \"acme\"\nrunner_group = \"linux\"\n[[pool]]\nname = \"q\"\norganization = \"acme\"\nrunner_name = \"q\"\nrunner_group = \"Windows\"\n[[pool]]\nname = \"r\"\norganization = \"nowhere\"\n",
        gh.url(),
        key.display()
    );
    let cfg = podrunner::config::Config::parse(
        &text,
        &dir.path().join("c.toml"),
        &podrunner::config::Env::from_process(),
    )
    .unwrap();
    let creds = doctor::github::check_token_file(&cfg);
    assert_eq!(creds.status, Status::Pass, "{creds:?}");
    assert!(
        creds.found.starts_with("GitHub App 21 with the key"),
        "{}",
        creds.found
    );
    let checks = doctor::github::check_github(&cfg, true).await;
    let by_id = |id: &str| {
        checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("{id}: {checks:#?}"))
    };
    let acme = by_id("github:org acme");
    assert_eq!(acme.status, Status::Pass, "{acme:?}");
    assert!(
        acme.found
            .starts_with("accepted: the GitHub App's installation lists the runners of org acme"),
        "{}",
        acme.found
    );
    let nowhere = by_id("github:org nowhere");
    assert_eq!(nowhere.status, Status::Fail);
    assert_eq!(
        nowhere.found,
        "the GitHub App is not installed on org nowhere"
    );
    assert!(by_id("runner-group:p")
        .found
        .contains("runner group \"linux\" of org acme has id"));
    let q = by_id("runner-group:q");
    assert_eq!(q.status, Status::Fail);
    assert_eq!(q.found, "runner group \"Windows\" does not exist in org acme; its runner groups are: Default, Linux");
    // A registration token in the token file: the credentials check fails with what to create.
    let token = dir.path().join("token");
    std::fs::write(&token, "AABF3JGZDX3P5PMEXLND6TS6FCWO6").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[github]\ntoken_file = \"{}\"\n[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n",
        token.display()
    );
    let cfg = podrunner::config::Config::parse(
        &text,
        &dir.path().join("c.toml"),
        &podrunner::config::Env::from_process(),
    )
    .unwrap();
    let c = doctor::github::check_token_file(&cfg);
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.found
            .contains("holds a runner registration (or remove) token"),
        "{}",
        c.found
    );
    assert!(c
        .fix
        .unwrap()
        .starts_with("create a fine-grained personal access token"));
    gh.shutdown().await;
}
