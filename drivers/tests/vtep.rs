//! VTEP ports end to end (root): namespace "hosts" joined by an underlay
//! veth, each with a guest namespace behind it, forming one VXLAN overlay.
//!
//! 1. rvswitch ↔ the Linux kernel: host A runs an rvswitch `Switch` (in this
//!    process; the VTEP socket is opened inside A's namespace) with a TAP
//!    guest and a `VtepPort`; host B has the kernel's `vxlan` device in a
//!    Linux bridge with a veth guest. Guests ping and move TCP both ways.
//! 2. rvswitch ↔ rvswitch over an IPv6 underlay, AF_PACKET guests, with a
//!    second (dead) remote in the flood list, a static remote entry and
//!    forged datagrams (unknown VNI, I flag clear) that must be dropped.
//! 3. rvswitch ↔ rvswitch with an underlay multicast group and no flood list.
//!
//! Finding (kernel 6.18, veth underlay): a kernel `vxlan` device sending
//! over a veth leaves the inner TCP checksum partial (CHECKSUM_PARTIAL
//! crosses veth untouched, and a UDP socket hands the payload over as is),
//! so the receiving VTEP would forward frames with bad checksums. A real
//! NIC completes it in hardware; here host B's underlay veth gets
//! `ethtool -K tx off`, which makes the kernel complete it in software.
//!
//! The VtepPort is used as an ordinary switch port of the domain carrying
//! its VNI (no test glue around the switch).

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use rvs_drivers::afpacket::AfPacketPort;
use rvs_drivers::netlink::Netlink;
use rvs_drivers::netns::in_netns;
use rvs_drivers::tap::{TapOffload, TapOptions, TapPort};
use rvs_drivers::testutil::{Link, Netns, RunningSwitch, ip, root_or_skip, unique};
use rvs_drivers::vtep::{VtepConfig, VtepHandle, VtepPort};
use rvs_switch::mac::MacAddr;
use rvs_switch::vxlan::Vni;
use rvs_switch::{DomainConfig, DomainId, PacketPool, PortConfig, Switch};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A veth whose ends live in `a` (named `an`) and `b` (named `bn`), up.
fn veth_between(a: &Netns, an: &str, b: &Netns, bn: &str) {
    let (x, y) = (unique("vx"), unique("vy"));
    ip(&["link", "add", &x, "type", "veth", "peer", "name", &y]);
    // Removes the pair if a move below fails; a no-op once it moved.
    let _cleanup = Link::adopt(&x);
    for (dev, ns, name) in [(&x, a, an), (&y, b, bn)] {
        ip(&["link", "set", dev, "netns", &ns.name]);
        ns.ip(&["link", "set", dev, "name", name]);
        ns.ip(&["link", "set", name, "up"]);
    }
}

fn addr(ns: &Netns, dev: &str, a: &str) {
    let mut args = vec!["addr", "add", a, "dev", dev];
    if a.contains(':') {
        args.push("nodad");
    }
    ns.ip(&args);
}

/// Hosts A and B joined by an underlay veth `ul` with addresses `a`, `b`.
fn underlay(host_a: &Netns, host_b: &Netns, a: &str, b: &str) {
    veth_between(host_a, "ul", host_b, "ul");
    addr(host_a, "ul", a);
    addr(host_b, "ul", b);
}

/// A guest behind a veth: `eth0` in `guest` with `a`, `host_end` in `host`.
fn veth_guest(host: &Netns, host_end: &str, guest: &Netns, a: &str, mtu: &str) {
    veth_between(host, host_end, guest, "eth0");
    guest.ip(&["link", "set", "eth0", "mtu", mtu]);
    host.ip(&["link", "set", host_end, "mtu", mtu]);
    addr(guest, "eth0", a);
}

fn switch() -> (Switch, DomainId) {
    let pool = PacketPool::with_large(4096, 2048, 256, 64).unwrap();
    let mut sw = Switch::new(pool);
    let d = sw.add_domain(DomainConfig::new("overlay")).unwrap();
    (sw, d)
}

/// Open a VTEP port inside `host`'s namespace and attach it to `sw`.
fn attach_vtep(sw: &mut Switch, d: DomainId, host: &Netns, cfg: VtepConfig) -> VtepHandle {
    let port = in_netns(&host.name, || VtepPort::open(&cfg))
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let h = port.handle();
    sw.add_port(Box::new(port), PortConfig::access(d, 1))
        .unwrap();
    h
}

