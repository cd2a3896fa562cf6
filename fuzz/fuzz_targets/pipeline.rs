//! The whole switch over memory ports never panics, never loses a buffer
//! and accounts for every frame, whatever the frames and whatever the
//! configuration: VLAN modes, a routing gateway on two bridge domains (ARP,
//! ND, echo, ICMP errors built in headroom, held packets), RSTP on a third
//! domain, and a VXLAN path without sockets (raw-underlay and UDP-payload
//! decapsulation into a port, encapsulation of what the switch sends there,
//! checked to decapsulate back to the same frame).
//!
//! Input layout:
//! - byte 0: the tag protocol of domain `fuzz` (bit 7) and its four port
//!   modes (2 bits each);
//! - byte 1: features (see `F_*`);
//! - then records `[sel: u8][len: u8][len bytes]`: `sel & 15` picks where the
//!   frame enters (`TARGETS`), `sel >> 4` how far the clock moves first
//!   (steps of 250 ms).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rvs_switch::router::{Gateway, NextHop};
use rvs_switch::stp::StpConfig;
use rvs_switch::vlan::{VlanMode, VlanProtocol};
use rvs_switch::vxlan::{
    self, Destination, OuterDecap, OuterEncap, RxMeta, UnderlayParams, Vni, VniConfig, VtepTable,
    VxlanCounters,
};
use rvs_switch::{
    BATCH_MAX, Batch, DomainConfig, MacAddr, MemoryPort, MemoryPortHandle, PacketPool, PortConfig,
    PortSecurity, StageCounter, Switch,
};

const FRAMES: usize = 256;
const VX_FRAMES: usize = 64;

/// Gateway on domain `fuzz`.
const F_GW_A: u8 = 1;
/// Gateway on domain `b`.
const F_GW_B: u8 = 2;
/// Both gateways route between domains.
const F_ROUTING: u8 = 4;
/// Domain `b`'s gateway has a 128-byte MTU (fragmentation needed).
const F_SMALL_MTU: u8 = 8;
/// RSTP on domain `stp`.
const F_STP: u8 = 16;
/// A static neighbor behind `b`'s gateway.
const F_STATIC_NEIGH: u8 = 32;
/// Port security on `p0` (station 02:00:00:00:00:01, 10.0.0.2).
const F_SECURITY: u8 = 64;
/// `b`'s gateway is an uplink.
const F_EXTERNAL: u8 = 128;

const GW_A: MacAddr = MacAddr([2, 0, 0, 0, 0x0a, 1]);
const GW_B: MacAddr = MacAddr([2, 0, 0, 0, 0x0b, 1]);
const VNI: u32 = 42;
const LOCAL_VTEP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const VTEP_PORT: u16 = 4789;

/// Where a record's frame enters.
#[derive(Clone, Copy)]
enum Target {
    /// A switch port (index into the handles).
    Port(usize),
    /// The raw underlay: outer Ethernet/IP/UDP/VXLAN, decapsulated into `vtep`.
    Underlay,
    /// A UDP payload (VXLAN header + inner frame), decapsulated into `vtep`.
    Datagram,
}

/// p0..p3 (domain `fuzz`), vtep (4, domain `fuzz`), b0 b1 (domain `b`),
/// s0..s2 (domain `stp`).
const TARGETS: [Target; 12] = [
    Target::Port(0),
    Target::Port(1),
    Target::Port(2),
    Target::Port(3),
    Target::Underlay,
    Target::Port(5),
    Target::Port(6),
    Target::Port(7),
    Target::Port(8),
    Target::Port(9),
    Target::Datagram,
    Target::Port(4),
];
const VTEP: usize = 4;

struct Vxlan {
    pool: PacketPool,
    table: VtepTable,
    counters: VxlanCounters,
    vni: Vni,
}

impl Vxlan {
    fn new() -> Vxlan {
        let vni = Vni::new(VNI).unwrap();
        let mut table = VtepTable::new();
        let cfg = VniConfig {
            flood: vec!["192.0.2.2".parse().unwrap(), "2001:db8::2".parse().unwrap()],
            ..VniConfig::default()
        };
        table.add_vni(vni, cfg).unwrap();
        Vxlan {
            pool: PacketPool::with_frames(VX_FRAMES),
            table,
            counters: VxlanCounters::default(),
            vni,
        }
    }

