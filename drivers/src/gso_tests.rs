//! Unit tests of `gso.rs` over hand-built frames. Checksums are verified
//! with a separate, naive 16-bit implementation.

use super::*;

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

fn collect(frame: &[u8], mss: u16, mode: CsumMode) -> Vec<Seg> {
    let mut out = Vec::new();
    let n = segment_tcp::<()>(frame, mss, mode, |s| {
        let mut v = s.headers.to_vec();
        v.extend_from_slice(s.payload);
        out.push((v, s.partial_csum));
        Ok(())
    })
    .unwrap()
    .unwrap();
    assert_eq!(n, out.len());
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
        complete_checksum(&mut s, start as usize, off as usize).unwrap();
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
    complete_checksum(&mut f, 34, 6).unwrap();
    let l4 = &f[34..];
    assert_eq!(
        naive_sum(&[&f[26..34], &[0, 17], &ulen.to_be_bytes(), l4]),
        0xffff
    );
    assert!(matches!(
        complete_checksum(&mut f, 60, 6),
        Err(GsoError::BadCsumOffset { .. })
    ));
}

#[test]
fn refusals() {
    let mut udp = v4_frame(&payload(100), 0x10);
    udp[14 + 9] = 17;
    assert_eq!(
        segment_tcp::<()>(&udp, 50, CsumMode::Full, |_| Ok(())).unwrap_err(),
        GsoError::NotTcp {
            ethertype: 0x0800,
            proto: 17
        }
    );
    let f = v4_frame(&payload(100), 0x10);
    assert_eq!(
        segment_tcp::<()>(&f, 0, CsumMode::Full, |_| Ok(())).unwrap_err(),
        GsoError::BadMss(0)
    );
    assert_eq!(
        segment_tcp::<()>(&f[..40], 50, CsumMode::Full, |_| Ok(())).unwrap_err(),
        GsoError::Truncated("TCP")
    );
    // An emit error stops segmentation after the first segment.
    let mut calls = 0;
    let r = segment_tcp(&f, 10, CsumMode::Full, |_| {
        calls += 1;
        Err("full")
    })
    .unwrap();
    assert_eq!((r, calls), (Err("full"), 1));
    assert_eq!(tcp_headers_len(&f), Some(14 + 20 + 32));
}
