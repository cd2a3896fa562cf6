//! rvswitch's embedded DNS, without I/O: the names of each network, the
//! answer to one query, the forwarder's upstream query and the checks on
//! its reply, and the forwarder's bounded cache. The daemon (`src/dns.rs`)
//! moves bytes between the data plane, upstream sockets and this crate.
//!
//! Every message is decoded and encoded by `hickory-proto`; nothing here
//! parses DNS by hand. A query that does not decode is [`Outcome::Malformed`]
//! (dropped and counted by the caller, never answered).
//!
//! Owns: what a network's names are and how a query is answered. Never:
//! sockets, clocks (the caller passes `now`), threads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// A name scope: a bridge domain's id in its high 16 bits and a VLAN of
/// it in the low 16 ([`net_id`]). A domain carrying several VLANs has one
/// scope per VLAN, as if each were a network of its own; a query is
/// answered from the scope of the domain and VLAN it came in.
pub type NetId = u32;

/// The scope of VLAN `vid` of bridge domain `domain`.
pub const fn net_id(domain: u16, vid: u16) -> NetId {
    ((domain as u32) << 16) | vid as u32
}

/// TTL of the answers for a network's own names: short, as endpoints come
/// and go.
pub const LOCAL_TTL: u32 = 5;
/// Longest a forwarded answer is cached, whatever its TTL.
pub const MAX_CACHE_TTL: u32 = 300;
/// How long an answer without records (NXDOMAIN, no data) is cached.
pub const NEGATIVE_TTL: u32 = 30;
/// Payload size offered to upstreams over UDP (the DNS flag day's 1232).
pub const UPSTREAM_UDP_PAYLOAD: u16 = 1232;
/// At most this many addresses are answered for one name (the API's
/// limit of a name's addresses): 128 AAAA records are under 4 KiB, which
/// TCP carries whole; over UDP such an answer is truncated.
pub const MAX_ADDRS: usize = 128;

/// The names of one network: name → addresses, address → name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_addr: HashMap<IpAddr, String>,
    /// Names answered round robin (a service of mode `dnsrr`).
    rr: std::collections::HashSet<String>,
}

