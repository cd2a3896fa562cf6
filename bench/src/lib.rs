//! Scenarios shared by the criterion benches (`benches/`) and the
//! instruction-count harness (`src/bin/rvs-icount.rs`): each builds a switch
//! over memory ports that generate 64-byte frames (60 bytes + FCS on the
//! wire) without end, so a bench iteration is one `Switch::poll()` = one
//! burst through the whole pipeline (rx copy, parse, VLAN, learn, lookup,
//! egress edit, tx, counters, aging step).

pub mod l3;
pub mod lb;
pub mod vxlan;

use rvs_switch::batch::Batch;
use rvs_switch::port::{Port, PortError, TxDone};
use rvs_switch::vlan::VlanMode;
use rvs_switch::{
    DomainConfig, DomainId, MacAddr, MemoryPort, PacketPool, PortConfig, PortId, Switch,
};

/// Frame length without FCS: 64 bytes on the wire.
pub const FRAME_LEN: usize = 60;

pub const A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xa]);
pub const B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xb]);

/// A 60-byte IPv4-looking frame.
pub fn frame64(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut f = rvs_switch::wire::ethernet::build(dst, src, 0x0800, &[0u8; FRAME_LEN - 14]);
    f[14] = 0x45;
    f
}

/// The same frame with an 802.1Q tag inserted (68 bytes on the wire; 64
/// again once an access port pops the tag).
pub fn tagged64(dst: MacAddr, src: MacAddr, vid: u16) -> Vec<u8> {
    let f = frame64(dst, src);
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&vid.to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

fn pool() -> PacketPool {
    PacketPool::with_frames(4096)
}

/// A domain without the default MAC limit: the learning and lookup
/// benches measure tables far larger than it.
fn domain(sw: &mut Switch) -> DomainId {
    let mut cfg = DomainConfig::new("bench");
    cfg.fdb.max_entries = 0;
    sw.add_domain(cfg).unwrap()
}

/// Port 0 replays A→B; B is known on port 1 (a sink).
pub fn known_unicast(burst: usize) -> Switch {
    let mut sw = Switch::with_burst(pool(), burst);
    let d = domain(&mut sw);
    let (source, _) = MemoryPort::replay("gen", vec![frame64(B, A)]);
    let (sink, _) = MemoryPort::sink("sink");
    sw.add_port(Box::new(source), PortConfig::access(d, 1))
        .unwrap();
    let out = sw
        .add_port(Box::new(sink), PortConfig::access(d, 1))
        .unwrap();
    sw.add_static(d, 1, B, out).unwrap();
    sw
}

/// [`known_unicast`] with the frames of one TCP-like stream: 64 frames
/// that differ in their IPv4 total length and id (bytes 16..20), as a real
/// flow's do, where `known_unicast` replays one frame byte for byte.
pub fn known_unicast_stream(burst: usize) -> Switch {
    let mut sw = Switch::with_burst(pool(), burst);
    let d = domain(&mut sw);
    let frames: Vec<Vec<u8>> = (0..64u16)
        .map(|i| {
            let mut f = frame64(B, A);
            f[16..18].copy_from_slice(&(46 + (i % 3)).to_be_bytes());
            f[18..20].copy_from_slice(&(0x1000 + i).to_be_bytes());
            f
        })
        .collect();
    let (source, _) = MemoryPort::replay("gen", frames);
    let (sink, _) = MemoryPort::sink("sink");
    sw.add_port(Box::new(source), PortConfig::access(d, 1))
        .unwrap();
    let out = sw
        .add_port(Box::new(sink), PortConfig::access(d, 1))
        .unwrap();
    sw.add_static(d, 1, B, out).unwrap();
    sw
}

/// Port 0 replays broadcasts; three other ports each get a copy.
pub fn flood_4ports(burst: usize) -> Switch {
    let mut sw = Switch::with_burst(pool(), burst);
    let d = domain(&mut sw);
    let (source, _) = MemoryPort::replay("gen", vec![frame64(MacAddr::BROADCAST, A)]);
    sw.add_port(Box::new(source), PortConfig::access(d, 1))
        .unwrap();
    for i in 0..3 {
        let (sink, _) = MemoryPort::sink(&format!("sink{i}"));
        sw.add_port(Box::new(sink), PortConfig::access(d, 1))
            .unwrap();
    }
    sw
}

/// Untagged frames in on an access port of VLAN 10, out a trunk (tag push).
pub fn access_to_trunk(burst: usize) -> Switch {
    let mut sw = Switch::with_burst(pool(), burst);
    let d = domain(&mut sw);
    let (source, _) = MemoryPort::replay("gen", vec![frame64(B, A)]);
    let (sink, _) = MemoryPort::sink("trunk");
    sw.add_port(Box::new(source), PortConfig::access(d, 10))
        .unwrap();
    let trunk = VlanMode::Trunk {
        allowed: "10,20".parse().unwrap(),
        native: None,
    };
    let out = sw
        .add_port(Box::new(sink), PortConfig::access(d, 1).with_vlan(trunk))
        .unwrap();
    sw.add_static(d, 10, B, out).unwrap();
    sw
}

/// Tagged VLAN 10 frames in on a trunk, out an access port (tag pop).
pub fn trunk_to_access(burst: usize) -> Switch {
    let mut sw = Switch::with_burst(pool(), burst);
    let d = domain(&mut sw);
    let (source, _) = MemoryPort::replay("gen", vec![tagged64(B, A, 10)]);
    let (sink, _) = MemoryPort::sink("access");
    let trunk = VlanMode::Trunk {
        allowed: "10,20".parse().unwrap(),
        native: None,
    };
    sw.add_port(Box::new(source), PortConfig::access(d, 1).with_vlan(trunk))
        .unwrap();
    let out = sw
        .add_port(Box::new(sink), PortConfig::access(d, 10))
        .unwrap();
    sw.add_static(d, 10, B, out).unwrap();
    sw
}

/// A generator whose every frame comes from a source MAC not seen before
/// (the counter wraps after `span` frames). Destination B is known.
pub struct NewSourcePort {
    template: Vec<u8>,
    next: u64,
    span: u64,
}

impl NewSourcePort {
    pub fn new(span: u64) -> Self {
        NewSourcePort {
            template: frame64(B, A),
            next: 0,
            span,
        }
    }
}

impl Port for NewSourcePort {
    fn name(&self) -> &str {
        "newsrc"
    }
    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError> {
        let mut n = 0;
        while !batch.is_full() {
            let Some(b) = pool.alloc_from(&self.template) else {
                break;
            };
            let src = MacAddr::local(0x1000_0000 + self.next);
            pool.data_mut(&b)[6..12].copy_from_slice(&src.0);
            self.next += 1;
            if self.next == self.span {
                self.next = 0;
            }
            batch.push(b).expect("room checked");
            n += 1;
        }
        Ok(n)
    }
    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        let mut d = TxDone::default();
        for b in batch.drain() {
            d.packets += 1;
            d.bytes += b.len();
            pool.free(b);
        }
        d
    }
}

