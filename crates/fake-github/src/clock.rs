//! Time and randomness, handed to the state instead of read inside it.
//!
//! Owns: [`Clock`] (the system clock when serving, a settable one in unit tests) and
//! [`Tokens`] (the random strings of secrets, tokens and ids: from entropy when serving,
//! from a seed in unit tests). The server ([`crate::FakeGithub`]) makes the real ones and
//! passes them to [`crate::State::new`]; nothing under `state` reads the time or draws a
//! random number by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// Where the fake's time comes from. Cheap to clone; clones share one time.
#[derive(Clone, Debug)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands at `epoch_ms` until [`Clock::advance`] moves it.
    pub fn fixed(epoch_ms: u64) -> Clock {
        Clock(Some(Arc::new(AtomicU64::new(epoch_ms))))
    }

    /// Moves a fixed clock forward (a system clock moves by itself: no effect).
    pub fn advance(&self, ms: u64) {
        if let Some(t) = &self.0 {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The source of random strings (runner secrets, registration and queue tokens, ids). Cheap
/// to clone; clones draw from one generator.
#[derive(Clone)]
pub struct Tokens(Arc<Mutex<StdRng>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

impl Tokens {
    /// Seeded from the operating system's entropy: what the server uses.
    pub fn from_entropy() -> Tokens {
        Tokens(Arc::new(Mutex::new(StdRng::from_entropy())))
    }

    /// The same sequence for the same seed: for tests.
    pub fn seeded(seed: u64) -> Tokens {
        Tokens(Arc::new(Mutex::new(StdRng::seed_from_u64(seed))))
    }

    /// A random alphanumeric string of `len` characters.
    pub fn token(&self, len: usize) -> String {
        let mut rng = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (&mut *rng)
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from)
            .collect()
    }
}

/// Formats epoch seconds as RFC 3339 UTC (`2024-01-02T03:04:05Z`).
pub fn rfc3339(epoch_secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch_secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told_and_its_clones_follow() {
        let c = Clock::fixed(1_700_000_000_500);
        let other = c.clone();
        assert_eq!(
            (c.now_ms(), c.now_secs()),
            (1_700_000_000_500, 1_700_000_000)
        );
        other.advance(1_500);
        assert_eq!(c.now_ms(), 1_700_000_002_000);
    }

    #[test]
    fn seeded_tokens_repeat_and_are_alphanumeric() {
        let (a, b) = (Tokens::seeded(7), Tokens::seeded(7));
        let t = a.token(40);
        assert_eq!(t, b.token(40));
        assert_eq!(t.len(), 40);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()), "{t}");
        assert_ne!(a.token(40), t, "the sequence goes on");
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_468_275_250), "2016-07-11T22:14:10Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
