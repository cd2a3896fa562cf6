//! Classic pcap (libpcap 2.4) encoding of captured frames.
//!
//! Written by hand rather than with the `pcap-file` crate: the format we emit
//! is two fixed little-endian headers (24 bytes per file, 16 per record), the
//! crate's current release is a 3.0 release candidate, and a streamed HTTP
//! body wants plain byte chunks, not a `Write` sink. Owns: byte layout only.
//! Never: I/O.

/// Link type Ethernet (LINKTYPE_ETHERNET).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame kept per record, matching the capture's snap length.
pub const SNAPLEN: u32 = 65_535;
const MAGIC_USEC: u32 = 0xa1b2_c3d4;

/// The 24-byte file header.
pub fn global_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_USEC.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version major
    h[6..8].copy_from_slice(&4u16.to_le_bytes()); // version minor
    // thiszone (8..12) and sigfigs (12..16) stay 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// One record: 16-byte header (time, captured and original length) then the
/// bytes. `orig_len` is the frame's length on the wire, `data` may be cut.
pub fn record(unix_ms: u64, orig_len: usize, data: &[u8], out: &mut Vec<u8>) {
    let secs = (unix_ms / 1000) as u32;
    let usecs = ((unix_ms % 1000) * 1000) as u32;
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&usecs.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&(orig_len.max(data.len()) as u32).to_le_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_have_the_libpcap_layout() {
        let g = global_header();
        assert_eq!(&g[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u16::from_le_bytes([g[4], g[5]]), 2);
        assert_eq!(u16::from_le_bytes([g[6], g[7]]), 4);
        assert_eq!(u32::from_le_bytes(g[20..24].try_into().unwrap()), 1);
        let mut r = Vec::new();
        record(1_700_000_000_123, 70, &[0xab; 60], &mut r);
        assert_eq!(r.len(), 16 + 60);
        assert_eq!(
            u32::from_le_bytes(r[0..4].try_into().unwrap()),
            1_700_000_000
        );
        assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 123_000);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 60);
        assert_eq!(u32::from_le_bytes(r[12..16].try_into().unwrap()), 70);
    }
}
