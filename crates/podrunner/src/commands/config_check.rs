//! `podrunner config check`: validates the config file and shows what it means.

use super::Cli;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the validated config (defaults filled in) as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn exec(cli: &Cli, args: &Args) -> i32 {
    let cfg = match cli.load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let token = crate::config::read_token(&cfg.github.token_file);
    if args.json {
        let mut v = serde_json::to_value(&cfg).expect("config serializes");
        v["token_file_ok"] = serde_json::Value::Bool(token.is_ok());
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        println!("{}: ok", cfg.path.display());
        println!("  GitHub API: {}", cfg.github.api_url);
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
            println!(
                "  pool {}: {} runner(s) for {}, image {}, labels [{}], {limits}",
                p.name,
                p.count,
                p.scope,
                p.image,
                p.labels.join(", ")
            );
        }
    }
    match token {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("warning: {e}");
            1
        }
    }
}