/// What the control plane needs of the embedded DNS (the daemon's DNS
/// task implements it): the zone to answer from, and where to count replies
/// that could not be sent. A trait so that the control plane does not
/// depend on the DNS task, which depends on it.
pub trait NameService: Send + Sync {
    /// Answer from `zone` from now on.
    fn set_zone(&self, zone: Zone);
    /// The counter of replies the worker could not send.
    fn reply_failures(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64>;
    /// Its counters by their `stats` names.
    fn counter_values(&self) -> Vec<(&'static str, u64)>;
}

/// Every network's names: one immutable snapshot per change, shared with
/// the answering task.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Zone {
    nets: HashMap<NetId, Names>,
}

/// A name as it is matched: lower case, without a trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` may be a record name: 1 to 63 letters, digits, `-`, `_`
/// per label, labels separated by dots, 253 characters at most.
pub fn check_name(name: &str) -> Result<(), String> {
    let n = name.trim_end_matches('.');
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid DNS name {name:?}: labels of 1 to 63 letters, digits, '-' or '_', \
             separated by dots, 253 characters at most"
        ))
    }
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Add `addrs` under `name` in network `net` (added to what the name
    /// has). The first name given an address is the one a reverse lookup
    /// answers.
    pub fn insert(&mut self, net: NetId, name: &str, addrs: &[IpAddr]) {
        let n = self.nets.entry(net).or_default();
        let key = normalize(name);
        let v = n.by_name.entry(key.clone()).or_default();
        for a in addrs {
            if !v.contains(a) {
                v.push(*a);
            }
            n.by_addr.entry(*a).or_insert_with(|| key.clone());
        }
    }

    /// As [`Zone::insert`], and answer the name's addresses round robin:
    /// each answer starts at another address (Docker's `dnsrr` services).
    pub fn insert_round_robin(&mut self, net: NetId, name: &str, addrs: &[IpAddr]) {
        self.insert(net, name, addrs);
        if let Some(n) = self.nets.get_mut(&net) {
            n.rr.insert(normalize(name));
        }
    }

    /// Whether `name` of `net` is answered round robin.
    pub fn is_round_robin(&self, net: NetId, name: &str) -> bool {
        self.nets
            .get(&net)
            .is_some_and(|n| n.rr.contains(&normalize(name)))
    }

    /// The addresses of `name` in `net`, if the network has that name.
    pub fn lookup(&self, net: NetId, name: &str) -> Option<&[IpAddr]> {
        let n = self.nets.get(&net)?;
        n.by_name.get(&normalize(name)).map(|v| v.as_slice())
    }

    /// The name of `ip` in `net`.
    pub fn reverse(&self, net: NetId, ip: IpAddr) -> Option<&str> {
        self.nets.get(&net)?.by_addr.get(&ip).map(|s| s.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.nets.values().all(|n| n.by_name.is_empty())
    }
}

/// What to do with a punted query.
#[derive(Debug)]
pub enum Outcome {
    /// Send these bytes back to the client (from the network's names, or
    /// a refusal of a query that cannot be answered).
    Answer(Vec<u8>),
    /// Send these bytes back to the client (from the forwarder's cache).
    Cached(Vec<u8>),
    /// Not a name of the network: ask the upstream resolvers.
    Forward(Pending),
    /// Not a DNS message (truncated, compression loop, counts past the end,
    /// trailing garbage in a header...): drop it.
    Malformed,
    /// A DNS message that is not a query (a response, say): drop it, so
    /// two servers never answer each other in a loop.
    Ignored,
}

/// How a query came, which bounds its answer: over UDP to what the client
/// takes (512 bytes, or its EDNS size up to [`MAX_UDP_ANSWER`]), TC set
/// when the answer does not fit; over TCP (RFC 7766) to a message's
/// 65,535 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Cache key: (name in lower case, type, class).
type Key = (String, u16, u16);

/// Who asked, as the answer must echo it.
#[derive(Debug, Clone, Copy)]
struct Asker {
    id: u16,
    /// Recursion desired.
    rd: bool,
    /// The largest answer the client takes (over UDP, its EDNS size or
    /// 512; over TCP a whole message).
    max: usize,
    /// The query had EDNS (the answer has it too).
    edns: bool,
}

/// A query on its way to the upstream resolvers.
#[derive(Debug, Clone)]
pub struct Pending {
    asker: Asker,
    query: Query,
}

/// An upstream reply that matches its query.
#[derive(Debug, Clone)]
pub struct UpstreamReply(Message);

/// Why an upstream reply is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not a DNS message.
    Malformed,
    /// Another id or question (stale or spoofed): keep waiting.
    Mismatch,
    /// Truncated over UDP: ask again over TCP.
    Truncated,
}

impl UpstreamReply {
    pub fn response_code(&self) -> u16 {
        self.0.metadata.response_code.into()
    }
}

/// The largest answer sent over UDP, whatever a client offers: the DNS
/// flag day's 1232 bytes fit any link MTU of 1280 and more, so an answer is
/// never larger than the gateway can send in one frame.
pub const MAX_UDP_ANSWER: u16 = 1232;

/// The largest message over TCP (its 2-byte length prefix).
pub const MAX_TCP_MESSAGE: usize = u16::MAX as usize;

fn asker(m: &Message, t: Transport) -> Asker {
    let (max, edns) = match &m.edns {
        Some(e) => ((e.max_payload().clamp(512, MAX_UDP_ANSWER)) as usize, true),
        None => (512, false),
    };
    let max = match t {
        Transport::Udp => max,
        Transport::Tcp => MAX_TCP_MESSAGE,
    };
    Asker {
        id: m.metadata.id,
        rd: m.metadata.recursion_desired,
        max,
        edns,
    }
}

