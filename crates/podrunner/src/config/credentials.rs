//! Files that hold secrets: the GitHub token and an App's private key. Each is refused when
//! group or others can read it, and the token when it holds a credential podrunner cannot use.

use std::path::Path;

/// Reads a file that holds a secret, refusing one that group or others can read. `what`
/// names it in messages ("GitHub token file"), `fix_missing` says how to create it.
fn read_secret_file(path: &Path, what: &str, fix_missing: &str) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the {what} {}: {e}\n  fix: {fix_missing}",
            path.display()
        )
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "the {what} {} has mode {mode:o}, readable by other users\n  fix: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the {what} {}: {e}", path.display()))
}

/// Reads a GitHub App's private key (PEM), with the token file's permission rule. The key is
/// checked to be an RSA key when the client is built (github::auth).
pub fn read_private_key(path: &Path) -> anyhow::Result<String> {
    let pem = read_secret_file(
        path,
        "GitHub App private key file",
        &format!("download a private key from the App's settings page (Private keys > Generate a private key) and save it there with chmod 600 {}", path.display()),
    )?;
    if !pem.trim_start().starts_with("-----BEGIN ") {
        anyhow::bail!(
            "the GitHub App private key file {} does not hold a PEM key\n  fix: save the .pem file GitHub gave when the key was generated, unchanged",
            path.display()
        );
    }
    Ok(pem)
}

/// Reads the GitHub token. Refuses a file that group or others can read, an empty one, and
/// a credential podrunner cannot use (a runner registration token, a key: github::diagnose);
/// strips one trailing newline or CRLF.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let raw = read_secret_file(
        path,
        "GitHub token file",
        &format!(
            "write a token to it: (umask 077; printf '%s' \"$TOKEN\" > {})",
            path.display()
        ),
    )?;
    let token = raw
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&raw);
    if token.trim().is_empty() {
        anyhow::bail!(
            "the GitHub token file {} is empty\n  fix: put a personal access token in it (repository Administration: write, or admin:org for organization pools)",
            path.display()
        );
    }
    if let Some(refusal) = crate::github::diagnose::kind_of(token.trim()).refusal() {
        anyhow::bail!("the GitHub token file {} {refusal}", path.display());
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!(
            "the GitHub token file {} contains spaces or several lines\n  fix: keep only the token itself in the file",
            path.display()
        );
    }
    Ok(token.to_string())
}
