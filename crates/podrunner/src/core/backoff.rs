//! When a pool may start its next runner after failures.

use std::time::Duration;

/// The first wait after a runner fails (died before taking a job, or could not start).
pub const START_BACKOFF_BASE: Duration = Duration::from_secs(5);
/// The longest wait between attempts: a broken image is retried every 5 minutes at most, so a
/// fix (a new image pushed) is picked up without a restart.
pub const START_BACKOFF_CAP: Duration = Duration::from_secs(300);

/// The pause before the next start in a pool with `failures` consecutive failures.
/// No failure: the pool's `restart_delay`. Otherwise doubling from [`START_BACKOFF_BASE`],
/// capped at [`START_BACKOFF_CAP`], and never shorter than `restart_delay`.
pub fn start_delay(failures: u32, restart_delay: Duration) -> Duration {
    if failures == 0 {
        return restart_delay;
    }
    let exp = START_BACKOFF_BASE.saturating_mul(2u32.saturating_pow(failures - 1));
    exp.min(START_BACKOFF_CAP).max(restart_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(start_delay(0, s(1)), s(1));
        assert_eq!(start_delay(1, s(1)), s(5));
        assert_eq!(start_delay(2, s(1)), s(10));
        assert_eq!(start_delay(3, s(1)), s(20));
        assert_eq!(start_delay(7, s(1)), s(300));
        assert_eq!(start_delay(40, s(1)), s(300));
        assert_eq!(start_delay(1, s(30)), s(30));
    }
}
