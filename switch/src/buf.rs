//! Packet memory: one contiguous, page-aligned region cut into fixed-size
//! frames, and move-only descriptors ([`PktBuf`]) that name a frame plus the
//! window of it that holds the packet.
//!
//! The region has the shape of an AF_XDP UMEM on purpose: a driver can
//! register it with the kernel so that frames move between AF_XDP ports as
//! descriptors, never as bytes. Every frame keeps headroom in front of the
//! packet so a VLAN push or a VXLAN encapsulation writes into the headroom
//! instead of copying the payload.
//!
//! Owns: the memory and the free list. Never: syscalls, locks, allocation
//! after construction.

use bytemuck::{Pod, Zeroable};

/// Page-aligned storage unit (AF_XDP wants the UMEM page aligned).
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(4096))]
struct Page([u8; PAGE]);
const PAGE: usize = 4096;

/// Default frame size: two frames per page, the common AF_XDP chunk size.
pub const DEFAULT_FRAME_SIZE: usize = 2048;
/// Default headroom: room for a QinQ pair plus an IPv6 VXLAN encapsulation
/// (70 bytes) with the rest left for a driver header (virtio-net header).
pub const DEFAULT_HEADROOM: usize = 256;

/// A packet: which frame, where the data starts in it, how long it is.
///
/// Deliberately not `Clone`/`Copy`: exactly one owner holds a frame, so a
/// frame can neither be freed twice nor freed while queued somewhere.
#[derive(Debug, PartialEq, Eq)]
pub struct PktBuf {
    frame: u32,
    head: u16,
    len: u16,
    offload: Offload,
}

/// Checksum and segmentation offload state a packet carries across the
/// switch (from a TAP's virtio-net header to the egress port), so a TCP
/// super-frame crosses as one unit. 8 bytes; [`Offload::NONE`] by default.
///
/// `csum_start` counts from the start of the L3 header, not of the frame:
/// a VLAN push or pop on the way moves the frame start but not this offset,
/// and the egress adds its own L2 header length back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offload {
    /// [`Offload::NEEDS_CSUM`] and/or [`Offload::DATA_VALID`].
    pub flags: u8,
    /// One of the `GSO_*` constants (virtio-net numbering).
    pub gso_type: u8,
    /// Payload bytes per segment when `gso_type` is not [`Offload::GSO_NONE`].
    pub gso_size: u16,
    /// Where checksumming starts, counted from the L3 header.
    pub csum_start: u16,
    /// Where the checksum field is, counted from `csum_start`.
    pub csum_offset: u16,
}

impl Offload {
    /// No offload: the frame is complete as it stands.
    pub const NONE: Offload = Offload {
        flags: 0,
        gso_type: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };
    /// The L4 checksum is partial (pseudo-header sum only) and must be
    /// completed from `csum_start` (virtio `VIRTIO_NET_HDR_F_NEEDS_CSUM`).
    pub const NEEDS_CSUM: u8 = 1;
    /// The receiver verified the checksum (`VIRTIO_NET_HDR_F_DATA_VALID`).
    pub const DATA_VALID: u8 = 2;
    pub const GSO_NONE: u8 = 0;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_UDP: u8 = 3;
    pub const GSO_TCPV6: u8 = 4;
    pub const GSO_UDP_L4: u8 = 5;
    /// Flag bit on `gso_type`: the super-frame carries ECN CWR.
    pub const GSO_ECN: u8 = 0x80;

    /// Whether the frame is a super-frame to be segmented.
    #[inline]
    pub fn is_gso(&self) -> bool {
        self.gso_type & !Self::GSO_ECN != Self::GSO_NONE
    }
    /// Whether the L4 checksum still has to be completed.
    #[inline]
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::NEEDS_CSUM != 0
    }
}

impl PktBuf {
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    #[inline]
    pub fn frame(&self) -> u32 {
        self.frame
    }
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head as usize
    }
    /// The offload state the packet carries ([`Offload::NONE`] unless a
    /// driver set one).
    #[inline]
    pub fn offload(&self) -> Offload {
        self.offload
    }
    #[inline]
    pub fn set_offload(&mut self, o: Offload) {
        self.offload = o;
    }
}

