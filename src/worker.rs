//! Data plane worker threads and the [`Dataplane`] handle the control side
//! uses to reach them.
//!
//! Owns: one thread per worker, each owning one [`Switch`] (ports, bridge
//! domains with their FDBs, counters, capture, trace), its clock, its idle
//! policy and its epoll set. Never: blocking while frames flow, touching the
//! store or the API, sharing a `Switch` between threads.
//!
//! # Commands are closures, run at batch boundaries
//! The control side sends `Box<dyn FnOnce(&mut Switch) + Send>`; the worker
//! runs each one between two `poll()` passes, so a command always sees the
//! switch between batches. We use closures rather than the immutable config
//! snapshots the design brief sketches because the switch's state is not
//! all configuration: FDBs, counters, the tracer and the ports' back ends
//! (with their fds and, for AF_XDP, the UMEM registered on this worker's
//! pool) live here and must survive a config change. A closure edits exactly
//! what changes, in place, through the switch's own validated methods, and
//! can return a result (an error, a counter copy, a capture receiver); a
//! snapshot would have to be diffed against that live state anyway. The
//! price — a command runs on the fast-path thread — is bounded because
//! commands are short (open a back end, insert a table entry, copy counters).
//!
//! # Placement
//! A bridge domain and all of its ports live on one worker, because an FDB is
//! not shared between threads. The control side picks the least loaded worker
//! (fewest domains, lowest index on ties) when a domain is created, see
//! [`Dataplane::assign_domain`], and sends every command about that domain
//! or its ports to that worker.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use rvs_switch::{PacketPool, PortId, Switch};

/// A command for a worker: runs on the worker thread between batches.
pub type Command = Box<dyn FnOnce(&mut Switch) + Send>;

/// Frames of each worker's pool: 8192 × 2 KiB = 16 MiB, enough for every
/// port's rings and tx queues at 64-frame bursts with room for flood copies.
pub const POOL_FRAMES: usize = 8192;
/// Bytes per frame: a full 1518-byte frame plus the headroom fits; must be a
/// power of two (and AF_XDP's chunk size).
pub const POOL_FRAME_SIZE: usize = 2048;
/// Headroom in front of each frame for VLAN push / VXLAN encap / vnet header.
pub const POOL_HEADROOM: usize = 256;
/// 128 KiB super-frames for TAP GSO/TSO (64 KiB TCP segments cross the
/// switch as one unit); 64 × 128 KiB = 8 MiB of address space, made resident
/// only when used.
pub const POOL_LARGE_FRAMES: usize = 64;

/// Empty polls are spun for this long before the worker blocks in epoll:
/// long enough to ride out gaps inside a burst, short enough that an idle
/// switch sleeps almost at once. Each empty poll yields the CPU (see
/// `SPIN_YIELD`).
pub const IDLE_SPIN: Duration = Duration::from_micros(200);
/// Longest sleep: FDB aging and back-end maintenance run at least this often.
pub const IDLE_TIMEOUT: Duration = Duration::from_millis(100);
/// FDB buckets aged per domain when the worker wakes from an idle sleep.
const IDLE_AGE_BUDGET: usize = 1024;

const WAKER: Token = Token(usize::MAX);

/// The spin window, `RVS_SPIN_US` microseconds when set (a tuning knob;
/// docs/operations.md).
static SPIN: std::sync::LazyLock<Duration> = std::sync::LazyLock::new(|| {
    std::env::var("RVS_SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(IDLE_SPIN, Duration::from_micros)
});
/// Whether an empty poll in the spin window yields the CPU (the default;
/// `RVS_SPIN_YIELD=0` spins on the CPU instead). On a host whose cores the
/// containers share with the switch, yielding lets the processes the
/// switch just woke (a receiver, the sender of the next segment) run at
/// once on this core; measured in docs/benchmarks.md ("Docker and lab
/// endpoints"): TCP between containers 0.83× Docker's bridge spinning,
/// 0.99× yielding. When nothing else wants the core, yielding returns at
/// once and costs one system call.
static SPIN_YIELD: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var("RVS_SPIN_YIELD").map_or(true, |v| v != "0"));

