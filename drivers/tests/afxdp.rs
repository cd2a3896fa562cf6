//! AF_XDP ports against real veths (root): namespaces behind veths whose
//! host ends are AF_XDP ports sharing one UMEM.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_drivers::afxdp::{
    self, AfXdpConfig, AfXdpPort, AfXdpStats, Umem, XdpMode, XdpModePreference,
};
use rvs_drivers::testutil::{Link, Netns, RunningSwitch, root_or_skip};
use rvs_switch::{Batch, DomainConfig, PacketPool, Port, PortConfig, Switch};

const FRAME_BCAST: [u8; 14] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5,
];

/// A namespace behind a veth: `link` is the host end, `peer` is inside `ns`
/// with address 10.77.`subnet`.`host`/24.
struct Station {
    // Field order: the link goes before the namespace that holds its peer.
    link: Link,
    ns: Netns,
    peer: String,
    addr: String,
}

impl Station {
    fn new(subnet: u8, host: u8) -> Station {
        let ns = Netns::new("rvxn");
        let (link, peer) = Link::veth("rvx", Some(&ns));
        let addr = format!("10.77.{subnet}.{host}");
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", &peer]);
        ns.ip(&["link", "set", &peer, "up"]);
        Station {
            link,
            ns,
            peer,
            addr,
        }
    }

    fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.ns.name)
    }

    /// Set the namespace end's tx checksum offload.
    fn peer_tx_checksum(&self, on: bool) {
        afxdp::set_tx_checksum_in_netns(&self.netns_path(), &self.peer, on).unwrap();
        assert_eq!(
            afxdp::tx_checksum_in_netns(&self.netns_path(), &self.peer).unwrap(),
            on
        );
    }
}

fn open(umem: &Umem, pool: &mut PacketPool, st: &Station, cfg: &AfXdpConfig) -> AfXdpPort {
    AfXdpPort::open(umem, pool, &st.link.name, cfg)
        .unwrap_or_else(|e| panic!("open AF_XDP on {}: {e}", st.link.name))
}

/// A switch with one bridge domain and the stations' host ends as AF_XDP
/// access ports. Returns the running switch and each port's counters.
fn switch_over(
    stations: &[&Station],
    cfg: &AfXdpConfig,
) -> (RunningSwitch, Vec<std::sync::Arc<AfXdpStats>>, Vec<XdpMode>) {
    let mut pool = PacketPool::with_frames(8192);
    let umem = Umem::new(&mut pool, 2048).unwrap();
    let ports: Vec<AfXdpPort> = stations
        .iter()
        .map(|s| open(&umem, &mut pool, s, cfg))
        .collect();
    assert!(
        ports[0].info().umem_anchor,
        "the first port registers the UMEM"
    );
    assert!(
        ports[1..].iter().all(|p| !p.info().umem_anchor),
        "later ports share it"
    );
    let stats = ports.iter().map(|p| p.stats()).collect();
    let modes = ports.iter().map(|p| p.info().xdp_mode).collect();
    let mut sw = Switch::new(pool);
    let d = sw.add_domain(DomainConfig::new("bd0")).unwrap();
    for p in ports {
        sw.add_port(Box::new(p), PortConfig::access(d, 1)).unwrap();
    }
    (RunningSwitch::start(sw), stats, modes)
}

const RECEIVER: &str = r#"
import socket, hashlib, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201))
s.listen(1)
s.settimeout(float(sys.argv[2]))
c, _ = s.accept()
c.settimeout(float(sys.argv[2]))
h = hashlib.sha256(); n = 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d); n += len(d)
print(n, h.hexdigest())
"#;

const SENDER: &str = r#"
import socket, hashlib, random, sys, time
data = random.Random(7).randbytes(int(sys.argv[2]))
deadline = time.time() + float(sys.argv[3])
while True:
    try:
        c = socket.create_connection((sys.argv[1], 5201), timeout=float(sys.argv[3]))
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
c.settimeout(float(sys.argv[3]))
c.sendall(data)
c.close()
print(len(data), hashlib.sha256(data).hexdigest())
"#;

