//! Pure retry arithmetic for the GitHub client: exponential backoff with jitter, and how long
//! a rate-limit answer asks us to wait (docs/github-runner.md, Rate limits).

use rand::Rng;
use std::time::Duration;

/// First retry waits about this long.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// No single retry waits longer than this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Capped exponential backoff with "equal jitter": half fixed, half random, so retries from
/// many runners spread out but never collapse to zero.
pub fn backoff(attempt: u32, rng: &mut impl Rng) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let capped = exp.min(BACKOFF_CAP);
    let half = capped / 2;
    half + Duration::from_secs_f64(rng.gen::<f64>() * half.as_secs_f64())
}

/// How long a 403 or 429 asks us to wait, or `None` when it is not a rate-limit answer (a 403
/// for missing permissions). Rules in order: `retry-after`; an exhausted primary limit waits
/// until `x-ratelimit-reset`; a 429, or a 403 that says "rate limit", waits the secondary-limit
/// minimum (the caller applies it).
pub fn rate_limit_wait(
    status: u16,
    retry_after: Option<u64>,
    remaining: Option<u64>,
    reset_epoch: Option<u64>,
    message: &str,
    now_epoch: u64,
) -> Option<Duration> {
    if let Some(s) = retry_after {
        return Some(Duration::from_secs(s));
    }
    if remaining == Some(0) {
        let reset = reset_epoch.unwrap_or(now_epoch + 60);
        return Some(Duration::from_secs(reset.saturating_sub(now_epoch).max(1)));
    }
    if status == 429 || message.to_ascii_lowercase().contains("rate limit") {
        return Some(super::SECONDARY_LIMIT_WAIT);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_and_caps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..12 {
            let d = backoff(attempt, &mut rng);
            let full = (BACKOFF_BASE * 2u32.pow(attempt - 1)).min(BACKOFF_CAP);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(40, &mut rng) <= BACKOFF_CAP);
    }

    #[test]
    fn rate_limit_rules() {
        assert_eq!(
            rate_limit_wait(429, Some(3), None, None, "", 100),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_wait(403, None, Some(0), Some(130), "", 100),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            rate_limit_wait(403, None, Some(0), Some(90), "", 100),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            rate_limit_wait(429, None, Some(10), None, "", 100),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rate_limit_wait(
                403,
                None,
                Some(10),
                None,
                "You have exceeded a secondary rate limit",
                100
            ),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rate_limit_wait(
                403,
                None,
                Some(10),
                None,
                "Resource not accessible by integration",
                100
            ),
            None
        );
    }
}