    /// Decapsulate `bytes` (a raw underlay frame, or a UDP payload) and
    /// give the inner frame to the VTEP port, learning its source. Returns
    /// whether a frame was injected.
    fn receive(&mut self, bytes: &[u8], raw: bool, vtep: &MemoryPortHandle, now_s: u32) -> bool {
        let Some(b) = self.pool.alloc_from(bytes) else {
            return false;
        };
        let mut batch = Batch::new(BATCH_MAX);
        batch.push(b).unwrap();
        let remote = if raw {
            let mut meta = [None; BATCH_MAX];
            let d = OuterDecap {
                local: LOCAL_VTEP,
                port: VTEP_PORT,
            };
            d.decap_batch(
                &mut self.pool,
                &mut batch,
                &self.table,
                &mut meta,
                &mut self.counters,
            );
            meta[0].map(|m: RxMeta| {
                assert_eq!(m.vni, self.vni, "only a known VNI decapsulates");
                m.remote
            })
        } else {
            let mut vnis = [self.vni; BATCH_MAX];
            vxlan::decap_batch(
                &mut self.pool,
                &mut batch,
                &self.table,
                &mut vnis,
                &mut self.counters,
            );
            (!batch.is_empty()).then(|| "192.0.2.9".parse().unwrap())
        };
        let mut injected = false;
        if let Some(remote) = remote {
            let b = batch.get(0);
            let inner = self.pool.data(b);
            assert!(inner.len() <= bytes.len(), "decapsulation only shrinks");
            assert!(inner.len() >= 14, "an inner frame has a MAC header");
            let src = MacAddr(inner[6..12].try_into().unwrap());
            if src.is_valid_source() {
                let _ = self.table.learn(self.vni, src, remote, now_s);
            }
            vtep.inject(inner.to_vec());
            injected = true;
        }
        batch.free_all(&mut self.pool);
        injected
    }

