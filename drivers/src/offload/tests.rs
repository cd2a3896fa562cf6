//! Unit tests of the offload module over hand-built frames: the vnet
//! header, checksum completion and segmentation (TCP and UDP, in both the
//! header-block and the in-place form). Some checksums are verified with a
//! separate, naive 16-bit implementation.

use rvs_switch::buf::Offload;

use super::csum::{ETH_P_IPV4, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP, crc32c};
use super::*;

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

fn get16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn put16(d: &mut [u8], at: usize, v: u16) {
    d[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Naive RFC 1071 checksum check: the ones' complement sum over the given
/// pieces (16-bit words) must be 0xffff.
fn naive_sum(pieces: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
    let mut s: u32 = 0;
    for w in bytes.chunks(2) {
        let v = if w.len() == 2 {
            u16::from_be_bytes([w[0], w[1]])
        } else {
            u16::from_be_bytes([w[0], 0])
        };
        s += v as u32;
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

const MAC: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

fn tcp_header(seq: u32, flags: u8, opts: usize) -> Vec<u8> {
    let len = 20 + opts;
    let mut t = vec![0u8; len];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&5201u16.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&77u32.to_be_bytes());
    t[12] = ((len / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    for (i, b) in t[20..].iter_mut().enumerate() {
        *b = if i % 4 == 3 { 8 } else { 1 }; // NOPs and bytes that look like options
    }
    t
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn v4_frame(pay: &[u8], flags: u8) -> Vec<u8> {
    let tcp = tcp_header(1_000_000, flags, 12);
    let mut f = MAC.to_vec();
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let tot = (20 + tcp.len() + pay.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
    f[16..18].copy_from_slice(&tot.to_be_bytes());
    f.extend_from_slice(&[10, 1, 2, 1, 10, 1, 2, 2]);
    f.extend_from_slice(&tcp);
    f.extend_from_slice(pay);
    f
}

fn v6_vlan_frame(pay: &[u8], flags: u8) -> Vec<u8> {
    let tcp = tcp_header(0xffff_fff0, flags, 0);
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a, 0x86, 0xdd]);
    let plen = (tcp.len() + pay.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&plen.to_be_bytes());
    f.extend_from_slice(&[6, 64]);
    let mut src = [0u8; 16];
    src[0] = 0xfd;
    src[15] = 1;
    let mut dst = src;
    dst[15] = 2;
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&tcp);
    f.extend_from_slice(pay);
    f
}

/// Pseudo-header + TCP segment must sum to 0xffff.
fn tcp_ok(seg: &[u8], l2: usize) -> bool {
    let ip = &seg[l2..];
    if ip[0] >> 4 == 4 {
        let ihl = (ip[0] & 15) as usize * 4;
        let l4 = &ip[ihl..];
        let ph_len = (l4.len() as u16).to_be_bytes();
        naive_sum(&[&ip[12..20], &[0, 6], &ph_len, l4]) == 0xffff
    } else {
        let l4 = &ip[40..];
        let ph_len = (l4.len() as u32).to_be_bytes();
        naive_sum(&[&ip[8..40], &ph_len, &[0, 0, 0, 6], l4]) == 0xffff
    }
}

/// A segment's bytes and where its partial checksum is, if any.
type Seg = (Vec<u8>, Option<(u16, u16)>);

/// The offload state a TAP would give `frame`: TCP GSO at `mss`, the
/// partial checksum at the TCP header.
fn tso(frame: &[u8], mss: u16) -> Offload {
    let l2 = l2_len(frame).unwrap();
    let v4 = frame[l2] >> 4 == 4;
    Offload {
        flags: Offload::NEEDS_CSUM,
        gso_type: if v4 {
            Offload::GSO_TCPV4
        } else {
            Offload::GSO_TCPV6
        },
        gso_size: mss,
        csum_start: if v4 { (frame[l2] & 0xf) as u16 * 4 } else { 40 },
        csum_offset: 16,
    }
}

fn collect(frame: &[u8], mss: u16, mode: CsumMode) -> Vec<Seg> {
    let mut out = Vec::new();
    let plan = GsoPlan::from_offload(frame, tso(frame, mss)).unwrap();
    let n = plan
        .segment::<()>(frame, mode, |s| {
            let mut v = s.headers.to_vec();
            v.extend_from_slice(s.payload);
            out.push((v, s.partial_csum));
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(n, out.len());
    // The in-place form cuts the same bytes.
    if mode == CsumMode::Full {
        for (i, (s, _)) in out.iter().enumerate() {
            let mut seg = frame[..plan.hdr_len()].to_vec();
            seg.extend_from_slice(&frame[plan.payload_range(i)]);
            plan.fix_segment(&mut seg, i);
            assert_eq!(&seg, s, "segment {i} in place");
        }
    }
    out
}

#[test]
fn rfc1071_example_and_ipv4_header_vector() {
    let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(csum_fold(csum_add(0, &d)), 0xddf2);
    let odd = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6];
    assert_eq!(csum_fold(csum_add(0, &odd)), naive_sum(&[&odd]));
    let h = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(!csum_fold(csum_add(0, &h)), 0xb861);
}

#[test]
fn l2_len_counts_vlan_tags() {
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x08, 0x00, 0x45]);
    assert_eq!(l2_len(&f), Some(14));
    let mut q = MAC.to_vec();
    q.extend_from_slice(&[0x88, 0xa8, 0, 5, 0x81, 0x00, 0, 10, 0x08, 0x00]);
    assert_eq!(l2_len(&q), Some(22));
    assert_eq!(l2_len(&MAC), None, "no ethertype");
}

#[test]
fn ipv4_super_frame_splits_with_fixed_headers() {
    let pay = payload(3000);
    let f = v4_frame(&pay, 0x18 | TCP_FIN | TCP_CWR); // PSH|ACK|FIN|CWR
    let segs = collect(&f, 1000, CsumMode::Full);
    assert_eq!(segs.len(), 3);
    let hlen = 14 + 20 + 32;
    let mut joined = Vec::new();
    for (i, (s, partial)) in segs.iter().enumerate() {
        assert!(partial.is_none());
        assert_eq!(s.len(), hlen + 1000);
        let ip = &s[14..];
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, s.len() - 14);
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 0x1234 + i as u16);
        assert_eq!(naive_sum(&[&ip[..20]]), 0xffff, "IPv4 header checksum");
        let tcp = &ip[20..];
        let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
        assert_eq!(seq, 1_000_000 + 1000 * i as u32);
        let fl = tcp[13];
        assert_eq!(fl & 0x10, 0x10, "ACK kept");
        assert_eq!(
            fl & (TCP_FIN | TCP_PSH) != 0,
            i == 2,
            "FIN/PSH on last only"
        );
        assert_eq!(
            fl & (TCP_FIN | TCP_PSH),
            if i == 2 { TCP_FIN | TCP_PSH } else { 0 }
        );
        assert_eq!(fl & TCP_CWR != 0, i == 0, "CWR on first only");
        assert_eq!(
            &tcp[20..32],
            &f[14 + 20 + 20..14 + 20 + 32],
            "options copied"
        );
        assert!(tcp_ok(s, 14), "TCP checksum of segment {i}");
        joined.extend_from_slice(&s[hlen..]);
    }
    assert_eq!(joined, pay);
}

#[test]
fn ipv6_vlan_super_frame_with_short_tail_and_seq_wrap() {
    let pay = payload(2900);
    let f = v6_vlan_frame(&pay, 0x10);
    let segs = collect(&f, 1400, CsumMode::Full);
    let lens: Vec<usize> = segs.iter().map(|(s, _)| s.len() - (18 + 40 + 20)).collect();
    assert_eq!(lens, vec![1400, 1400, 100]);
    for (i, (s, _)) in segs.iter().enumerate() {
        assert_eq!(&s[12..16], &[0x81, 0x00, 0x00, 0x0a], "tag kept");
        let ip = &s[18..];
        assert_eq!(
            u16::from_be_bytes([ip[4], ip[5]]) as usize,
            s.len() - 18 - 40
        );
        let seq = u32::from_be_bytes(ip[44..48].try_into().unwrap());
        assert_eq!(seq, 0xffff_fff0u32.wrapping_add(1400 * i as u32));
        assert!(tcp_ok(s, 18), "TCP checksum of segment {i}");
    }
}

#[test]
fn partial_mode_leaves_pseudo_sum_that_completes_correctly() {
    let pay = payload(2500);
    let f = v4_frame(&pay, 0x10);
    for (mut s, partial) in collect(&f, 1448, CsumMode::Partial) {
        let (start, off) = partial.expect("partial mode says where");
        assert_eq!((start, off), (34, 16));
        assert!(!tcp_ok(&s, 14), "not complete yet");
        complete_csum(&mut s, start as usize, off as usize).unwrap();
        assert!(tcp_ok(&s, 14));
    }
}

#[test]
fn frame_smaller_than_mss_is_one_segment() {
    let f = v4_frame(&payload(10), 0x18);
    let segs = collect(&f, 1448, CsumMode::Full);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].0.len(), f.len());
    assert_eq!(
        segs[0].0[14 + 20 + 13],
        0x18,
        "PSH stays on the only segment"
    );
}

