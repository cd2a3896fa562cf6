//! rvs-reflect: the ceiling for the end-to-end harness (`bench/e2e`). Two
//! AF_XDP ports of `rvs-drivers` on one UMEM, and a loop that hands every
//! burst received on one straight to the other's transmit ring: no parsing,
//! no learning, no lookup, no counters beyond the ports' own. What it
//! forwards is what the kernel's AF_XDP path (copy mode on veth) allows one
//! core, so the switch is judged against it.
//!
//! Same protocol as `rvs-e2e-switch`: `ready` once open, runs until standard
//! input closes (or says `stop`), then prints the ports' counters. Pin it
//! with `taskset`.
//!
//! Owns: the two sockets and the pool. Never: sleeps while polling, looks
//! inside a frame.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};
use rvs_drivers::afxdp::{AfXdpConfig, AfXdpPort, Umem, XdpModePreference};
use rvs_switch::{Batch, PacketPool, Port};

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Generic,
    Native,
    Auto,
}

#[derive(Parser)]
#[command(about = "bare AF_XDP forwarder between two interfaces (the bench/e2e ceiling)")]
struct Cli {
    a: String,
    b: String,
    #[arg(long, value_enum, default_value = "generic")]
    xdp_mode: Mode,
    /// Frames per receive burst (1..=64).
    #[arg(long, default_value_t = 32)]
    burst: usize,
}

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

/// Move one burst from `from` to `to`. Returns frames received.
#[inline]
fn pass(from: &mut AfXdpPort, to: &mut AfXdpPort, pool: &mut PacketPool, b: &mut Batch) -> usize {
    match from.rx_burst(pool, b) {
        Ok(0) => 0,
        Ok(n) => {
            to.tx_burst(pool, b);
            n
        }
        Err(_) => {
            b.free_all(pool);
            0
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if !(1..=64).contains(&cli.burst) {
        bail!("--burst {} outside 1..=64", cli.burst);
    }
    // Declaration order is the reverse of drop order: the ports go before
    // the pool whose memory they registered.
    let mut pool = PacketPool::with_frames(8192);
    let umem = Umem::new(&mut pool, 2048)?;
    let cfg = AfXdpConfig {
        xdp_mode: match cli.xdp_mode {
            Mode::Generic => XdpModePreference::Generic,
            Mode::Native => XdpModePreference::Native,
            Mode::Auto => XdpModePreference::Auto,
        },
        ..AfXdpConfig::default()
    };
    let mut a = AfXdpPort::open(&umem, &mut pool, &cli.a, &cfg)?;
    let mut b = AfXdpPort::open(&umem, &mut pool, &cli.b, &cfg)?;
    for p in [&a, &b] {
        let i = p.info();
        println!(
            "port {} kind=afxdp xdp_mode={:?} zero_copy={} umem_anchor={}",
            i.ifname, i.xdp_mode, i.zero_copy, i.umem_anchor
        );
    }
    let (sa, sb) = (a.stats(), b.stats());
    let mut batch = Batch::new(cli.burst);
    let stop = stop_on_stdin();
    println!("ready ports={},{}", cli.a, cli.b);
    let t0 = Instant::now();
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            let n = pass(&mut a, &mut b, &mut pool, &mut batch)
                + pass(&mut b, &mut a, &mut pool, &mut batch);
            if n == 0 {
                idle += 1;
                if idle == 1024 {
                    a.maintain(&mut pool);
                    b.maintain(&mut pool);
                    idle = 0;
                }
            } else {
                idle = 0;
            }
        }
    }
    println!("secs={:.1}", t0.elapsed().as_secs_f64());
    for (name, s) in [(&cli.a, sa), (&cli.b, sb)] {
        let c = s.snapshot();
        println!(
            "counters port={name} rx={} tx={} tx_drop_full={} completed={} fill_starved={}",
            c.rx_packets, c.tx_packets, c.tx_drop_full, c.completed, c.fill_starved
        );
    }
    Ok(())
}
