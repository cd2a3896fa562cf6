//! One received frame as the kernel hands it to `recvmmsg`: the bytes (a
//! virtio-net header first, when the socket asked for them) and the
//! `PACKET_AUXDATA` control message with the frame's length on the wire and
//! the VLAN tag the kernel took out of it.
//!
//! Owns: parsing a receive slot and its control buffer, checking every
//! length the kernel wrote against the buffers. Never: syscalls (sys.rs) or
//! packet processing (rx.rs).

use crate::offload::VNET_HDR_LEGACY_LEN;

/// `TP_STATUS_*` bits of `tpacket_auxdata` used here (uapi `if_packet.h`).
pub(super) const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub(super) const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// Offsets in `struct tpacket_auxdata`.
const AUX_STATUS: usize = 0;
const AUX_LEN: usize = 4;
const AUX_VLAN_TCI: usize = 16;
const AUX_VLAN_TPID: usize = 18;
const AUX_SIZE: usize = 20;

/// One received frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct RxFrame<'a> {
    /// Frame bytes from the MAC header on, as many as were received.
    pub data: &'a [u8],
    /// Length of the frame on the wire; above `data.len()` when the receive
    /// slot had no room for all of it.
    pub wire_len: usize,
    /// An 802.1Q tag the kernel took out of the frame (`(tpid, tci)`).
    pub vlan: Option<(u16, u16)>,
    /// The virtio-net header in front of the MAC header, when enabled.
    pub vnet: Option<[u8; VNET_HDR_LEGACY_LEN]>,
}

fn rd32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn rd16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// `CMSG_ALIGN`: control messages and their data start on `size_t` bounds.
fn cmsg_align(n: usize) -> usize {
    n.next_multiple_of(std::mem::size_of::<usize>())
}

/// The `tpacket_auxdata` in a control buffer of `recvmsg`, if present:
/// `(tp_status, tp_len, tp_vlan_tci, tp_vlan_tpid)`.
fn auxdata(ctrl: &[u8]) -> Option<(u32, u32, u16, u16)> {
    let hdr = cmsg_align(std::mem::size_of::<libc::cmsghdr>());
    let word = std::mem::size_of::<usize>();
    let mut off = 0;
    while off + hdr <= ctrl.len() {
        let len = usize::from_ne_bytes(ctrl.get(off..off + word)?.try_into().ok()?);
        let level = rd32(ctrl, off + word)? as i32;
        let kind = rd32(ctrl, off + word + 4)? as i32;
        if len < hdr || off + len > ctrl.len() {
            return None;
        }
        if level == libc::SOL_PACKET && kind == libc::PACKET_AUXDATA && len >= hdr + AUX_SIZE {
            let a = &ctrl[off + hdr..off + len];
            return Some((
                rd32(a, AUX_STATUS)?,
                rd32(a, AUX_LEN)?,
                rd16(a, AUX_VLAN_TCI)?,
                rd16(a, AUX_VLAN_TPID)?,
            ));
        }
        off += cmsg_align(len);
    }
    None
}

