//! Scheduling of the calling thread: the data plane workers may ask for a
//! real-time policy so that, on a machine busy with other work, a worker
//! woken by a frame runs at once instead of waiting for the next scheduler
//! tick behind ordinary processes (measured in docs/benchmarks.md,
//! "Lone-packet latency").
//!
//! Owns: the one `sched_setscheduler` call. Never: picks a policy itself.

use std::io;

/// Put the calling thread under `SCHED_FIFO` at `priority` (1–99). Needs
/// `CAP_SYS_NICE` (or an `RLIMIT_RTPRIO` that allows it); the error says
/// why not, and the thread keeps its policy.
pub fn set_current_thread_fifo(priority: u8) -> io::Result<()> {
    if !(1..=99).contains(&priority) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("SCHED_FIFO priority {priority} is outside 1..=99"),
        ));
    }
    let param = libc::sched_param {
        sched_priority: priority as libc::c_int,
    };
    // SAFETY: `param` is a live sched_param the kernel only reads; pid 0 is
    // the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_priorities_are_refused_without_a_syscall() {
        for p in [0, 100, 255] {
            let e = set_current_thread_fifo(p).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{p}");
        }
    }
}