#[test]
fn complete_checksum_of_udp_partial_frame() {
    // UDP over IPv4 with the pseudo-header sum in the checksum field, as a
    // kernel with CHECKSUM_PARTIAL hands it over.
    let data = b"hello, partial checksum!";
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[192, 168, 1, 1, 192, 168, 1, 2]);
    let ulen = (8 + data.len()) as u16;
    f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35]);
    f.extend_from_slice(&ulen.to_be_bytes());
    let ps = csum_fold(csum_add(0, &[192, 168, 1, 1, 192, 168, 1, 2]) + 17 + ulen as u64);
    f.extend_from_slice(&ps.to_be_bytes());
    f.extend_from_slice(data);
    complete_csum(&mut f, 34, 6).unwrap();
    let l4 = &f[34..];
    assert_eq!(
        naive_sum(&[&f[26..34], &[0, 17], &ulen.to_be_bytes(), l4]),
        0xffff
    );
    assert!(matches!(
        complete_csum(&mut f, 60, 6),
        Err(OffloadError::CsumRange { .. })
    ));
}

#[test]
fn refusals() {
    let f = v4_frame(&payload(100), 0x10);
    let mut udp = f.clone();
    udp[14 + 9] = 17;
    assert_eq!(
        GsoPlan::from_offload(&udp, tso(&udp, 50)).unwrap_err(),
        OffloadError::BadHeaders("IP protocol does not match GSO type")
    );
    assert_eq!(
        GsoPlan::from_offload(&f, tso(&f, 0)).unwrap_err(),
        OffloadError::BadHeaders("GSO size 0")
    );
    assert_eq!(
        GsoPlan::from_offload(&f[..40], tso(&f, 50)).unwrap_err(),
        OffloadError::BadHeaders("TCP header truncated")
    );
    let no_csum = Offload {
        flags: 0,
        ..tso(&f, 50)
    };
    assert!(GsoPlan::from_offload(&f, no_csum).is_err());
    // An emit error stops segmentation after the first segment.
    let plan = GsoPlan::from_offload(&f, tso(&f, 10)).unwrap();
    let mut calls = 0;
    let r = plan
        .segment(&f, CsumMode::Full, |_| {
            calls += 1;
            Err("full")
        })
        .unwrap();
    assert_eq!((r, calls), (Err("full"), 1));
    assert_eq!(plan.hdr_len(), 14 + 20 + 32);
    // A plan is for the frame it was made for.
    assert!(
        plan.segment::<()>(&f[..90], CsumMode::Full, |_| Ok(()))
            .is_err()
    );
}