fn spawn_in(ns: &Netns, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn in namespace")
}

/// Send `bytes` of seeded random data over TCP from `from` to `to`; returns
/// whether the receiver got exactly that (length and SHA-256) in time.
fn tcp_transfer(from: &Station, to: &Station, bytes: usize, timeout_s: u32) -> bool {
    let t = timeout_s.to_string();
    let rx = spawn_in(&to.ns, &["python3", "-c", RECEIVER, &to.addr, &t]);
    std::thread::sleep(Duration::from_millis(300));
    let n = bytes.to_string();
    let tx = spawn_in(&from.ns, &["python3", "-c", SENDER, &to.addr, &n, &t]);
    let tx = tx.wait_with_output().unwrap();
    let rx = rx.wait_with_output().unwrap();
    let sent = String::from_utf8_lossy(&tx.stdout).trim().to_string();
    let got = String::from_utf8_lossy(&rx.stdout).trim().to_string();
    if !tx.status.success() || !rx.status.success() {
        eprintln!(
            "transfer failed: sender {:?} {}, receiver {:?} {}",
            tx.status,
            String::from_utf8_lossy(&tx.stderr).trim(),
            rx.status,
            String::from_utf8_lossy(&rx.stderr).trim()
        );
        return false;
    }
    assert_eq!(sent.split(' ').next(), Some(n.as_str()));
    sent == got
}

#[test]
fn switch_forwards_ping_and_tcp_between_afxdp_ports() {
    if !root_or_skip("switch_forwards_ping_and_tcp_between_afxdp_ports") {
        return;
    }
    let a = Station::new(1, 1);
    let b = Station::new(1, 2);
    a.peer_tx_checksum(false);
    b.peer_tx_checksum(false);
    let (sw, stats, modes) = switch_over(&[&a, &b], &AfXdpConfig::default());
    eprintln!("XDP modes: {modes:?}");

    assert!(
        a.ns.ping_eventually(&b.addr, Duration::from_secs(5)),
        "a -> b"
    );
    assert!(
        b.ns.ping_eventually(&a.addr, Duration::from_secs(5)),
        "b -> a"
    );
    assert!(a.ns.ping(&b.addr, 5), "5 pings a -> b");

    let bytes = 24 << 20;
    let t = Instant::now();
    assert!(tcp_transfer(&a, &b, bytes, 60), "24 MiB a -> b intact");
    eprintln!("24 MiB a -> b in {:?}", t.elapsed());
    assert!(tcp_transfer(&b, &a, 4 << 20, 30), "4 MiB b -> a intact");

    let infos = sw.with(|s| s.ports());
    for p in &infos {
        eprintln!("{}: {:?}", p.name, p.counters);
        assert!(p.counters.rx_packets > 1000, "{} received", p.name);
        assert!(p.counters.tx_packets > 1000, "{} transmitted", p.name);
    }
    let into_b = &infos[1].counters;
    assert!(
        into_b.tx_bytes > bytes as u64,
        "the transfer left through b's port"
    );
    for s in &stats {
        let c = s.snapshot();
        eprintln!("{c:?}");
        assert_eq!(c.tx_copied, 0, "UMEM frames are never copied");
        assert_eq!(c.tx_moved, c.tx_packets);
        assert_eq!(c.rx_bad_desc, 0);
    }
}

#[test]
fn generic_mode_carries_ping_and_tcp() {
    if !root_or_skip("generic_mode_carries_ping_and_tcp") {
        return;
    }
    let a = Station::new(2, 1);
    let b = Station::new(2, 2);
    a.peer_tx_checksum(false);
    b.peer_tx_checksum(false);
    let cfg = AfXdpConfig {
        xdp_mode: XdpModePreference::Generic,
        ..AfXdpConfig::default()
    };
    let (_sw, _stats, modes) = switch_over(&[&a, &b], &cfg);
    assert_eq!(modes, vec![XdpMode::Generic, XdpMode::Generic]);
    assert!(a.ns.ping_eventually(&b.addr, Duration::from_secs(5)));
    assert!(tcp_transfer(&a, &b, 4 << 20, 30), "4 MiB intact");
}