/// The answer to `q` (from a query of id `id`), with `answers`, flags set
/// as a recursive server's, fitted to `max` bytes (truncated, TC set, when
/// it does not fit).
fn respond(
    a: Asker,
    q: &Query,
    code: ResponseCode,
    answers: Vec<Record>,
    authoritative: bool,
) -> Vec<u8> {
    let Asker { id, rd, max, edns } = a;
    let mut m = Message::response(id, OpCode::Query);
    m.metadata.recursion_desired = rd;
    m.metadata.recursion_available = true;
    m.metadata.authoritative = authoritative;
    m.metadata.response_code = code;
    m.add_query(q.clone());
    m.add_answers(answers);
    if edns {
        m.set_edns(our_edns(max));
    }
    encode_fitted(m, max)
}

/// The OPT record of an answer: the UDP size we take, never above
/// [`MAX_UDP_ANSWER`] (an answer over TCP offers the same as over UDP).
fn our_edns(max: usize) -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(max.min(MAX_UDP_ANSWER as usize) as u16);
    e
}

fn encode_fitted(m: Message, max: usize) -> Vec<u8> {
    match m.to_vec() {
        Ok(v) if v.len() <= max => v,
        Ok(_) => m.truncate().to_vec().unwrap_or_default(),
        Err(_) => {
            let mut e = Message::error_msg(m.metadata.id, OpCode::Query, ResponseCode::ServFail);
            e.queries = m.queries.clone();
            e.to_vec().unwrap_or_default()
        }
    }
}

/// Answer `bytes`, a query received in network `net` over `t`: from the
/// network's names, else from `cache`, else [`Outcome::Forward`].
pub fn handle(
    zone: &Zone,
    net: NetId,
    bytes: &[u8],
    t: Transport,
    cache: &mut Cache,
    now: Instant,
) -> Outcome {
    let Ok(m) = Message::from_vec(bytes) else {
        return Outcome::Malformed;
    };
    if m.metadata.message_type != MessageType::Query {
        return Outcome::Ignored;
    }
    let a = asker(&m, t);
    let refuse = |code: ResponseCode| {
        let mut r = Message::error_msg(a.id, m.metadata.op_code, code);
        r.metadata.recursion_desired = a.rd;
        r.metadata.recursion_available = true;
        r.queries = m.queries.clone();
        Outcome::Answer(encode_fitted(r, a.max))
    };
    if m.metadata.op_code != OpCode::Query {
        return refuse(ResponseCode::NotImp);
    }
    let [q] = m.queries.as_slice() else {
        return refuse(ResponseCode::FormErr);
    };
    let forward = || {
        Outcome::Forward(Pending {
            asker: a,
            query: q.clone(),
        })
    };
    if q.query_class() != DNSClass::IN {
        return forward();
    }
    if let Some(records) = local_answer(zone, net, q, a.id) {
        return Outcome::Answer(respond(a, q, ResponseCode::NoError, records, true));
    }
    if let Some(hit) = cache.get(&key(q), now) {
        return Outcome::Cached(reply_from(hit, a));
    }
    forward()
}

fn key(q: &Query) -> Key {
    (
        normalize(&q.name().to_ascii()),
        q.query_type().into(),
        q.query_class().into(),
    )
}