/// Copy a packet into a frame. Minimum-size frames (32 to 64 bytes) move
/// as two overlapping 32-byte blocks the compiler inlines; a general
/// `copy_from_slice` of a length known only at run time is a call into
/// libc's `memcpy` that costs more than the copy at these sizes.
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if (32..=64).contains(&n) && dst.len() == n {
        let head: [u8; 32] = src[..32].try_into().unwrap();
        let tail: [u8; 32] = src[n - 32..].try_into().unwrap();
        dst[..32].copy_from_slice(&head);
        dst[n - 32..].copy_from_slice(&tail);
    } else {
        dst.copy_from_slice(src);
    }
}

/// Error for a pool that cannot be built as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("frame size {0} is not a power of two between 2048 and 65536")]
    FrameSize(usize),
    #[error("headroom {headroom} leaves no room in a {frame_size}-byte frame")]
    Headroom { headroom: usize, frame_size: usize },
    #[error("a pool needs between 1 and 2^24 frames, not {0}")]
    Count(usize),
}

/// The frames and their free list.
pub struct PacketPool {
    mem: Box<[Page]>,
    frame_size: usize,
    frame_shift: u32,
    headroom: u16,
    /// Small frames: numbers 0..nframes, at the start of the region.
    nframes: u32,
    free: Vec<u32>,
    /// Large frames (GSO super-frames): numbers nframes..nframes+nlarge,
    /// after the small ones, LARGE_FRAME bytes each.
    nlarge: u32,
    free_large: Vec<u32>,
    /// Cloned by every kernel registration of the region (an AF_XDP UMEM).
    /// If the pool is dropped while one is alive, its memory is leaked
    /// rather than freed under the kernel's feet.
    registrations: std::sync::Arc<()>,
}

/// Proof that a kernel registration of a pool's region is alive: hold it as
/// long as the kernel may write into the region.
#[derive(Debug, Clone)]
pub struct RegionToken(#[allow(dead_code)] std::sync::Arc<()>);

impl Drop for PacketPool {
    fn drop(&mut self) {
        if std::sync::Arc::strong_count(&self.registrations) > 1 {
            // A socket still has the region registered: the kernel may write
            // into it. Leaking a few MiB beats a use-after-free.
            std::mem::forget(std::mem::take(&mut self.mem));
        }
    }
}

/// Size of a large frame: a 64 KiB GSO super-frame plus its virtio-net
/// header and the headroom.
pub const LARGE_FRAME: usize = 1 << 17;
const LARGE_SHIFT: u32 = 17;

impl std::fmt::Debug for PacketPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketPool")
            .field("frames", &self.nframes)
            .field("frame_size", &self.frame_size)
            .field("headroom", &self.headroom)
            .field("free", &self.free.len())
            .field("large_frames", &self.nlarge)
            .field("large_free", &self.free_large.len())
            .finish()
    }
}

impl PacketPool {
    /// `nframes` frames of `frame_size` bytes with `headroom` reserved in front.
    pub fn new(nframes: usize, frame_size: usize, headroom: usize) -> Result<Self, PoolError> {
        Self::with_large(nframes, frame_size, headroom, 0)
    }

    /// Like [`PacketPool::new`], plus `nlarge` frames of [`LARGE_FRAME`]
    /// bytes for TCP/UDP segmentation-offload super-frames (TAP ports with
    /// TSO). Only the small frames form the AF_XDP-registrable prefix of the
    /// region; large frames are touched (made resident) only when used.
    pub fn with_large(
        nframes: usize,
        frame_size: usize,
        headroom: usize,
        nlarge: usize,
    ) -> Result<Self, PoolError> {
        if !frame_size.is_power_of_two() || !(2048..=65536).contains(&frame_size) {
            return Err(PoolError::FrameSize(frame_size));
        }
        if headroom + 64 > frame_size || headroom > u16::MAX as usize {
            return Err(PoolError::Headroom {
                headroom,
                frame_size,
            });
        }
        if nframes == 0 || nframes > 1 << 24 {
            return Err(PoolError::Count(nframes));
        }
        if nlarge > 1 << 16 {
            return Err(PoolError::Count(nlarge));
        }
        let small_bytes = (nframes * frame_size).next_multiple_of(PAGE);
        let bytes = small_bytes + nlarge * LARGE_FRAME;
        let pages = bytes.div_ceil(PAGE);
        // Zeroed pages: the allocator hands back fresh mappings, so untouched
        // frames cost no resident memory.
        let mem = bytemuck::allocation::zeroed_slice_box::<Page>(pages);
        // Pop order = ascending frame number: neighbours in time are
        // neighbours in memory.
        let free = (0..nframes as u32).rev().collect();
        Ok(PacketPool {
            mem,
            frame_size,
            frame_shift: frame_size.trailing_zeros(),
            headroom: headroom as u16,
            nframes: nframes as u32,
            free,
            nlarge: nlarge as u32,
            registrations: std::sync::Arc::new(()),
            free_large: (nframes as u32..(nframes + nlarge) as u32).rev().collect(),
        })
    }

