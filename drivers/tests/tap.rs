//! TAP ports end to end (root): each TAP is created in the host namespace,
//! moved into a namespace of its own and renamed eth0 (what Docker does with
//! an endpoint), and attached to one rvswitch `Switch`. The namespaces then
//! talk through the switch with the kernel's own stack.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_drivers::netlink::Netlink;
use rvs_drivers::netns;
use rvs_drivers::tap::{TapCounters, TapMax, TapOffload, TapOptions, TapPort};
use rvs_drivers::testutil::{Netns, RunningSwitch, root_or_skip, unique};
use rvs_switch::{
    Batch, DomainConfig, DomainId, PacketPool, Port, PortConfig, PortError, PortId, Switch,
    VlanMode, VlanSet,
};

fn switch() -> (Switch, DomainId) {
    let pool = PacketPool::with_large(2048, 2048, 256, 64).unwrap();
    let mut sw = Switch::new(pool);
    let d = sw.add_domain(DomainConfig::new("lab")).unwrap();
    (sw, d)
}

/// What a test keeps of a TAP after it moved into the switch.
struct Attached {
    id: PortId,
    counters: Arc<TapCounters>,
    max: Arc<TapMax>,
}

/// Create a TAP, move it into `ns`, rename it eth0, bring it up with
/// `addrs`, and attach it to `sw` with `cfg`.
fn attach(
    sw: &mut Switch,
    ns: &Netns,
    offload: TapOffload,
    cfg: PortConfig,
    addrs: &[&str],
) -> Attached {
    let name = unique("tap");
    let opts = TapOptions::new(&name).offload(offload).up(false);
    let port = TapPort::create(&opts, sw.pool()).unwrap();
    let (counters, max) = (port.counters(), port.max_frames());
    move_in(ns, &name, addrs);
    let id = sw.add_port(Box::new(port), cfg).unwrap();
    Attached { id, counters, max }
}

/// What Docker does with an endpoint's TAP: move `name` into `ns`, rename
/// it eth0, bring it up with `addrs`.
fn move_in(ns: &Netns, name: &str, addrs: &[&str]) {
    Netlink::new()
        .unwrap()
        .move_to_netns(name, &ns.name)
        .unwrap();
    Netlink::in_netns(&ns.name, |nl| {
        nl.rename(name, "eth0")?;
        // No duplicate address detection: IPv6 addresses usable at once.
        std::fs::write("/proc/sys/net/ipv6/conf/eth0/accept_dad", "0").unwrap();
        nl.set_up("eth0")?;
        for a in addrs {
            let (ip, len) = a.split_once('/').unwrap();
            nl.add_address("eth0", ip.parse().unwrap(), len.parse().unwrap())?;
        }
        Ok(())
    })
    .unwrap();
    assert!(
        Netlink::new().unwrap().find_link(name).unwrap().is_none(),
        "{name} left the host namespace"
    );
}

#[test]
fn tap_moved_and_renamed_pings_both_ways() {
    if !root_or_skip("tap_moved_and_renamed_pings_both_ways") {
        return;
    }
    let (a, b) = (Netns::new("tpa"), Netns::new("tpb"));
    let (mut sw, d) = switch();
    let pa = attach(
        &mut sw,
        &a,
        TapOffload::Tso,
        PortConfig::access(d, 1),
        &["10.50.0.1/24"],
    );
    let pb = attach(
        &mut sw,
        &b,
        TapOffload::Tso,
        PortConfig::access(d, 1),
        &["10.50.0.2/24"],
    );
    let sw = RunningSwitch::start(sw);
    assert!(
        a.ping_eventually("10.50.0.2", Duration::from_secs(10)),
        "a -> b"
    );
    assert!(
        b.ping_eventually("10.50.0.1", Duration::from_secs(10)),
        "b -> a"
    );
    assert!(a.ping("10.50.0.2", 3), "steady pings a -> b");
    let (ia, ib) = sw.with(|s| (s.port_info(pa.id).unwrap(), s.port_info(pb.id).unwrap()));
    assert!(ia.counters.rx_packets >= 4 && ib.counters.rx_packets >= 4);
    assert!(ia.counters.tx_packets >= 4 && ib.counters.tx_packets >= 4);
    assert_eq!(pa.counters.snapshot().rx_bad_vnet_hdr, 0);
    assert_eq!(pb.counters.snapshot().tx_errors, 0);
}