// Segmentation and checksum completion driven by a vnet header (AF_PACKET).

/// Ethernet + IPv4 + TCP (20-byte header) + payload, checksums left as
/// a sender with offload would: IP header complete, TCP field holding
/// the pseudo-header sum only.
fn tcp4_frame(payload: &[u8], flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
    let ip = 14;
    f[ip] = 0x45;
    put16(&mut f, ip + 2, (20 + 20 + payload.len()) as u16);
    put16(&mut f, ip + 4, 0x1234);
    f[ip + 8] = 64;
    f[ip + 9] = IPPROTO_TCP;
    f[ip + 12..ip + 16].copy_from_slice(&[10, 0, 0, 1]);
    f[ip + 16..ip + 20].copy_from_slice(&[10, 0, 0, 2]);
    let c = csum_finish(csum_add(0, &f[ip..ip + 20]));
    put16(&mut f, ip + 10, c);
    let t = 34;
    put16(&mut f, t, 5555);
    put16(&mut f, t + 2, 80);
    f[t + 4..t + 8].copy_from_slice(&1000u32.to_be_bytes());
    f[t + 12] = 5 << 4;
    f[t + 13] = flags;
    f.extend_from_slice(payload);
    let tcp_len = (20 + payload.len()) as u64;
    let pseudo = csum_add(0, &f[ip + 12..ip + 20]) + IPPROTO_TCP as u64 + tcp_len;
    // Partial: the non-complemented folded pseudo-header sum.
    let partial = !csum_finish(pseudo);
    put16(&mut f, t + 16, partial);
    f
}

