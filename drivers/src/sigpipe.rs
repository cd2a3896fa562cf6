//! Command-line tools that print tables end quietly when their reader goes
//! away (`rvswitch lab inspect | head`), as `ls` or `ip` do, instead of
//! panicking on the failed write: the Rust runtime ignores SIGPIPE, so a
//! write to a closed pipe returns an error that `println!` turns into a
//! panic. Never for the daemon, whose client sockets may close mid-write.

/// Restore the default action of SIGPIPE (terminate silently).
pub fn exit_quietly_on_broken_pipe() {
    // SAFETY: `signal` with SIG_DFL only changes this process's disposition
    // of SIGPIPE; no handler runs, so there is no async-signal-safety
    // concern, and the call has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
