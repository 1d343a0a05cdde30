//! Runner names: `{prefix}-{8 hex}`. The exact shape lets podrunner recognise its own
//! registrations in GitHub's runner list without any state of its own.

/// Length of the random suffix (hex digits).
pub const SUFFIX_LEN: usize = 8;

pub fn runner_name(prefix: &str, suffix: &str) -> String {
    format!("{prefix}-{suffix}")
}

/// Whether `name` is `{prefix}-` followed by exactly [`SUFFIX_LEN`] lowercase hex digits.
pub fn belongs_to(prefix: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    rest.len() == SUFFIX_LEN
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_exact() {
        assert_eq!(runner_name("ci", "0a1b2c3d"), "ci-0a1b2c3d");
        assert!(belongs_to("ci", "ci-0a1b2c3d"));
        assert!(!belongs_to("ci", "ci-0a1b2c3"));
        assert!(!belongs_to("ci", "ci-0a1b2c3d4"));
        assert!(!belongs_to("ci", "ci-0A1B2C3D"));
        assert!(!belongs_to("ci", "cix0a1b2c3d"));
        // A pool "a" never claims the runners of a pool "a-b".
        assert!(!belongs_to("a", "a-b-0a1b2c3d"));
        assert!(belongs_to("a-b", "a-b-0a1b2c3d"));
    }
}
