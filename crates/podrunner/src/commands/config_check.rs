//! `podrunner config check`: validates the config file and shows what it means.

use super::exit::Exit;
use super::Cli;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the validated config (defaults filled in) as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let cfg = cli.load_config()?;
    // Reads the token file and the App's key with their checks; the secrets are dropped here.
    let creds = crate::github::auth::Credentials::from_config(&cfg.github);
    let kinds: Vec<String> = match &creds {
        Ok(c) => cfg
            .pools
            .iter()
            .map(|p| c.kind(&p.scope).describe().to_string())
            .collect(),
        Err(_) => Vec::new(),
    };
    if args.json {
        let mut v = serde_json::to_value(&cfg).expect("config serializes");
        v["token_file_ok"] = serde_json::Value::Bool(creds.is_ok());
        v["credentials_ok"] = serde_json::Value::Bool(creds.is_ok());
        for (i, k) in kinds.iter().enumerate() {
            v["pools"][i]["credential"] = serde_json::Value::String(k.clone());
        }
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        println!("{}: ok", cfg.path.display());
        println!("  GitHub API: {}", cfg.github.api_url);
        match &cfg.github.app {
            Some(a) => println!(
                "  GitHub App {} (key {}), {}{}",
                a.issuer,
                a.private_key_file.display(),
                a.installation_id
                    .map(|i| format!("installation {i}"))
                    .unwrap_or_else(|| "installation looked up for each pool".into()),
                if cfg.github.token_file_set {
                    format!(
                        "; enterprise pools use the token file {}",
                        cfg.github.token_file.display()
                    )
                } else {
                    String::new()
                }
            ),
            None => println!("  token file: {}", cfg.github.token_file.display()),
        }
        for p in &cfg.pools {
            let limits = match (p.cpus, p.memory) {
                (None, None) => "no CPU or memory limit".to_string(),
                (c, m) => format!(
                    "cpus {}, memory {}",
                    c.map(|c| c.to_string())
                        .unwrap_or_else(|| "unlimited".into()),
                    m.map(|m| m.to_string())
                        .unwrap_or_else(|| "unlimited".into())
                ),
            };
            let group = match &p.runner_group {
                Some(g) => format!("runner group {g:?} (its id is looked up at start)"),
                None => format!("runner group id {}", p.runner_group_id),
            };
            println!(
                "  pool {}: {} runner(s) for {}, image {}, labels [{}], {limits}, {group}",
                p.name,
                p.count,
                p.scope,
                p.image,
                p.labels.join(", ")
            );
        }
    }
    match creds {
        Ok(_) => Ok(Exit::Success),
        // The config is valid; the credentials' problem is reported as a warning.
        Err(e) => {
            eprintln!("warning: {e}");
            Ok(Exit::Failure)
        }
    }
}
