//! rvs-gen: the traffic generator and loss counter of the end-to-end harness
//! (`bench/e2e`).
//!
//! Sends 64-byte frames (60 bytes + FCS) of a local experimental EtherType
//! (0x88b5, which no protocol handler takes, so the sink's stack drops each
//! one right after `__netif_receive_skb` looks for a handler) out of an
//! interface in the generator namespace, through the AF_PACKET port of
//! `rvs-drivers` (`PACKET_QDISC_BYPASS`, `sendmmsg` bursts of up to 64),
//! paced by a token bucket to an offered rate. It counts what arrived from
//! the receive counters of the sink's interface (`/proc/thread-self/net/dev`
//! read from a thread inside the sink namespace): they cost nothing per
//! frame, where a counting socket on the sink would take CPU from the switch
//! under test on a two-core machine.
//!
//! `trial` runs one offered rate (0: as fast as the generator goes); `search`
//! runs the RFC 2544 throughput search: the highest offered rate with loss
//! under the threshold, by a ramp from below the generator's top rate and
//! bisection, each lossy trial repeated once before it counts. Output is one line per trial and a
//! result line, `key=value` tokens the harness parses.
//!
//! Owns: its packet socket and a small pool. Never: sends anywhere but the
//! interface it is given, changes interface settings.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use rvs_drivers::afpacket::{AfPacketConfig, AfPacketPort};
use rvs_drivers::netns;
use rvs_switch::{Batch, MacAddr, PacketPool, Port};

#[derive(Parser)]
#[command(about = "rvswitch end-to-end generator: 64-byte frames, RFC 2544 zero-loss search")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One trial at a fixed offered rate.
    Trial {
        #[command(flatten)]
        t: TrialArgs,
        /// Offered rate in frames per second; 0 sends as fast as it can.
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// RFC 2544 throughput: the highest offered rate with loss below the
    /// threshold: a doubling ramp from below the top rate up to the first
    /// lossy rate, then bisection (see `search`).
    Search {
        #[command(flatten)]
        t: TrialArgs,
        #[command(flatten)]
        s: SearchArgs,
    },
}

#[derive(Args, Clone)]
struct SearchArgs {
    /// Bisection steps after the ramp (fewer when the bounds meet within 1 %).
    #[arg(long, default_value_t = 6)]
    iterations: u32,
    /// Loss threshold in percent.
    #[arg(long, default_value_t = 0.1)]
    loss_pct: f64,
    /// Highest rate to try (frames/s), normally the generator's measured
    /// maximum; 0: measure it with one flat-out trial first.
    #[arg(long, default_value_t = 0)]
    max_pps: u64,
    /// First ramp rate as a share of the top rate.
    #[arg(long, default_value_t = 0.25)]
    start_frac: f64,
    /// Factor between ramp rates: the most the first lossy rate overshoots
    /// the last passing one.
    #[arg(long, default_value_t = 1.5)]
    ramp: f64,
    /// Repeats of a lossy trial before its rate counts as lossy (any pass
    /// among them passes it).
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// Idle milliseconds before a repeat, for queues to drain.
    #[arg(long, default_value_t = 500)]
    pause_ms: u64,
}

#[derive(Args, Clone)]
struct TrialArgs {
    /// Namespace (name under /run/netns) of the sending interface.
    #[arg(long)]
    gen_ns: String,
    #[arg(long)]
    gen_if: String,
    /// Namespace and interface whose receive counter counts arrivals.
    #[arg(long)]
    sink_ns: String,
    #[arg(long)]
    sink_if: String,
    /// Source MAC of the generated frames (the generator's interface).
    #[arg(long)]
    src_mac: MacAddr,
    /// Destination MAC (the sink's interface).
    #[arg(long)]
    dst_mac: MacAddr,
    #[arg(long, default_value = "88b5", value_parser = parse_hex16)]
    ethertype: u16,
    /// Seconds per trial.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Milliseconds to wait after sending before reading the sink counter.
    #[arg(long, default_value_t = 300)]
    settle_ms: u64,
    /// Frames per `sendmmsg`.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Do not send a frame from the sink before each trial (by default one
    /// broadcast from the sink's MAC teaches learning switches where it is,
    /// so the trial measures known unicast, not flooding).
    #[arg(long)]
    no_learn: bool,
}

fn parse_hex16(s: &str) -> Result<u16, String> {
    u16::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("{s}: {e}"))
}

