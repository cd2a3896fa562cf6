//! The load-balancer scenario (`benches/lb.rs`, `rvs-icount lb_vip_tcp`):
//! the whole pipeline over memory ports. Port 0 replays 64-byte TCP
//! segments from 4096 clients (one flow each) to a VIP on port 80; the
//! gateway balances them over 3 backends behind port 1 (a sink). After the
//! first 4096 frames every flow is in the flow table, so the steady state
//! measured is the established-flow path: rx copy, L2 to the gateway, the
//! router's VIP hook, flow lookup, DNAT+SNAT with incremental checksums,
//! neighbor, L2 out, tx. `vip6_tcp` is the same over IPv6 (`rvs-icount
//! lb_vip6_tcp`, `lb/vip6_tcp`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_switch::lb::{Service, ServicePort};
use rvs_switch::router::Gateway;
use rvs_switch::wire::ipv4::checksum;
use rvs_switch::{MacAddr, MemoryPort, PortConfig, Switch};

use crate::FRAME_LEN;

pub const GW: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
/// Flows replayed (distinct client ports).
pub const FLOWS: usize = 4096;

/// A 60-byte TCP ACK from client `10.0.0.10:port` to the VIP:80, valid
/// IPv4 header checksum (the router checks it), to the gateway MAC.
pub fn vip_tcp_frame(port: u16) -> Vec<u8> {
    let mut f = vec![0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&GW.0);
    f[6..12].copy_from_slice(&MacAddr::local(0xa).0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    rvs_switch::wire::ipv4::write_header(&mut f[14..], 40, 64, 6, 0x0a00_000a, VIP.into());
    let t = &mut f[34..54];
    t[0..2].copy_from_slice(&port.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x10; // ACK
    let acc = checksum::pseudo_v4([10, 0, 0, 10], VIP.octets(), 6, 20);
    let c = !checksum::fold(checksum::sum(t, acc));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    f
}

/// The IPv6 VIP, fd00::100.
pub const VIP6: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0100;
const CLIENT6: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_000a;

/// A 74-byte TCP ACK from client `[fd00::a]:port` to `[VIP6]:80`, to the
/// gateway MAC (the IPv6 twin of [`vip_tcp_frame`], 20 bytes of header
/// longer).
pub fn vip6_tcp_frame(port: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 20];
    f[0..6].copy_from_slice(&GW.0);
    f[6..12].copy_from_slice(&MacAddr::local(0xa).0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let (src, dst) = (CLIENT6.to_be_bytes(), VIP6.to_be_bytes());
    rvs_switch::wire::ipv6::write_header(&mut f[14..], 20, 6, 64, &src, &dst);
    let t = &mut f[54..74];
    t[0..2].copy_from_slice(&port.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x10; // ACK
    let acc = checksum::pseudo_v6(&src, &dst, 6, 20);
    let c = !checksum::fold(checksum::sum(t, acc));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    f
}

/// The switch of the scenario.
pub fn vip_tcp(burst: usize) -> Switch {
    switch(burst, false)
}

/// The scenario over IPv6: [`vip6_tcp_frame`]s to [`VIP6`], balanced over
/// the backends' IPv6 addresses.
pub fn vip6_tcp(burst: usize) -> Switch {
    switch(burst, true)
}

fn switch(burst: usize, v6: bool) -> Switch {
    let mut sw = Switch::with_burst(rvs_switch::PacketPool::with_frames(4096), burst);
    let mut cfg = rvs_switch::DomainConfig::new("lb");
    cfg.fdb.max_entries = 0;
    let d = sw.add_domain(cfg).unwrap();
    let mut gw = Gateway::new(d, GW).with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 24);
    if v6 {
        gw = gw.with_ipv6(Ipv6Addr::from((VIP6 & !0xffff) | 1), 64);
    }
    sw.set_gateway(gw).unwrap();
    let frame = if v6 { vip6_tcp_frame } else { vip_tcp_frame };
    let frames = (0..FLOWS).map(|i| frame(10_000 + i as u16)).collect();
    let (source, _) = MemoryPort::replay("clients", frames);
    let (sink, _) = MemoryPort::sink("backends");
    sw.add_port(Box::new(source), PortConfig::access(d, 1))
        .unwrap();
    let out = sw
        .add_port(Box::new(sink), PortConfig::access(d, 1))
        .unwrap();
    let mut backends = Vec::new();
    for i in 0..3u8 {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from((VIP6 & !0xffff) | (0x11 + i as u128)))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11 + i))
        };
        let mac = MacAddr::local(0x100 + i as u64);
        sw.add_static_neighbor(d, ip, mac).unwrap();
        sw.add_static(d, 1, mac, out).unwrap();
        backends.push(ip);
    }
    sw.add_static(d, 1, MacAddr::local(0xa), rvs_switch::PortId(0))
        .unwrap();
    let vip = if v6 {
        IpAddr::V6(VIP6.into())
    } else {
        IpAddr::V4(VIP)
    };
    sw.set_services(vec![Service {
        domain: d,
        vip,
        ports: vec![ServicePort {
            proto: 6,
            port: 80,
            target: 8080,
        }],
        backends,
        health: None,
    }])
    .unwrap();
    sw
}