/// Forward between two ports by hand (a two-port wire): every frame that
/// leaves is the frame that arrived, as a descriptor.
#[test]
fn forwarding_between_afxdp_ports_moves_descriptors() {
    if !root_or_skip("forwarding_between_afxdp_ports_moves_descriptors") {
        return;
    }
    let a = Station::new(3, 1);
    let b = Station::new(3, 2);
    a.peer_tx_checksum(false);
    b.peer_tx_checksum(false);
    let mut pool = PacketPool::with_large(4096, 2048, 256, 2).unwrap();
    let umem = Umem::new(&mut pool, 1024).unwrap();
    let cfg = AfXdpConfig {
        ring_size: 1024,
        fill_frames: 256,
        ..AfXdpConfig::default()
    };
    let mut ports = [
        open(&umem, &mut pool, &a, &cfg),
        open(&umem, &mut pool, &b, &cfg),
    ];
    let stats: Vec<_> = ports.iter().map(|p| p.stats()).collect();

    let ping = Command::new("ip")
        .args([
            "netns", "exec", &a.ns.name, "ping", "-c", "5", "-i", "0.2", "-W", "2",
        ])
        .arg(&b.addr)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut ping = ping;
    let mut batch = Batch::new(32);
    let mut forwarded = 0u64;
    let t = Instant::now();
    let status = loop {
        if let Some(st) = ping.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "ping hangs");
        for from in 0..2 {
            let to = 1 - from;
            let n = ports[from].rx_burst(&mut pool, &mut batch).unwrap();
            if n == 0 {
                continue;
            }
            let before = stats[to].snapshot();
            let free_before = pool.available();
            let done = ports[to].tx_burst(&mut pool, &mut batch);
            let after = stats[to].snapshot();
            assert_eq!(done.packets, n, "all {n} frames posted");
            assert_eq!(after.tx_moved - before.tx_moved, n as u64);
            assert_eq!(after.tx_copied, before.tx_copied, "no copy");
            assert!(
                pool.available() >= free_before,
                "transmitting UMEM frames takes no frame from the pool"
            );
            forwarded += n as u64;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    assert!(status.success(), "ping through the hand-driven wire");
    assert!(
        forwarded >= 10,
        "echo requests and replies crossed: {forwarded}"
    );

    // Control: a large-class frame is not in the UMEM, so it is copied once.
    let mut big = pool.alloc_large().unwrap();
    pool.set_len(&mut big, 114);
    pool.data_mut(&big)[..14].copy_from_slice(&FRAME_BCAST);
    batch.push(big).unwrap();
    let free_before = pool.available();
    let done = ports[1].tx_burst(&mut pool, &mut batch);
    assert_eq!((done.packets, done.dropped), (1, 0));
    assert_eq!(stats[1].snapshot().tx_copied, 1, "the copy is counted");
    assert!(pool.available() < free_before, "the copy took a UMEM frame");
    // One that no UMEM frame holds is dropped and counted.
    let mut huge = pool.alloc_large().unwrap();
    pool.set_len(&mut huge, 3000);
    batch.push(huge).unwrap();
    let done = ports[1].tx_burst(&mut pool, &mut batch);
    assert_eq!((done.packets, done.dropped), (0, 1));
    assert_eq!(stats[1].snapshot().tx_drop_too_big, 1);
    assert_eq!(pool.large_available(), 2, "large frames went back");

    // Every small frame is in the pool or on a kernel ring: none leaked.
    let t = Instant::now();
    loop {
        for p in &mut ports {
            p.reap_completions(&mut pool);
        }
        let held: u64 = ports.iter().map(|p| p.kernel_frames()).sum();
        let tx_out: u64 = stats
            .iter()
            .map(|s| {
                let c = s.snapshot();
                c.tx_packets - c.completed
            })
            .sum();
        if tx_out == 0 || t.elapsed() > Duration::from_secs(2) {
            assert_eq!(tx_out, 0, "every transmitted frame completed");
            assert_eq!(pool.available() as u64 + held, pool.capacity() as u64);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Which end's transmit checksum offload breaks TCP through the switch
/// (docs/afxdp.md): returns whether a 1 MiB transfer got through.
fn tcp_works_with(host_csum_off: bool, peer_csum_off: bool, mode: XdpModePreference) -> bool {
    let a = Station::new(4, 1);
    let b = Station::new(4, 2);
    a.peer_tx_checksum(!peer_csum_off);
    b.peer_tx_checksum(!peer_csum_off);
    for s in [&a, &b] {
        afxdp::set_tx_checksum(&s.link.name, !host_csum_off).unwrap();
    }
    let cfg = AfXdpConfig {
        disable_tx_checksum: host_csum_off,
        xdp_mode: mode,
        ..AfXdpConfig::default()
    };
    let (_sw, _stats, _modes) = switch_over(&[&a, &b], &cfg);
    for s in [&a, &b] {
        assert_eq!(afxdp::tx_checksum(&s.link.name).unwrap(), !host_csum_off);
    }
    assert!(
        a.ns.ping_eventually(&b.addr, Duration::from_secs(5)),
        "ping works either way"
    );
    tcp_transfer(&a, &b, 1 << 20, 3)
}

/// Measured (docs/afxdp.md): only the namespace end matters, in both XDP
/// modes. Turning the host end's offload off does not rescue TCP; turning
/// the namespace end's off is enough even with the host end's on.
#[test]
fn the_namespace_end_needs_tx_checksum_offload_off() {
    if !root_or_skip("the_namespace_end_needs_tx_checksum_offload_off") {
        return;
    }
    for mode in [XdpModePreference::Native, XdpModePreference::Generic] {
        assert!(
            !tcp_works_with(true, false, mode),
            "{mode:?}: host end off, namespace end on: TCP checksums arrive unfilled"
        );
        assert!(
            tcp_works_with(false, true, mode),
            "{mode:?}: namespace end off is enough"
        );
    }
}

/// The UMEM's anchor port can go: ports already sharing its registration
/// keep working, and the next port registers the region afresh (same bytes,
/// same offsets), so descriptors still cross between them.
#[test]
fn anchor_port_can_go_and_come_back() {
    if !root_or_skip("anchor_port_can_go_and_come_back") {
        return;
    }
    let a = Station::new(5, 1);
    let b = Station::new(5, 2);
    a.peer_tx_checksum(false);
    b.peer_tx_checksum(false);
    let mut pool = PacketPool::with_frames(4096);
    let umem = Umem::new(&mut pool, 1024).unwrap();
    let cfg = AfXdpConfig {
        ring_size: 1024,
        fill_frames: 256,
        ..AfXdpConfig::default()
    };
    let first = open(&umem, &mut pool, &a, &cfg);
    assert!(first.info().umem_anchor);
    assert!(umem.is_registered());
    let pb = open(&umem, &mut pool, &b, &cfg);
    assert!(!pb.info().umem_anchor, "b shares a's registration");
    let err = AfXdpPort::open(&umem, &mut pool, &a.link.name, &cfg).unwrap_err();
    eprintln!("second socket on a busy queue: {err}");
    assert!(err.to_string().contains(&a.link.name), "{err}");
    let held = first.kernel_frames();
    assert_eq!(held, 256, "a full fill ring");
    drop(first);
    assert!(!umem.is_registered(), "only the anchor port held it");
    let free = pool.available();
    assert_eq!(umem.return_orphans(&mut pool), held as usize);
    assert_eq!(
        pool.available(),
        free + held as usize,
        "its frames came back"
    );
    assert_eq!(
        pool.available() as u64 + pb.kernel_frames(),
        pool.capacity() as u64,
        "nothing lost"
    );
    let pa = open(&umem, &mut pool, &a, &cfg);
    assert!(pa.info().umem_anchor, "a registers afresh");

    let mut sw = Switch::new(pool);
    let d = sw.add_domain(DomainConfig::new("bd0")).unwrap();
    sw.add_port(Box::new(pa), PortConfig::access(d, 1)).unwrap();
    sw.add_port(Box::new(pb), PortConfig::access(d, 1)).unwrap();
    let _sw = RunningSwitch::start(sw);
    assert!(
        a.ns.ping_eventually(&b.addr, Duration::from_secs(5)),
        "a -> b"
    );
    assert!(b.ns.ping(&a.addr, 3), "b -> a");
    assert!(tcp_transfer(&b, &a, 2 << 20, 20), "2 MiB b -> a intact");
}

/// TCP throughput through the switch with iperf3, in both XDP modes
/// (printed; the floor only catches a collapse).
#[test]
fn iperf3_through_the_switch() {
    if !root_or_skip("iperf3_through_the_switch") {
        return;
    }
    if Command::new("iperf3").arg("-v").output().is_err() {
        eprintln!("SKIP iperf3_through_the_switch: needs iperf3 (apt-get install -y iperf3)");
        return;
    }
    for mode in [XdpModePreference::Native, XdpModePreference::Generic] {
        let a = Station::new(6, 1);
        let b = Station::new(6, 2);
        a.peer_tx_checksum(false);
        b.peer_tx_checksum(false);
        let cfg = AfXdpConfig {
            xdp_mode: mode,
            ..AfXdpConfig::default()
        };
        let (_sw, stats, _modes) = switch_over(&[&a, &b], &cfg);
        assert!(a.ns.ping_eventually(&b.addr, Duration::from_secs(5)));
        let server = spawn_in(&b.ns, &["iperf3", "-s", "-1", "-B", &b.addr]);
        std::thread::sleep(Duration::from_millis(500));
        let out = a.ns.exec("iperf3", &["-c", &b.addr, "-t", "3", "-J"]);
        let _ = server.wait_with_output();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let bps = json["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap();
        let into_b = stats[1].snapshot();
        eprintln!(
            "iperf3 a -> b, {mode:?} XDP: {:.2} Gbit/s; b's port: {into_b:?}",
            bps / 1e9
        );
        assert!(bps > 20e6, "{mode:?}: throughput collapsed: {bps} bit/s");
        assert_eq!(into_b.tx_copied, 0);
    }
}

/// Frames the kernel drops before the switch sees them (the rx ring full,
/// the fill ring empty) are reported by the port, so `ctl stats` can show
/// them: a port that is never read overflows under a burst.
#[test]
fn frames_lost_in_the_kernel_are_reported_by_reason() {
    if !root_or_skip("frames_lost_in_the_kernel_are_reported_by_reason") {
        return;
    }
    let st = Station::new(9, 2);
    let mut pool = PacketPool::with_frames(1024);
    let umem = Umem::new(&mut pool, 256).unwrap();
    let cfg = AfXdpConfig {
        ring_size: 64,
        fill_frames: 64,
        ..AfXdpConfig::default()
    };
    let mut port = open(&umem, &mut pool, &st, &cfg);
    // Frames of the peer's own (IPv6 neighbour discovery) may have come
    // before the fill ring was filled: count from here.
    let full_or_empty = |p: &AfXdpPort| -> u64 {
        p.backend_drops()
            .iter()
            .filter(|(k, _)| *k == "xdp_rx_ring_full" || *k == "xdp_fill_ring_empty")
            .map(|(_, n)| n)
            .sum()
    };
    let before = full_or_empty(&port);
    let mut frame = FRAME_BCAST.to_vec();
    frame.resize(60, 0);
    for _ in 0..600 {
        rvs_drivers::testutil::inject_frame(&st.ns, &st.peer, &frame).unwrap();
    }
    let full = full_or_empty(&port) - before;
    assert!(
        full >= 600 - 2 * 64,
        "at most a ring of frames is kept, the rest counted: {:?}",
        port.backend_drops()
    );
    let mut batch = Batch::new(64);
    let got = port.rx_burst(&mut pool, &mut batch).unwrap();
    assert!((1..=64).contains(&got), "{got}");
    batch.free_all(&mut pool);
}