/// Why a worker could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("start worker {index}: {reason}")]
    Start { index: usize, reason: String },
    #[error("worker {0} has stopped")]
    Gone(usize),
    #[error("no worker {0}")]
    NoSuchWorker(usize),
    #[error("bridge domain {0} is not placed on any worker")]
    UnplacedDomain(String),
}

struct WorkerHandle {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Wall clock (ms since the Unix epoch) at the worker's clock zero, to
    /// turn switch timestamps (captures) into wall time.
    epoch_unix_ms: u64,
}

/// Where a command should run.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Worker(usize),
    /// The worker that owns this bridge domain.
    Domain(&'a str),
}

/// The control side's handle on every worker.
pub struct Dataplane {
    workers: Vec<WorkerHandle>,
    /// Bridge domain name → worker index.
    placement: Mutex<HashMap<String, usize>>,
}

impl Dataplane {
    /// Start `n` workers (at least one), each with its own switch and pool.
    pub fn start(n: usize) -> Result<Dataplane, WorkerError> {
        Self::start_with(n, IDLE_TIMEOUT)
    }

    /// Like [`Dataplane::start`] with another longest idle sleep (tests use a
    /// long one to prove that fds and the waker, not the timeout, wake a
    /// worker).
    pub fn start_with(n: usize, idle_timeout: Duration) -> Result<Dataplane, WorkerError> {
        Self::start_opts(n, idle_timeout, None)
    }