/// An AF_PACKET port on `host_end` (inside `host`) attached to `sw`.
fn attach_afpacket(sw: &mut Switch, d: DomainId, host: &Netns, host_end: &str) {
    let port = in_netns(&host.name, || AfPacketPort::attach(host_end))
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    sw.add_port(Box::new(port), PortConfig::access(d, 1))
        .unwrap();
}

/// A TSO-capable TAP, moved into `guest` as eth0 with `a` and `mtu`.
fn attach_tap(sw: &mut Switch, d: DomainId, guest: &Netns, a: &str, mtu: u32) {
    let name = unique("tap");
    let opts = TapOptions::new(&name)
        .offload(TapOffload::Tso)
        .mtu(mtu)
        .up(false);
    let port = TapPort::create(&opts, sw.pool()).unwrap();
    let _cleanup = Link::adopt(&name);
    Netlink::new()
        .unwrap()
        .move_to_netns(&name, &guest.name)
        .unwrap();
    guest.ip(&["link", "set", &name, "name", "eth0"]);
    guest.ip(&["link", "set", "eth0", "up"]);
    addr(guest, "eth0", a);
    sw.add_port(Box::new(port), PortConfig::access(d, 1))
        .unwrap();
}

const TCP_BYTES: usize = 8 << 20;

/// Send `TCP_BYTES` seeded random bytes from `from` to `dst` (a listener in
/// `to`); the receiver's SHA-256 must equal the sender's.
fn tcp_transfer(from: &Netns, to: &Netns, dst: &str) {
    let t = "60";
    let server = format!(
        "import socket,hashlib\n\
         s=socket.socket(socket.AF_INET6 if ':' in '{dst}' else socket.AF_INET)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{dst}',5302)); s.listen(1); s.settimeout({t})\n\
         c,_=s.accept(); c.settimeout({t}); h=hashlib.sha256(); n=0\n\
         while True:\n    d=c.recv(1<<16)\n    if not d: break\n    h.update(d); n+=len(d)\n\
         print(n,h.hexdigest())\n"
    );
    let srv = Command::new("ip")
        .args(["netns", "exec", &to.name, "timeout", t, "python3", "-c"])
        .arg(&server)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3 server");
    let client = format!(
        "import socket,hashlib,random,time\n\
         data=random.Random(11).randbytes({TCP_BYTES})\n\
         t=time.time()\n\
         while True:\n    try:\n        c=socket.create_connection(('{dst}',5302),timeout=5); break\n    except ConnectionRefusedError:\n        if time.time()-t>10: raise\n        time.sleep(0.1)\n\
         c.settimeout({t}); c.sendall(data); c.shutdown(socket.SHUT_WR); c.recv(1); c.close()\n\
         print({TCP_BYTES},hashlib.sha256(data).hexdigest())\n"
    );
    let out = from.exec("timeout", &[t, "python3", "-c", &client]);
    let srv = srv.wait_with_output().unwrap();
    let sent = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let got = String::from_utf8_lossy(&srv.stdout).trim().to_string();
    assert!(
        out.status.success() && srv.status.success(),
        "TCP to {dst}: client {:?} {}, server {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        srv.status,
        String::from_utf8_lossy(&srv.stderr)
    );
    assert_eq!(got, sent, "TCP to {dst}: payload intact");
}

fn ip_addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap()
}

fn guest_mac(ns: &Netns) -> MacAddr {
    let out = ns.exec("cat", &["/sys/class/net/eth0/address"]);
    let s = String::from_utf8_lossy(&out.stdout);
    let b: Vec<u8> = s
        .trim()
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    MacAddr(b.try_into().unwrap())
}