/// The byte at `i` of the test stream (position-dependent, so a lost,
/// duplicated or reordered chunk shows).
fn stream_byte(i: u64) -> u8 {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (i >> 12) as u8
}

/// Send `total` bytes from namespace `from` to `to_addr` (a listener opened
/// inside `to`) and check every byte on arrival.
fn transfer(from: &Netns, to: &Netns, to_addr: &str, total: u64) {
    let addr: SocketAddr = to_addr.parse().unwrap();
    let listener = netns::in_netns(&to.name, || TcpListener::bind(addr))
        .unwrap()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || -> Result<u64, String> {
        let t = Instant::now();
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if t.elapsed() > Duration::from_secs(20) {
                        return Err("no connection within 20 s".into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut at = 0u64;
        loop {
            let n = s
                .read(&mut buf)
                .map_err(|e| format!("read at byte {at}: {e}"))?;
            if n == 0 {
                return Ok(at);
            }
            for (k, b) in buf[..n].iter().enumerate() {
                if *b != stream_byte(at + k as u64) {
                    return Err(format!("byte {} differs", at + k as u64));
                }
            }
            at += n as u64;
        }
    });
    let mut c = netns::in_netns(&from.name, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(10))
    })
    .unwrap()
    .unwrap();
    c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut chunk = vec![0u8; 1 << 16];
    let mut sent = 0u64;
    while sent < total {
        let n = chunk.len().min((total - sent) as usize);
        for (k, b) in chunk[..n].iter_mut().enumerate() {
            *b = stream_byte(sent + k as u64);
        }
        c.write_all(&chunk[..n]).unwrap();
        sent += n as u64;
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let got = server.join().unwrap().unwrap();
    assert_eq!(got, total, "bytes received");
}

#[test]
fn tap_tcp_transfer_crosses_as_tso_super_frames() {
    if !root_or_skip("tap_tcp_transfer_crosses_as_tso_super_frames") {
        return;
    }
    let (a, b) = (Netns::new("tta"), Netns::new("ttb"));
    let (mut sw, d) = switch();
    let pa = attach(
        &mut sw,
        &a,
        TapOffload::Tso,
        PortConfig::access(d, 1),
        &["10.51.0.1/24", "fd00:51::1/64"],
    );
    let pb = attach(
        &mut sw,
        &b,
        TapOffload::Tso,
        PortConfig::access(d, 1),
        &["10.51.0.2/24", "fd00:51::2/64"],
    );
    let sw = RunningSwitch::start(sw);
    assert!(a.ping_eventually("10.51.0.2", Duration::from_secs(10)));
    assert!(a.ping_eventually("fd00:51::2", Duration::from_secs(10)));
    // IPv6 first (TSO6), then IPv4 (TSO4), counters read in between.
    transfer(&a, &b, "[fd00:51::2]:5201", 16 << 20);
    let (sa6, sb6) = (pa.counters.snapshot(), pb.counters.snapshot());
    assert!(sa6.rx_gso > 0, "IPv6 super-frames received");
    assert!(sb6.tx_gso_passthrough > 0, "IPv6 super-frames passed on");
    let total = 64 << 20;
    transfer(&a, &b, "10.51.0.2:5201", total);

    let (sa, sb) = (pa.counters.snapshot(), pb.counters.snapshot());
    assert!(sa.rx_gso > sa6.rx_gso, "IPv4 super-frames received");
    assert!(sb.tx_gso_passthrough > sb6.tx_gso_passthrough);
    let (ia, ib) = sw.with(|s| (s.port_info(pa.id).unwrap(), s.port_info(pb.id).unwrap()));
    eprintln!(
        "ingress {sa:?}\negress {sb:?}\nswitch a {:?}\nswitch b {:?}",
        ia.counters, ib.counters
    );
    assert!(sa.rx_gso > 0, "the sender's kernel handed us super-frames");
    assert!(pa.max.rx_frame.load(std::sync::atomic::Ordering::Relaxed) > 1514);
    assert!(sb.tx_gso_passthrough > 0, "and they left as super-frames");
    assert_eq!(sb.tx_gso_segmented, 0, "nothing was segmented in software");
    assert!(pb.max.tx_frame.load(std::sync::atomic::Ordering::Relaxed) > 1514);
    // The switch's own counters: on average the frames to b were far larger
    // than an Ethernet MTU, so the data crossed unsegmented.
    assert!(ib.counters.tx_bytes >= total);
    assert!(
        ib.counters.tx_bytes / ib.counters.tx_packets > 1514,
        "average frame {} bytes",
        ib.counters.tx_bytes / ib.counters.tx_packets
    );
    assert_eq!(ia.counters.total_drops() + ib.counters.total_drops(), 0);
}