/// Whether a frame's IPv4 header and TCP/UDP checksum verify.
fn verifies(f: &[u8]) -> bool {
    let l3 = l2_len(f).unwrap();
    let ihl = ((f[l3] & 0xf) as usize) * 4;
    if csum_finish(csum_add(0, &f[l3..l3 + ihl])) != 0 {
        return false;
    }
    let l4 = l3 + ihl;
    let pseudo = csum_add(0, &f[l3 + 12..l3 + 20]) + f[l3 + 9] as u64 + (f.len() - l4) as u64;
    csum_finish(csum_add(pseudo, &f[l4..])) == 0
}

#[test]
fn legacy_vnet_header_round_trips() {
    let h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_TCPV4 | VnetHdr::GSO_ECN,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    assert_eq!(VnetHdr::parse(&h.encode_legacy()), h);
    assert!(h.is_gso() && h.needs_csum());
    assert!(!VnetHdr::default().is_gso());
}

#[test]
fn known_checksum_vector() {
    // RFC 1071 example words.
    let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(csum_finish(csum_add(0, &d)), !0xddf2);
    // Odd length pads with a zero byte.
    assert_eq!(csum_add(0, &[0xab]), 0xab00);
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn partial_checksum_is_completed() {
    let mut f = tcp4_frame(b"hello, switch", 0x18);
    assert!(!verifies(&f), "partial checksum must not verify yet");
    complete_csum(&mut f, 34, 16).unwrap();
    assert!(verifies(&f));
    let mut short = f[..40].to_vec();
    assert!(matches!(
        complete_csum(&mut short, 34, 16),
        Err(OffloadError::CsumRange { .. })
    ));
}

#[test]
fn tcp4_super_frame_is_cut_into_valid_segments() {
    let payload: Vec<u8> = (0..3500u32).map(|i| (i * 7) as u8).collect();
    // PSH|FIN|CWR|ACK on the super-frame.
    let f = tcp4_frame(&payload, 0x80 | 0x10 | 0x08 | 0x01);
    let h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    let plan = GsoPlan::from_vnet(&f, &h).unwrap();
    assert_eq!(plan.segments(), 3);
    let mut joined = Vec::new();
    for i in 0..3 {
        let mut seg = f[..plan.hdr_len()].to_vec();
        seg.extend_from_slice(&f[plan.payload_range(i)]);
        assert_eq!(seg.len(), plan.segment_len(i));
        plan.fix_segment(&mut seg, i);
        assert!(verifies(&seg), "segment {i} checksums");
        assert_eq!(get16(&seg, 16) as usize, seg.len() - 14, "IP total length");
        assert_eq!(get16(&seg, 18), 0x1234 + i as u16, "IP id");
        let seq = u32::from_be_bytes(seg[38..42].try_into().unwrap());
        assert_eq!(seq, 1000 + (i * 1448) as u32);
        let flags = seg[47];
        assert_eq!(flags & 0x80 != 0, i == 0, "CWR on the first only");
        assert_eq!(flags & 0x09 != 0, i == 2, "PSH/FIN on the last only");
        assert!(flags & 0x10 != 0, "ACK on all");
        joined.extend_from_slice(&seg[54..]);
    }
    assert_eq!(joined, payload);
}

#[test]
fn gso_plan_refuses_bad_input() {
    let f = tcp4_frame(&[0; 100], 0x10);
    let mut h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_UDP,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    assert_eq!(
        GsoPlan::from_vnet(&f, &h),
        Err(OffloadError::UnsupportedGso(VnetHdr::GSO_UDP))
    );
    h.gso_type = VnetHdr::GSO_TCPV6;
    assert!(matches!(
        GsoPlan::from_vnet(&f, &h),
        Err(OffloadError::BadHeaders(_))
    ));
    h.gso_type = VnetHdr::GSO_TCPV4;
    h.csum_start = 20;
    assert!(GsoPlan::from_vnet(&f, &h).is_err());
    h.csum_start = 34;
    assert!(
        GsoPlan::from_vnet(&f[..40], &h).is_err(),
        "truncated TCP header"
    );
    h.gso_size = 0;
    assert!(GsoPlan::from_vnet(&f, &h).is_err());
}

#[test]
fn shifted_plan_matches_a_tagged_frame() {
    let payload = vec![0x5a; 3000];
    let f = tcp4_frame(&payload, 0x10);
    let h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1400,
        csum_start: 34,
        csum_offset: 16,
    };
    let plan = GsoPlan::from_vnet(&f, &h).unwrap().shifted(4);
    let mut tagged = f[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    tagged.extend_from_slice(&f[12..]);
    for i in 0..plan.segments() {
        let mut seg = tagged[..plan.hdr_len()].to_vec();
        seg.extend_from_slice(&tagged[plan.payload_range(i)]);
        plan.fix_segment(&mut seg, i);
        assert!(verifies(&seg));
    }
}

#[test]
fn udp6_super_frame_is_cut_into_datagrams() {
    let payload: Vec<u8> = (0..2500u32).map(|i| (i * 3) as u8).collect();
    let mut f = vec![0u8; 14 + 40 + 8];
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    f[14] = 0x60;
    put16(&mut f, 18, (8 + payload.len()) as u16);
    f[20] = IPPROTO_UDP;
    f[21] = 64;
    f[22..38].copy_from_slice(&[0xfd, 0, 0, 0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f[38..54].copy_from_slice(&[0xfd, 0, 0, 0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    put16(&mut f, 54, 4000);
    put16(&mut f, 56, 5000);
    put16(&mut f, 58, (8 + payload.len()) as u16);
    f.extend_from_slice(&payload);
    let h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_UDP_L4,
        hdr_len: 62,
        gso_size: 1000,
        csum_start: 54,
        csum_offset: 6,
    };
    let plan = GsoPlan::from_vnet(&f, &h).unwrap();
    assert_eq!(plan.segments(), 3);
    let mut joined = Vec::new();
    for i in 0..3 {
        let mut seg = f[..plan.hdr_len()].to_vec();
        seg.extend_from_slice(&f[plan.payload_range(i)]);
        plan.fix_segment(&mut seg, i);
        let ulen = seg.len() - 54;
        assert_eq!(get16(&seg, 18) as usize, ulen, "IPv6 payload length");
        assert_eq!(get16(&seg, 58) as usize, ulen, "UDP length");
        let pseudo = csum_add(0, &seg[22..54]) + IPPROTO_UDP as u64 + ulen as u64;
        assert_eq!(csum_finish(csum_add(pseudo, &seg[54..])), 0, "segment {i}");
        joined.extend_from_slice(&seg[62..]);
    }
    assert_eq!(joined, payload);
}

// The header and its translation to the switch's offload state.

#[test]
fn vnet_header_round_trips_and_csum_start_becomes_l3_relative() {
    let mut frame = vec![0u8; 14 + 20 + 20 + 10];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    frame[14] = 0x45;
    frame[14 + 9] = 6;
    frame[14 + 20 + 12] = 5 << 4;
    let h = VnetHdr {
        flags: Offload::NEEDS_CSUM,
        gso_type: Offload::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    assert_eq!(VnetHdr::parse(&h.encode()), h);
    let o = h.to_offload(&frame).unwrap();
    assert_eq!((o.csum_start, o.csum_offset, o.gso_size), (20, 16, 1448));
    // After a VLAN push the frame is 4 bytes longer in front.
    let mut tagged = frame[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0, 0, 10]);
    tagged.extend_from_slice(&frame[12..]);
    let back = VnetHdr::from_offload(o, &tagged).unwrap();
    assert_eq!((back.csum_start, back.csum_offset), (38, 16));
    assert_eq!(back.hdr_len, 58);
    assert_eq!(back.gso_type, Offload::GSO_TCPV4);
}

#[test]
fn nonsense_headers_are_refused() {
    let frame = vec![0u8; 60];
    let past_end = VnetHdr {
        flags: Offload::NEEDS_CSUM,
        csum_start: 58,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    assert!(past_end.to_offload(&frame).is_none());
    let gso_without_csum = VnetHdr {
        gso_type: Offload::GSO_TCPV4,
        gso_size: 1000,
        ..VnetHdr::default()
    };
    assert!(gso_without_csum.to_offload(&frame).is_none());
    assert_eq!(VnetHdr::default().to_offload(&frame), Some(Offload::NONE));
}

// The AF_XDP form: segments in pool frames.

#[test]
fn finish_in_software_cuts_into_pool_frames_and_frees_on_failure() {
    use rvs_switch::PacketPool;
    let pay = payload(3000);
    let f = v4_frame(&pay, 0x18);
    let mut pool = PacketPool::with_large(8, 2048, 256, 1).unwrap();
    let mut b = pool.alloc_from(&f).unwrap();
    b.set_offload(tso(&f, 1000));
    let mut out = Vec::new();
    let r = finish_in_software(&mut pool, b, 1514, |_, s| out.push(s));
    assert_eq!(r, Ok(Finished::Segmented(3)));
    let mut joined = Vec::new();
    for s in &out {
        let d = pool.data(s);
        assert!(tcp_ok(d, 14));
        assert!(!pool.is_large(s), "segments live in small frames");
        joined.extend_from_slice(&d[14 + 20 + 32..]);
    }
    assert_eq!(joined, pay);
    for s in out.drain(..) {
        pool.free(s);
    }
    // A segment longer than the egress takes: nothing sent, all freed.
    let mut b = pool.alloc_from(&f).unwrap();
    b.set_offload(tso(&f, 1000));
    let r = finish_in_software(&mut pool, b, 1000, |_, s| out.push(s));
    assert_eq!(r, Err(Unfinished::TooBig));
    // Fewer free frames than segments: nothing sent, all freed.
    let hogs: Vec<_> = (0..6).map(|_| pool.alloc().unwrap()).collect();
    let mut b = pool.alloc_from(&f).unwrap();
    b.set_offload(tso(&f, 1000));
    let r = finish_in_software(&mut pool, b, 1514, |_, s| out.push(s));
    assert_eq!(r, Err(Unfinished::NoBuffer));
    assert!(out.is_empty());
    for h in hogs {
        pool.free(h);
    }
    assert_eq!((pool.available(), pool.large_available()), (8, 1));
}

#[test]
fn finish_in_software_completes_a_partial_checksum_and_passes_the_rest() {
    use rvs_switch::PacketPool;
    let f = v4_frame(&payload(200), 0x18);
    let mut pool = PacketPool::with_frames(4);
    let mut b = pool.alloc_from(&f).unwrap();
    let partial = Offload {
        gso_type: Offload::GSO_NONE,
        gso_size: 0,
        ..tso(&f, 0)
    };
    // The checksum field holds the pseudo-header sum, as a sender leaves it.
    let l4 = (f.len() - 34) as u64;
    let ps = csum_fold(csum_add(0, &f[26..34]) + 6 + l4);
    pool.data_mut(&b)[50..52].copy_from_slice(&ps.to_be_bytes());
    b.set_offload(partial);
    let mut out = Vec::new();
    let r = finish_in_software(&mut pool, b, 1514, |_, s| out.push(s));
    assert_eq!(r, Ok(Finished::Checksummed));
    assert!(tcp_ok(pool.data(&out[0]), 14));
    assert_eq!(out[0].offload(), Offload::NONE);
    let plain = pool.alloc_from(&f).unwrap();
    let r = finish_in_software(&mut pool, plain, 1514, |_, s| out.push(s));
    assert_eq!(r, Ok(Finished::AsIs));
    for s in out {
        pool.free(s);
    }
}

#[test]
fn plans_refuse_headers_that_would_overlap() {
    let f = v4_frame(&payload(500), 0x10);
    // csum_start inside IPv4 options (IHL 6 words, L4 said to start at 20).
    let mut opts = f.clone();
    opts[14] = 0x46;
    assert_eq!(
        GsoPlan::new(&opts, Offload::GSO_TCPV4, 100, 34).unwrap_err(),
        OffloadError::BadHeaders("L4 header starts inside the IP header")
    );
    // A TCP data offset below the fixed header.
    let mut short = f.clone();
    short[34 + 12] = 2 << 4;
    assert_eq!(
        GsoPlan::new(&short, Offload::GSO_TCPV4, 100, 34).unwrap_err(),
        OffloadError::BadHeaders("TCP data offset below 20 bytes")
    );
    assert_eq!(
        GsoPlan::new(&f, Offload::GSO_UDP, 100, 34).unwrap_err(),
        OffloadError::UnsupportedGso(Offload::GSO_UDP)
    );
}
