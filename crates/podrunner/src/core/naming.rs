//! Runner names: `{runner_name}-{host}-{8 hex}`. `host` is the manager's host id (docs/hosts.md,
//! "Several hosts"), so two hosts sharing one config never make the same name, and each
//! recognises its own registrations in GitHub's runner list without any state of its own.
//! Names of the same pool made on other hosts (or by podrunner versions before host ids,
//! `{runner_name}-{8 hex}`) are the pool's *fleet*: never ours to delete unless provably dead.

/// Length of the random suffix (hex digits).
pub const SUFFIX_LEN: usize = 8;
/// The longest host id: with the `-` separators and the suffix a name stays within GitHub's
/// 64 characters for a `runner_name` of up to 46.
pub const MAX_HOST_ID_LEN: usize = 8;

pub fn runner_name(prefix: &str, suffix: &str) -> String {
    format!("{prefix}-{suffix}")
}

/// The prefix of every runner this host makes in a pool: `{runner_name}-{host}`.
pub fn host_prefix(runner_name: &str, host: &str) -> String {
    format!("{runner_name}-{host}")
}

/// A host id: 1 to [`MAX_HOST_ID_LEN`] lowercase letters or digits.
pub fn valid_host_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_HOST_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// A host id from a stable machine identity (`/etc/machine-id`) and the manager's instance
/// name: 6 hex digits of its FNV-1a hash. Two managers on one host with different instances
/// get different ids, the same manager keeps its id across restarts.
pub fn derive_host_id(machine_id: &str, instance: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in machine_id
        .trim()
        .bytes()
        .chain([b'/'])
        .chain(instance.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:06x}", h & 0xff_ffff)
}

fn is_suffix(s: &str) -> bool {
    s.len() == SUFFIX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `name` is `{prefix}-` followed by exactly [`SUFFIX_LEN`] lowercase hex digits.
pub fn belongs_to(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(is_suffix)
}

/// Whether `name` is a runner of the pool whose `runner_name` is `family`, made by any host:
/// `{family}-{host}-{suffix}`, or `{family}-{suffix}` (names from before host ids).
pub fn fleet_member(family: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(family).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    if is_suffix(rest) {
        return true;
    }
    rest.rsplit_once('-')
        .is_some_and(|(host, sfx)| valid_host_id(host) && is_suffix(sfx))
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
        // Host prefixes: one host never claims another's runners.
        let mine = host_prefix("ci", "4f00aa");
        assert_eq!(mine, "ci-4f00aa");
        assert!(belongs_to(&mine, "ci-4f00aa-0a1b2c3d"));
        assert!(!belongs_to(&mine, "ci-77e0c1-0a1b2c3d"));
        assert!(!belongs_to(&mine, "ci-0a1b2c3d"));
    }

    #[test]
    fn fleet_members_are_the_pool_on_any_host() {
        assert!(fleet_member("ci", "ci-77e0c1-0a1b2c3d"));
        assert!(fleet_member("ci", "ci-web1-0a1b2c3d"));
        assert!(
            fleet_member("ci", "ci-0a1b2c3d"),
            "names from before host ids"
        );
        assert!(!fleet_member("ci", "ci-77e0c1-0a1b2c3"));
        assert!(!fleet_member("ci", "ci-Web1-0a1b2c3d"));
        assert!(!fleet_member("ci", "ci-toolonghost-0a1b2c3d"));
        assert!(!fleet_member("ci", "other-77e0c1-0a1b2c3d"));
        assert!(!fleet_member("ci", "ci-a-b-0a1b2c3d"));
    }

    #[test]
    fn host_ids() {
        let a = derive_host_id("0123456789abcdef0123456789abcdef\n", "default");
        assert_eq!(
            a,
            derive_host_id("0123456789abcdef0123456789abcdef", "default")
        );
        assert_eq!(a.len(), 6);
        assert!(valid_host_id(&a));
        assert_ne!(
            a,
            derive_host_id("0123456789abcdef0123456789abcdee", "default")
        );
        assert_ne!(
            a,
            derive_host_id("0123456789abcdef0123456789abcdef", "other")
        );
        assert!(valid_host_id("web1"));
        assert!(!valid_host_id(""));
        assert!(!valid_host_id("Web1"));
        assert!(!valid_host_id("web-1"));
        assert!(!valid_host_id("123456789"));
    }
}
