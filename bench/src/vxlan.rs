//! The VXLAN scenarios shared by `benches/vxlan.rs` and the
//! instruction-count harness: a batch of 64-byte inner frames (one flow
//! each) encapsulated for an IPv4 underlay, and the same batch decapsulated.
//! Each step undoes its work (a head move) so the same frames go round.

use std::net::{IpAddr, Ipv4Addr};

use rvs_switch::mac::MacAddr;
use rvs_switch::vxlan::{
    self, OuterDecap, OuterEncap, UnderlayParams, Vni, VniConfig, VtepTable, VxlanCounters,
};
use rvs_switch::{BATCH_MAX, Batch, PacketPool};

pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

/// `burst` 64-byte inner IPv4/UDP frames, one flow each.
pub fn inner_batch(pool: &mut PacketPool, burst: usize) -> Batch {
    let mut batch = Batch::new(burst);
    for i in 0..burst {
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(&MacAddr::local(2).0);
        f[6..12].copy_from_slice(&MacAddr::local(1).0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&50u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&(1000 + i as u16).to_be_bytes());
        f[36..38].copy_from_slice(&5000u16.to_be_bytes());
        batch.push(pool.alloc_from(&f).unwrap()).unwrap();
    }
    batch
}

/// Encapsulation of one batch, over and over.
pub struct EncapRun {
    pub pool: PacketPool,
    pub batch: Batch,
    pub encap: OuterEncap,
    pub counters: VxlanCounters,
}

impl EncapRun {
    /// The outer UDP checksum on (`udp_csum`, as Linux does by default) or
    /// zero (RFC 7348's IPv4 default).
    pub fn new(burst: usize, udp_csum: bool) -> Self {
        let mut pool = PacketPool::with_frames(256);
        let batch = inner_batch(&mut pool, burst);
        let mut p = UnderlayParams::new(MacAddr::local(10), MacAddr::local(11), LOCAL, REMOTE);
        p.udp_csum = udp_csum;
        EncapRun {
            pool,
            batch,
            encap: OuterEncap::new(&p, Vni::new(42).unwrap()).unwrap(),
            counters: VxlanCounters::default(),
        }
    }

    /// Encapsulate the batch, then take the outer headers off again.
    #[inline]
    pub fn step(&mut self) -> usize {
        self.encap
            .encap_batch(&mut self.pool, &mut self.batch, 1500, &mut self.counters);
        for p in self.batch.as_mut_slice() {
            self.pool.pull_front(p, vxlan::OVERHEAD_V4);
        }
        self.batch.len()
    }
}

/// Decapsulation of one encapsulated batch, over and over.
pub struct DecapRun {
    pub pool: PacketPool,
    pub batch: Batch,
    pub decap: OuterDecap,
    pub table: VtepTable,
    pub meta: [Option<vxlan::RxMeta>; BATCH_MAX],
    pub counters: VxlanCounters,
}

impl DecapRun {
    pub fn new(burst: usize) -> Self {
        let mut e = EncapRun::new(burst, true);
        e.encap
            .encap_batch(&mut e.pool, &mut e.batch, 1500, &mut e.counters);
        let mut table = VtepTable::new();
        table
            .add_vni(Vni::new(42).unwrap(), VniConfig::default())
            .unwrap();
        DecapRun {
            pool: e.pool,
            batch: e.batch,
            decap: OuterDecap {
                local: REMOTE,
                port: vxlan::UDP_PORT,
            },
            table,
            meta: [None; BATCH_MAX],
            counters: VxlanCounters::default(),
        }
    }

    /// Decapsulate the batch, then put the outer headers back in front.
    #[inline]
    pub fn step(&mut self) -> usize {
        self.decap.decap_batch(
            &mut self.pool,
            &mut self.batch,
            &self.table,
            &mut self.meta,
            &mut self.counters,
        );
        for p in self.batch.as_mut_slice() {
            self.pool.push_front(p, vxlan::OVERHEAD_V4);
        }
        self.batch.len()
    }
}