/// Super-frames towards a TAP without TSO are segmented by `gso.rs`; the
/// receiving kernel checks every segment's checksums, so a wrong one stalls
/// the transfer.
fn software_segmentation(egress: TapOffload, subnet: u8) {
    let (a, b) = (Netns::new("tsa"), Netns::new("tsb"));
    let (mut sw, d) = switch();
    let ip_a = format!("10.52.{subnet}.1/24");
    let ip_b = format!("10.52.{subnet}.2/24");
    let (ip6_a, ip6_b) = (
        format!("fd00:52:{subnet}::1/64"),
        format!("fd00:52:{subnet}::2/64"),
    );
    let pa = attach(
        &mut sw,
        &a,
        TapOffload::Tso,
        PortConfig::access(d, 1),
        &[&ip_a, &ip6_a],
    );
    let pb = attach(
        &mut sw,
        &b,
        egress,
        PortConfig::access(d, 1),
        &[&ip_b, &ip6_b],
    );
    let sw = RunningSwitch::start(sw);
    let dst = format!("10.52.{subnet}.2");
    assert!(a.ping_eventually(&dst, Duration::from_secs(10)));
    transfer(&a, &b, &format!("{dst}:5202"), 16 << 20);
    let v4_segmented = pb.counters.snapshot().tx_gso_segmented;
    assert!(v4_segmented > 0, "IPv4 super-frames segmented");
    transfer(&a, &b, &format!("[fd00:52:{subnet}::2]:5202"), 8 << 20);
    assert!(
        pb.counters.snapshot().tx_gso_segmented > v4_segmented,
        "IPv6 too"
    );
    let (sa, sb) = (pa.counters.snapshot(), pb.counters.snapshot());
    eprintln!("ingress {sa:?}\negress {sb:?}");
    assert!(sa.rx_gso > 0);
    assert!(sb.tx_gso_segmented > 0 && sb.tx_segments > sb.tx_gso_segmented);
    assert_eq!(sb.tx_gso_passthrough, 0);
    assert_eq!(sb.tx_bad_offload + sb.tx_errors, 0);
    if egress == TapOffload::None {
        assert!(
            sb.tx_csum_completed > 0,
            "partial checksums completed in software"
        );
    }
    assert!(pb.max.tx_frame.load(std::sync::atomic::Ordering::Relaxed) > 1514);
    drop(sw);
}

#[test]
fn tap_super_frames_segmented_for_csum_only_egress() {
    if root_or_skip("tap_super_frames_segmented_for_csum_only_egress") {
        software_segmentation(TapOffload::Csum, 1);
    }
}

#[test]
fn tap_super_frames_segmented_and_checksummed_for_plain_egress() {
    if root_or_skip("tap_super_frames_segmented_and_checksummed_for_plain_egress") {
        software_segmentation(TapOffload::None, 2);
    }
}