/// Frames from ever-new sources to a known B: every frame is a new FDB entry.
/// Returns the switch and its domain (callers flush the FDB between rounds).
pub fn learn_new_macs(burst: usize, span: u64) -> (Switch, DomainId) {
    let mut sw = Switch::with_burst(pool(), burst);
    let d = domain(&mut sw);
    sw.add_port(Box::new(NewSourcePort::new(span)), PortConfig::access(d, 1))
        .unwrap();
    let (sink, _) = MemoryPort::sink("sink");
    let out = sw
        .add_port(Box::new(sink), PortConfig::access(d, 1))
        .unwrap();
    sw.add_static(d, 1, B, out).unwrap();
    (sw, d)
}

/// A generator sending one source's frames to each of a list of
/// destinations in turn (the whole-pipeline run over a big table).
pub struct ManyDestPort {
    template: Vec<u8>,
    dsts: Vec<[u8; 6]>,
    next: usize,
}

impl Port for ManyDestPort {
    fn name(&self) -> &str {
        "manydst"
    }
    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError> {
        let mut n = 0;
        while !batch.is_full() {
            let Some(b) = pool.alloc_from(&self.template) else {
                break;
            };
            pool.data_mut(&b)[..6].copy_from_slice(&self.dsts[self.next]);
            self.next += 1;
            if self.next == self.dsts.len() {
                self.next = 0;
            }
            batch.push(b).expect("room checked");
            n += 1;
        }
        Ok(n)
    }
    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        batch.free_all(pool);
        TxDone::default()
    }
}

/// The whole pipeline over a big table: `stations` known stations spread
/// over 4 sink ports, and a generator on port 0 sending from A to each of
/// them in a shuffled order (every frame a different destination: no run,
/// every lookup a cache miss on a table this size).
pub fn known_unicast_stations(burst: usize, stations: usize) -> Switch {
    let mut sw = Switch::with_burst(pool(), burst);
    let d = domain(&mut sw);
    let keys = station_keys(stations);
    let dsts = keys
        .iter()
        .map(|k| MacAddr::from_u64(k & 0xffff_ffff_ffff).0)
        .collect();
    let source = ManyDestPort {
        template: frame64(B, A),
        dsts,
        next: 0,
    };
    sw.add_port(Box::new(source), PortConfig::access(d, 1))
        .unwrap();
    for i in 0..4 {
        let (sink, _) = MemoryPort::sink(&format!("sink{i}"));
        sw.add_port(Box::new(sink), PortConfig::access(d, 1))
            .unwrap();
    }
    let fdb = sw.fdb_mut(d).unwrap();
    for (i, k) in keys.iter().enumerate() {
        fdb.add_static(
            1,
            MacAddr::from_u64(k & 0xffff_ffff_ffff),
            PortId(1 + (i % 4) as u16),
        );
    }
    sw
}

