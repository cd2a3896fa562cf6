//! The header work of the load balancer, on an IP packet (`ip` starts at
//! the IP header): find the transport ports, and rewrite source and
//! destination address and port with incremental checksum updates (RFC
//! 1624) of the IPv4 header and the TCP/UDP checksum, for IPv4 and IPv6.
//!
//! A packet whose L4 checksum is left to the receiver's offload
//! (`partial`: virtio `NEEDS_CSUM`, the field holds the pseudo-header sum
//! only) gets only the pseudo-header's share updated (the addresses; the
//! ports are not in it). A UDP/IPv4 datagram without a checksum (0) keeps
//! none.
//!
//! Owns: byte offsets and checksum arithmetic. Never: decisions.

use crate::wire::ipv4::checksum::{fold, fold2, sum};

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// What the load balancer reads of a TCP or UDP packet. Addresses are
/// neighbour-table keys (IPv4 in the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub v6: bool,
    pub proto: u8,
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    /// TCP flags (0 for UDP).
    pub flags: u8,
    /// Offset of the TCP/UDP header in `ip`.
    pub l4: usize,
}

/// The flow of a whole, unfragmented TCP or UDP packet; `None` for
/// anything else (other protocols, fragments, IPv6 extension headers,
/// truncated headers).
#[inline]
pub fn parse(ip: &[u8]) -> Option<Flow> {
    let (v6, proto, src, dst, l4) = match ip.first()? >> 4 {
        4 => {
            if ip.len() < 20 {
                return None;
            }
            let ihl = ((ip[0] & 0x0f) as usize) * 4;
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            if frag & 0x3fff != 0 || ihl < 20 {
                return None;
            }
            let s = u32::from_be_bytes(ip[12..16].try_into().ok()?) as u128;
            let d = u32::from_be_bytes(ip[16..20].try_into().ok()?) as u128;
            (false, ip[9], s, d, ihl)
        }
        6 => {
            if ip.len() < 40 {
                return None;
            }
            let s = u128::from_be_bytes(ip[8..24].try_into().ok()?);
            let d = u128::from_be_bytes(ip[24..40].try_into().ok()?);
            (true, ip[6], s, d, 40)
        }
        _ => return None,
    };
    let need = match proto {
        TCP => 20,
        UDP => 8,
        _ => return None,
    };
    let h = ip.get(l4..l4 + need)?;
    Some(Flow {
        v6,
        proto,
        src,
        dst,
        sport: u16::from_be_bytes([h[0], h[1]]),
        dport: u16::from_be_bytes([h[2], h[3]]),
        flags: if proto == TCP { h[13] } else { 0 },
        l4,
    })
}

/// [`parse`] of an IPv4 packet the router would route as it is: a
/// 20-byte header (no options) whose checksum verifies, a total length
/// within `ip`, not a fragment, TCP or UDP with its whole header. The
/// load balancer's fast path (`pipeline/vip.rs`) takes only these: one
/// pass over the header does the router's checks and the parse, and every
/// packet it accepts is one the router's check and [`parse`] accept with
/// the same result (`tests::parse_v4_plain_accepts_a_subset`). `None`:
/// anything else, for the general path to decide.
#[inline(always)]
pub fn parse_v4_plain(ip: &[u8]) -> Option<Flow> {
    let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    // Version 4, IHL 5; neither MF nor a fragment offset.
    if h[0] != 0x45 || total < 20 || total > ip.len() || h[6] & 0x3f != 0 || h[7] != 0 {
        return None;
    }
    // The one's-complement sum is the same in either byte order (RFC
    // 1071): add native 32-bit words and fold; all ones when it verifies.
    let w = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
    let mut c = w(0) + w(4) + w(8) + w(12) + w(16);
    c = (c & 0xffff_ffff) + (c >> 32);
    c = (c & 0xffff) + (c >> 16);
    c = (c & 0xffff) + (c >> 16);
    if c != 0xffff {
        return None;
    }
    let proto = h[9];
    let need = match proto {
        TCP => 20,
        UDP => 8,
        _ => return None,
    };
    let l4 = ip.get(20..20 + need)?;
    Some(Flow {
        v6: false,
        proto,
        src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]) as u128,
        dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]) as u128,
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        flags: if proto == TCP { l4[13] } else { 0 },
        l4: 20,
    })
}