    /// A pool with the default geometry (2 KiB frames, 256 bytes headroom).
    pub fn with_frames(nframes: usize) -> Self {
        Self::new(nframes, DEFAULT_FRAME_SIZE, DEFAULT_HEADROOM).expect("default geometry is valid")
    }

    pub fn frame_size(&self) -> usize {
        self.frame_size
    }
    pub fn headroom(&self) -> usize {
        self.headroom as usize
    }
    pub fn capacity(&self) -> usize {
        self.nframes as usize
    }
    pub fn available(&self) -> usize {
        self.free.len()
    }
    /// Large frames in the pool and free.
    pub fn large_capacity(&self) -> usize {
        self.nlarge as usize
    }
    pub fn large_available(&self) -> usize {
        self.free_large.len()
    }
    /// Largest packet a large frame holds at the default headroom (0 without large frames).
    pub fn max_large_packet(&self) -> usize {
        if self.nlarge == 0 {
            0
        } else {
            LARGE_FRAME - self.headroom as usize
        }
    }
    /// Bytes at the start of the region that hold the small frames (the part
    /// a driver registers as an AF_XDP UMEM).
    pub fn small_region_len(&self) -> usize {
        self.nframes as usize * self.frame_size
    }
    /// Whether `b` is a large frame.
    #[inline]
    pub fn is_large(&self, b: &PktBuf) -> bool {
        b.frame >= self.nframes
    }
    /// Largest packet a frame holds when it starts at the default headroom.
    pub fn max_packet(&self) -> usize {
        self.frame_size - self.headroom as usize
    }

