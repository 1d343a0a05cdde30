//! Fake GitHub: see docs/test-bench.md.
