//! Shared helpers for rvswitch benches.