/// The records of the network's own names answering `q`, or `None` when
/// the name is not the network's. A name of the network asked for another
/// type gets an empty answer (no data), not a forward.
/// A round-robin name's answer starts at the address the query's id
/// picks (ids are random per query, so answers spread).
fn local_answer(zone: &Zone, net: NetId, q: &Query, id: u16) -> Option<Vec<Record>> {
    let name = q.name();
    let qt = q.query_type();
    if qt == RecordType::PTR {
        let ip = name.parse_arpa_name().ok()?;
        if ip.prefix_len() != ip.max_prefix_len() {
            return None;
        }
        let host = zone.reverse(net, ip.addr())?;
        let target = Name::from_ascii(format!("{host}.")).ok()?;
        let r = Record::from_rdata(name.clone(), LOCAL_TTL, RData::PTR(PTR(target)));
        return Some(vec![r]);
    }
    let addrs = zone.lookup(net, &name.to_ascii())?;
    let want = |a: &&IpAddr| match qt {
        RecordType::A => a.is_ipv4(),
        RecordType::AAAA => a.is_ipv6(),
        RecordType::ANY => true,
        _ => false,
    };
    let mut matching: Vec<&IpAddr> = addrs.iter().filter(want).collect();
    if !matching.is_empty() && zone.is_round_robin(net, &name.to_ascii()) {
        let k = id as usize % matching.len();
        matching.rotate_left(k);
    }
    let records = matching
        .into_iter()
        .take(MAX_ADDRS)
        .map(|a| {
            let data = match a {
                IpAddr::V4(v) => RData::A(A(*v)),
                IpAddr::V6(v) => RData::AAAA(AAAA(*v)),
            };
            Record::from_rdata(name.clone(), LOCAL_TTL, data)
        })
        .collect();
    Some(records)
}

/// A cached or upstream reply, re-addressed to the client.
fn reply_from(mut m: Message, a: Asker) -> Vec<u8> {
    let Asker { id, rd, max, edns } = a;
    m.metadata.id = id;
    m.metadata.recursion_desired = rd;
    m.metadata.recursion_available = true;
    m.metadata.authoritative = false;
    m.signature = None;
    m.edns = edns.then(|| our_edns(max));
    encode_fitted(m, max)
}

impl Pending {
    /// The query to send upstream with id `id` (recursion desired, EDNS
    /// with [`UPSTREAM_UDP_PAYLOAD`]).
    pub fn upstream_query(&self, id: u16) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(self.query.clone());
        let mut e = Edns::new();
        e.set_max_payload(UPSTREAM_UDP_PAYLOAD);
        m.set_edns(e);
        m.to_vec().unwrap_or_default()
    }

    /// Check an upstream reply to the query of id `id`; `over_udp` makes a
    /// truncated reply a [`Reject::Truncated`].
    pub fn check_upstream(
        &self,
        id: u16,
        bytes: &[u8],
        over_udp: bool,
    ) -> Result<UpstreamReply, Reject> {
        let m = Message::from_vec(bytes).map_err(|_| Reject::Malformed)?;
        let same_q = m.queries.len() == 1 && key(&m.queries[0]) == key(&self.query);
        if m.metadata.id != id || m.metadata.message_type != MessageType::Response || !same_q {
            return Err(Reject::Mismatch);
        }
        if m.metadata.truncation && over_udp {
            return Err(Reject::Truncated);
        }
        Ok(UpstreamReply(m))
    }

    /// The client's answer from an upstream reply.
    pub fn answer(&self, r: &UpstreamReply) -> Vec<u8> {
        reply_from(r.0.clone(), self.asker)
    }

    /// SERVFAIL for the client (no upstream answered).
    pub fn servfail(&self) -> Vec<u8> {
        respond(
            self.asker,
            &self.query,
            ResponseCode::ServFail,
            Vec::new(),
            false,
        )
    }

    /// The name asked, for logs.
    pub fn name(&self) -> String {
        self.query.name().to_ascii()
    }
}

