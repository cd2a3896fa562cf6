//! Receive-path logic over hand-built received messages (no sockets, no
//! root).

use super::frame::tests::{aux_cmsg, message};
use super::frame::{RxFrame, parse};
use super::rx::{Step, deliver};
use super::*;
use crate::offload::{VNET_HDR_LEGACY_LEN, VnetHdr, csum_add, csum_finish, l2_len};
use rvs_switch::buf::Offload;

fn tcp4(payload_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; 54];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((40 + payload_len) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    let c = csum_finish(csum_add(0, &f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = 0x18;
    f.extend((0..payload_len).map(|i| i as u8));
    let pseudo = csum_add(0, &f[26..34]) + 6 + (20 + payload_len) as u64;
    f[50..52].copy_from_slice(&(!csum_finish(pseudo)).to_be_bytes());
    f
}

fn l4_ok(f: &[u8]) -> bool {
    let l3 = l2_len(f).unwrap();
    let l4 = l3 + 20;
    let pseudo = csum_add(0, &f[l3 + 12..l3 + 20]) + f[l3 + 9] as u64 + (f.len() - l4) as u64;
    csum_finish(csum_add(pseudo, &f[l4..])) == 0
}

/// A received message: its bytes (vnet header first), its control bytes
/// and whether it was cut short.
struct Msg {
    buf: Vec<u8>,
    ctrl: Vec<u8>,
    truncated: bool,
}

/// `data` as it arrived, the frame's length on the wire, a tag the kernel
/// took out, a vnet header.
fn msg(
    data: &[u8],
    wire_len: u32,
    vlan: Option<(u16, u16)>,
    vnet: Option<[u8; VNET_HDR_LEGACY_LEN]>,
) -> Msg {
    Msg {
        buf: message(vnet, data),
        ctrl: aux_cmsg(wire_len, vlan),
        truncated: (data.len() as u32) < wire_len,
    }
}

fn first_frame(m: &Msg) -> RxFrame<'_> {
    parse(&m.buf, m.truncated, &m.ctrl, true).unwrap()
}

#[test]
fn plain_frame_is_copied_and_vlan_tag_put_back() {
    let frame = tcp4(10);
    let m = msg(
        &frame,
        frame.len() as u32,
        Some((0x8100, 0x2005)),
        Some([0; VNET_HDR_LEGACY_LEN]),
    );
    let mut pool = PacketPool::with_frames(4);
    let mut batch = Batch::new(4);
    let mut st = AfPacketStats::default();
    let mut seg = 0;
    assert!(matches!(
        deliver(&first_frame(&m), &mut pool, &mut batch, &mut seg, &mut st),
        Step::Done
    ));
    let got = pool.data(batch.get(0)).to_vec();
    assert_eq!(got.len(), frame.len() + 4);
    assert_eq!(&got[..12], &frame[..12]);
    assert_eq!(&got[12..16], &[0x81, 0x00, 0x20, 0x05]);
    assert_eq!(&got[16..], &frame[12..]);
    batch.free_all(&mut pool);
}

#[test]
fn partial_checksum_completed_behind_a_restored_tag() {
    let frame = tcp4(300);
    assert!(!l4_ok(&frame));
    let h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    let m = msg(
        &frame,
        frame.len() as u32,
        Some((0x8100, 7)),
        Some(h.encode_legacy()),
    );
    let mut pool = PacketPool::with_frames(4);
    let mut batch = Batch::new(4);
    let mut st = AfPacketStats::default();
    deliver(&first_frame(&m), &mut pool, &mut batch, &mut 0, &mut st);
    assert_eq!(st.rx_csum_completed, 1);
    assert!(l4_ok(pool.data(batch.get(0))));
    batch.free_all(&mut pool);
}

#[test]
fn truncated_frame_is_counted_not_forwarded() {
    let frame = tcp4(100);
    let m = msg(
        &frame[..60],
        frame.len() as u32,
        None,
        Some([0; VNET_HDR_LEGACY_LEN]),
    );
    let mut pool = PacketPool::with_frames(4);
    let mut batch = Batch::new(4);
    let mut st = AfPacketStats::default();
    deliver(&first_frame(&m), &mut pool, &mut batch, &mut 0, &mut st);
    assert_eq!(st.rx_truncated, 1);
    assert!(batch.is_empty());
    assert_eq!(pool.available(), 4);
}

#[test]
fn super_frame_segments_resume_across_bursts() {
    let frame = tcp4(10 * 1000);
    let h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1000,
        csum_start: 34,
        csum_offset: 16,
    };
    let m = msg(&frame, frame.len() as u32, None, Some(h.encode_legacy()));
    let f = first_frame(&m);
    let mut pool = PacketPool::with_frames(16);
    let mut st = AfPacketStats::default();
    let mut seg = 0;
    let mut b1 = Batch::new(4);
    assert!(matches!(
        deliver(&f, &mut pool, &mut b1, &mut seg, &mut st),
        Step::Stalled
    ));
    assert_eq!((b1.len(), seg), (4, 4));
    let mut b2 = Batch::new(8);
    assert!(matches!(
        deliver(&f, &mut pool, &mut b2, &mut seg, &mut st),
        Step::Done
    ));
    assert_eq!(b2.len(), 6);
    assert_eq!(st.rx_gso_segments, 10);
    assert_eq!(st.rx_gso_frames, 1);
    let mut payload = Vec::new();
    for b in b1.iter().chain(b2.iter()) {
        let d = pool.data(b);
        assert_eq!(d.len(), 54 + 1000);
        assert!(l4_ok(d));
        payload.extend_from_slice(&d[54..]);
    }
    assert_eq!(payload, &frame[54..]);
    b1.free_all(&mut pool);
    b2.free_all(&mut pool);
}