#[test]
fn tap_access_ports_in_different_vlans_are_isolated() {
    if !root_or_skip("tap_access_ports_in_different_vlans_are_isolated") {
        return;
    }
    let (a, b, c) = (Netns::new("tva"), Netns::new("tvb"), Netns::new("tvc"));
    let (mut sw, d) = switch();
    let _pa = attach(
        &mut sw,
        &a,
        TapOffload::Tso,
        PortConfig::access(d, 10),
        &["10.53.0.1/24"],
    );
    let pb = attach(
        &mut sw,
        &b,
        TapOffload::Tso,
        PortConfig::access(d, 20),
        &["10.53.0.2/24"],
    );
    let _pc = attach(
        &mut sw,
        &c,
        TapOffload::Tso,
        PortConfig::access(d, 10),
        &["10.53.0.3/24"],
    );
    let sw = RunningSwitch::start(sw);
    assert!(
        a.ping_eventually("10.53.0.3", Duration::from_secs(10)),
        "same VLAN works"
    );
    assert!(!a.ping("10.53.0.2", 3), "VLAN 10 must not reach VLAN 20");
    assert!(!b.ping("10.53.0.1", 3), "VLAN 20 must not reach VLAN 10");
    let ib = sw.with(|s| s.port_info(pb.id).unwrap());
    assert!(ib.counters.rx_packets > 0, "b did send (ARP)");
    assert_eq!(ib.counters.tx_packets, 0, "nothing from VLAN 10 reached b");
}