/// The keys of [`big_fdb`] without the table: `n` stations in VLAN 1,
/// shuffled.
fn station_keys(n: usize) -> Vec<u64> {
    let mut keys: Vec<u64> = (0..n as u64)
        .map(|i| rvs_switch::fdb::fdb_key(1, MacAddr::local(0x2000_0000 + i).to_u64()))
        .collect();
    shuffle(&mut keys);
    keys
}

/// Fisher-Yates with a fixed xorshift so every run uses the same order.
fn shuffle(keys: &mut [u64]) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..keys.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keys.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

/// A table of `n` learned stations spread over 16 ports, and a shuffled list
/// of keys to look up (every one present).
pub fn big_fdb(n: usize) -> (rvs_switch::Fdb, Vec<u64>) {
    let unlimited = rvs_switch::FdbConfig {
        max_entries: 0,
        ..Default::default()
    };
    let mut f = rvs_switch::Fdb::new(unlimited);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let k = rvs_switch::fdb::fdb_key(1, MacAddr::local(0x2000_0000 + i).to_u64());
        f.learn(k, PortId((i % 16) as u16), 0);
        keys.push(k);
    }
    shuffle(&mut keys);
    (f, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each scenario forwards what the bench claims it forwards.
    #[test]
    fn scenarios_do_what_they_say() {
        for (name, mut sw, copies) in [
            ("known_unicast", known_unicast(32), 1),
            ("flood_4ports", flood_4ports(32), 3),
            ("access_to_trunk", access_to_trunk(32), 1),
            ("trunk_to_access", trunk_to_access(32), 1),
        ] {
            assert_eq!(sw.poll(), 32, "{name}");
            let tx: u64 = sw.ports().iter().map(|p| p.counters.tx_packets).sum();
            let drops: u64 = sw.ports().iter().map(|p| p.counters.total_drops()).sum();
            assert_eq!((tx, drops), (32 * copies, 0), "{name}");
            assert_eq!(sw.pool().available(), 4096, "{name} leaks");
        }
        let (mut sw, d) = learn_new_macs(64, 1 << 20);
        sw.poll();
        assert_eq!(sw.fdb_entries(d).unwrap().len(), 65, "64 new + static B");
        let (f, keys) = big_fdb(1000);
        assert!(keys.iter().all(|k| f.lookup(*k, 0).is_some()));
        // Every frame to a known station, none flooded, none dropped.
        let mut sw = known_unicast_stations(32, 1000);
        for _ in 0..40 {
            assert_eq!(sw.poll(), 32);
        }
        let ports = sw.ports();
        let tx: Vec<u64> = ports.iter().map(|p| p.counters.tx_packets).collect();
        assert_eq!(tx.iter().sum::<u64>(), 1280, "{tx:?}");
        assert!(
            tx[1..].iter().all(|&t| t > 200),
            "spread over the sinks: {tx:?}"
        );
        assert_eq!(
            ports.iter().map(|p| p.counters.total_drops()).sum::<u64>(),
            0
        );
        assert_eq!(sw.pool().available(), 4096, "known_unicast_stations leaks");
        // The VXLAN runs keep their whole batch going round.
        let mut e = vxlan::EncapRun::new(32, true);
        let mut dc = vxlan::DecapRun::new(32);
        for _ in 0..10 {
            assert_eq!((e.step(), dc.step()), (32, 32));
        }
    }

    /// The router scenarios forward every frame, or answer every frame with
    /// an ICMP error, and keep their frames cycling.
    #[test]
    fn l3_scenarios_do_what_they_say() {
        use rvs_switch::counters::{DropReason, StageCounter};
        for (v6, ttl) in [(false, 64), (true, 64), (false, 1), (true, 1)] {
            let mut run = l3::L3Run::new(v6, 100, 32, ttl);
            for _ in 0..100 {
                assert_eq!(run.step(), 32, "v6 {v6} ttl {ttl}");
            }
            let c = run.router().counters();
            let (fwd, errs) = if ttl > 1 { (3200, 0) } else { (0, 3200) };
            assert_eq!(c.stages.get(StageCounter::L3Forwarded), fwd);
            assert_eq!(c.stages.get(StageCounter::L3IcmpErrors), errs);
            assert_eq!(c.drops_by(DropReason::L3TtlExceeded), errs);
        }
    }
}