/// [`parse`] of an IPv6 packet the router would route as it is: version
/// 6, a payload length within `ip`, TCP or UDP with its whole header
/// straight after the fixed header (no extension headers). As
/// [`parse_v4_plain`], for the fast path: every packet it accepts is one
/// the router's check (`V6::check`) and [`parse`] accept with the same
/// result (`tests::parse_v6_plain_accepts_a_subset`).
#[inline(always)]
pub fn parse_v6_plain(ip: &[u8]) -> Option<Flow> {
    let h: &[u8; 40] = ip.get(..40)?.try_into().ok()?;
    let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
    if h[0] >> 4 != 6 || 40 + payload > ip.len() {
        return None;
    }
    let proto = h[6];
    let need = match proto {
        TCP => 20,
        UDP => 8,
        _ => return None,
    };
    let l4 = ip.get(40..40 + need)?;
    let addr = |at: usize| u128::from_be_bytes(h[at..at + 16].try_into().expect("16 bytes"));
    Some(Flow {
        v6: true,
        proto,
        src: addr(8),
        dst: addr(24),
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        flags: if proto == TCP { l4[13] } else { 0 },
        l4: 40,
    })
}

/// The one's-complement change of a sum when 16-bit words `old` became
/// `new`, for `u32` (an IPv4 address, or two ports): `~old + new` word by
/// word (RFC 1624 eqn. 3), not yet folded.
#[inline(always)]
fn delta32(old: u32, new: u32) -> u32 {
    let o = !old;
    (o >> 16) + (o & 0xffff) + (new >> 16) + (new & 0xffff)
}

/// As [`delta32`] for an IPv6 address.
#[inline(always)]
fn delta128(old: u128, new: u128) -> u32 {
    let mut d = 0;
    for k in 0..4 {
        d += delta32((old >> (32 * k)) as u32, (new >> (32 * k)) as u32);
    }
    d
}

/// Checksum field `hc` after the covered data changed by `d`:
/// `HC' = ~(~HC + d)`.
#[inline(always)]
fn apply(hc: u16, d: u32) -> u16 {
    // Three or more terms: the sum usually carries (`fold2`).
    !fold2((!hc) as u32 + d)
}

#[inline(always)]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The sum changes of one rewrite: the addresses' (in the IPv4 header
/// and the pseudo-header) and the ports', unfolded (see [`delta32`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    pub addrs: u32,
    pub ports: u32,
}

impl Delta {
    /// The change of `src:sport → dst:dport` becoming `src2:sport2 →
    /// dst2:dport2`.
    #[inline]
    pub fn of(v6: bool, old: ((u128, u16), (u128, u16)), new: ((u128, u16), (u128, u16))) -> Delta {
        let addrs = if v6 {
            delta128(old.0.0, new.0.0) + delta128(old.1.0, new.1.0)
        } else {
            delta32(old.0.0 as u32, new.0.0 as u32) + delta32(old.1.0 as u32, new.1.0 as u32)
        };
        let ports = |a: (u128, u16), b: (u128, u16)| (a.1 as u32) << 16 | b.1 as u32;
        Delta {
            addrs,
            ports: delta32(ports(old.0, old.1), ports(new.0, new.1)),
        }
    }
}

/// Both rewrites of a balanced flow: client → backend, and back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deltas {
    pub fwd: Delta,
    pub rev: Delta,
}

/// Rewrite the packet of `f` (`ip` from its IP header on) to
/// `src:sport → dst:dport`, updating the checksums incrementally: one
/// delta for the addresses (the IPv4 header and the pseudo-header), one
/// for the ports.
#[inline]
pub fn rewrite(ip: &mut [u8], f: &Flow, partial: bool, src: (u128, u16), dst: (u128, u16)) {
    let d = Delta::of(f.v6, ((f.src, f.sport), (f.dst, f.dport)), (src, dst));
    rewrite_with(ip, f, partial, src, dst, d);
}

