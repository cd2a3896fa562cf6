//! Software offload work of the port back ends on a 64 KiB TCP/IPv4 TSO
//! super-frame (45 segments of 1448 bytes), throughput in bytes of the
//! super-frame (read GiB/s of payload handled):
//!
//! - `offload/segment_full`: cut into header blocks + payload slices with a
//!   complete TCP checksum per segment (TAP without offloads, VXLAN VTEP);
//! - `offload/segment_partial`: the same leaving each checksum partial (TAP
//!   with checksum offload only);
//! - `offload/rx_cut_in_place`: each segment copied into a buffer and fixed
//!   up there (AF_PACKET receive of a veth super-frame);
//! - `offload/finish_in_software`: segments written into pool frames (AF_XDP
//!   transmit, which takes no offload);
//! - `offload/complete_csum_1500`: a partial checksum completed on a
//!   1500-byte frame.
//!
//! The segment emitter only touches the slices (a length sum), so these
//! figures are the offload code itself, not a copy or a syscall.
//!
//! With `RVS_OFFLOAD_ICOUNT=N` (and a case name as the only argument) the
//! binary runs that case N times without criterion and exits:
//! `bench/offload-icount.sh` counts instructions per run with callgrind,
//! which a busy machine does not disturb.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use rvs_switch::PacketPool;
use rvs_switch::buf::Offload;

mod api {
    //! The calls measured, in one place (`rvs_drivers::offload`).
    use rvs_drivers::offload::{self, CsumMode, GsoPlan, VnetHdr};
    use rvs_switch::buf::Offload;
    use rvs_switch::{PacketPool, PktBuf};

    pub fn segment(frame: &[u8], o: Offload, partial: bool) -> usize {
        let mode = if partial {
            CsumMode::Partial
        } else {
            CsumMode::Full
        };
        let mut sum = 0;
        GsoPlan::from_offload(frame, o)
            .unwrap()
            .segment::<()>(frame, mode, |s| {
                sum += s.headers.len() + s.payload.len();
                Ok(())
            })
            .unwrap()
            .unwrap();
        sum
    }

    pub fn rx_cut(frame: &[u8], h: [u8; 10], out: &mut [u8]) -> usize {
        let h = VnetHdr::parse(&h);
        let plan = GsoPlan::from_vnet(frame, &h).unwrap();
        let mut sum = 0;
        for i in 0..plan.segments() {
            let len = plan.segment_len(i);
            let hl = plan.hdr_len();
            out[..hl].copy_from_slice(&frame[..hl]);
            out[hl..len].copy_from_slice(&frame[plan.payload_range(i)]);
            plan.fix_segment(&mut out[..len], i);
            sum += len;
        }
        sum
    }

    pub fn finish(pool: &mut PacketPool, b: PktBuf, out: &mut Vec<PktBuf>) {
        offload::finish_in_software(pool, b, 1514, |_, s| out.push(s)).unwrap();
    }

    pub fn complete(frame: &mut [u8], start: usize, off: usize) {
        offload::complete_csum(frame, start, off).unwrap();
    }
}

const PAYLOAD: usize = 65_160; // 45 * 1448
const MSS: u16 = 1448;

/// Ethernet + IPv4 + TCP (32-byte header, timestamps) + payload, the TCP
/// checksum field holding the pseudo-header sum as a TSO sender leaves it.
fn tso_frame(payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 32];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((20 + 32 + payload) as u16).to_be_bytes());
    f[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5201u16.to_be_bytes());
    f[38..42].copy_from_slice(&1_000_000u32.to_be_bytes());
    f[46] = 8 << 4;
    f[47] = 0x18;
    f.extend((0..payload).map(|i| (i * 7 + i / 251) as u8));
    f
}

/// The inputs every case runs on.
struct Inputs {
    sf: Vec<u8>,
    o: Offload,
    vh: [u8; 10],
    out: Vec<u8>,
    pool: PacketPool,
    segs: Vec<rvs_switch::PktBuf>,
    small: Vec<u8>,
}

impl Inputs {
    fn new() -> Inputs {
        // struct virtio_net_hdr as a packet socket hands it over.
        let mut vh = [0u8; 10];
        vh[0] = 1;
        vh[1] = 1;
        vh[2..4].copy_from_slice(&66u16.to_ne_bytes());
        vh[4..6].copy_from_slice(&MSS.to_ne_bytes());
        vh[6..8].copy_from_slice(&34u16.to_ne_bytes());
        vh[8..10].copy_from_slice(&16u16.to_ne_bytes());
        Inputs {
            sf: tso_frame(PAYLOAD),
            o: Offload {
                flags: Offload::NEEDS_CSUM,
                gso_type: Offload::GSO_TCPV4,
                gso_size: MSS,
                csum_start: 20,
                csum_offset: 16,
            },
            vh,
            out: vec![0u8; 2048],
            pool: PacketPool::with_large(128, 2048, 256, 2).unwrap(),
            segs: Vec::with_capacity(64),
            small: tso_frame(1500 - 66),
        }
    }

    /// One run of case `name`; false if there is no such case.
    fn run(&mut self, name: &str) -> bool {
        match name {
            "segment_full" => {
                black_box(api::segment(black_box(&self.sf), self.o, false));
            }
            "segment_partial" => {
                black_box(api::segment(black_box(&self.sf), self.o, true));
            }
            "rx_cut_in_place" => {
                black_box(api::rx_cut(black_box(&self.sf), self.vh, &mut self.out));
            }
            "finish_in_software" => {
                let mut buf = self.pool.alloc_from(&self.sf).unwrap();
                buf.set_offload(self.o);
                api::finish(&mut self.pool, buf, &mut self.segs);
                for s in self.segs.drain(..) {
                    self.pool.free(s);
                }
            }
            "complete_csum_1500" => api::complete(black_box(&mut self.small), 34, 16),
            _ => return false,
        }
        true
    }
}

const CASES: [&str; 5] = [
    "segment_full",
    "segment_partial",
    "rx_cut_in_place",
    "finish_in_software",
    "complete_csum_1500",
];

fn offload(c: &mut Criterion) {
    let mut inp = Inputs::new();
    let mut g = c.benchmark_group("offload");
    for name in CASES {
        let len = if name == "complete_csum_1500" {
            inp.small.len()
        } else {
            inp.sf.len()
        };
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| b.iter(|| inp.run(name)));
    }
    g.finish();
}

criterion_group!(benches, offload);

fn main() {
    if let Ok(n) = std::env::var("RVS_OFFLOAD_ICOUNT") {
        let n: usize = n.parse().expect("RVS_OFFLOAD_ICOUNT is a count");
        let name = std::env::args().nth(1).unwrap_or_default();
        let mut inp = Inputs::new();
        for _ in 0..n {
            assert!(inp.run(&name), "no case {name:?}; cases: {CASES:?}");
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