    /// Take an empty frame; `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&mut self) -> Option<PktBuf> {
        let frame = self.free.pop()?;
        Some(PktBuf {
            frame,
            head: self.headroom,
            len: 0,
            offload: Offload::NONE,
        })
    }

    /// Take an empty large frame; `None` when there are none left.
    #[inline]
    pub fn alloc_large(&mut self) -> Option<PktBuf> {
        let frame = self.free_large.pop()?;
        Some(PktBuf {
            frame,
            head: self.headroom,
            len: 0,
            offload: Offload::NONE,
        })
    }

    /// Give a frame back.
    #[inline]
    pub fn free(&mut self, b: PktBuf) {
        if b.frame < self.nframes {
            debug_assert!(self.free.len() < self.nframes as usize, "pool over-freed");
            self.free.push(b.frame);
        } else {
            debug_assert!(b.frame < self.nframes + self.nlarge);
            self.free_large.push(b.frame);
        }
    }

    /// Region offset of a frame's first byte.
    #[inline(always)]
    fn frame_start(&self, frame: u32) -> usize {
        if frame < self.nframes {
            (frame as usize) << self.frame_shift
        } else {
            let small = (self.nframes as usize * self.frame_size).next_multiple_of(PAGE);
            small + (((frame - self.nframes) as usize) << LARGE_SHIFT)
        }
    }

    #[inline(always)]
    fn frame_len(&self, frame: u32) -> usize {
        if frame < self.nframes {
            self.frame_size
        } else {
            LARGE_FRAME
        }
    }

    #[inline]
    fn frame_range(&self, frame: u32) -> std::ops::Range<usize> {
        let start = self.frame_start(frame);
        start..start + self.frame_len(frame)
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        bytemuck::must_cast_slice(&self.mem)
    }

    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::must_cast_slice_mut(&mut self.mem)
    }

    /// The packet's bytes.
    #[inline]
    pub fn data(&self, b: &PktBuf) -> &[u8] {
        let start = self.frame_start(b.frame) + b.head as usize;
        &self.bytes()[start..start + b.len as usize]
    }

    /// The packet's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self, b: &PktBuf) -> &mut [u8] {
        let start = self.frame_start(b.frame) + b.head as usize;
        let end = start + b.len as usize;
        &mut self.bytes_mut()[start..end]
    }

    /// Room after the packet's head up to the end of its frame, for a driver
    /// to receive into; follow with [`PacketPool::set_len`].
    #[inline]
    pub fn tail_room_mut(&mut self, b: &PktBuf) -> &mut [u8] {
        let r = self.frame_range(b.frame);
        let start = r.start + b.head as usize;
        &mut self.bytes_mut()[start..r.end]
    }

    /// Set the packet length after a driver wrote into [`Self::tail_room_mut`].
    #[inline]
    pub fn set_len(&self, b: &mut PktBuf, len: usize) {
        assert!(
            b.head as usize + len <= self.frame_len(b.frame),
            "packet overruns its frame"
        );
        assert!(len <= u16::MAX as usize, "packet longer than 65535 bytes");
        b.len = len as u16;
    }

    /// Move the packet start to `head` bytes into its frame, keeping its end
    /// (drivers that receive a header into the headroom use this).
    #[inline]
    pub fn set_head(&self, b: &mut PktBuf, head: usize) {
        let end = b.head as usize + b.len as usize;
        assert!(
            head <= end && head <= u16::MAX as usize,
            "head past the packet end"
        );
        b.head = head as u16;
        b.len = (end - head) as u16;
    }

    /// Copy `bytes` into a fresh frame. `None` if the pool is empty or the
    /// packet does not fit a frame.
    #[inline]
    pub fn alloc_from(&mut self, bytes: &[u8]) -> Option<PktBuf> {
        let n = bytes.len();
        if n > self.max_packet() {
            return self.alloc_from_large(bytes);
        }
        // A small frame: its offset needs no large-frame branch.
        let frame = self.free.pop()?;
        let head = self.headroom;
        let start = ((frame as usize) << self.frame_shift) + head as usize;
        copy_small(&mut self.bytes_mut()[start..start + n], bytes);
        Some(PktBuf {
            frame,
            head,
            len: n as u16,
            offload: Offload::NONE,
        })
    }

    #[cold]
    fn alloc_from_large(&mut self, bytes: &[u8]) -> Option<PktBuf> {
        if bytes.len() > self.max_large_packet().min(u16::MAX as usize) {
            return None;
        }
        let mut b = self.alloc_large()?;
        b.len = bytes.len() as u16;
        self.data_mut(&b).copy_from_slice(bytes);
        Some(b)
    }

    /// A second, independent copy of a packet (flooding), same headroom.
    /// Always inlined: out of line, saving registers and returning the
    /// descriptor through memory cost as much as the copy itself.
    #[inline(always)]
    pub fn duplicate(&mut self, b: &PktBuf) -> Option<PktBuf> {
        if b.frame >= self.nframes {
            return self.duplicate_large(b);
        }
        // A small frame: offsets without the large-frame branch.
        let frame = self.free.pop()?;
        let src = ((b.frame as usize) << self.frame_shift) + b.head as usize;
        let dst = ((frame as usize) << self.frame_shift) + b.head as usize;
        let n = b.len as usize;
        let mem = self.bytes_mut();
        if (32..=64).contains(&n) {
            // See `copy_small`: two overlapping 32-byte moves, no call.
            let head: [u8; 32] = mem[src..src + 32].try_into().unwrap();
            let tail: [u8; 32] = mem[src + n - 32..src + n].try_into().unwrap();
            mem[dst..dst + 32].copy_from_slice(&head);
            mem[dst + n - 32..dst + n].copy_from_slice(&tail);
        } else {
            mem.copy_within(src..src + n, dst);
        }
        Some(PktBuf {
            frame,
            head: b.head,
            len: b.len,
            offload: b.offload,
        })
    }

    #[cold]
    fn duplicate_large(&mut self, b: &PktBuf) -> Option<PktBuf> {
        let frame = self.free_large.pop()?;
        let src = self.frame_start(b.frame) + b.head as usize;
        let dst = self.frame_start(frame) + b.head as usize;
        let n = b.len as usize;
        self.bytes_mut().copy_within(src..src + n, dst);
        Some(PktBuf {
            frame,
            head: b.head,
            len: b.len,
            offload: b.offload,
        })
    }

    /// Grow the packet by `n` bytes at the front (into the headroom) and
    /// return the new packet start. Panics if the headroom is too small, which
    /// the pool geometry rules out for every push the pipeline makes.
    #[inline]
    pub fn push_front(&self, b: &mut PktBuf, n: usize) {
        assert!(b.head as usize >= n, "headroom exhausted");
        b.head -= n as u16;
        b.len += n as u16;
    }

    /// Drop `n` bytes from the front of the packet.
    #[inline]
    pub fn pull_front(&self, b: &mut PktBuf, n: usize) {
        assert!(b.len as usize >= n, "pull past the end of the packet");
        b.head += n as u16;
        b.len -= n as u16;
    }

    /// Byte offset of the packet start inside the region (an AF_XDP descriptor address).
    #[inline]
    pub fn addr_of(&self, b: &PktBuf) -> u64 {
        debug_assert!(b.frame < self.nframes, "large frames are not in the UMEM");
        (self.frame_start(b.frame) + b.head as usize) as u64
    }

    /// Rebuild a descriptor from a region offset and length (AF_XDP rx/completion).
    /// `None` if it does not name bytes inside one frame.
    #[inline]
    pub fn buf_at(&self, addr: u64, len: usize) -> Option<PktBuf> {
        let addr = addr as usize;
        let frame = addr >> self.frame_shift;
        let head = addr & (self.frame_size - 1);
        if frame >= self.nframes as usize || head + len > self.frame_size {
            return None;
        }
        Some(PktBuf {
            frame: frame as u32,
            head: head as u16,
            len: len as u16,
            offload: Offload::NONE,
        })
    }

    /// Reset a descriptor to the default headroom and zero length (drivers
    /// reusing completed frames for receive).
    #[inline]
    pub fn reset(&self, b: &mut PktBuf) {
        b.head = self.headroom;
        b.len = 0;
        b.offload = Offload::NONE;
    }

    /// Hand a small frame taken with [`Self::alloc`] to an owner outside the
    /// pool's bookkeeping (a kernel ring), returning its region offset.
    #[inline]
    pub fn into_addr(&self, b: PktBuf) -> u64 {
        debug_assert!(b.frame < self.nframes, "large frames are not in the UMEM");
        ((b.frame as usize) << self.frame_shift) as u64
    }

    /// A token to keep while the kernel has the region registered (see
    /// [`RegionToken`]).
    pub fn region_token(&self) -> RegionToken {
        RegionToken(self.registrations.clone())
    }

    /// Whether any [`RegionToken`] is alive.
    pub fn region_registered(&self) -> bool {
        std::sync::Arc::strong_count(&self.registrations) > 1
    }

    /// The small-frame part of the region, for registering it with the
    /// kernel as an AF_XDP UMEM (page aligned, `small_region_len()` bytes).
    pub fn region_mut(&mut self) -> &mut [u8] {
        let n = self.small_region_len();
        &mut self.bytes_mut()[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_validated() {
        assert_eq!(
            PacketPool::new(8, 1000, 0).unwrap_err(),
            PoolError::FrameSize(1000)
        );
        assert!(matches!(
            PacketPool::new(8, 2048, 2000),
            Err(PoolError::Headroom { .. })
        ));
        assert_eq!(
            PacketPool::new(0, 2048, 256).unwrap_err(),
            PoolError::Count(0)
        );
    }

    #[test]
    fn alloc_until_empty_then_free() {
        let mut p = PacketPool::with_frames(4);
        let bufs: Vec<_> = (0..4).map(|_| p.alloc().unwrap()).collect();
        assert!(p.alloc().is_none());
        assert_eq!(p.available(), 0);
        for b in bufs {
            p.free(b);
        }
        assert_eq!(p.available(), 4);
    }

    #[test]
    fn data_round_trip_and_headroom_push_pull() {
        let mut p = PacketPool::with_frames(2);
        let mut b = p.alloc_from(&[1, 2, 3, 4]).unwrap();
        assert_eq!(p.data(&b), &[1, 2, 3, 4]);
        p.push_front(&mut b, 2);
        p.data_mut(&b)[..2].copy_from_slice(&[9, 9]);
        assert_eq!(p.data(&b), &[9, 9, 1, 2, 3, 4]);
        p.pull_front(&mut b, 3);
        assert_eq!(p.data(&b), &[2, 3, 4]);
    }

    #[test]
    fn duplicate_is_independent() {
        let mut p = PacketPool::with_frames(2);
        let a = p.alloc_from(&[7; 60]).unwrap();
        let c = p.duplicate(&a).unwrap();
        p.data_mut(&c)[0] = 1;
        assert_eq!(p.data(&a)[0], 7);
        assert_eq!(p.data(&c)[0], 1);
        assert!(p.duplicate(&a).is_none(), "pool of two is empty now");
    }

    #[test]
    fn oversize_packet_refused() {
        let mut p = PacketPool::with_frames(1);
        assert!(p.alloc_from(&vec![0; DEFAULT_FRAME_SIZE]).is_none());
        assert_eq!(p.available(), 1, "refusal takes no frame");
    }

    #[test]
    fn addresses_round_trip() {
        let mut p = PacketPool::with_frames(4);
        let _a = p.alloc().unwrap();
        let b = p.alloc_from(&[5; 10]).unwrap();
        let addr = p.addr_of(&b);
        let c = p.buf_at(addr, 10).unwrap();
        assert_eq!(c, b);
        assert!(p.buf_at(4 * 2048, 1).is_none());
        assert!(p.buf_at(2040, 100).is_none());
    }

    #[test]
    fn large_frames_hold_gso_super_frames() {
        let mut p = PacketPool::with_large(4, 2048, 256, 2).unwrap();
        assert_eq!(p.max_large_packet(), LARGE_FRAME - 256);
        let big = vec![0x5a; 65_000];
        let b = p.alloc_from(&big).unwrap();
        assert!(p.is_large(&b));
        assert_eq!(p.data(&b), &big[..]);
        let c = p.duplicate(&b).unwrap();
        assert!(p.is_large(&c));
        assert!(p.duplicate(&b).is_none(), "two large frames only");
        assert_eq!(p.available(), 4, "small frames untouched");
        p.free(b);
        p.free(c);
        assert_eq!(p.large_available(), 2);
        let s = p.alloc_from(&[1; 100]).unwrap();
        assert!(!p.is_large(&s));
        assert_eq!(
            p.region_mut().len(),
            4 * 2048,
            "UMEM part is the small frames only"
        );
    }

    #[test]
    fn offload_is_small_copied_by_duplicate_and_cleared_on_reuse() {
        assert!(std::mem::size_of::<PktBuf>() <= 16);
        let mut p = PacketPool::with_frames(3);
        let mut a = p.alloc_from(&[1; 60]).unwrap();
        assert_eq!(a.offload(), Offload::NONE);
        let o = Offload {
            flags: Offload::NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        a.set_offload(o);
        assert!(o.is_gso() && o.needs_csum());
        let c = p.duplicate(&a).unwrap();
        assert_eq!(c.offload(), o);
        p.reset(&mut a);
        assert_eq!(a.offload(), Offload::NONE);
        p.free(a);
        p.free(c);
        assert_eq!(p.alloc().unwrap().offload(), Offload::NONE);
    }

    #[test]
    fn set_head_moves_start_keeps_end() {
        let mut p = PacketPool::with_frames(1);
        let mut b = p.alloc_from(&[1, 2, 3, 4]).unwrap();
        p.set_head(&mut b, 256 - 2);
        assert_eq!(p.data(&b).len(), 6);
        assert_eq!(&p.data(&b)[2..], &[1, 2, 3, 4]);
    }

    #[test]
    fn a_pool_dropped_while_registered_leaks_instead_of_freeing() {
        let p = PacketPool::with_frames(2);
        assert!(!p.region_registered());
        let t = p.region_token();
        assert!(p.region_registered());
        drop(p); // must not free memory the token's holder may still use
        drop(t);
    }

    #[test]
    fn region_is_page_aligned() {
        let mut p = PacketPool::with_frames(3);
        assert_eq!(p.region_mut().as_ptr() as usize % 4096, 0);
        assert!(p.region_mut().len() >= 3 * 2048);
    }
}