/// [`rewrite`] with the change `d` of the sums worked out already (a flow
/// keeps it: the same rewrite of the same header fields every packet).
#[inline(always)]
pub fn rewrite_with(
    ip: &mut [u8],
    f: &Flow,
    partial: bool,
    src: (u128, u16),
    dst: (u128, u16),
    d: Delta,
) {
    if f.v6 {
        ip[8..24].copy_from_slice(&src.0.to_be_bytes());
        ip[24..40].copy_from_slice(&dst.0.to_be_bytes());
    } else {
        put16(ip, 10, apply(get16(ip, 10), d.addrs));
        ip[12..16].copy_from_slice(&(src.0 as u32).to_be_bytes());
        ip[16..20].copy_from_slice(&(dst.0 as u32).to_be_bytes());
    }
    let l4 = f.l4;
    put16(ip, l4, src.1);
    put16(ip, l4 + 2, dst.1);
    let ck = l4 + if f.proto == TCP { 16 } else { 6 };
    if ip.len() < ck + 2 {
        return;
    }
    let c = get16(ip, ck);
    if f.proto == UDP && c == 0 && !f.v6 && !partial {
        return; // no checksum to keep
    }
    let c = if partial {
        // The field is the (uncomplemented) pseudo-header sum: the
        // addresses are in it, the ports are not.
        !apply(!c, d.addrs)
    } else {
        let c = apply(c, d.addrs + d.ports);
        if f.proto == UDP && c == 0 { 0xffff } else { c }
    };
    put16(ip, ck, c);
}

/// The bytes of an address (IPv4 in the first 4) and their count.
#[inline(always)]
fn addr_bytes(v6: bool, a: u128) -> ([u8; 16], usize) {
    if v6 {
        (a.to_be_bytes(), 16)
    } else {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&(a as u32).to_be_bytes());
        (b, 4)
    }
}

/// Write a TCP header (20 bytes, no options) with its checksum into `t`,
/// over the pseudo-header of `src`/`dst`.
#[allow(clippy::too_many_arguments)]
pub fn write_tcp(
    t: &mut [u8],
    v6: bool,
    src: u128,
    dst: u128,
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    flags: u8,
) {
    t[0..2].copy_from_slice(&ports.0.to_be_bytes());
    t[2..4].copy_from_slice(&ports.1.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&(if flags & RST != 0 { 0u16 } else { 64240 }).to_be_bytes());
    t[16..20].copy_from_slice(&[0; 4]);
    let (s, n) = addr_bytes(v6, src);
    let (d, _) = addr_bytes(v6, dst);
    let acc = sum(&s[..n], 0) + sum(&d[..n], 0) + TCP as u32 + 20;
    let c = !fold(sum(&t[..20], acc));
    t[16..18].copy_from_slice(&c.to_be_bytes());
}