fn mac_str(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// A broadcast ARP request "who has `target` tell `sender`" tagged `vid`.
fn tagged_arp_request(src: [u8; 6], vid: u16, sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(64, 0);
    f
}

/// A trunk port towards namespace `t` carries VLANs 10 and 20, each tagged
/// on the wire. Both access namespaces use the same address, so each VLAN's
/// ARP request must be answered by its own VLAN's station only.
///
/// This kernel has no 802.1Q support (CONFIG_VLAN_8021Q unset: `ip link add
/// ... type vlan` fails), so instead of eth0.10/eth0.20 sub-interfaces the
/// trunk side injects tagged frames with a packet socket, and tcpdump (which
/// reads tags from packet auxdata) shows what crossed eth0.
#[test]
fn tap_trunk_carries_both_vlans_tagged() {
    if !root_or_skip("tap_trunk_carries_both_vlans_tagged") {
        return;
    }
    let (t, a, b) = (Netns::new("tkt"), Netns::new("tka"), Netns::new("tkb"));
    let (mut sw, d) = switch();
    let mut allowed = VlanSet::new();
    allowed.insert(10);
    allowed.insert(20);
    let trunk = PortConfig::access(d, 1).with_vlan(VlanMode::Trunk {
        allowed,
        native: None,
    });
    attach(&mut sw, &t, TapOffload::Tso, trunk, &[]);
    attach(
        &mut sw,
        &a,
        TapOffload::Tso,
        PortConfig::access(d, 10),
        &["10.54.0.2/24"],
    );
    attach(
        &mut sw,
        &b,
        TapOffload::Tso,
        PortConfig::access(d, 20),
        &["10.54.0.2/24"],
    );
    let mac = |ns: &Netns| {
        Netlink::in_netns(&ns.name, |nl| nl.link("eth0"))
            .unwrap()
            .mac
            .unwrap()
    };
    let (mac_t, mac_a, mac_b) = (mac(&t), mac(&a), mac(&b));
    let sw = RunningSwitch::start(sw);

    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.name,
            "tcpdump",
            "-l",
            "-e",
            "-nn",
            "-i",
            "eth0",
            "arp or vlan",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump runs (apt-get install tcpdump)");
    // Kill the capture even if an assertion fails.
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let err = dump.stderr.take().unwrap();
    let out = dump.stdout.take().unwrap();
    let guard = Kill(&mut dump);
    let mut said = String::new();
    let mut err = std::io::BufReader::new(err);
    while !said.contains("listening on") {
        use std::io::BufRead;
        if err.read_line(&mut said).unwrap() == 0 {
            panic!("tcpdump did not start: {said}");
        }
    }
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    let reply_from = |m: [u8; 6]| format!("Reply 10.54.0.2 is-at {}", mac_str(m));
    let t0 = Instant::now();
    loop {
        for vid in [10, 20] {
            let f = tagged_arp_request(mac_t, vid, [10, 54, 0, 1], [10, 54, 0, 2]);
            rvs_drivers::testutil::inject_frame(&t, "eth0", &f).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        let l = lines.lock().unwrap();
        let seen = |m| l.iter().any(|x| x.contains(&reply_from(m)));
        if (seen(mac_a) && seen(mac_b)) || t0.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    drop(guard);
    reader.join().unwrap();
    let text = lines.lock().unwrap().join("\n");
    let with =
        |needle: &str| -> Vec<&str> { text.lines().filter(|l| l.contains(needle)).collect() };
    let (ra, rb) = (with(&reply_from(mac_a)), with(&reply_from(mac_b)));
    assert!(
        !ra.is_empty() && !rb.is_empty(),
        "both VLANs answered; captured:\n{text}"
    );
    for l in &ra {
        assert!(
            l.contains("802.1Q (0x8100)") && l.contains("vlan 10,"),
            "{l}"
        );
    }
    for l in &rb {
        assert!(
            l.contains("802.1Q (0x8100)") && l.contains("vlan 20,"),
            "{l}"
        );
    }
    let untagged = text
        .lines()
        .filter(|l| l.contains("Reply") && !l.contains("vlan"));
    assert_eq!(
        untagged.count(),
        0,
        "no untagged replies on the trunk:\n{text}"
    );
    let st = sw.with(|s| s.stage_counters().clone());
    assert!(
        st.get(rvs_switch::StageCounter::EgressTagPush) > 0,
        "replies tagged"
    );
    assert!(
        st.get(rvs_switch::StageCounter::EgressTagPop) > 0,
        "requests untagged"
    );
}

#[test]
fn tap_reports_gone_after_its_namespace_is_deleted() {
    if !root_or_skip("tap_reports_gone_after_its_namespace_is_deleted") {
        return;
    }
    let mut pool = PacketPool::with_frames(64);
    let ns = Netns::new("tgn");
    let name = unique("tap");
    let mut port = TapPort::create(&TapOptions::for_pool(&name, &pool).up(false), &pool).unwrap();
    assert_eq!(port.offload(), TapOffload::Csum, "no large frames, no TSO");
    assert_eq!(port.max_frame(), 1500 + 22);
    Netlink::new()
        .unwrap()
        .move_to_netns(&name, &ns.name)
        .unwrap();
    let mut batch = Batch::new(32);
    assert_eq!(
        port.rx_burst(&mut pool, &mut batch).unwrap(),
        0,
        "nothing yet, EAGAIN"
    );
    drop(ns);
    // The kernel unregisters the netdev with its namespace.
    let t = Instant::now();
    let err = loop {
        match port.rx_burst(&mut pool, &mut batch) {
            Err(e) => break e,
            Ok(_) if t.elapsed() < Duration::from_secs(5) => {
                batch.free_all(&mut pool);
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(_) => panic!("the TAP still reads after its namespace is gone"),
        }
    };
    assert!(matches!(err, PortError::Gone(ref n) if *n == name), "{err}");
    assert_eq!(pool.available(), 64, "no buffer leaked");
}

#[test]
fn tap_multi_queue_attaches_a_second_queue_and_vanishes_with_them() {
    if !root_or_skip("tap_multi_queue_attaches_a_second_queue_and_vanishes_with_them") {
        return;
    }
    let pool = PacketPool::with_frames(64);
    let name = unique("tmq");
    let opts = TapOptions::new(&name).multi_queue(true).mtu(1400);
    let q0 = TapPort::create(&opts, &pool).unwrap();
    let q1 = TapPort::create(&opts, &pool).unwrap();
    assert_ne!(q0.poll_fd(), q1.poll_fd());
    let nl = Netlink::new().unwrap();
    let info = nl.link(&name).unwrap();
    assert!(info.up, "created up");
    assert_eq!(info.mtu, 1400);
    let e = TapPort::create(&TapOptions::new(&name), &pool).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("create tap {name}: TUNSETIFF failed")),
        "single-queue attach to a multi-queue TAP is refused: {e}"
    );
    drop(q0);
    assert!(
        nl.find_link(&name).unwrap().is_some(),
        "one queue still open"
    );
    drop(q1);
    assert!(
        nl.find_link(&name).unwrap().is_none(),
        "not persistent: gone with its last queue"
    );
}

/// Create a persistent TAP with `mac`, move it into `ns` as eth0 with
/// `addr`, up; returns its first (host) name.
fn persistent_in(ns: &Netns, mac: [u8; 6], addr: &str, pool: &PacketPool) -> (String, TapPort) {
    let name = unique("tps");
    let opts = TapOptions::for_pool(&name, pool)
        .persist(true)
        .mac(Some(mac))
        .up(false);
    let port = TapPort::create(&opts, pool).unwrap();
    move_in(ns, &name, &[addr]);
    (name, port)
}

/// What Docker's endpoints rely on: a persistent TAP moved and renamed
/// into a sandbox outlives the switch (a crash drops every port without
/// detaching it), is found again there by MAC or by its new name, carries
/// traffic again, and goes away only when its port leaves the switch; a
/// TAP whose sandbox is gone is reported, not made anew in the host.
#[test]
fn persistent_tap_is_found_again_in_its_sandbox_and_removed_with_its_port() {
    if !root_or_skip("persistent_tap_is_found_again_in_its_sandbox_and_removed_with_its_port") {
        return;
    }
    let (a, b) = (Netns::new("tfa"), Netns::new("tfb"));
    let (mac_a, mac_b) = ([0x02, 0x5a, 0, 0, 0, 1], [0x02, 0x5a, 0, 0, 0, 2]);
    let (mut sw, d) = switch();
    let (name_a, pa) = persistent_in(&a, mac_a, "10.52.0.1/24", sw.pool());
    let (name_b, pb) = persistent_in(&b, mac_b, "10.52.0.2/24", sw.pool());
    sw.add_port(Box::new(pa), PortConfig::access(d, 1)).unwrap();
    sw.add_port(Box::new(pb), PortConfig::access(d, 1)).unwrap();
    let running = RunningSwitch::start(sw);
    assert!(a.ping_eventually("10.52.0.2", Duration::from_secs(10)));
    // The "crash": the switch and its ports go, nothing is detached.
    drop(running);
    let eth0 = |ns: &Netns| {
        Command::new("ip")
            .args(["-n", &ns.name, "link", "show", "eth0"])
            .output()
            .unwrap()
    };
    let show = |ns: &Netns| text(&eth0(ns).stdout);
    assert!(show(&a).contains("NO-CARRIER"), "{}", show(&a));
    assert!(!a.ping("10.52.0.2", 1), "traffic without a switch");

    // Found again: a by its MAC, b by its name in the sandbox.
    let (mut sw, d) = switch();
    let reopen = |name: &str, ns: &str, ifname: Option<&str>, mac, pool: &PacketPool| {
        let o = TapOptions::for_pool(name, pool)
            .persist(true)
            .netns(Some(ns.to_string()), ifname.map(str::to_string))
            .mac(Some(mac));
        TapPort::create(&o, pool)
    };
    let pa = reopen(&name_a, &a.name, None, mac_a, sw.pool()).unwrap();
    let pb = reopen(&name_b, &b.name, Some("eth0"), mac_b, sw.pool()).unwrap();
    let nl = Netlink::new().unwrap();
    assert!(
        nl.find_link(&name_a).unwrap().is_none(),
        "made anew in the host"
    );
    let ida = sw.add_port(Box::new(pa), PortConfig::access(d, 1)).unwrap();
    sw.add_port(Box::new(pb), PortConfig::access(d, 1)).unwrap();
    let running = RunningSwitch::start(sw);
    assert!(
        a.ping_eventually("10.52.0.2", Duration::from_secs(10)),
        "no ping after the TAPs were found again"
    );
    assert!(!show(&a).contains("NO-CARRIER"), "{}", show(&a));

    // The port leaves the switch: its device goes, from inside the sandbox.
    let port = running.with(|s| s.remove_port(ida)).unwrap();
    drop(port);
    assert!(!eth0(&a).status.success(), "the TAP outlived its port");
    drop(running);

    // b's sandbox goes (and its TAP with it): open says so, makes nothing.
    let gone_ns = b.name.clone();
    drop(b);
    let pool = PacketPool::with_large(64, 2048, 256, 4).unwrap();
    let e = reopen(&name_b, &gone_ns, Some("eth0"), mac_b, &pool).unwrap_err();
    assert!(e.to_string().contains("no longer exists"), "{e}");
    assert!(
        nl.find_link(&name_b).unwrap().is_none(),
        "made anew in the host"
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
