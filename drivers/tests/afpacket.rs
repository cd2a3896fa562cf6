//! AF_PACKET ports on the host ends of veths, end to end (root only): two
//! namespaces behind veths whose host ends are access ports of one switch.
//!
//! Offload finding (kernel 6.18): with the port's default `vnet_hdr` the
//! namespace side keeps its default offloads (tx checksum and TSO on) and
//! TCP works, because the port completes checksums and segments
//! super-frames itself. Without `vnet_hdr`, the namespace-side veth needs
//! `ethtool -K <peer> tx off` (the CNM layer does this when it creates the
//! veth); `tcp_without_vnet_hdr_needs_peer_tx_off` runs that setup.
//!
//! Tests take one lock: the fd-leak test counts this process's fds, and two
//! bulk transfers at once on a shared machine prove nothing extra.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rvs_drivers::afpacket::{AfPacketConfig, AfPacketPort, AfPacketStatsHandle};
use rvs_drivers::testutil::{Link, Netns, RunningSwitch, root_or_skip};
use rvs_switch::buf::Offload;
use rvs_switch::{Batch, DomainConfig, PacketPool, Port, PortConfig, PortError, PortId, Switch};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One namespace with an address, behind a veth whose host end is `link`.
struct Host {
    link: Link,
    peer: String,
    addr: String,
    addr6: String,
    // Declared last: dropped after the link (deleting the namespace would
    // take the peer, and with it the link, first otherwise; both orders work).
    ns: Netns,
}