/// Frame length without FCS: 64 bytes on the wire.
const FRAME_LEN: usize = 60;
/// Share of the asked rate below which a trial is marked short: the
/// generator (descheduled, or slowed by a switch that works in the sender's
/// context) did not offer the rate, and the trial counts for what it did
/// offer.
const MIN_ACHIEVED: f64 = 0.98;
/// How far behind schedule the pacing may fall and still catch up (a
/// scheduler time slice lost to another process).
const CATCH_UP: Duration = Duration::from_millis(5);

fn frame(dst: MacAddr, src: MacAddr, ethertype: u16) -> Vec<u8> {
    let mut f = vec![0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    f[14..22].copy_from_slice(b"rvs-gen\0");
    f
}

fn packet_port(ns: &str, ifname: &str) -> Result<AfPacketPort> {
    let cfg = AfPacketConfig {
        // The socket only sends; keep its receive side minimal.
        rcvbuf: 4096,
        max_rx_frame: 2048,
        vnet_hdr: false,
        qdisc_bypass: true,
    };
    netns::in_netns(ns, || AfPacketPort::attach_with(ifname, &cfg))
        .with_context(|| format!("enter netns {ns}"))?
        .with_context(|| format!("open the packet socket on {ifname} in {ns}"))
}

/// (rx_packets, rx_dropped) of `ifname` as the namespace `ns` counts them.
fn rx_counters(ns: &str, ifname: &str) -> Result<(u64, u64)> {
    let text = netns::in_netns(ns, || std::fs::read_to_string("/proc/thread-self/net/dev"))
        .with_context(|| format!("enter netns {ns}"))?
        .context("read /proc/thread-self/net/dev")?;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != ifname {
            continue;
        }
        // rx: bytes packets errs drop fifo frame compressed multicast
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if f.len() < 4 {
            bail!("short /proc/net/dev line for {ifname}: {line}");
        }
        return Ok((f[1], f[3]));
    }
    Err(anyhow!("no interface {ifname} in netns {ns}"))
}

/// The sending side: a packet socket, a pool and the frame template.
struct Generator {
    // Field order: the port goes before the pool its frames come from.
    port: AfPacketPort,
    pool: PacketPool,
    batch: Batch,
    frame: Vec<u8>,
    burst: usize,
}

/// What one sending run did.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    /// Frames the generator tried to send (its offered load).
    attempted: u64,
    /// Of those, frames the kernel accepted; the rest were refused at the
    /// sending interface (counted as lost: the switch side did not take them).
    accepted: u64,
    elapsed: Duration,
}

impl Generator {
    fn open(a: &TrialArgs) -> Result<Generator> {
        if !(1..=64).contains(&a.burst) {
            bail!("--burst {} outside 1..=64", a.burst);
        }
        Ok(Generator {
            port: packet_port(&a.gen_ns, &a.gen_if)?,
            pool: PacketPool::with_frames(256),
            batch: Batch::new(a.burst),
            frame: frame(a.dst_mac, a.src_mac, a.ethertype),
            burst: a.burst,
        })
    }

    /// Send for `dur` at `rate` frames/s (0: flat out). The token bucket
    /// holds [`CATCH_UP`] worth of frames (at least two bursts): a generator
    /// descheduled for less than that catches up, one stalled for longer
    /// offers less than asked, which the caller sees.
    fn run(&mut self, rate: u64, dur: Duration) -> Sent {
        let mut s = Sent::default();
        let depth = (rate as f64 * CATCH_UP.as_secs_f64()).max(2.0 * self.burst as f64);
        let per_ns = rate as f64 / 1e9;
        let mut tokens = self.burst as f64;
        let t0 = Instant::now();
        let mut last = t0;
        loop {
            let now = Instant::now();
            let el = now - t0;
            if el >= dur {
                s.elapsed = el;
                break;
            }
            let n = if rate == 0 {
                self.burst
            } else {
                tokens = (tokens + (now - last).as_nanos() as f64 * per_ns).min(depth);
                last = now;
                let n = (tokens as usize).min(self.burst);
                if n == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                tokens -= n as f64;
                n
            };
            for _ in 0..n {
                let b = self
                    .pool
                    .alloc_from(&self.frame)
                    .expect("every frame is back in the pool after tx_burst");
                self.batch.push(b).expect("n <= burst");
            }
            let done = self.port.tx_burst(&mut self.pool, &mut self.batch);
            s.attempted += n as u64;
            s.accepted += done.packets as u64;
        }
        s
    }
}