/// Parse one received message: `buf` the bytes the kernel wrote (vnet
/// header first when `with_vnet`), `truncated` its `MSG_TRUNC`, `ctrl` the
/// control bytes. `None` if the message is too short for its vnet header.
pub(super) fn parse<'a>(
    buf: &'a [u8],
    truncated: bool,
    ctrl: &[u8],
    with_vnet: bool,
) -> Option<RxFrame<'a>> {
    let (vnet, data) = if with_vnet {
        let (h, d) = buf.split_at_checked(VNET_HDR_LEGACY_LEN)?;
        (Some(h.try_into().ok()?), d)
    } else {
        (None, buf)
    };
    let aux = auxdata(ctrl);
    let mut wire_len = aux.map_or(data.len(), |a| a.1 as usize);
    if truncated {
        wire_len = wire_len.max(data.len() + 1);
    }
    let vlan = aux.and_then(|(status, _, tci, tpid)| {
        (status & TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                0x8100
            };
            (tpid, tci)
        })
    });
    Some(RxFrame {
        data,
        wire_len,
        vlan,
        vnet,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A control buffer as the kernel writes it for `PACKET_AUXDATA`.
    pub(crate) fn aux_cmsg(wire_len: u32, vlan: Option<(u16, u16)>) -> Vec<u8> {
        let hdr = cmsg_align(std::mem::size_of::<libc::cmsghdr>());
        let word = std::mem::size_of::<usize>();
        let mut b = vec![0u8; cmsg_align(hdr + AUX_SIZE)];
        b[..word].copy_from_slice(&(hdr + AUX_SIZE).to_ne_bytes());
        b[word..word + 4].copy_from_slice(&libc::SOL_PACKET.to_ne_bytes());
        b[word + 4..word + 8].copy_from_slice(&libc::PACKET_AUXDATA.to_ne_bytes());
        let a = &mut b[hdr..];
        let mut status = 1u32; // TP_STATUS_USER
        if let Some((tpid, tci)) = vlan {
            status |= TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID;
            a[AUX_VLAN_TCI..AUX_VLAN_TCI + 2].copy_from_slice(&tci.to_ne_bytes());
            a[AUX_VLAN_TPID..AUX_VLAN_TPID + 2].copy_from_slice(&tpid.to_ne_bytes());
        }
        a[AUX_STATUS..AUX_STATUS + 4].copy_from_slice(&status.to_ne_bytes());
        a[AUX_LEN..AUX_LEN + 4].copy_from_slice(&wire_len.to_ne_bytes());
        b
    }

    /// A received message: vnet header (if any) then the frame.
    pub(crate) fn message(vnet: Option<[u8; VNET_HDR_LEGACY_LEN]>, data: &[u8]) -> Vec<u8> {
        let mut m = vnet.map(|v| v.to_vec()).unwrap_or_default();
        m.extend_from_slice(data);
        m
    }

    #[test]
    fn frames_are_parsed_with_their_metadata() {
        let a = [1u8; 60];
        let v = [9u8; VNET_HDR_LEGACY_LEN];
        let m = message(Some(v), &a);
        let f = parse(&m, false, &aux_cmsg(60, None), true).unwrap();
        assert_eq!(f.data, &a);
        assert_eq!(f.wire_len, 60);
        assert_eq!(f.vlan, None);
        assert_eq!(f.vnet, Some(v));
        let m = message(None, &a[..40]);
        let f = parse(&m, true, &aux_cmsg(1500, Some((0x88a8, 7))), false).unwrap();
        assert_eq!(f.data.len(), 40);
        assert_eq!(f.wire_len, 1500, "cut short: 40 of 1500");
        assert_eq!(f.vlan, Some((0x88a8, 7)));
        assert_eq!(f.vnet, None);
    }

    #[test]
    fn short_or_odd_messages_are_handled() {
        assert!(
            parse(&[0u8; 4], false, &[], true).is_none(),
            "no room for a vnet header"
        );
        // No control message: the received length stands, no tag.
        let f = parse(&[7u8; 64], false, &[], false).unwrap();
        assert_eq!((f.wire_len, f.vlan), (64, None));
        // MSG_TRUNC without auxdata still marks the frame as cut short.
        let f = parse(&[7u8; 64], true, &[], false).unwrap();
        assert!(f.wire_len > f.data.len());
        // A control message claiming more bytes than the buffer holds.
        let mut c = aux_cmsg(60, Some((0x8100, 5)));
        let word = std::mem::size_of::<usize>();
        c[..word].copy_from_slice(&4096usize.to_ne_bytes());
        let f = parse(&[7u8; 64], false, &c, false).unwrap();
        assert_eq!((f.wire_len, f.vlan), (64, None));
    }
}