fn host(n: u8, peer_tx_off: bool) -> Host {
    let ns = Netns::new("rvap");
    let (link, peer) = Link::veth("rvap", Some(&ns));
    let addr = format!("10.88.0.{n}");
    ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", &peer]);
    let addr6 = format!("fd00:88::{n}");
    ns.ip(&["addr", "add", &format!("{addr6}/64"), "dev", &peer, "nodad"]);
    ns.ip(&["link", "set", &peer, "up"]);
    if peer_tx_off {
        let out = ns.exec("ethtool", &["-K", &peer, "tx", "off"]);
        assert!(
            out.status.success(),
            "ethtool -K {peer} tx off: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Host {
        link,
        peer,
        addr,
        addr6,
        ns,
    }
}

/// A running switch with one bridge domain and the host ends of `hosts` as
/// access ports in VLAN 1.
fn switch_over(
    hosts: &[&Host],
    cfg: &AfPacketConfig,
) -> (RunningSwitch, Vec<PortId>, Vec<AfPacketStatsHandle>) {
    let mut sw = Switch::new(PacketPool::with_frames(4096));
    let d = sw.add_domain(DomainConfig::new("bd0")).unwrap();
    let mut ids = Vec::new();
    let mut stats = Vec::new();
    for h in hosts {
        let port = AfPacketPort::attach_with(&h.link.name, cfg).unwrap_or_else(|e| panic!("{e}"));
        stats.push(port.stats_handle());
        ids.push(
            sw.add_port(Box::new(port), PortConfig::access(d, 1))
                .unwrap(),
        );
    }
    (RunningSwitch::start(sw), ids, stats)
}

const TCP_BYTES: usize = 24 << 20;

/// Send `TCP_BYTES` of seeded pseudo-random data from `from` to `to` over
/// TCP; return (bytes received, receiver's SHA-256, sender's SHA-256), or
/// what went wrong.
fn try_tcp_transfer(
    from: &Host,
    to: &Host,
    dst: &str,
    timeout_s: u32,
) -> Result<(usize, String, String), String> {
    let t = timeout_s.to_string();
    let server = format!(
        "import socket,hashlib\n\
         s=socket.socket(socket.AF_INET6 if ':' in '{a}' else socket.AF_INET)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{a}',5301)); s.listen(1); s.settimeout({t})\n\
         c,_=s.accept(); c.settimeout({t}); h=hashlib.sha256(); n=0\n\
         while True:\n    d=c.recv(1<<16)\n    if not d: break\n    h.update(d); n+=len(d)\n\
         print(n,h.hexdigest())\n",
        a = dst
    );
    let srv = Command::new("ip")
        .args([
            "netns",
            "exec",
            &to.ns.name,
            "timeout",
            &t,
            "python3",
            "-c",
            &server,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3 server");
    let client = format!(
        "import socket,hashlib,random,time\n\
         data=random.Random(7).randbytes({TCP_BYTES})\n\
         t=time.time()\n\
         while True:\n    try:\n        c=socket.create_connection(('{a}',5301),timeout=5); break\n    except ConnectionRefusedError:\n        if time.time()-t>10: raise\n        time.sleep(0.1)\n\
         c.settimeout({t}); c.sendall(data); c.shutdown(socket.SHUT_WR); c.recv(1); c.close()\n\
         print(hashlib.sha256(data).hexdigest())\n",
        a = dst
    );
    let out = from.ns.exec("timeout", &[&t, "python3", "-c", &client]);
    let srv = srv.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(format!("client: {}", String::from_utf8_lossy(&out.stderr)));
    }
    if !srv.status.success() {
        return Err(format!("server: {}", String::from_utf8_lossy(&srv.stderr)));
    }
    let s = String::from_utf8_lossy(&srv.stdout).to_string();
    let mut it = s.split_whitespace();
    let n: usize = it.next().unwrap().parse().unwrap();
    let rx_hash = it.next().unwrap().to_string();
    let tx_hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((n, rx_hash, tx_hash))
}

fn tcp_transfer(from: &Host, to: &Host, dst: &str) -> (usize, String, String) {
    try_tcp_transfer(from, to, dst, 90).unwrap_or_else(|e| panic!("TCP transfer failed: {e}"))
}

fn promisc(ifname: &str) -> bool {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{ifname}/flags")).unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    flags & 0x100 != 0
}

#[test]
fn ping_both_ways_and_counters_move() {
    if !root_or_skip("ping_both_ways_and_counters_move") {
        return;
    }
    let _g = serial();
    let (a, b) = (host(1, false), host(2, false));
    let (rs, ids, _) = switch_over(&[&a, &b], &AfPacketConfig::default());
    assert!(
        promisc(&a.link.name),
        "attach makes the interface promiscuous"
    );
    assert!(
        a.ns.ping_eventually(&b.addr, Duration::from_secs(5)),
        "a -> b ping"
    );
    assert!(a.ns.ping(&b.addr, 5), "a -> b steady ping");
    assert!(b.ns.ping(&a.addr, 5), "b -> a ping");
    for id in &ids {
        let info = rs.with(|s| s.port_info(*id)).unwrap();
        assert!(
            info.counters.rx_packets >= 6 && info.counters.tx_packets >= 6,
            "port {} counters: {:?}",
            info.name,
            info.counters
        );
        assert!(info.counters.rx_bytes > 0 && info.counters.tx_bytes > 0);
        assert_eq!(info.last_error, None);
    }
    // The switch learned both stations on the right ports.
    let d = rs.with(|s| s.domain_id("bd0")).unwrap();
    let fdb = rs.with(|s| s.fdb_entries(d)).unwrap();
    assert!(fdb.len() >= 2, "{fdb:?}");
}

#[test]
fn tcp_24mb_intact_with_peer_offloads_on() {
    if !root_or_skip("tcp_24mb_intact_with_peer_offloads_on") {
        return;
    }
    let _g = serial();
    let (a, b) = (host(1, false), host(2, false));
    let (rs, ids, stats) = switch_over(&[&a, &b], &AfPacketConfig::default());
    assert!(a.ns.ping_eventually(&b.addr, Duration::from_secs(5)));
    let t = Instant::now();
    let (n, rx, tx) = tcp_transfer(&a, &b, &b.addr);
    eprintln!("24 MiB a -> b in {:?}", t.elapsed());
    assert_eq!(n, TCP_BYTES);
    assert_eq!(rx, tx, "payload arrived intact");
    let sa = stats[0].snapshot();
    eprintln!("port a: {sa:?}");
    // The peer kept TSO and checksum offload on, so the port had work to do.
    assert!(
        sa.rx_gso_frames > 0 || sa.rx_csum_completed > 0,
        "offload path exercised: {sa:?}"
    );
    assert_eq!(sa.rx_offload_errors, 0);
    assert_eq!(sa.rx_truncated, 0);
    let pa = rs.with(|s| s.port_info(ids[0])).unwrap();
    assert!(pa.counters.rx_bytes > TCP_BYTES as u64, "{:?}", pa.counters);
}

/// The same over IPv6: TSO super-frames arrive as GSO_TCPV6, both ways
/// (the data one way, the ACKs and a transfer back the other).
#[test]
fn tcp_over_ipv6_intact_both_ways() {
    if !root_or_skip("tcp_over_ipv6_intact_both_ways") {
        return;
    }
    let _g = serial();
    let (a, b) = (host(1, false), host(2, false));
    let (_rs, _ids, stats) = switch_over(&[&a, &b], &AfPacketConfig::default());
    assert!(a.ns.ping_eventually(&b.addr6, Duration::from_secs(5)));
    let (n, rx, tx) = tcp_transfer(&a, &b, &b.addr6);
    assert_eq!((n, &rx), (TCP_BYTES, &tx), "a -> b over IPv6");
    let (n, rx, tx) = tcp_transfer(&b, &a, &a.addr6);
    assert_eq!((n, &rx), (TCP_BYTES, &tx), "b -> a over IPv6");
    let (sa, sb) = (stats[0].snapshot(), stats[1].snapshot());
    assert!(
        sa.rx_gso_frames > 0 && sb.rx_gso_frames > 0,
        "{sa:?} {sb:?}"
    );
    assert_eq!(sa.rx_offload_errors + sb.rx_offload_errors, 0);
}

#[test]
fn tcp_without_vnet_hdr_needs_peer_tx_off() {
    if !root_or_skip("tcp_without_vnet_hdr_needs_peer_tx_off") {
        return;
    }
    let _g = serial();
    let (a, b) = (host(1, true), host(2, true));
    let cfg = AfPacketConfig {
        vnet_hdr: false,
        ..AfPacketConfig::default()
    };
    let (_rs, _ids, stats) = switch_over(&[&a, &b], &cfg);
    assert!(a.ns.ping_eventually(&b.addr, Duration::from_secs(5)));
    let (n, rx, tx) = tcp_transfer(&a, &b, &b.addr);
    assert_eq!(n, TCP_BYTES);
    assert_eq!(rx, tx, "payload arrived intact");
    let sa = stats[0].snapshot();
    assert_eq!(sa.rx_gso_frames + sa.rx_csum_completed, 0, "{sa:?}");
    assert_eq!(sa.rx_truncated, 0, "{sa:?}");
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn removing_the_port_closes_its_socket() {
    if !root_or_skip("removing_the_port_closes_its_socket") {
        return;
    }
    let _g = serial();
    let a = host(1, false);
    let mut sw = Switch::new(PacketPool::with_frames(256));
    let d = sw.add_domain(DomainConfig::new("bd0")).unwrap();
    let before = fd_count();
    let port = AfPacketPort::attach(&a.link.name).unwrap();
    let fd = port.poll_fd().expect("a pollable socket");
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    let target = target.to_string_lossy().to_string();
    assert!(target.starts_with("socket:"), "{target}");
    assert_eq!(fd_count(), before + 1);
    assert!(promisc(&a.link.name));
    let id = sw
        .add_port(Box::new(port), PortConfig::access(d, 1))
        .unwrap();
    let rs = RunningSwitch::start(sw);
    std::thread::sleep(Duration::from_millis(50));
    let port = rs.with(|s| s.remove_port(id)).unwrap();
    assert_eq!(
        fd_count(),
        before + 1,
        "removal hands the port back, still open"
    );
    drop(port);
    assert_eq!(fd_count(), before, "dropping the port closes the socket");
    let still = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|t| t.to_string_lossy() == target.as_str())
        .unwrap_or(false);
    assert!(!still, "fd {fd} still names {target}");
    assert!(!promisc(&a.link.name), "membership ends with the socket");
}

/// Drive a port by hand: receive until `pred` holds or `within` passes,
/// freeing what arrives. Returns frames received.
fn drain(port: &mut AfPacketPort, pool: &mut PacketPool, within: Duration) -> usize {
    let t = Instant::now();
    let mut n = 0;
    let mut batch = Batch::new(32);
    while t.elapsed() < within {
        n += port.rx_burst(pool, &mut batch).unwrap();
        batch.free_all(pool);
        std::thread::sleep(Duration::from_millis(2));
    }
    n
}

#[test]
fn receive_queue_overflow_shows_in_packet_statistics() {
    if !root_or_skip("receive_queue_overflow_shows_in_packet_statistics") {
        return;
    }
    let _g = serial();
    let a = host(1, false);
    let cfg = AfPacketConfig {
        rcvbuf: 4096,
        ..AfPacketConfig::default()
    };
    let mut port = AfPacketPort::attach_with(&a.link.name, &cfg).unwrap();
    // Unanswered broadcasts, far more than a 4 KiB receive buffer holds,
    // while nobody reads the socket.
    let blast = "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)\n\
         for i in range(2000):\n    s.sendto(b'x'*500,('10.88.0.255',9))\n";
    let out = a.ns.exec("python3", &["-c", blast]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pool = PacketPool::with_frames(256);
    let got = drain(&mut port, &mut pool, Duration::from_millis(200));
    let st = port.statistics().unwrap();
    eprintln!("received {got}: {st:?}");
    assert!(got > 0 && got < 2000, "received {got}");
    assert!(st.kernel_drops > 0, "{st:?}");
    assert!(st.kernel_packets >= got as u64, "{st:?}");
    // What the daemon lists with the switch's drop reasons.
    let drops = port.backend_drops();
    assert!(
        drops.contains(&("packet_rcvbuf_full", st.kernel_drops)),
        "{drops:?}"
    );
    assert_eq!(pool.available(), 256, "every buffer back in the pool");
}

#[test]
fn frames_longer_than_max_rx_frame_are_counted_as_truncated() {
    if !root_or_skip("frames_longer_than_max_rx_frame_are_counted_as_truncated") {
        return;
    }
    let _g = serial();
    let a = host(1, false);
    rvs_drivers::testutil::ip(&["link", "set", &a.link.name, "mtu", "9000"]);
    a.ns.ip(&["link", "set", &a.peer, "mtu", "9000"]);
    a.ns.ip(&[
        "neigh",
        "replace",
        "10.88.0.99",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        &a.peer,
    ]);
    let cfg = AfPacketConfig {
        max_rx_frame: 4096,
        ..AfPacketConfig::default()
    };
    let mut port = AfPacketPort::attach_with(&a.link.name, &cfg).unwrap();
    let mut pool = PacketPool::with_frames(64);
    // 6000-byte pings do not fit a 4 KiB receive slot; 100-byte ones do.
    a.ns.exec(
        "ping",
        &[
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "-s",
            "6000",
            "10.88.0.99",
        ],
    );
    a.ns.exec(
        "ping",
        &["-c", "2", "-i", "0.2", "-W", "1", "-s", "100", "10.88.0.99"],
    );
    let got = drain(&mut port, &mut pool, Duration::from_millis(100));
    let st = port.stats_handle().snapshot();
    assert_eq!(st.rx_truncated, 3, "{st:?}");
    assert!(got >= 2, "small frames still arrive: {got}, {st:?}");
    assert_eq!(pool.available(), 64);
}

/// The experiment behind the module's offload note: no vnet header and the
/// peer's default offloads (partial checksums, TSO) break TCP through the
/// switch. Ignored by default: it asserts kernel behaviour, not ours, and
/// spends ~10 s failing. Run with `--ignored` to re-check on a new kernel.
#[test]
#[ignore = "experiment on kernel offload behaviour; run with --ignored"]
fn experiment_tcp_fails_without_vnet_hdr_and_peer_offloads() {
    if !root_or_skip("experiment_tcp_fails_without_vnet_hdr_and_peer_offloads") {
        return;
    }
    let _g = serial();
    let (a, b) = (host(1, false), host(2, false));
    let cfg = AfPacketConfig {
        vnet_hdr: false,
        ..AfPacketConfig::default()
    };
    let (_rs, _ids, _) = switch_over(&[&a, &b], &cfg);
    assert!(
        a.ns.ping_eventually(&b.addr, Duration::from_secs(5)),
        "ICMP carries full checksums and still works"
    );
    let r = try_tcp_transfer(&a, &b, &b.addr, 15);
    eprintln!("transfer without vnet_hdr, peer offloads on: {r:?}");
    assert!(
        !matches!(&r, Ok((n, rx, tx)) if *n == TCP_BYTES && rx == tx),
        "TCP worked: the tx-off requirement may be gone on this kernel"
    );
}

/// Ethernet + IPv4 + UDP to `dst_mac`/10.88.0.1:6000 with `payload` bytes,
/// IP header checksum complete, UDP checksum partial (pseudo-header sum
/// only), as a sender with checksum offload leaves it.
fn udp4_partial(dst_mac: [u8; 6], payload: usize) -> Vec<u8> {
    fn sum(d: &[u8]) -> u32 {
        d.chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
            .sum()
    }
    fn fold(mut s: u32) -> u16 {
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x77, 0x08, 0x00]);
    let total = (20 + 8 + payload) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[10, 88, 0, 77, 10, 88, 0, 1]);
    let c = !fold(sum(&f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let ulen = (8 + payload) as u16;
    f.extend_from_slice(&7777u16.to_be_bytes());
    f.extend_from_slice(&6000u16.to_be_bytes());
    f.extend_from_slice(&ulen.to_be_bytes());
    let pseudo = fold(sum(&f[26..34]) + 17 + ulen as u32);
    f.extend_from_slice(&pseudo.to_be_bytes());
    f.extend((0..payload).map(|i| (i % 251) as u8));
    f
}

/// A UDP receiver on 10.88.0.1:6000 in `h`'s namespace that counts
/// datagrams (up to 5, or until 3 s pass quietly) and prints "count bytes".
fn udp_sink(h: &Host) -> std::process::Child {
    let server = "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('10.88.0.1',6000))\n\
         s.settimeout(3); n=0; b=0\n\
         print('ready',flush=True)\n\
         try:\n    while n<5:\n        d=s.recv(65536); n+=1; b+=len(d)\n\
         except socket.timeout:\n    pass\n\
         print(n,b)\n";
    let mut srv = Command::new("ip")
        .args(["netns", "exec", &h.ns.name, "python3", "-c", server])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(srv.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    srv
}

fn peer_mac(h: &Host) -> [u8; 6] {
    let mac =
        h.ns.exec("cat", &[&format!("/sys/class/net/{}/address", h.peer)]);
    let mac: Vec<u8> = String::from_utf8_lossy(&mac.stdout)
        .trim()
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    mac.try_into().unwrap()
}

/// A 100-byte UDP datagram with its checksum left partial, and a 3500-byte
/// UDP GSO super-frame (gso_size 1000), as a TAP with offloads hands them
/// to the switch.
fn offloaded_udp(pool: &mut PacketPool, mac: [u8; 6]) -> Batch {
    let mut batch = Batch::new(8);
    let mut single = pool.alloc_from(&udp4_partial(mac, 100)).unwrap();
    single.set_offload(Offload {
        flags: Offload::NEEDS_CSUM,
        gso_type: Offload::GSO_NONE,
        gso_size: 0,
        csum_start: 20,
        csum_offset: 6,
    });
    let mut sup = pool.alloc_from(&udp4_partial(mac, 3500)).unwrap();
    sup.set_offload(Offload {
        flags: Offload::NEEDS_CSUM,
        gso_type: Offload::GSO_UDP_L4,
        gso_size: 1000,
        csum_start: 20,
        csum_offset: 6,
    });
    batch.push(sup).unwrap();
    batch.push(single).unwrap();
    batch
}

/// Frames other ports hand over with checksum or segmentation still to do
/// (a TAP with offloads) leave with a virtio-net header that tells the
/// kernel so: the partial UDP checksum is accepted (it would be dropped as
/// bad if sent raw) and a UDP GSO super-frame arrives as its datagrams.
#[test]
fn tx_passes_offload_work_to_the_kernel() {
    if !root_or_skip("tx_passes_offload_work_to_the_kernel") {
        return;
    }
    let _g = serial();
    let a = host(1, false);
    let srv = udp_sink(&a);
    let mut port = AfPacketPort::attach(&a.link.name).unwrap();
    let mut pool = PacketPool::with_large(16, 2048, 256, 2).unwrap();
    let mut batch = offloaded_udp(&mut pool, peer_mac(&a));
    let done = port.tx_burst(&mut pool, &mut batch);
    assert_eq!(
        (done.packets, done.dropped),
        (2, 0),
        "{done:?} {:?}",
        port.statistics()
    );
    assert!(batch.is_empty());
    assert_eq!((pool.available(), pool.large_available()), (16, 2));
    let out = srv.wait_with_output().unwrap();
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(got, "5 3600", "datagrams and bytes the namespace received");
}

/// Without a vnet header the port finishes a partial checksum itself and
/// drops a super-frame it has no way to hand over (counted).
#[test]
fn tx_without_vnet_hdr_completes_checksums_and_drops_super_frames() {
    if !root_or_skip("tx_without_vnet_hdr_completes_checksums_and_drops_super_frames") {
        return;
    }
    let _g = serial();
    let a = host(1, false);
    let srv = udp_sink(&a);
    let cfg = AfPacketConfig {
        vnet_hdr: false,
        ..AfPacketConfig::default()
    };
    let mut port = AfPacketPort::attach_with(&a.link.name, &cfg).unwrap();
    let mut pool = PacketPool::with_large(16, 2048, 256, 2).unwrap();
    let mut batch = offloaded_udp(&mut pool, peer_mac(&a));
    let done = port.tx_burst(&mut pool, &mut batch);
    assert_eq!((done.packets, done.dropped), (1, 1), "{done:?}");
    assert_eq!(port.stats_handle().snapshot().tx_gso_unsupported, 1);
    assert_eq!((pool.available(), pool.large_available()), (16, 2));
    let out = srv.wait_with_output().unwrap();
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(got, "1 100", "the checksum-completed datagram arrived");
}

/// The kernel takes VLAN tags out of received frames (into packet
/// metadata); the port puts them back, TPID and priority bits included, so
/// trunk ports see the frame as it was on the wire.
#[test]
fn received_vlan_tags_are_put_back() {
    if !root_or_skip("received_vlan_tags_are_put_back") {
        return;
    }
    let _g = serial();
    let a = host(1, false);
    let mut port = AfPacketPort::attach(&a.link.name).unwrap();
    let frame = |tags: &[[u8; 4]]| {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x42, 0x02, 0, 0, 0, 0, 0x41];
        for t in tags {
            f.extend_from_slice(t);
        }
        f.extend_from_slice(&[0x88, 0xb5]); // local experimental EtherType
        f.extend_from_slice(&[0xab; 60]);
        f
    };
    let dot1q = frame(&[[0x81, 0x00, 0xa0, 0x64]]); // PCP 5, VID 100
    let qinq = frame(&[[0x88, 0xa8, 0x00, 0xc8], [0x81, 0x00, 0x00, 0x0a]]);
    let plain = frame(&[]);
    for f in [&dot1q, &qinq, &plain] {
        rvs_drivers::testutil::inject_frame(&a.ns, &a.peer, f).unwrap();
    }
    // The socket fd signals POLLIN once a frame is queued, which is what
    // the worker's idle epoll waits for.
    let mut pfd = libc::pollfd {
        fd: port.poll_fd().unwrap(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live, writable pollfd, count 1.
    let ready = unsafe { libc::poll(&mut pfd, 1, 1000) };
    assert_eq!(ready, 1, "fd readable after frames arrived");
    assert_ne!(pfd.revents & libc::POLLIN, 0);
    let mut pool = PacketPool::with_frames(64);
    let mut batch = Batch::new(32);
    let t = Instant::now();
    let mut got = Vec::new();
    while t.elapsed() < Duration::from_secs(2) && got.len() < 3 {
        port.rx_burst(&mut pool, &mut batch).unwrap();
        for b in batch.drain() {
            let d = pool.data(&b).to_vec();
            if d[6..12] == [0x02, 0, 0, 0, 0, 0x41] {
                got.push(d);
            }
            pool.free(b);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(got, vec![dot1q, qinq, plain]);
}

/// Deleting the interface under a port surfaces as `PortError::Gone` once
/// the worker's idle-time `maintain` has looked; a link only set down does not.
#[test]
fn deleted_link_is_reported_gone() {
    if !root_or_skip("deleted_link_is_reported_gone") {
        return;
    }
    let _g = serial();
    let a = host(1, false);
    let mut port = AfPacketPort::attach(&a.link.name).unwrap();
    let mut pool = PacketPool::with_frames(64);
    let mut batch = Batch::new(32);
    rvs_drivers::testutil::ip(&["link", "set", &a.link.name, "down"]);
    port.maintain(&mut pool);
    assert!(
        port.rx_burst(&mut pool, &mut batch).is_ok(),
        "down is not gone"
    );
    rvs_drivers::testutil::ip(&["link", "set", &a.link.name, "up"]);
    rvs_drivers::testutil::ip(&["link", "del", &a.link.name]);
    port.maintain(&mut pool);
    match port.rx_burst(&mut pool, &mut batch) {
        Err(PortError::Gone(name)) => assert_eq!(name, a.link.name),
        other => panic!("expected Gone, got {other:?}"),
    }
    assert!(
        matches!(port.rx_burst(&mut pool, &mut batch), Ok(0)),
        "reported once"
    );
    batch.free_all(&mut pool);
}