/// The forwarder's cache of upstream replies: at most `capacity` entries,
/// each kept for its smallest record TTL (at most [`MAX_CACHE_TTL`];
/// [`NEGATIVE_TTL`] without records). Hand-written over a `HashMap` because
/// entries expire by their own TTL, which an LRU crate does not model; when
/// full, expired entries go first, then the one closest to expiry.
#[derive(Debug)]
pub struct Cache {
    capacity: usize,
    map: HashMap<Key, (Message, Instant, u32)>,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            map: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A live entry, its TTLs lowered by the time it spent here.
    fn get(&mut self, k: &Key, now: Instant) -> Option<Message> {
        let (m, at, ttl) = self.map.get(k)?;
        let age = now.saturating_duration_since(*at).as_secs() as u32;
        if age >= *ttl {
            self.map.remove(k);
            return None;
        }
        let mut m = m.clone();
        for r in m
            .answers
            .iter_mut()
            .chain(m.authorities.iter_mut())
            .chain(m.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(m)
    }

    /// Keep `r`, the reply to `p`, if it is a cacheable answer (NOERROR or
    /// NXDOMAIN, not truncated).
    pub fn put(&mut self, p: &Pending, r: &UpstreamReply, now: Instant) {
        let m = &r.0;
        let code = m.metadata.response_code;
        if self.capacity == 0
            || m.metadata.truncation
            || !(code == ResponseCode::NoError || code == ResponseCode::NXDomain)
        {
            return;
        }
        let ttl = m
            .answers
            .iter()
            .map(|r| r.ttl)
            .min()
            .unwrap_or(NEGATIVE_TTL)
            .min(MAX_CACHE_TTL);
        if ttl == 0 {
            return;
        }
        let k = key(&p.query);
        if self.map.len() >= self.capacity && !self.map.contains_key(&k) {
            self.map.retain(|_, (_, at, ttl)| {
                now.saturating_duration_since(*at) < Duration::from_secs(*ttl as u64)
            });
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(&k) {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, at, ttl))| *at + Duration::from_secs(*ttl as u64))
                .map(|(k, _)| k.clone());
            if let Some(o) = oldest {
                self.map.remove(&o);
            }
        }
        self.map.insert(k, (m.clone(), now, ttl));
    }
}

/// DNS over TCP's framing (RFC 1035 4.2.2, RFC 7766): each message after
/// its length in two bytes. Collects a connection's bytes and yields whole
/// messages; holds at most one message and its prefix. Hand-written: the
/// framing is two bytes, and hickory's TCP stream is tied to its own
/// sockets.
#[derive(Debug, Default)]
pub struct TcpFramer {
    buf: Vec<u8>,
}

/// A stream that is not DNS over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A message of length 0, or shorter than a DNS header (12 bytes).
    TooShort(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooShort(n) => write!(f, "a DNS message of {n} bytes"),
        }
    }
}

impl TcpFramer {
    pub fn new() -> TcpFramer {
        TcpFramer::default()
    }

    /// How many more bytes make the next message whole (so a caller reads
    /// no more than it holds).
    pub fn wanted(&self) -> usize {
        match self.buf.len() {
            0 | 1 => 2 - self.buf.len(),
            n => 2 + u16::from_be_bytes([self.buf[0], self.buf[1]]) as usize - n,
        }
    }

    /// Take what `bytes` holds of the current message (its prefix and
    /// body, nothing past its end); the number taken is returned. Call
    /// [`TcpFramer::message`] after each push.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        while taken < bytes.len() && self.wanted() > 0 {
            let n = (bytes.len() - taken).min(self.wanted());
            self.buf.extend_from_slice(&bytes[taken..taken + n]);
            taken += n;
        }
        taken
    }

    /// The message when it is whole (the framer then starts the next one),
    /// or an error for a length no DNS message has.
    pub fn message(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        if self.buf.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([self.buf[0], self.buf[1]]) as usize;
        if len < 12 {
            self.buf.clear();
            return Some(Err(FrameError::TooShort(len)));
        }
        if self.buf.len() < 2 + len {
            return None;
        }
        let m = self.buf.split_off(2);
        self.buf.clear();
        Some(Ok(m))
    }

    /// Whether part of a message is held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// `msg` framed for TCP (its length first); `None` when it is longer than
/// a message can be.
pub fn tcp_frame(msg: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(msg.len()).ok()?;
    let mut v = Vec::with_capacity(msg.len() + 2);
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(msg);
    Some(v)
}

/// A random query id (hickory's generator) for an upstream query.
pub fn random_id() -> u16 {
    Message::query().metadata.id
}

/// The `nameserver` addresses of a resolv.conf (port 53).
pub fn resolv_conf_servers(text: &str) -> Vec<std::net::SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests;
