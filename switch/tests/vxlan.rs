//! Golden frames: the Linux kernel's own VXLAN encapsulation, captured from
//! its `vxlan` device on an underlay veth (`tests/data/vxlan_capture.sh`,
//! frames as hex in `tests/data/vxlan_kernel_*.hex`), must be byte-equal to
//! what `OuterEncap` writes around the same inner frame, and `decap_outer`
//! must give back the inner frame, the VNI and the remote VTEP.
//!
//! The two per-packet values Linux draws itself, the UDP source port (its
//! skb flow hash) and the IPv4 ID (its ident generator), are taken from the
//! capture; everything else (lengths, flags, TTL, TOS, the IPv4 header
//! checksum, the UDP checksum over the datagram) is ours.

use std::net::IpAddr;

use rvs_switch::counters::DropReason;
use rvs_switch::mac::MacAddr;
use rvs_switch::vxlan::{
    self, OuterDecap, OuterEncap, RxMeta, UnderlayParams, Vni, VniConfig, VtepTable,
};
use rvs_switch::{Batch, PacketPool};

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.trim().chars())
        .collect();
    assert!(
        hex.len().is_multiple_of(2) && !hex.is_empty(),
        "{path}: odd hex"
    );
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// What the capture says the kernel was configured with.
struct Case {
    file: &'static str,
    src: &'static str,
    dst: &'static str,
    vni: u32,
    ttl: u8,
    tos: u8,
    df: bool,
}

const CASES: &[Case] = &[
    Case {
        file: "vxlan_kernel_v4.hex",
        src: "192.0.2.1",
        dst: "192.0.2.2",
        vni: 42,
        ttl: 64,
        tos: 0,
        df: false,
    },
    Case {
        file: "vxlan_kernel_v4_df_ttl.hex",
        src: "192.0.2.1",
        dst: "192.0.2.2",
        vni: 4660,
        ttl: 17,
        tos: 0x10,
        df: true,
    },
    Case {
        file: "vxlan_kernel_v6.hex",
        src: "2001:db8::1",
        dst: "2001:db8::2",
        vni: 0xff_ffff,
        ttl: 64,
        tos: 0,
        df: false,
    },
];

const UNDERLAY_A: MacAddr = MacAddr([2, 0, 0, 0, 0x0a, 1]);
const UNDERLAY_B: MacAddr = MacAddr([2, 0, 0, 0, 0x0b, 1]);

fn params(c: &Case) -> UnderlayParams {
    let mut p = UnderlayParams::new(
        UNDERLAY_A,
        UNDERLAY_B,
        c.src.parse().unwrap(),
        c.dst.parse().unwrap(),
    );
    p.ttl = c.ttl;
    p.tos = c.tos;
    p.df = c.df;
    p
}

#[test]
fn encap_matches_the_kernel_byte_for_byte() {
    for c in CASES {
        let wire = golden(c.file);
        let v6 = be16(&wire, 12) == 0x86dd;
        let outer = if v6 {
            vxlan::OVERHEAD_V6
        } else {
            vxlan::OVERHEAD_V4
        };
        let udp_at = outer - 16;
        let inner = &wire[outer..];
        // Built for another VNI, then switched: the template and its
        // precomputed checksum part must both follow.
        let mut e = OuterEncap::new(&params(c), Vni::new(1).unwrap()).unwrap();
        e.set_vni(Vni::new(c.vni).unwrap());
        assert_eq!(e.overhead(), outer);
        if !v6 {
            e.set_next_id(be16(&wire, 18));
        }
        let mut pool = PacketPool::with_frames(4);
        let mut b = pool.alloc_from(inner).unwrap();
        e.encap_with_port(&mut pool, &mut b, be16(&wire, udp_at))
            .unwrap();
        let ours = pool.data(&b);
        for (i, (x, y)) in ours.iter().zip(&wire).enumerate() {
            assert_eq!(
                x, y,
                "{}: byte {i} differs: ours {x:#04x}, kernel {y:#04x}",
                c.file
            );
        }
        assert_eq!(ours.len(), wire.len(), "{}", c.file);
    }
}

#[test]
fn the_kernel_checksums_are_real_ones() {
    // Guard against a capture taken with tx checksum offload on (the UDP
    // checksum would then be a partial pseudo-header sum): verify both.
    use rvs_switch::wire::udp::{csum_add, csum_fold, pseudo_header_sum};
    for c in CASES {
        let w = golden(c.file);
        let v6 = be16(&w, 12) == 0x86dd;
        let (ip_len, alen, aoff) = if v6 { (40, 16, 8) } else { (20, 4, 12) };
        if !v6 {
            assert_eq!(csum_fold(csum_add(0, &w[14..34])), 0xffff, "{}", c.file);
        }
        let udp = &w[14 + ip_len..];
        let src = &w[14 + aoff..14 + aoff + alen];
        let dst = &w[14 + aoff + alen..14 + aoff + 2 * alen];
        let s = csum_add(pseudo_header_sum(src, dst, udp.len()), udp);
        assert_ne!(be16(udp, 6), 0, "{}: Linux sends a UDP checksum", c.file);
        assert_eq!(csum_fold(s), 0xffff, "{}: UDP checksum", c.file);
    }
}