#[test]
fn interop_with_the_kernel_vxlan_device() {
    if !root_or_skip("interop_with_the_kernel_vxlan_device") {
        return;
    }
    let _g = serial();
    let (host_a, host_b) = (Netns::new("vha"), Netns::new("vhb"));
    let (guest_a, guest_b) = (Netns::new("vga"), Netns::new("vgb"));
    underlay(&host_a, &host_b, "192.0.2.1/24", "192.0.2.2/24");
    // Host B: the kernel's VTEP in a Linux bridge with a veth guest.
    host_b.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "42",
        "local",
        "192.0.2.2",
        "remote",
        "192.0.2.1",
        "dstport",
        "4789",
    ]);
    host_b.ip(&["link", "add", "br0", "type", "bridge"]);
    host_b.ip(&["link", "set", "vx0", "master", "br0", "up"]);
    veth_guest(&host_b, "gb", &guest_b, "10.42.0.2/24", "1450");
    host_b.ip(&["link", "set", "gb", "master", "br0"]);
    host_b.ip(&["link", "set", "br0", "up"]);
    let off = host_b.exec("ethtool", &["-K", "ul", "tx", "off"]);
    assert!(off.status.success(), "ethtool: {off:?}");
    // Host A: rvswitch with a TAP guest and a VTEP port.
    let (mut sw, d) = switch();
    attach_tap(&mut sw, d, &guest_a, "10.42.0.1/24", 1450);
    let mut cfg = VtepConfig::new(&unique("vtep"), ip_addr("192.0.2.1"), vni(42));
    cfg.flood = vec![ip_addr("192.0.2.2")];
    let h = attach_vtep(&mut sw, d, &host_a, cfg);
    let _rs = RunningSwitch::start(sw);

    let wait = Duration::from_secs(10);
    assert!(guest_a.ping_eventually("10.42.0.2", wait), "A -> B ping");
    assert!(guest_b.ping_eventually("10.42.0.1", wait), "B -> A ping");
    assert!(guest_a.ping("10.42.0.2", 3), "A -> B steady pings");
    tcp_transfer(&guest_a, &guest_b, "10.42.0.2");
    tcp_transfer(&guest_b, &guest_a, "10.42.0.1");

    let st = h.stats();
    eprintln!("VTEP counters: {st:?}");
    assert!(st.rx_decap > 1000 && st.tx_datagrams > 1000, "{st:?}");
    assert!(
        st.tx_gso_segmented > 0,
        "TAP TSO super-frames were cut: {st:?}"
    );
    assert_eq!(
        (
            st.rx_unknown_vni,
            st.rx_no_i_flag,
            st.rx_truncated,
            st.tx_errors
        ),
        (0, 0, 0, 0)
    );
    // Flood-and-learn on our side: guest B's MAC is behind host B ...
    let mac_b = guest_mac(&guest_b);
    let e = h.entries(Duration::from_secs(2)).expect("port polled");
    assert!(
        e.iter()
            .any(|e| e.mac == mac_b && e.remote == ip_addr("192.0.2.2") && !e.is_static),
        "{e:?}"
    );
    // ... and on the kernel's: guest A's MAC is behind host A.
    let mac_a = guest_mac(&guest_a).to_string();
    let fdb = host_b.exec("bridge", &["fdb", "show", "dev", "vx0"]);
    let fdb = String::from_utf8_lossy(&fdb.stdout);
    assert!(
        fdb.lines()
            .any(|l| l.contains(&mac_a) && l.contains("dst 192.0.2.1")),
        "kernel learned {mac_a} behind 192.0.2.1:\n{fdb}"
    );
}