    /// Like [`Dataplane::start_with`]; with `fifo_priority` each worker
    /// asks for `SCHED_FIFO` at that priority, so that on a machine busy
    /// with other processes a woken worker runs at once rather than at the
    /// next scheduler tick (milliseconds). Refused (no `CAP_SYS_NICE`), the
    /// worker logs a warning and runs as an ordinary thread.
    pub fn start_opts(
        n: usize,
        idle_timeout: Duration,
        fifo_priority: Option<u8>,
    ) -> Result<Dataplane, WorkerError> {
        let mut workers = Vec::with_capacity(n.max(1));
        for index in 0..n.max(1) {
            workers.push(spawn(index, idle_timeout, fifo_priority)?);
        }
        Ok(Dataplane {
            workers,
            placement: Mutex::new(HashMap::new()),
        })
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Pick the worker for a new bridge domain: the one with fewest domains.
    /// The domain is recorded there until [`Dataplane::release_domain`].
    pub fn assign_domain(&self, name: &str) -> usize {
        let mut p = self.placement.lock().expect("placement lock");
        if let Some(w) = p.get(name) {
            return *w;
        }
        let mut load = vec![0usize; self.workers.len()];
        for w in p.values() {
            load[*w] += 1;
        }
        let w = (0..load.len()).min_by_key(|i| (load[*i], *i)).unwrap_or(0);
        p.insert(name.to_string(), w);
        w
    }

    /// Place `name` on worker `w` (clamped to the workers there are),
    /// unless it is placed already.
    pub fn pin_domain(&self, name: &str, w: usize) -> usize {
        let mut p = self.placement.lock().expect("placement lock");
        let w = w.min(self.workers.len().saturating_sub(1));
        *p.entry(name.to_string()).or_insert(w)
    }

    pub fn release_domain(&self, name: &str) {
        self.placement.lock().expect("placement lock").remove(name);
    }

    /// The worker owning `domain`, if it was assigned.
    pub fn worker_of(&self, domain: &str) -> Option<usize> {
        self.placement
            .lock()
            .expect("placement lock")
            .get(domain)
            .copied()
    }

    /// Wall-clock milliseconds at worker `w`'s clock zero.
    pub fn epoch_unix_ms(&self, w: usize) -> u64 {
        self.workers.get(w).map_or(0, |h| h.epoch_unix_ms)
    }

    /// Run `f` on the target worker between batches and wait for its result.
    /// Blocks the caller (use from a blocking context, never from async code
    /// directly).
    pub fn call<R, F>(&self, target: Target<'_>, f: F) -> Result<R, WorkerError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Switch) -> R + Send + 'static,
    {
        let w = match target {
            Target::Worker(w) => w,
            Target::Domain(d) => self
                .worker_of(d)
                .ok_or_else(|| WorkerError::UnplacedDomain(d.to_string()))?,
        };
        let h = self.workers.get(w).ok_or(WorkerError::NoSuchWorker(w))?;
        let (rtx, rrx) = crossbeam_channel::bounded(1);
        let cmd: Command = Box::new(move |sw| {
            let _ = rtx.send(f(sw));
        });
        h.tx.send(cmd).map_err(|_| WorkerError::Gone(w))?;
        // Send first, then wake: the worker drains its queue after every
        // wake-up, so the command cannot be missed.
        let _ = h.waker.wake();
        rrx.recv().map_err(|_| WorkerError::Gone(w))
    }

    /// Run `f` on the target worker between batches without waiting for
    /// it (a fire-and-forget command, e.g. a DNS answer to send).
    pub fn post<F>(&self, target: Target<'_>, f: F) -> Result<(), WorkerError>
    where
        F: FnOnce(&mut Switch) + Send + 'static,
    {
        let w = match target {
            Target::Worker(w) => w,
            Target::Domain(d) => self
                .worker_of(d)
                .ok_or_else(|| WorkerError::UnplacedDomain(d.to_string()))?,
        };
        let h = self.workers.get(w).ok_or(WorkerError::NoSuchWorker(w))?;
        h.tx.send(Box::new(f)).map_err(|_| WorkerError::Gone(w))?;
        let _ = h.waker.wake();
        Ok(())
    }

    /// Run `f` on every worker in turn; results in worker order.
    pub fn call_all<R, F>(&self, f: F) -> Result<Vec<R>, WorkerError>
    where
        R: Send + 'static,
        F: Fn(&mut Switch) -> R + Send + Sync + Clone + 'static,
    {
        (0..self.workers.len())
            .map(|w| self.call(Target::Worker(w), f.clone()))
            .collect()
    }

    /// Stop every worker and join it. Each drops its switch on the way out:
    /// ports close (TAP fds, XDP sockets) before the pool is freed.
    pub fn shutdown(&self) {
        for h in &self.workers {
            h.stop.store(true, Ordering::Release);
            let _ = h.waker.wake();
        }
        for h in &self.workers {
            let t = h.thread.lock().expect("worker thread lock").take();
            if let Some(t) = t {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn spawn(
    index: usize,
    idle_timeout: Duration,
    fifo_priority: Option<u8>,
) -> Result<WorkerHandle, WorkerError> {
    let err = |reason: String| WorkerError::Start { index, reason };
    let pool = PacketPool::with_large(
        POOL_FRAMES,
        POOL_FRAME_SIZE,
        POOL_HEADROOM,
        POOL_LARGE_FRAMES,
    )
    .map_err(|e| err(format!("packet pool: {e}")))?;
    let poll = Poll::new().map_err(|e| err(format!("epoll: {e}")))?;
    let waker =
        Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| err(format!("waker: {e}")))?);
    let (tx, rx) = crossbeam_channel::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let clock_zero = Instant::now();
    let epoch_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("rvs-worker-{index}"))
        .spawn(move || {
            if let Some(p) = fifo_priority
                && let Err(e) = rvs_drivers::sched::set_current_thread_fifo(p)
            {
                tracing::warn!(worker = index, priority = p, error = %e, "cannot run the worker as SCHED_FIFO; it runs as an ordinary thread");
            }
            let mut w = Worker {
                sw: Switch::new(pool),
                rx,
                poll,
                registered: Vec::new(),
                stop: stop2,
                clock_zero,
                idle_timeout,
            };
            w.run();
        })
        .map_err(|e| err(format!("thread: {e}")))?;
    Ok(WorkerHandle {
        tx,
        waker,
        stop,
        thread: Mutex::new(Some(thread)),
        epoch_unix_ms,
    })
}

struct Worker {
    sw: Switch,
    rx: Receiver<Command>,
    poll: Poll,
    /// The (port, fd) pairs currently in the epoll set.
    registered: Vec<(PortId, RawFd)>,
    stop: Arc<AtomicBool>,
    clock_zero: Instant,
    idle_timeout: Duration,
}

impl Worker {
    fn tick(&mut self) -> Instant {
        let now = Instant::now();
        self.sw
            .set_now_ms(now.duration_since(self.clock_zero).as_millis() as u64);
        now
    }

    /// Run queued commands; re-register fds if the port set changed.
    fn run_commands(&mut self) {
        let mut ran = false;
        while let Ok(cmd) = self.rx.try_recv() {
            cmd(&mut self.sw);
            ran = true;
        }
        if ran {
            self.sync_fds();
        }
    }

    fn sync_fds(&mut self) {
        let want = self.sw.poll_fds();
        if want == self.registered {
            return;
        }
        let reg = self.poll.registry();
        // Removed ports closed their fds, which took them out of the epoll
        // set already; the errors of deregistering those are expected.
        for (_, fd) in &self.registered {
            let _ = reg.deregister(&mut SourceFd(fd));
        }
        for (port, fd) in &want {
            let token = Token(port.index());
            let r = reg.register(&mut SourceFd(fd), token, Interest::READABLE);
            if let Err(e) = r {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    let _ = reg.reregister(&mut SourceFd(fd), token, Interest::READABLE);
                } else {
                    tracing::warn!(port = %port, fd, error = %e, "cannot watch port fd; it is polled on the idle timeout only");
                }
            }
        }
        self.registered = want;
    }

    /// Idle-time work: age a slice of every FDB, let back ends refill and
    /// reap.
    fn housekeeping(&mut self) {
        self.sw.age(IDLE_AGE_BUDGET);
        self.sw.maintain();
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(64);
        let mut idle_since: Option<Instant> = None;
        // Woken by a port fd or the waker: housekeeping waits until the
        // frames that woke us are forwarded (the first empty poll).
        let mut housekeeping_due = false;
        loop {
            self.run_commands();
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            let now = self.tick();
            if self.sw.poll() > 0 {
                idle_since = None;
                continue;
            }
            if housekeeping_due {
                housekeeping_due = false;
                self.housekeeping();
            }
            let since = *idle_since.get_or_insert(now);
            if now.duration_since(since) < *SPIN {
                if *SPIN_YIELD {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            // Idle: let back ends refill/reap, then sleep until a port fd is
            // readable, the control side wakes us, or the aging timeout.
            self.sw.maintain();
            let timeout = self
                .sw
                .wake_after()
                .map_or(self.idle_timeout, |w| w.min(self.idle_timeout));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "worker epoll failed; sleeping instead");
                std::thread::sleep(self.idle_timeout);
            }
            self.tick();
            if events.is_empty() {
                // Timeout: nothing to forward, so housekeeping now; stay
                // idle, so the next empty poll sleeps at once instead of
                // spinning for another IDLE_SPIN.
                self.housekeeping();
                let now = Instant::now();
                idle_since = Some(now.checked_sub(IDLE_SPIN).unwrap_or(now));
            } else {
                housekeeping_due = true;
                idle_since = None;
            }
        }
        // Dropping the switch closes every port before freeing the pool.
        for (_, fd) in std::mem::take(&mut self.registered) {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_switch::{DomainConfig, MemoryPort, PortConfig};

    #[test]
    fn commands_run_on_the_worker_and_return_results() {
        let dp = Dataplane::start(2).unwrap();
        let w = dp.assign_domain("bd0");
        assert_eq!(w, 0);
        assert_eq!(dp.assign_domain("bd1"), 1, "least loaded worker");
        assert_eq!(dp.assign_domain("bd0"), 0, "stable");
        let id = dp
            .call(Target::Domain("bd0"), |sw| {
                sw.add_domain(DomainConfig::new("bd0"))
            })
            .unwrap()
            .unwrap();
        let (a, ha) = MemoryPort::new("a");
        let (b, hb) = MemoryPort::new("b");
        dp.call(Target::Domain("bd0"), move |sw| {
            sw.add_port(Box::new(a), PortConfig::access(id, 1)).unwrap();
            sw.add_port(Box::new(b), PortConfig::access(id, 1)).unwrap();
        })
        .unwrap();
        // Memory ports have no fd: the worker finds the frame on its idle
        // timeout at the latest.
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        f.resize(60, 0);
        ha.inject(f.clone());
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut got = Vec::new();
        while got.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            got = hb.take_tx();
        }
        assert_eq!(got, vec![f], "flooded to b");
        let counts = dp
            .call_all(|sw| {
                sw.ports()
                    .iter()
                    .map(|p| p.counters.rx_packets)
                    .sum::<u64>()
            })
            .unwrap();
        assert_eq!(counts, vec![1, 0]);
        dp.shutdown();
        assert!(matches!(
            dp.call(Target::Worker(0), |_| ()),
            Err(WorkerError::Gone(0))
        ));
    }

    /// A port over a Unix datagram socket: it has a real fd to wait on.
    struct SocketPort {
        name: String,
        sock: std::os::unix::net::UnixDatagram,
    }

    impl rvs_switch::Port for SocketPort {
        fn name(&self) -> &str {
            &self.name
        }
        fn rx_burst(
            &mut self,
            pool: &mut PacketPool,
            batch: &mut rvs_switch::Batch,
        ) -> Result<usize, rvs_switch::PortError> {
            let mut buf = [0u8; 2048];
            let mut n = 0;
            while !batch.is_full() {
                let Ok(len) = self.sock.recv(&mut buf) else {
                    break;
                };
                let Some(b) = pool.alloc_from(&buf[..len]) else {
                    break;
                };
                batch.push(b).expect("room checked");
                n += 1;
            }
            Ok(n)
        }
        fn tx_burst(
            &mut self,
            pool: &mut PacketPool,
            batch: &mut rvs_switch::Batch,
        ) -> rvs_switch::TxDone {
            let mut done = rvs_switch::TxDone::default();
            for b in batch.drain() {
                if self.sock.send(pool.data(&b)).is_ok() {
                    done.packets += 1;
                    done.bytes += b.len();
                } else {
                    done.dropped += 1;
                }
                pool.free(b);
            }
            done
        }
        fn poll_fd(&self) -> Option<i32> {
            use std::os::fd::AsRawFd;
            Some(self.sock.as_raw_fd())
        }
    }

    fn socket_port(name: &str) -> (SocketPort, std::os::unix::net::UnixDatagram) {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let p = SocketPort {
            name: name.into(),
            sock: a,
        };
        (p, b)
    }

    #[test]
    fn an_idle_worker_wakes_on_port_fds_and_commands_not_the_timeout() {
        // With a 30 s idle sleep, anything answered within seconds was woken
        // by a port fd or the waker.
        let dp = Dataplane::start_with(1, Duration::from_secs(30)).unwrap();
        dp.assign_domain("bd0");
        let (a, peer_a) = socket_port("a");
        let (b, peer_b) = socket_port("b");
        let (c, peer_c) = socket_port("c");
        dp.call(Target::Domain("bd0"), move |sw| {
            let id = sw.add_domain(DomainConfig::new("bd0")).unwrap();
            for p in [a, b, c] {
                sw.add_port(Box::new(p), PortConfig::access(id, 1)).unwrap();
            }
        })
        .unwrap();
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        f.resize(60, 0);
        for round in 0..3 {
            // Let the worker fall asleep.
            std::thread::sleep(Duration::from_millis(50));
            let t = Instant::now();
            peer_a.send(&f).unwrap();
            let mut buf = [0u8; 2048];
            let n = peer_b
                .recv(&mut buf)
                .expect("flooded to b while the worker slept");
            assert_eq!(&buf[..n], &f[..]);
            assert!(t.elapsed() < Duration::from_secs(3), "round {round}");
            assert_eq!(peer_c.recv(&mut buf).unwrap(), n);
            std::thread::sleep(Duration::from_millis(50));
            let t = Instant::now();
            dp.call(Target::Worker(0), |sw| sw.ports().len()).unwrap();
            assert!(t.elapsed() < Duration::from_secs(3), "waker, round {round}");
        }
        // Removing a port takes its fd out of the set; the other still wakes.
        dp.call(Target::Worker(0), |sw| {
            let id = sw.port_id("b").unwrap();
            sw.remove_port(id).map(drop).unwrap();
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        peer_a.send(&f).unwrap();
        let t = Instant::now();
        while dp
            .call(Target::Worker(0), |sw| sw.ports()[0].counters.rx_packets)
            .unwrap()
            < 4
        {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "fd of a still watched"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        dp.shutdown();
    }
}