/// The TCP sequence and acknowledgement numbers of the packet of `f`.
pub fn tcp_seq_ack(ip: &[u8], f: &Flow) -> (u32, u32) {
    let t = &ip[f.l4..];
    (
        u32::from_be_bytes(t[4..8].try_into().expect("4 bytes")),
        u32::from_be_bytes(t[8..12].try_into().expect("4 bytes")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::checksum;

    /// The TCP/UDP checksum of `ip` computed from scratch (0 when right).
    fn l4_residue(ip: &[u8]) -> u16 {
        let f = parse(ip).unwrap();
        let (s, n) = addr_bytes(f.v6, f.src);
        let (d, _) = addr_bytes(f.v6, f.dst);
        let len = ip.len() - f.l4;
        let acc = sum(&s[..n], 0) + sum(&d[..n], 0) + f.proto as u32 + len as u32;
        !fold(sum(&ip[f.l4..], acc))
    }

    /// A golden frame: IPv4 UDP 10.0.0.5:40000 → 10.0.0.100:53 with
    /// payload "hello", checksums computed from scratch.
    fn v4_udp() -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 5, 10, 0, 0, 100, // IP
            0x9c, 0x40, 0, 53, 0, 13, 0, 0, // UDP
            b'h', b'e', b'l', b'l', b'o',
        ];
        let hc = checksum::compute(&ip[..20]);
        ip[10..12].copy_from_slice(&hc.to_be_bytes());
        let c = l4_residue(&ip);
        ip[26..28].copy_from_slice(&c.to_be_bytes());
        ip
    }

    /// What the router checks of an IPv4 packet before it routes it
    /// (`V4::check`: header, checksum) and what [`parse`] reads of it.
    fn router_and_parse(ip: &[u8]) -> Option<Flow> {
        let p = crate::wire::ipv4::Ipv4Packet::new_checked(ip).ok()?;
        if !p.verify_checksum() {
            return None;
        }
        parse(ip)
    }

    #[test]
    fn parse_v4_plain_accepts_a_subset() {
        let mut tcp = v4_udp();
        tcp[9] = TCP;
        tcp.splice(28..28, [0u8; 12]);
        let total = tcp.len() as u16;
        tcp[2..4].copy_from_slice(&total.to_be_bytes());
        tcp[10..12].copy_from_slice(&[0, 0]);
        let hc = checksum::compute(&tcp[..20]);
        tcp[10..12].copy_from_slice(&hc.to_be_bytes());
        tcp[33] = ACK | FIN;
        for ip in [v4_udp(), tcp.clone()] {
            assert_eq!(parse_v4_plain(&ip), router_and_parse(&ip));
            assert!(parse_v4_plain(&ip).is_some());
        }
        assert_eq!(parse_v4_plain(&tcp).unwrap().flags, ACK | FIN);
        // Mutants: bytes of the headers changed (with the header checksum
        // fixed up or not), lengths cut. Whatever the plain parse accepts,
        // the router and `parse` accept alike.
        let bases = [v4_udp(), tcp];
        mutants(&bases, parse_v4_plain, router_and_parse, |ip, next| {
            for _ in 0..1 + next() % 3 {
                let at = (next() % 40) as usize % ip.len();
                ip[at] = next() as u8;
            }
            if next() % 2 == 0 {
                ip[10..12].copy_from_slice(&[0, 0]);
                let ihl = ((ip[0] & 0xf) as usize * 4).clamp(20, ip.len());
                let hc = checksum::compute(&ip[..ihl]);
                ip[10..12].copy_from_slice(&hc.to_be_bytes());
            }
        });
    }

    /// 200,000 mutants of `bases` (by `mutate`, some then cut short):
    /// whatever `plain` accepts, `reference` accepts with the same
    /// result; each refuses and accepts more than 10,000.
    fn mutants(
        bases: &[Vec<u8>; 2],
        plain: fn(&[u8]) -> Option<Flow>,
        reference: fn(&[u8]) -> Option<Flow>,
        mut mutate: impl FnMut(&mut Vec<u8>, &mut dyn FnMut() -> u64),
    ) {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut accepted, mut refused) = (0, 0);
        for i in 0..200_000 {
            let mut ip = bases[i % 2].clone();
            mutate(&mut ip, &mut next);
            if next() % 4 == 0 {
                ip.truncate((next() % ip.len() as u64) as usize);
            }
            match plain(&ip) {
                Some(f) => {
                    assert_eq!(Some(f), reference(&ip), "{ip:02x?}");
                    accepted += 1;
                }
                None => refused += 1,
            }
        }
        assert!(
            accepted > 10_000 && refused > 10_000,
            "{accepted} {refused}"
        );
    }

    /// An IPv6 TCP segment fd00::5:33000 → fd00::100:80 with `flags` and
    /// a 3-byte payload, checksum right.
    fn v6_tcp(flags: u8) -> Vec<u8> {
        let src: u128 = "fd00::5".parse::<std::net::Ipv6Addr>().unwrap().into();
        let vip: u128 = "fd00::100".parse::<std::net::Ipv6Addr>().unwrap().into();
        let mut ip = vec![0u8; 40 + 20 + 3];
        crate::wire::ipv6::write_header(
            &mut ip,
            23,
            TCP,
            64,
            &src.to_be_bytes(),
            &vip.to_be_bytes(),
        );
        write_tcp(&mut ip[40..], true, src, vip, (33000, 80), 7, 0, flags);
        ip[60..].copy_from_slice(b"abc");
        ip[56..58].copy_from_slice(&[0, 0]);
        let c = l4_residue(&ip);
        ip[56..58].copy_from_slice(&c.to_be_bytes());
        ip
    }

    /// What the router checks of an IPv6 packet before it routes it
    /// (`V6::check`: the lengths) and what [`parse`] reads of it.
    fn router_and_parse_v6(ip: &[u8]) -> Option<Flow> {
        crate::wire::ipv6::Ipv6Packet::new_checked(ip).ok()?;
        parse(ip)
    }

    #[test]
    fn parse_v6_plain_accepts_a_subset() {
        let mut udp = v6_tcp(ACK);
        udp[6] = UDP;
        udp.truncate(40 + 8 + 3);
        udp[4..6].copy_from_slice(&11u16.to_be_bytes());
        // A frame's padding after the packet is not the packet's.
        let mut padded = v6_tcp(ACK);
        padded.extend_from_slice(&[0; 9]);
        for ip in [v6_tcp(ACK), udp.clone(), padded] {
            assert_eq!(parse_v6_plain(&ip), router_and_parse_v6(&ip));
            assert!(parse_v6_plain(&ip).is_some());
        }
        assert_eq!(parse_v6_plain(&v6_tcp(ACK)).unwrap().flags, ACK);
        let bases = [udp, v6_tcp(ACK)];
        mutants(&bases, parse_v6_plain, router_and_parse_v6, |ip, next| {
            for _ in 0..1 + next() % 3 {
                // The fixed header's first 8 bytes (version, lengths, next
                // header) and the ports, more often than the addresses.
                let at = match next() % 4 {
                    0 => (next() % ip.len() as u64) as usize,
                    1 => 40 + (next() % 4) as usize,
                    _ => (next() % 8) as usize,
                };
                ip[at] = next() as u8;
            }
        });
    }

    #[test]
    fn parse_reads_ports_and_refuses_fragments_and_other_protocols() {
        let ip = v4_udp();
        let f = parse(&ip).unwrap();
        assert_eq!((f.proto, f.sport, f.dport, f.l4), (UDP, 40000, 53, 20));
        assert_eq!(f.dst, 0x0a00_0064);
        let mut frag = ip.clone();
        frag[6] = 0x20; // MF
        assert_eq!(parse(&frag), None);
        let mut icmp = ip.clone();
        icmp[9] = 1;
        assert_eq!(parse(&icmp), None);
        assert_eq!(parse(&ip[..24]), None, "truncated UDP header");
    }

    #[test]
    fn an_ipv4_udp_rewrite_matches_the_golden_frame_and_its_checksums() {
        let mut ip = v4_udp();
        let f = parse(&ip).unwrap();
        rewrite(&mut ip, &f, false, (0x0a00_0064, 1024), (0x0a00_0007, 8053));
        // The golden result: addresses and ports replaced, checksums that
        // a from-scratch computation accepts.
        assert_eq!(&ip[12..20], &[10, 0, 0, 100, 10, 0, 0, 7]);
        assert_eq!(&ip[20..24], &[0x04, 0x00, 0x1f, 0x75]);
        assert_eq!(checksum::compute(&ip[..20]), 0, "IPv4 header checksum");
        assert_eq!(l4_residue(&ip), 0, "UDP checksum");
        assert_eq!(&ip[28..], b"hello");
        // Golden frames, built from scratch by an independent script
        // (Python, full checksums over the header and pseudo-header).
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        assert_eq!(
            v4_udp(),
            hex("4500002100004000401126640a0000050a0000649c400035000d0b2468656c6c6f")
        );
        assert_eq!(
            ip,
            hex("4500002100004000401126620a0000640a00000704001f75000d842268656c6c6f")
        );
        // A UDP datagram without checksum keeps none.
        let mut z = v4_udp();
        z[26..28].copy_from_slice(&[0, 0]);
        let f = parse(&z).unwrap();
        rewrite(&mut z, &f, false, (1, 2), (3, 4));
        assert_eq!(&z[26..28], &[0, 0]);
        assert_eq!(checksum::compute(&z[..20]), 0);
    }

    #[test]
    fn ipv6_tcp_rewrites_keep_the_checksum_right_full_or_partial() {
        let src: u128 = "fd00::5".parse::<std::net::Ipv6Addr>().unwrap().into();
        let vip: u128 = "fd00::100".parse::<std::net::Ipv6Addr>().unwrap().into();
        let be: u128 = "fd00:0:0:1::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .into();
        let ip = v6_tcp(SYN);
        assert_eq!(l4_residue(&ip), 0);
        let f = parse(&ip).unwrap();
        assert_eq!((f.flags, f.sport, f.dport), (SYN, 33000, 80));
        let mut full = ip.clone();
        rewrite(&mut full, &f, false, (vip, 2000), (be, 8080));
        assert_eq!(l4_residue(&full), 0);
        assert_eq!(&full[24..40], &be.to_be_bytes());
        // Partial: the field is the pseudo-header sum; after the rewrite it
        // is the pseudo-header sum of the new addresses.
        let mut part = ip.clone();
        let pseudo = |s: u128, d: u128| {
            fold(checksum::pseudo_v6(
                &s.to_be_bytes(),
                &d.to_be_bytes(),
                TCP,
                23,
            ))
        };
        part[56..58].copy_from_slice(&pseudo(src, vip).to_be_bytes());
        rewrite(&mut part, &f, true, (vip, 2000), (be, 8080));
        assert_eq!(
            u16::from_be_bytes([part[56], part[57]]),
            pseudo(vip, be),
            "partial checksum = new pseudo-header sum"
        );
    }
}