/// Send one UDP datagram (`payload` given as hex) from `ns` to `dst`:4789.
fn send_udp(ns: &Netns, dst: &str, payload_hex: &str) {
    let py = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET6 if ':' in '{dst}' else socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.sendto(bytes.fromhex('{payload_hex}'),('{dst}',4789))\n"
    );
    let out = ns.exec("python3", &["-c", &py]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn two_rvswitch_vteps_over_ipv6() {
    if !root_or_skip("two_rvswitch_vteps_over_ipv6") {
        return;
    }
    let _g = serial();
    let (host_a, host_b) = (Netns::new("vha"), Netns::new("vhb"));
    let (guest_a, guest_b) = (Netns::new("vga"), Netns::new("vgb"));
    underlay(&host_a, &host_b, "2001:db8::1/64", "2001:db8::2/64");
    // Overlay MTU over a 1500 IPv6 underlay: 1430.
    veth_guest(&host_a, "ga", &guest_a, "10.43.0.1/24", "1430");
    veth_guest(&host_b, "gb", &guest_b, "10.43.0.2/24", "1430");
    let mut handles = Vec::new();
    let mut running = Vec::new();
    for (host, local, remote, end) in [
        (&host_a, "2001:db8::1", "2001:db8::2", "ga"),
        (&host_b, "2001:db8::2", "2001:db8::1", "gb"),
    ] {
        let (mut sw, d) = switch();
        attach_afpacket(&mut sw, d, host, end);
        let mut cfg = VtepConfig::new(&unique("vtep"), ip_addr(local), vni(0x12_3456));
        // A second remote that does not exist: BUM frames are replicated to it too.
        cfg.flood = vec![ip_addr(remote), ip_addr("2001:db8::99")];
        cfg.tx_sockets = 4;
        handles.push(attach_vtep(&mut sw, d, host, cfg));
        running.push(RunningSwitch::start(sw));
    }
    let wait = Duration::from_secs(10);
    assert!(guest_a.ping_eventually("10.43.0.2", wait), "A -> B ping");
    assert!(guest_b.ping("10.43.0.1", 3), "B -> A ping");
    tcp_transfer(&guest_a, &guest_b, "10.43.0.2");

    let (sa, sb) = (handles[0].stats(), handles[1].stats());
    eprintln!("A: {sa:?}\nB: {sb:?}");
    assert!(sa.tx_replicas > 0, "head-end replication to both remotes");
    assert!(sa.learn_new > 0 && sb.learn_new > 0);

    // A static entry shows as such and wins over learning.
    let mac_b = guest_mac(&guest_b);
    handles[0].add_static(mac_b, ip_addr("2001:db8::2"));
    let e = handles[0].entries(Duration::from_secs(2)).unwrap();
    assert!(e.iter().any(|e| e.mac == mac_b && e.is_static), "{e:?}");
    assert!(guest_a.ping("10.43.0.2", 2), "ping over the static entry");

    // Forged datagrams from host B: unknown VNI, then the I flag clear.
    let frame = format!(
        "{}{}0800{}",
        "ff".repeat(6),
        "02".repeat(6),
        "45".repeat(46)
    );
    send_udp(&host_b, "2001:db8::1", &format!("0800000000002b00{frame}"));
    send_udp(&host_b, "2001:db8::1", &format!("0000000012345600{frame}"));
    let t = std::time::Instant::now();
    let mut s = handles[0].stats();
    while (s.rx_unknown_vni, s.rx_no_i_flag) != (1, 1) && t.elapsed() < wait {
        std::thread::sleep(Duration::from_millis(20));
        s = handles[0].stats();
    }
    assert_eq!((s.rx_unknown_vni, s.rx_no_i_flag), (1, 1), "{s:?}");
}

#[test]
fn multicast_group_carries_bum_without_a_flood_list() {
    if !root_or_skip("multicast_group_carries_bum_without_a_flood_list") {
        return;
    }
    let _g = serial();
    let (host_a, host_b) = (Netns::new("vha"), Netns::new("vhb"));
    let (guest_a, guest_b) = (Netns::new("vga"), Netns::new("vgb"));
    underlay(&host_a, &host_b, "192.0.2.1/24", "192.0.2.2/24");
    veth_guest(&host_a, "ga", &guest_a, "10.44.0.1/24", "1450");
    veth_guest(&host_b, "gb", &guest_b, "10.44.0.2/24", "1450");
    let mut handles = Vec::new();
    let mut running = Vec::new();
    for (host, local, end) in [(&host_a, "192.0.2.1", "ga"), (&host_b, "192.0.2.2", "gb")] {
        let (mut sw, d) = switch();
        attach_afpacket(&mut sw, d, host, end);
        let mut cfg = VtepConfig::new(&unique("vtep"), ip_addr(local), vni(7));
        cfg.group = Some(ip_addr("239.1.1.7"));
        cfg.group_ifindex = Netlink::in_netns(&host.name, |nl| nl.ifindex("ul")).unwrap();
        handles.push(attach_vtep(&mut sw, d, host, cfg));
        running.push(RunningSwitch::start(sw));
    }
    assert!(
        guest_a.ping_eventually("10.44.0.2", Duration::from_secs(10)),
        "A -> B ping (ARP through the group)"
    );
    assert!(guest_b.ping("10.44.0.1", 3), "B -> A ping");
    let (sa, sb) = (handles[0].stats(), handles[1].stats());
    eprintln!("A: {sa:?}\nB: {sb:?}");
    assert_eq!((sa.tx_no_remote, sb.tx_no_remote), (0, 0));
    // Every transmit socket can reach the group (not just the bound one).
    assert_eq!((sa.tx_errors, sb.tx_errors), (0, 0));
    assert!(sa.rx_decap > 0 && sb.rx_decap > 0);
    // Unicast replies went to the learned VTEP, not the group.
    let e = handles[0].entries(Duration::from_secs(2)).unwrap();
    assert!(e.iter().any(|e| e.remote == ip_addr("192.0.2.2")), "{e:?}");
}
