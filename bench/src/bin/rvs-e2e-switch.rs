//! rvs-e2e-switch: rvswitch as the end-to-end harness (`bench/e2e`) runs it:
//! one `Switch` with one bridge domain and two access ports from
//! `rvs-drivers` (AF_XDP on existing interfaces, or TAPs it creates), polled
//! by this one thread without sleeping, like an OVS PMD thread (an empty
//! poll yields the CPU, as the daemon's workers do). Pin it with
//! `taskset`. It uses the library directly, so the harness does not depend on
//! the daemon's API.
//!
//! Protocol with the harness: prints `ready ...` once the ports are open,
//! runs until its standard input closes (or a line `stop` arrives), then
//! prints per-port counters and exits. Killed instead, the kernel closes the
//! sockets and TAPs all the same.
//!
//! Owns: the switch and its ports. Never: creates or deletes veths or
//! namespaces (the harness does), sleeps while polling.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use rvs_drivers::afxdp::{AfXdpConfig, AfXdpPort, Umem, XdpModePreference};
use rvs_drivers::tap::{TapOptions, TapPort};
use rvs_switch::{DomainConfig, PacketPool, Port, PortConfig, Switch};

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// AF_XDP sockets on two existing interfaces (veth host ends).
    Afxdp,
    /// Two TAPs created here (the harness moves them into namespaces).
    Tap,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Generic,
    Native,
    Auto,
}

#[derive(Parser)]
#[command(about = "rvswitch with two ports, polled on one thread, for bench/e2e")]
struct Cli {
    kind: Kind,
    /// The two port names: interfaces to attach (afxdp) or TAPs to create (tap).
    #[arg(long, value_delimiter = ',', required = true)]
    ports: Vec<String>,
    /// XDP attach mode for AF_XDP ports (generic matches OVS's
    /// `options:xdp-mode=generic`).
    #[arg(long, value_enum, default_value = "generic")]
    xdp_mode: Mode,
    /// Frames per receive burst (1..=64).
    #[arg(long, default_value_t = 32)]
    burst: usize,
}

/// Frames in the pool: two AF_XDP fill rings of 1024 plus rings in flight.
const FRAMES: usize = 8192;
/// Large frames for TAP TSO super-frames (128 KiB each).
const LARGE_FRAMES: usize = 256;

fn build(cli: &Cli) -> Result<Switch> {
    if cli.ports.len() != 2 {
        bail!("--ports takes exactly two names");
    }
    let mut ports: Vec<Box<dyn Port>> = Vec::new();
    let pool = match cli.kind {
        Kind::Afxdp => {
            let mut pool = PacketPool::with_frames(FRAMES);
            let umem = Umem::new(&mut pool, 2048).context("describe the UMEM")?;
            let cfg = AfXdpConfig {
                xdp_mode: match cli.xdp_mode {
                    Mode::Generic => XdpModePreference::Generic,
                    Mode::Native => XdpModePreference::Native,
                    Mode::Auto => XdpModePreference::Auto,
                },
                ..AfXdpConfig::default()
            };
            for name in &cli.ports {
                let p = AfXdpPort::open(&umem, &mut pool, name, &cfg)?;
                let i = p.info();
                println!(
                    "port {} kind=afxdp xdp_mode={:?} zero_copy={} umem_anchor={} max_frame={}",
                    i.ifname, i.xdp_mode, i.zero_copy, i.umem_anchor, i.max_frame
                );
                ports.push(Box::new(p));
            }
            pool
        }
        Kind::Tap => {
            let pool = PacketPool::with_large(
                FRAMES,
                rvs_switch::buf::DEFAULT_FRAME_SIZE,
                rvs_switch::buf::DEFAULT_HEADROOM,
                LARGE_FRAMES,
            )
            .context("build the packet pool")?;
            for name in &cli.ports {
                let opts = TapOptions::for_pool(name, &pool).up(false);
                let p = TapPort::create(&opts, &pool)?;
                println!("port {name} kind=tap offload={:?}", p.offload());
                ports.push(Box::new(p));
            }
            pool
        }
    };
    let mut sw = Switch::with_burst(pool, cli.burst);
    let d = sw.add_domain(DomainConfig::new("e2e"))?;
    for p in ports {
        sw.add_port(p, PortConfig::access(d, 1))?;
    }
    Ok(sw)
}

/// Set when standard input closes or says `stop`.
fn stop_on_stdin() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) if l.trim() == "stop" => break,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        s.store(true, Ordering::Relaxed);
    });
    stop
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if !(1..=64).contains(&cli.burst) {
        bail!("--burst {} outside 1..=64", cli.burst);
    }
    let mut sw = build(&cli)?;
    let stop = stop_on_stdin();
    println!("ready ports={}", cli.ports.join(","));
    let t0 = Instant::now();
    let mut idle = 0u32;
    let mut polls = 0u64;
    while !stop.load(Ordering::Relaxed) {
        sw.set_now_ms(t0.elapsed().as_millis() as u64);
        for _ in 0..64 {
            polls += 1;
            if sw.poll() == 0 {
                // As the daemon's workers do: an empty poll yields the CPU
                // to whatever the switch just woke on this core.
                std::thread::yield_now();
                idle += 1;
                if idle == 1024 {
                    sw.maintain();
                    idle = 0;
                }
            } else {
                idle = 0;
            }
        }
    }
    println!("polls {polls} secs={:.1}", t0.elapsed().as_secs_f64());
    for p in sw.ports() {
        let c = &p.counters;
        let drops: Vec<String> = c.nonzero_drops().map(|(r, n)| format!("{r}={n}")).collect();
        println!(
            "counters port={} rx={} tx={} drops={} {}",
            p.name,
            c.rx_packets,
            c.tx_packets,
            c.total_drops(),
            drops.join(" ")
        );
        if let Some(e) = p.last_error {
            println!("error port={} {e}", p.name);
        }
    }
    Ok(())
}