    /// What the switch sent out of the VTEP port: encapsulated to each
    /// destination, then decapsulated again as the remote would.
    fn send(&mut self, frame: &[u8], now_s: u32) {
        if frame.len() < 14 {
            return;
        }
        let dst = MacAddr(frame[0..6].try_into().unwrap());
        let remotes: Vec<IpAddr> = match self.table.destination(self.vni, dst, now_s) {
            Some(Destination::Unicast(ip)) => vec![ip],
            Some(Destination::Flood(list)) => list.to_vec(),
            None => panic!("the VNI is configured"),
        };
        let src_mac = MacAddr([2, 0, 0, 0, 0xee, 1]);
        let dst_mac = MacAddr([2, 0, 0, 0, 0xee, 2]);
        for remote in remotes {
            let local = match remote {
                IpAddr::V4(_) => LOCAL_VTEP,
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            };
            let mut enc = OuterEncap::new(
                &UnderlayParams::new(src_mac, dst_mac, local, remote),
                self.vni,
            )
            .expect("valid underlay");
            let Some(mut b) = self.pool.alloc_from(frame) else {
                continue;
            };
            if enc.encap(&mut self.pool, &mut b).is_ok() {
                assert_eq!(self.pool.data(&b).len(), frame.len() + enc.overhead());
                let at_remote = OuterDecap {
                    local: remote,
                    port: VTEP_PORT,
                };
                let m = vxlan::decap_outer(&self.pool, &mut b, &at_remote, &self.table)
                    .expect("our own encapsulation decapsulates");
                assert_eq!(m.vni, self.vni);
                assert_eq!(m.remote, local);
                assert_eq!(self.pool.data(&b), frame, "inner frame unchanged");
            }
            self.pool.free(b);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let (features, mut rest) = match rest.split_first() {
        Some((&f, r)) => (f, r),
        None => (F_GW_A | F_GW_B | F_ROUTING | F_STP, rest),
    };
    let mut sw = Switch::new(PacketPool::with_frames(FRAMES));

    let mut dc = DomainConfig::new("fuzz");
    if cfg & 0x80 != 0 {
        dc.vlan_protocol = VlanProtocol::Dot1Ad;
    }
    dc.fdb.max_entries = 64;
    let da = sw.add_domain(dc).unwrap();
    let mut db = DomainConfig::new("b");
    db.fdb.max_entries = 64;
    let db = sw.add_domain(db).unwrap();
    let mut ds = DomainConfig::new("stp");
    ds.fdb.max_entries = 64;
    if features & F_STP != 0 {
        ds.stp = Some(StpConfig::default());
    }
    let ds = sw.add_domain(ds).unwrap();

    let mut handles = Vec::new();
    for i in 0..4 {
        let mode = match (cfg >> (i * 2)) & 3 {
            0 => VlanMode::Access { pvid: 1 },
            1 => VlanMode::Access { pvid: 2 },
            2 => VlanMode::Trunk {
                allowed: "1-3".parse().unwrap(),
                native: Some(1),
            },
            _ => VlanMode::Tunnel { svid: 2 },
        };
        let mut pc = PortConfig::access(da, 1).with_vlan(mode);
        if i == 0 && features & F_SECURITY != 0 {
            pc.security = Some(PortSecurity {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                ips: vec!["10.0.0.2".parse().unwrap()],
            });
        }
        let (p, h) = MemoryPort::new(&format!("p{i}"));
        sw.add_port(Box::new(p), pc).unwrap();
        handles.push(h);
    }
    let members = [
        ("vtep", da),
        ("b0", db),
        ("b1", db),
        ("s0", ds),
        ("s1", ds),
        ("s2", ds),
    ];
    for (name, d) in members {
        let (p, h) = MemoryPort::new(name);
        sw.add_port(Box::new(p), PortConfig::access(d, 1)).unwrap();
        handles.push(h);
    }

    let routing = features & F_ROUTING != 0;
    if features & F_GW_A != 0 {
        let mut g = Gateway::new(da, GW_A)
            .with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 24)
            .with_ipv6("fd00::1".parse().unwrap(), 64);
        g.routing = routing;
        sw.set_gateway(g).unwrap();
    }
    if features & F_GW_B != 0 {
        let mut g = Gateway::new(db, GW_B)
            .with_ipv4(Ipv4Addr::new(10, 0, 1, 1), 24)
            .with_ipv6("fd00:1::1".parse().unwrap(), 64);
        g.routing = routing;
        g.external = features & F_EXTERNAL != 0;
        if features & F_SMALL_MTU != 0 {
            g.mtu = 128;
        }
        sw.set_gateway(g).unwrap();
        // Remote prefixes via a router on `b` that has to be resolved (not
        // /0: that writes all 2^24 entries of the DIR-24-8 table, which
        // makes one input take a second under ASan).
        let via = |a: IpAddr| NextHop::Via {
            gateway: a,
            domain: db,
        };
        sw.add_route(
            0,
            "198.51.0.0".parse().unwrap(),
            16,
            via("10.0.1.254".parse().unwrap()),
        )
        .unwrap();
        sw.add_route(
            0,
            "2001:db8::".parse().unwrap(),
            32,
            via("fd00:1::fe".parse().unwrap()),
        )
        .unwrap();
        if features & F_STATIC_NEIGH != 0 {
            let mac = MacAddr([2, 0, 0, 0, 0x0b, 2]);
            sw.add_static_neighbor(db, "10.0.1.2".parse().unwrap(), mac)
                .unwrap();
            sw.add_static_neighbor(db, "fd00:1::2".parse().unwrap(), mac)
                .unwrap();
        }
    }

    let mut vx = Vxlan::new();
    sw.tracer().arm(4, None);
    let mut injected = 0u64;
    let mut t = 0u64;
    let step = |sw: &mut Switch, vx: &mut Vxlan, t: u64| {
        sw.set_now_ms(t);
        sw.poll();
        let now_s = (t / 1000) as u32;
        for (i, h) in handles.iter().enumerate() {
            for f in h.take_tx() {
                if i == VTEP {
                    vx.send(&f, now_s);
                }
            }
        }
    };
    while rest.len() >= 2 {
        let sel = rest[0];
        let len = (rest[1] as usize).min(rest.len() - 2);
        let bytes = &rest[2..2 + len];
        rest = &rest[2 + len..];
        t += (sel >> 4) as u64 * 250;
        let now_s = (t / 1000) as u32;
        match TARGETS[(sel & 15) as usize % TARGETS.len()] {
            Target::Port(p) => {
                handles[p].inject(bytes.to_vec());
                injected += 1;
            }
            Target::Underlay => injected += vx.receive(bytes, true, &handles[VTEP], now_s) as u64,
            Target::Datagram => injected += vx.receive(bytes, false, &handles[VTEP], now_s) as u64,
        }
        step(&mut sw, &mut vx, t);
    }
    // Let held packets resolve or time out (3 probes, 1 s apart).
    for _ in 0..10 {
        t += 500;
        step(&mut sw, &mut vx, t);
    }

    assert_eq!(sw.pool().available(), FRAMES, "switch buffers leaked");
    assert_eq!(vx.pool.available(), VX_FRAMES, "VXLAN buffers leaked");
    let ports = sw.ports();
    let rx: u64 = ports.iter().map(|p| p.counters.rx_packets).sum();
    let pending: usize = handles.iter().map(|h| h.rx_pending()).sum();
    assert_eq!(
        rx + pending as u64,
        injected,
        "every injected frame received"
    );
    assert_eq!(pending, 0, "the switch drained its ports");
    // Every frame was sent at least once, or counted: dropped with a
    // reason (port or router), taken in by the gateway (ARP/ND) or by RSTP.
    let tx: u64 = ports.iter().map(|p| p.counters.tx_packets).sum();
    let drops: u64 = ports.iter().map(|p| p.counters.total_drops()).sum();
    let l3 = sw.router().counters();
    let l3_drops: u64 = l3.drops.iter().sum();
    let consumed = l3.stages.get(StageCounter::L3NeighConsumed);
    let bpdus: u64 = sw
        .stp_info(ds)
        .unwrap()
        .map_or(0, |s| s.ports.iter().map(|p| p.counters.bpdu_rx).sum());
    assert!(
        tx + drops + l3_drops + consumed + bpdus >= rx,
        "frames unaccounted for: rx {rx}, tx {tx}, drops {drops}, l3 drops {l3_drops}, \
         consumed {consumed}, bpdus {bpdus}"
    );
});
