//! The whole pipeline over memory ports never panics and never loses a
//! buffer, whatever the frames and whatever the port VLAN setup.
//!
//! Input layout: byte 0 picks the domain's tag protocol and the port modes
//! (2 bits each for four ports); then records of [port: u8][len: u8][bytes].
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_switch::vlan::{VlanMode, VlanProtocol};
use rvs_switch::{DomainConfig, MemoryPort, PacketPool, PortConfig, Switch};

const FRAMES: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, mut rest)) = data.split_first() else { return };
    let mut sw = Switch::new(PacketPool::with_frames(FRAMES));
    let mut dc = DomainConfig::new("fuzz");
    if cfg & 0x80 != 0 {
        dc.vlan_protocol = VlanProtocol::Dot1Ad;
    }
    dc.fdb.max_entries = 64;
    let d = sw.add_domain(dc).unwrap();
    let mut handles = Vec::new();
    for i in 0..4 {
        let mode = match (cfg >> (i * 2)) & 3 {
            0 => VlanMode::Access { pvid: 1 },
            1 => VlanMode::Access { pvid: 2 },
            2 => VlanMode::Trunk { allowed: "1-3".parse().unwrap(), native: Some(1) },
            _ => VlanMode::Tunnel { svid: 2 },
        };
        let (p, h) = MemoryPort::new(&format!("p{i}"));
        sw.add_port(Box::new(p), PortConfig::access(d, 1).with_vlan(mode)).unwrap();
        handles.push(h);
    }
    sw.tracer().arm(4, None);
    let mut t = 0u64;
    while rest.len() >= 2 {
        let port = rest[0] as usize % 4;
        let len = (rest[1] as usize).min(rest.len() - 2);
        handles[port].inject(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
        t += 700;
        sw.set_now_ms(t);
        sw.poll();
        for h in &handles {
            h.take_tx();
        }
    }
    sw.poll();
    assert_eq!(sw.pool().available(), FRAMES, "buffers leaked");
});
