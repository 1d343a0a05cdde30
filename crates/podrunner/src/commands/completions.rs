//! `podrunner completions SHELL` and `podrunner man`: shell completions and the `podrunner.1`
//! manual page, both generated from the clap definition so they never drift from the CLI.
//! Packagers run them at build time (nothing generated is kept in git):
//! `podrunner completions bash > podrunner.bash`, `podrunner man > podrunner.1`.

use super::exit::Exit;
use super::Cli;
use anyhow::Context;
use clap::CommandFactory;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {}

/// The completion script for `shell` on stdout.
pub fn exec(args: &Args) -> anyhow::Result<Exit> {
    // Rendered in memory first: clap_complete panics on a failed write (a closed pipe).
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "podrunner", &mut script);
    let mut out = std::io::stdout().lock();
    flushed(out.write_all(&script).and_then(|()| out.flush()))
}

/// The manual page in roff on stdout: the top-level page with a section per subcommand.
pub fn exec_man(_args: &ManArgs) -> anyhow::Result<Exit> {
    let mut page = Vec::new();
    render_man(&mut page).context("cannot render the manual page")?;
    let mut out = std::io::stdout().lock();
    flushed(out.write_all(&page).and_then(|()| out.flush()))
}

/// Renders `podrunner.1`: clap_mangen's page for the top-level command, then each visible
/// subcommand's page appended as its own section.
pub fn render_man(out: &mut Vec<u8>) -> std::io::Result<()> {
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        writeln!(out, ".SH \"PODRUNNER {}\"", sub.get_name().to_uppercase())?;
        let man = clap_mangen::Man::new(sub.clone());
        man.render_description_section(out)?;
        man.render_options_section(out)?;
    }
    Ok(())
}

/// How a finished write ends: a closed pipe (`| head`) is not an error.
fn flushed(r: std::io::Result<()>) -> anyhow::Result<Exit> {
    match r {
        Ok(()) => Ok(Exit::Success),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manual_names_every_visible_subcommand_and_no_hidden_one() {
        let mut page = Vec::new();
        render_man(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(
            page.starts_with(".ie \\n(.g .ds Aq \\(aq"),
            "{}",
            &page[..80]
        );
        for sub in Cli::command().get_subcommands() {
            let title = format!(".SH \"PODRUNNER {}\"", sub.get_name().to_uppercase());
            assert_eq!(
                page.contains(&title),
                !sub.is_hide_set(),
                "{title} in the page"
            );
        }
    }

    #[test]
    fn bash_completion_offers_the_subcommands() {
        let mut cmd = Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "podrunner", &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("_podrunner()"), "{script}");
        for sub in ["run", "status", "doctor", "completions"] {
            assert!(script.contains(sub), "{sub} missing");
        }
    }
}