/// One trial's figures.
#[derive(Debug, Clone, Copy)]
struct Trial {
    offered_pps: f64,
    sent: Sent,
    received: u64,
    /// The sink's receive drop counter: its stack dropping the test frames
    /// (no handler for the EtherType), so normally equal to `received`.
    sink_drops: u64,
}

impl Trial {
    fn achieved_pps(&self) -> f64 {
        self.sent.attempted as f64 / self.sent.elapsed.as_secs_f64()
    }
    fn rx_pps(&self) -> f64 {
        self.received as f64 / self.sent.elapsed.as_secs_f64()
    }
    fn loss_pct(&self) -> f64 {
        if self.sent.attempted == 0 {
            return 100.0;
        }
        let lost = self.sent.attempted.saturating_sub(self.received);
        100.0 * lost as f64 / self.sent.attempted as f64
    }
    /// Whether the asked rate was really offered (flat-out trials offer
    /// whatever they achieve).
    fn sustained(&self) -> bool {
        self.offered_pps == 0.0 || self.achieved_pps() >= MIN_ACHIEVED * self.offered_pps
    }
    fn passed(&self, loss_pct: f64) -> bool {
        self.loss_pct() < loss_pct
    }
    /// The rate a passing trial proves: the asked rate, or what was really
    /// sent when that fell short.
    fn credited_pps(&self) -> f64 {
        if self.offered_pps == 0.0 {
            self.achieved_pps()
        } else {
            self.achieved_pps().min(self.offered_pps)
        }
    }
    /// One `trial` line; `step` says which part of the search ran it.
    fn print(&self, loss_pct: f64, step: &str) {
        let offered = if self.offered_pps == 0.0 {
            "max".to_string()
        } else {
            format!("{:.0}", self.offered_pps)
        };
        let verdict = match (self.passed(loss_pct), self.sustained()) {
            (true, true) => "pass",
            (true, false) => "pass(short:credited-at-tx_pps)",
            (false, true) => "fail(loss)",
            (false, false) => "fail(loss,short)",
        };
        println!(
            "trial offered_pps={offered} tx_pps={:.0} rx_pps={:.0} sent={} refused={} received={} sink_drops={} loss_pct={:.4} secs={:.3} result={verdict} step={step}",
            self.achieved_pps(),
            self.rx_pps(),
            self.sent.attempted,
            self.sent.attempted - self.sent.accepted,
            self.received,
            self.sink_drops,
            self.loss_pct(),
            self.sent.elapsed.as_secs_f64(),
        );
    }
}

/// Send one broadcast from the sink's MAC out of the sink's interface so
/// learning switches know where it lives.
fn teach_sink_location(a: &TrialArgs) -> Result<()> {
    let mut port = packet_port(&a.sink_ns, &a.sink_if)?;
    let mut pool = PacketPool::with_frames(64);
    let mut batch = Batch::new(1);
    let b = pool
        .alloc_from(&frame(MacAddr::BROADCAST, a.dst_mac, a.ethertype))
        .expect("fresh pool");
    batch.push(b).expect("room for one");
    let done = port.tx_burst(&mut pool, &mut batch);
    if done.packets != 1 {
        bail!("could not send the learning frame from {}", a.sink_if);
    }
    Ok(())
}