#[test]
fn decap_gives_back_the_inner_frame_vni_and_remote() {
    for c in CASES {
        let wire = golden(c.file);
        let v6 = be16(&wire, 12) == 0x86dd;
        let outer = if v6 {
            vxlan::OVERHEAD_V6
        } else {
            vxlan::OVERHEAD_V4
        };
        let vni = Vni::new(c.vni).unwrap();
        let mut table = VtepTable::new();
        table.add_vni(vni, VniConfig::default()).unwrap();
        // The receiver is the capture's destination.
        let d = OuterDecap {
            local: c.dst.parse().unwrap(),
            port: vxlan::UDP_PORT,
        };
        let mut pool = PacketPool::with_frames(8);
        // With link padding after the datagram, which must be trimmed.
        let mut padded = wire.clone();
        padded.extend_from_slice(&[0; 6]);
        for bytes in [&wire, &padded] {
            let mut b = pool.alloc_from(bytes).unwrap();
            let m = vxlan::decap_outer(&pool, &mut b, &d, &table).unwrap();
            assert_eq!(
                m,
                RxMeta {
                    vni,
                    remote: c.src.parse::<IpAddr>().unwrap()
                }
            );
            assert_eq!(pool.data(&b), &wire[outer..], "{}", c.file);
            pool.free(b);
        }
        // The UDP-socket path sees only the UDP payload: VXLAN header + inner.
        let mut b = pool.alloc_from(&wire[outer - 8..]).unwrap();
        assert_eq!(vxlan::pull_header(&pool, &mut b), Ok(vni));
        assert_eq!(pool.data(&b), &wire[outer..]);
        vxlan::push_header(&mut pool, &mut b, vni).unwrap();
        assert_eq!(pool.data(&b), &wire[outer - 8..], "push is the inverse");
        pool.free(b);
    }
}

#[test]
fn decap_refuses_what_is_not_ours_and_counts_it() {
    let c = &CASES[0];
    let wire = golden(c.file);
    let mut table = VtepTable::new();
    table
        .add_vni(Vni::new(c.vni).unwrap(), VniConfig::default())
        .unwrap();
    let d = OuterDecap {
        local: c.dst.parse().unwrap(),
        port: vxlan::UDP_PORT,
    };
    let mut pool = PacketPool::with_frames(16);
    let mutate = |at: usize, v: u8| {
        let mut w = wire.clone();
        w[at] = v;
        w
    };
    let mut other_vni = wire.clone();
    other_vni[50 - 2] ^= 1;
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (other_vni, DropReason::VxlanUnknownVni),
        (mutate(42, 0x00), DropReason::VxlanNoIFlag),
        (mutate(37, 0xb6), DropReason::VxlanNotForUs), // dst port 4790
        (mutate(33, 0x03), DropReason::VxlanNotForUs), // dst IP .3 (checksum too)
        (mutate(24, 0x00), DropReason::VxlanNotForUs), // IPv4 header checksum
        (mutate(23, 6), DropReason::VxlanNotForUs),    // TCP
        (wire[..60].to_vec(), DropReason::VxlanTruncated),
    ];
    let mut batch = Batch::new(16);
    for (w, _) in &cases {
        batch.push(pool.alloc_from(w).unwrap()).unwrap();
    }
    batch.push(pool.alloc_from(&wire).unwrap()).unwrap();
    let mut meta = [None; rvs_switch::BATCH_MAX];
    let mut counters = vxlan::VxlanCounters::default();
    let dropped = d.decap_batch(&mut pool, &mut batch, &table, &mut meta, &mut counters);
    assert_eq!(dropped, cases.len());
    assert_eq!(batch.len(), 1);
    assert_eq!(meta[0].unwrap().vni.get(), c.vni);
    for r in [
        DropReason::VxlanUnknownVni,
        DropReason::VxlanNoIFlag,
        DropReason::VxlanTruncated,
    ] {
        assert_eq!(counters.drops_by(r), 1, "{r}");
    }
    assert_eq!(counters.drops_by(DropReason::VxlanNotForUs), 4);
    batch.free_all(&mut pool);
    assert_eq!(pool.available(), 16);
}

#[test]
fn full_encap_batch_enforces_the_underlay_mtu() {
    let c = &CASES[0];
    let mut e = OuterEncap::new(&params(c), Vni::new(1).unwrap()).unwrap();
    let mut pool = PacketPool::with_frames(8);
    let mut batch = Batch::new(8);
    for len in [1464, 1465] {
        let mut f = vec![0u8; len];
        f[12] = 0x08;
        batch.push(pool.alloc_from(&f).unwrap()).unwrap();
    }
    let mut counters = vxlan::VxlanCounters::default();
    assert_eq!(e.encap_batch(&mut pool, &mut batch, 1500, &mut counters), 1);
    assert_eq!(counters.drops_by(DropReason::VxlanOversize), 1);
    // The survivor is a 1500-byte IP packet: exactly the MTU.
    let d = pool.data(batch.get(0));
    assert_eq!(be16(d, 16), 1500);
    batch.free_all(&mut pool);
}
