//! RSTP inside the switch: three switches in a ring (memory ports joined by
//! a test "wire"), each with a host port. With RSTP the ring converges with
//! one port blocked, a broadcast reaches every host once and dies out, and
//! cutting a ring link brings the blocked port up. Without RSTP the same
//! ring storms.

use rvs_switch::stp::{PortRole, PortState, StpConfig, StpPortConfig};
use rvs_switch::{
    DomainConfig, DomainId, DropReason, MemoryPort, MemoryPortHandle, PacketPool, PortConfig,
    PortId, Switch,
};

struct Bridge {
    sw: Switch,
    dom: DomainId,
    /// Ports: 0 host, 1 to the next switch, 2 to the previous one.
    h: Vec<MemoryPortHandle>,
    ids: Vec<PortId>,
}

fn bridge(name: &str, stp: bool) -> Bridge {
    let mut sw = Switch::new(PacketPool::with_frames(4096));
    let mut dc = DomainConfig::new(name);
    dc.stp = stp.then(StpConfig::default);
    let dom = sw.add_domain(dc).unwrap();
    let mut h = Vec::new();
    let mut ids = Vec::new();
    for (i, edge) in [(0, true), (1, false), (2, false)] {
        let (p, handle) = MemoryPort::new(&format!("{name}p{i}"));
        let mut cfg = PortConfig::access(dom, 1);
        cfg.stp = StpPortConfig {
            admin_edge: edge,
            ..StpPortConfig::default()
        };
        ids.push(sw.add_port(Box::new(p), cfg).unwrap());
        h.push(handle);
    }
    Bridge { sw, dom, h, ids }
}

struct Ring {
    b: Vec<Bridge>,
    now: u64,
    /// Ring links that carry frames: link i joins b[i].p1 and b[i+1].p2.
    up: [bool; 3],
}

impl Ring {
    fn new(stp: bool) -> Ring {
        Ring {
            b: (0..3).map(|i| bridge(&format!("s{i}"), stp)).collect(),
            now: 1,
            up: [true; 3],
        }
    }

    /// One round: every switch polls, then the wires carry what was sent.
    /// Returns the frames carried between switches and what each host got.
    fn step(&mut self, ms: u64) -> (usize, Vec<Vec<Vec<u8>>>) {
        self.now += ms;
        for b in &mut self.b {
            b.sw.set_now_ms(self.now);
            b.sw.poll();
        }
        let mut carried = 0;
        for i in 0..3 {
            let j = (i + 1) % 3;
            let ab = self.b[i].h[1].take_tx();
            let ba = self.b[j].h[2].take_tx();
            if !self.up[i] {
                continue;
            }
            carried += ab.len() + ba.len();
            ab.into_iter().for_each(|f| self.b[j].h[2].inject(f));
            ba.into_iter().for_each(|f| self.b[i].h[1].inject(f));
        }
        let hosts = self.b.iter().map(|b| b.h[0].take_tx()).collect();
        (carried, hosts)
    }

    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.step(10);
        }
    }

    fn roles(&self) -> Vec<(PortRole, PortState)> {
        self.b
            .iter()
            .flat_map(|b| {
                let info = b.sw.stp_info(b.dom).unwrap().unwrap();
                b.ids[1..]
                    .iter()
                    .map(move |id| {
                        let p = info.ports.iter().find(|p| p.port == *id).unwrap();
                        (p.role, p.state)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn broadcast(src: u8) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, src]);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend(std::iter::repeat_n(0u8, 46));
    f
}

#[test]
fn a_looped_ring_converges_with_one_port_blocked_and_does_not_storm() {
    let mut r = Ring::new(true);
    r.settle(50);
    let roles = r.roles();
    let blocked: Vec<_> = roles
        .iter()
        .filter(|(_, s)| *s != PortState::Forwarding)
        .collect();
    assert_eq!(blocked.len(), 1, "exactly one ring port blocks: {roles:?}");
    assert_eq!(blocked[0].0, PortRole::Alternate);
    // A broadcast from host 0 reaches hosts 1 and 2 once each, then the
    // ring goes quiet.
    r.b[0].h[0].inject(broadcast(0xa0));
    let mut got = [0usize; 3];
    let mut last = usize::MAX;
    for _ in 0..20 {
        let (carried, hosts) = r.step(1);
        for (i, h) in hosts.iter().enumerate() {
            got[i] += h
                .iter()
                .filter(|f| f[6..12] == [2, 0, 0, 0, 0, 0xa0])
                .count();
        }
        last = carried;
    }
    assert_eq!(got, [0, 1, 1], "each other host once");
    assert_eq!(last, 0, "nothing keeps circulating");
    let discarded: u64 =
        r.b.iter()
            .flat_map(|b| b.ids.iter().map(move |id| (b, *id)))
            .map(|(b, id)| {
                b.sw.port_info(id)
                    .unwrap()
                    .counters
                    .drops_by(DropReason::StpDiscarding)
            })
            .sum();
    assert!(
        discarded >= 1,
        "the blocked port discarded the copy that came round"
    );
}

#[test]
fn cutting_a_ring_link_unblocks_the_alternate_port_quickly() {
    let mut r = Ring::new(true);
    r.settle(50);
    // Cut every link in turn until the cut one is not the blocked one;
    // find the blocked link first.
    let roles = r.roles();
    let k = roles
        .iter()
        .position(|(_, s)| *s != PortState::Forwarding)
        .unwrap();
    // roles index: bridge k/2, port 1 + k%2; cut a link that is forwarding.
    let (bi, pi) = (k / 2, 1 + k % 2);
    let blocked_link = if pi == 1 { bi } else { (bi + 2) % 3 };
    let cut = (blocked_link + 1) % 3;
    r.up[cut] = false;
    // The switches see the link down (as a gone back end would report it).
    let (a, b) = (cut, (cut + 1) % 3);
    for (bi, pi) in [(a, 1), (b, 2)] {
        let br = &mut r.b[bi];
        let mut cfg = br.sw.port_info(br.ids[pi]).unwrap().cfg;
        cfg.enabled = false;
        br.sw.set_port_config(br.ids[pi], cfg).unwrap();
    }
    r.settle(20); // 200 ms
    let forwarding = r
        .roles()
        .iter()
        .filter(|(_, s)| *s == PortState::Forwarding)
        .count();
    assert_eq!(
        forwarding,
        4,
        "every live ring port forwards: {:?}",
        r.roles()
    );
    // Hosts still reach each other over the remaining path.
    r.b[a].h[0].inject(broadcast(0xb0));
    let mut got = [0usize; 3];
    for _ in 0..10 {
        let (_, hosts) = r.step(1);
        for (i, h) in hosts.iter().enumerate() {
            got[i] += h
                .iter()
                .filter(|f| f[6..12] == [2, 0, 0, 0, 0, 0xb0])
                .count();
        }
    }
    got[a] += 1;
    assert_eq!(got, [1, 1, 1]);
}

#[test]
fn without_spanning_tree_the_same_ring_storms() {
    let mut r = Ring::new(false);
    r.b[0].h[0].inject(broadcast(0xc0));
    let mut carried = 0;
    for _ in 0..50 {
        carried = r.step(1).0;
    }
    assert!(
        carried > 0,
        "the broadcast still circulates after 50 rounds"
    );
}