fn trial(g: &mut Generator, a: &TrialArgs, rate: u64) -> Result<Trial> {
    if !a.no_learn {
        teach_sink_location(a)?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (rx0, drop0) = rx_counters(&a.sink_ns, &a.sink_if)?;
    let sent = g.run(rate, Duration::from_secs_f64(a.duration));
    std::thread::sleep(Duration::from_millis(a.settle_ms));
    let (rx1, drop1) = rx_counters(&a.sink_ns, &a.sink_if)?;
    Ok(Trial {
        offered_pps: rate as f64,
        sent,
        received: rx1.saturating_sub(rx0),
        sink_drops: drop1.saturating_sub(drop0),
    })
}

/// How a search step judged one rate.
struct Verdict {
    passed: bool,
    /// The rate a pass proves ([`Trial::credited_pps`]).
    credited: f64,
    /// The (last) trial's figures.
    trial: Trial,
    /// Repeats run after a lossy first trial.
    repeats: u32,
}

/// One step of the search: a trial at `rate`; a lossy trial is run once more
/// (after an idle pause that lets queues drain) before the rate counts as
/// lossy, so one transient -- another process taking the switch CPU for a
/// moment on a shared machine -- does not pin the search below the real
/// figure. Under a persistent overload both trials lose.
fn judge(
    g: &mut Generator,
    a: &TrialArgs,
    s: &SearchArgs,
    rate: u64,
    step: &str,
) -> Result<Verdict> {
    let t = trial(g, a, rate)?;
    t.print(s.loss_pct, step);
    if t.passed(s.loss_pct) || s.retries == 0 {
        return Ok(Verdict {
            passed: t.passed(s.loss_pct),
            credited: t.credited_pps(),
            trial: t,
            repeats: 0,
        });
    }
    let (mut last, mut repeats) = (t, 0);
    for _ in 0..s.retries {
        repeats += 1;
        std::thread::sleep(Duration::from_millis(s.pause_ms));
        last = trial(g, a, rate)?;
        last.print(s.loss_pct, "retry");
        if last.passed(s.loss_pct) {
            break;
        }
    }
    Ok(Verdict {
        passed: last.passed(s.loss_pct),
        credited: last.credited_pps(),
        trial: last,
        repeats,
    })
}

/// RFC 2544 throughput, never starting from overload: a flat-out probe
/// sends a forwarder into its worst state (an AF_XDP path that livelocks
/// forwards a fraction of its capacity there) and a search that starts from
/// what arrived then, or bisects down from it, inherits that state; one lossy
/// trial then pins the result. So:
///
/// 1. Ramp up from `--start-frac` of the top rate (the generator's measured
///    maximum, `--max-pps`), by `--ramp` per step, until a rate loses (after its retry,
///    see [`judge`]) or the top rate passes (generator-bound).
/// 2. Bisect between the best passing rate (as really sent) and the lowest
///    lossy one, `--iterations` steps, stopping early once they are within 1 %.
fn search(a: &TrialArgs, s: &SearchArgs) -> Result<()> {
    let mut g = Generator::open(a)?;
    // (trials run, steps whose first trial lost and were repeated)
    let (mut trials, mut retried) = (0u32, 0u32);
    let count = |v: &Verdict, trials: &mut u32, retried: &mut u32| {
        *trials += 1 + v.repeats;
        *retried += u32::from(v.repeats > 0);
    };
    let top = if s.max_pps == 0 {
        // No measured maximum given: find it flat out, then let the
        // forwarder recover before the ramp.
        let t = trial(&mut g, a, 0)?;
        t.print(s.loss_pct, "top");
        trials += 1;
        std::thread::sleep(Duration::from_millis(s.pause_ms));
        t.achieved_pps()
    } else {
        s.max_pps as f64
    };
    if !(s.start_frac > 0.0 && s.start_frac <= 1.0) {
        bail!("--start-frac {} outside (0, 1]", s.start_frac);
    }
    if s.ramp.is_nan() || s.ramp <= 1.0 {
        bail!("--ramp {} must be above 1", s.ramp);
    }
    let (mut lo, mut hi) = (0.0f64, f64::NAN);
    let (mut first_loss, mut first_loss_rx) = (f64::NAN, f64::NAN);
    let mut rate = (top * s.start_frac).max(1.0);
    loop {
        let v = judge(&mut g, a, s, rate as u64, "ramp")?;
        count(&v, &mut trials, &mut retried);
        if !v.passed {
            (hi, first_loss, first_loss_rx) = (rate, rate, v.trial.rx_pps());
            break;
        }
        lo = lo.max(v.credited);
        if rate >= top {
            break;
        }
        rate = (rate * s.ramp).min(top);
    }
    if hi.is_nan() {
        println!(
            "result zero_loss_pps={lo:.0} top_pps={top:.0} first_loss_pps=nan first_loss_rx_pps=nan bound=generator trials={trials} retried={retried}"
        );
        return Ok(());
    }
    for _ in 0..s.iterations {
        if hi - lo <= 0.01 * hi {
            break;
        }
        let mid = (lo + hi) / 2.0;
        let v = judge(&mut g, a, s, mid as u64, "bisect")?;
        count(&v, &mut trials, &mut retried);
        if v.passed {
            lo = lo.max(v.credited);
        } else {
            hi = mid;
        }
    }
    println!(
        "result zero_loss_pps={lo:.0} top_pps={top:.0} first_loss_pps={first_loss:.0} first_loss_rx_pps={first_loss_rx:.0} bound=switch trials={trials} retried={retried}"
    );
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Trial { t, rate } => {
            let mut g = Generator::open(&t)?;
            let r = trial(&mut g, &t, rate)?;
            r.print(0.1, "trial");
        }
        Cmd::Search { t, s } => search(&t, &s)?,
    }
    Ok(())
}
