#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (run from fuzz/; rewrites the
seed_* files, leaves whatever the fuzzer added alone).

- pipeline, l3_input: ARP, ND, echo, routed, TTL-expiring, oversize and UDP
  packets to the gateways, a BPDU, VXLAN-encapsulated frames, laid out as
  each target reads its input (see the target's doc comment);
- lab_yaml: ../examples/*.yml;
- vip: established, new, UDP, trunk and damaged packets to the VIPs,
  with the neighbor, service and clock changes between them;
- docker_json: the request bodies of ../shared/docker/transcript*.jsonl (what
  a real engine sent), one call per seed and each whole session as one seed.
"""

import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def ip6(s):
    import ipaddress

    return ipaddress.IPv6Address(s).packed


GW_A, GW_B = mac("02:00:00:00:0a:01"), mac("02:00:00:00:0b:01")
H_A, H_B = mac("02:00:00:00:00:02"), mac("02:00:00:00:0b:05")
BCAST = b"\xff" * 6


def eth(dst, src, et, payload):
    return dst + src + struct.pack("!H", et) + payload


def ipv4(src, dst, proto, payload, ttl=64, df=False):
    h = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000 if df else 0, ttl, proto, 0,
        ip4(src), ip4(dst),
    )
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo(payload=b"ping"):
    m = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + payload
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def ipv6(src, dst, nh, payload, hops=64):
    return struct.pack("!IHBB", 0x60000000, len(payload), nh, hops) + ip6(src) + ip6(dst) + payload


def icmp6(src, dst, typ, code, body, hops=64):
    m = struct.pack("!BBH", typ, code, 0) + body
    pseudo = ip6(src) + ip6(dst) + struct.pack("!I", len(m)) + b"\0\0\0\x3a"
    m = m[:2] + struct.pack("!H", csum(pseudo + m)) + m[4:]
    return ipv6(src, dst, 58, m, hops)


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + ip4(spa) + tha + ip4(tpa)


def solicited_node(a):
    b = ip6(a)
    import ipaddress

    return str(ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + b[13:]))


def ns(src, target, lladdr):
    body = b"\0\0\0\0" + ip6(target) + b"\x01\x01" + lladdr
    dst = solicited_node(target)
    m = mac("33:33:ff:00:00:00")[:3] + ip6(target)[13:]
    return eth(m, lladdr, 0x86DD, icmp6(src, dst, 135, 0, body, hops=255))


def na(src, dst_ip, dst_mac, lladdr):
    body = b"\x60\0\0\0" + ip6(src) + b"\x02\x01" + lladdr
    return eth(dst_mac, lladdr, 0x86DD, icmp6(src, dst_ip, 136, 0, body, hops=255))


# Frames in domain `fuzz` (hosts 10.0.0.2, fd00::2) and `b` (10.0.1.5, fd00:1::5).
arp_req_a = eth(BCAST, H_A, 0x0806, arp(1, H_A, "10.0.0.2", b"\0" * 6, "10.0.0.1"))
arp_reply_b = eth(GW_B, H_B, 0x0806, arp(2, H_B, "10.0.1.5", GW_B, "10.0.1.1"))
arp_reply_via = eth(GW_B, H_B, 0x0806, arp(2, H_B, "10.0.1.254", GW_B, "10.0.1.1"))
ping_a = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.2", "10.0.0.1", 1, icmp_echo()))
routed = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.2", "10.0.1.5", 17, udp(1000, 2000, b"x" * 20)))
ttl1 = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.2", "10.0.1.5", 17, udp(1, 2, b"t"), ttl=1))
big_df = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.2", "10.0.1.5", 17, udp(3, 4, b"b" * 180), df=True))
to_gw_udp = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.2", "10.0.0.1", 17, udp(5, 53, b"q")))
default_route = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.2", "198.51.100.7", 1, icmp_echo()))
ns_a = ns("fd00::2", "fd00::1", H_A)
na_b = na("fd00:1::5", "fd00:1::1", GW_B, H_B)
ping6_a = eth(GW_A, H_A, 0x86DD, icmp6("fd00::2", "fd00::1", 128, 0, b"\0\1\0\1ping"))
routed6 = eth(GW_A, H_A, 0x86DD, ipv6("fd00::2", "fd00:1::5", 17, udp(7, 8, b"six")))
hop1_6 = eth(GW_A, H_A, 0x86DD, ipv6("fd00::2", "fd00:1::5", 17, udp(7, 8, b"h"), hops=1))
# An RST BPDU (version 2) from bridge 8000.02:00:00:00:0c:01.
bpdu_body = (
    struct.pack("!HBBB", 0, 2, 2, 0x3C)
    + struct.pack("!H", 0x8000) + mac("02:00:00:00:0c:01")
    + struct.pack("!I", 0)
    + struct.pack("!H", 0x8000) + mac("02:00:00:00:0c:01")
    + struct.pack("!HHHHHB", 0x8001, 0, 20 * 256, 2 * 256, 15 * 256, 0)
)
bpdu = mac("01:80:c2:00:00:00") + mac("02:00:00:00:0c:02") + struct.pack("!H", 3 + len(bpdu_body)) + b"\x42\x42\x03" + bpdu_body
inner = eth(BCAST, mac("02:00:00:00:0d:01"), 0x0806, arp(1, mac("02:00:00:00:0d:01"), "10.0.0.9", b"\0" * 6, "10.0.0.1"))
vxlan_hdr = struct.pack("!II", 0x08000000, 42 << 8)
underlay = eth(mac("02:00:00:00:ee:01"), mac("02:00:00:00:ee:02"), 0x0800,
               ipv4("192.0.2.2", "192.0.2.1", 17, udp(50000, 4789, vxlan_hdr + inner)))
datagram = vxlan_hdr + inner


def records(recs):
    out = b""
    for sel, f in recs:
        assert len(f) <= 255, len(f)
        out += bytes([sel, len(f)]) + f
    return out


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed_" + name), "wb") as fh:
        fh.write(data)


# pipeline: sel & 15: 0-3 p0-p3, 4 underlay, 5-6 b0-b1, 7-9 s0-s2, 10 datagram, 11 vtep.
ALL = 0x01 | 0x02 | 0x04 | 0x10
write("pipeline", "arp_ping", bytes([0, ALL]) + records([(0, arp_req_a), (0, ping_a), (0, to_gw_udp)]))
write("pipeline", "routed_resolved", bytes([0, ALL]) + records([(0, routed), (5, arp_reply_b), (0x10, routed)]))
write("pipeline", "routed_unresolved", bytes([0, ALL]) + records([(0, routed), (0xF0, default_route)]))
write("pipeline", "icmp_errors", bytes([0, ALL | 0x08]) + records([(0, ttl1), (0, big_df), (0, hop1_6), (5, arp_reply_b), (0, big_df)]))
write("pipeline", "nd", bytes([0, ALL]) + records([(0, ns_a), (0, ping6_a), (0, routed6), (5, na_b)]))
write("pipeline", "static_external", bytes([0, 0xFF]) + records([(0, routed), (1, default_route), (5, arp_reply_via)]))
write("pipeline", "stp", bytes([0, ALL]) + records([(7, bpdu), (0x38, bpdu), (8, arp_req_a), (0xF9, bpdu)]))
write("pipeline", "vxlan", bytes([0, ALL]) + records([(4, underlay), (10, datagram), (0, arp_req_a), (0, ping_a)]))
write("pipeline", "trunks", bytes([0xAA, ALL]) + records([(2, arp_req_a), (3, ping_a), (1, routed)]))

# l3_input: cfg byte; sel & 1 domain, sel & 2 keep batching, sel >> 2 time.
write("l3_input", "arp_ping", bytes([0x05]) + records([(0, arp_req_a), (0, ping_a), (0, to_gw_udp), (0, ns_a), (0, ping6_a)]))
write("l3_input", "routed", bytes([0x05]) + records([(0, routed), (0, routed6), (1, arp_reply_b), (1, na_b), (2, routed), (0, routed)]))
write("l3_input", "errors", bytes([0x07]) + records([(0, ttl1), (0, big_df), (0, hop1_6), (1, arp_reply_b), (0, big_df), (0xFC, default_route)]))
write("l3_input", "static", bytes([0x1D]) + records([(0, routed), (0, routed6), (0, default_route)]))
# F_SERVICE (0x20): VIP 10.0.0.100 / fd00::100 in domain 0, backends .2/.3.
def tcp(sport, dport, flags):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 2, 5 << 4, flags, 1000, 0, 0)
arp_vip = eth(BCAST, H_A, 0x0806, arp(1, H_A, "10.0.0.9", b"\0" * 6, "10.0.0.100"))
udp_vip = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.9", "10.0.0.100", 17, udp(4000, 53, b"q")))
syn_vip = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.9", "10.0.0.100", 6, tcp(4001, 80, 0x02)))
backend_arp = eth(GW_A, H_A, 0x0806, arp(2, H_A, "10.0.0.2", GW_A, "10.0.0.1"))
reply_vip = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.2", "10.0.0.100", 17, udp(53, 20000, b"a")))
probe_ack = eth(GW_A, H_A, 0x0800, ipv4("10.0.0.2", "10.0.0.100", 6, tcp(8080, 64512, 0x12)))
udp6_vip = eth(GW_A, H_A, 0x86DD, ipv6("fd00::9", "fd00::100", 17, udp(4002, 53, b"six")))
write("l3_input", "services", bytes([0x20]) + records([(0, arp_vip), (0, udp_vip), (0, syn_vip), (0, backend_arp), (0, reply_vip), (0x14, probe_ack), (0, udp6_vip)]))

# vip: records [op][arg][len][body]; op % 8: 0-4 a batch of 1 + arg % 32
# packets into port op % 3 (body: client, proto/VIP/port/family, sport, MAC, TCP
# flags, cut, dport), 5 a raw frame, 6 the clock, 7 a control change.
def vrec(op, arg, body):
    return bytes([op, arg, len(body)]) + bytes(body)
V_SYN = [1, 0, 0, 0, 0x02, 0, 0, 80]
V_ACK = [1, 0, 0, 0, 0x10, 0, 0, 80]
V_UDP = [2, 1 | 1 << 2, 0, 0, 0, 0, 0, 53]
write("vip", "established", vrec(0, 31, V_SYN) + vrec(3, 31, V_ACK) + vrec(0, 31, V_ACK))
write("vip", "neighbor_moves", vrec(0, 31, V_SYN) + vrec(3, 31, V_ACK) + vrec(7, 0, []) + vrec(0, 31, V_ACK) + vrec(3, 31, V_ACK))
write("vip", "services_change", vrec(0, 31, V_SYN) + vrec(3, 31, V_ACK) + vrec(7, 1, []) + vrec(0, 31, V_ACK))
write("vip", "health_down", vrec(7, 7, []) + vrec(0, 31, V_SYN) + vrec(3, 31, V_ACK) + vrec(6, 40, []) + vrec(0, 31, V_ACK))
write("vip", "udp", vrec(0, 15, V_UDP) + vrec(3, 15, V_UDP))
write("vip", "trunk", vrec(2, 15, V_SYN) + vrec(2, 15, V_ACK))
write("vip", "bad_header", vrec(0, 31, V_SYN) + vrec(3, 24, V_ACK + [0x40]) + vrec(0, 22, V_ACK + [0x46]))
# body[1] bit 4: IPv6, to the first VIP's twin.
V6_SYN = [1, 0x10, 0, 0, 0x02, 0, 0, 80]
V6_ACK = [1, 0x10, 0, 0, 0x10, 0, 0, 80]
write("vip", "v6_established", vrec(0, 31, V6_SYN) + vrec(3, 31, V6_ACK) + vrec(0, 31, V6_ACK))
# The first frame's IPv6 payload length (frame bytes 18-19) past the frame.
write("vip", "v6_bad_length", vrec(0, 31, V6_SYN) + vrec(3, 18, V6_ACK + [0x01, 0x00]) + vrec(0, 18, V6_ACK + [0x00, 0x05]))
write("vip", "mixed_families", vrec(0, 15, V_SYN) + vrec(0, 15, V6_SYN) + vrec(3, 15, V_ACK) + vrec(0, 15, V6_ACK) + vrec(7, 0, []) + vrec(0, 15, V6_ACK))

# lab_yaml: the examples.
for f in sorted(os.listdir(os.path.join(ROOT, "examples"))):
    if f.endswith(".yml"):
        d = os.path.join(HERE, "corpus", "lab_yaml")
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "examples", f), os.path.join(d, "seed_" + f))

# docker_json: the recorded engine requests.
METHODS = [
    "Plugin.Activate", "NetworkDriver.GetCapabilities", "NetworkDriver.CreateNetwork",
    "NetworkDriver.DeleteNetwork", "NetworkDriver.AllocateNetwork", "NetworkDriver.FreeNetwork",
    "NetworkDriver.CreateEndpoint", "NetworkDriver.EndpointOperInfo", "NetworkDriver.DeleteEndpoint",
    "NetworkDriver.Join", "NetworkDriver.Leave", "NetworkDriver.DiscoverNew",
    "NetworkDriver.DiscoverDelete", "NetworkDriver.ProgramExternalConnectivity",
    "NetworkDriver.RevokeExternalConnectivity", "IpamDriver.GetCapabilities",
    "IpamDriver.GetDefaultAddressSpaces", "IpamDriver.RequestPool", "IpamDriver.ReleasePool",
    "IpamDriver.RequestAddress", "IpamDriver.ReleaseAddress",
]
shared = os.environ.get("RVS_SHARED", os.path.join(ROOT, "shared"))
for tname in ("transcript", "transcript-error"):
    path = os.path.join(shared, "docker", tname + ".jsonl")
    if not os.path.exists(path):
        sys.exit(f"{path} missing: set RVS_SHARED to the folder holding docker/")
    session = []
    for i, line in enumerate(open(path)):
        call = json.loads(line)
        m = call["path"].lstrip("/")
        if m not in METHODS:
            continue
        body = b"" if call["request"] is None else json.dumps(call["request"], separators=(",", ":")).encode()
        rec = bytes([ord("A") + METHODS.index(m)]) + body
        session.append(rec)
        write("docker_json", f"{tname}_{i:02d}", rec)
    write("docker_json", f"{tname}_session", b"\n".join(session))

# dns: [net selector byte] + a DNS message: queries for the target's names
# (A, AAAA, PTR), an outside name, a response, a compression loop, and
# counts past the end.
def dns_name(n):
    out = b""
    for label in n.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_query(qid, name, qtype, flags=0x0100, edns=False):
    hdr = struct.pack("!6H", qid, flags, 1, 0, 0, 1 if edns else 0)
    body = dns_name(name) + struct.pack("!2H", qtype, 1)
    if edns:
        body += b"\0" + struct.pack("!HHIH", 41, 4096, 0, 0)
    return hdr + body


write("dns", "a_web", b"\0" + dns_query(1, "web.", 1))
write("dns", "aaaa_web_edns", b"\0" + dns_query(2, "web.", 28, edns=True))
write("dns", "ptr_web", b"\0" + dns_query(3, "2.0.0.10.in-addr.arpa.", 12))
write("dns", "a_outside", b"\1" + dns_query(4, "example.org.", 1))
write("dns", "response", b"\0" + dns_query(5, "web.", 1, flags=0x8180))
write("dns", "loop", b"\0" + struct.pack("!6H", 6, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\0\1\0\1")
write("dns", "huge_counts", b"\0" + struct.pack("!6H", 7, 0x0100, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF) + dns_name("web."))

# dns over TCP (selector & 2): a connection's stream of length-prefixed
# messages: two queries in one stream, a zero length, a length past the end.
def tcp(*msgs):
    return b"".join(struct.pack("!H", len(m)) + m for m in msgs)


write("dns", "tcp_two", b"\2" + tcp(dns_query(8, "web.", 1), dns_query(9, "example.org.", 28, edns=True)))
write("dns", "tcp_zero", b"\3" + b"\0\0" + tcp(dns_query(10, "db.", 1)))
write("dns", "tcp_cut", b"\2" + struct.pack("!H", 300) + dns_query(11, "web.", 1))