#[test]
fn empty_pool_stalls_without_losing_the_frame() {
    let frame = tcp4(10);
    let m = msg(
        &frame,
        frame.len() as u32,
        None,
        Some([0; VNET_HDR_LEGACY_LEN]),
    );
    let mut pool = PacketPool::with_frames(1);
    let hog = pool.alloc().unwrap();
    let mut batch = Batch::new(4);
    let mut st = AfPacketStats::default();
    let f = first_frame(&m);
    assert!(matches!(
        deliver(&f, &mut pool, &mut batch, &mut 0, &mut st),
        Step::Stalled
    ));
    pool.free(hog);
    assert!(matches!(
        deliver(&f, &mut pool, &mut batch, &mut 0, &mut st),
        Step::Done
    ));
    assert_eq!(pool.data(batch.get(0)), &frame[..]);
    batch.free_all(&mut pool);
}

#[test]
fn tx_header_counts_checksum_start_from_the_frame() {
    let mut frame = tcp4(10);
    // Tagged frame: L3 at 18.
    frame.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    let o = Offload {
        flags: Offload::NEEDS_CSUM,
        gso_type: Offload::GSO_TCPV4,
        gso_size: 1448,
        csum_start: 20,
        csum_offset: 16,
    };
    let h = VnetHdr::from_offload(o, &frame).unwrap();
    assert_eq!(h.csum_start, 38);
    assert_eq!(h.csum_offset, 16);
    // Every segment repeats Ethernet + tag + IPv4 + TCP.
    assert_eq!(h.hdr_len, 58);
    assert_eq!(h.gso_type, VnetHdr::GSO_TCPV4);
    assert_eq!(
        VnetHdr::from_offload(Offload::NONE, &frame),
        Some(VnetHdr::default())
    );
    // Offload state that does not fit the frame gets no header at all.
    assert_eq!(VnetHdr::from_offload(o, &frame[..40]), None);
}

#[test]
fn config_is_checked() {
    assert!(AfPacketConfig::default().check().is_ok());
    let bad = AfPacketConfig {
        max_rx_frame: 1 << 20,
        ..AfPacketConfig::default()
    };
    assert!(bad.check().unwrap_err().contains("longest received frame"));
    let small = AfPacketConfig {
        rcvbuf: 100,
        ..AfPacketConfig::default()
    };
    assert!(small.check().unwrap_err().contains("receive buffer of 100"));
    let e = AfPacketPort::attach_with("nosuch0", &bad).unwrap_err();
    assert!(
        e.to_string().starts_with("attach AF_PACKET to nosuch0:"),
        "{e}"
    );
}
