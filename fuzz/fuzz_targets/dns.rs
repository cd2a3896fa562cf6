//! The embedded DNS's packet handling never panics and keeps its promises,
//! whatever the bytes: a query is answered (with bytes that decode, echo
//! its id and fit what the client takes, at most 1232 bytes), forwarded, or dropped as
//! malformed; the same bytes taken as an upstream's reply to a forwarded
//! query are refused or turned into an answer that decodes; the cache
//! stays within its bound.
//!
//! Over TCP, the bytes are a connection's stream: the framer yields whole
//! messages or refuses a length no DNS message has, and each message gets
//! the same promises with an answer of at most 65,535 bytes.
//!
//! Input layout: byte 0 picks the network the query arrives in (`& 1`)
//! and the transport (`& 2`: TCP); the rest is the UDP payload of the
//! query, or the TCP stream.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use rvs_dns::{Cache, Outcome, TcpFramer, Transport, Zone};

const CACHE: usize = 8;

fn zone() -> Zone {
    let mut z = Zone::new();
    let web4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let web6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));
    z.insert(0, "web", &[web4, web6]);
    z.insert(0, "www.alias", &[web4]);
    z.insert(1, "db", &[IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2))]);
    z
}

static STATE: Mutex<Option<(Zone, Cache, Instant)>> = Mutex::new(None);

/// Bytes sent to a client: a DNS message of at most
/// `rvs_dns::MAX_UDP_ANSWER` bytes over UDP (a TCP message's 65,535), with
/// the query's id when the query decoded.
fn check_answer(bytes: &[u8], id: Option<u16>, t: Transport) {
    let max = match t {
        Transport::Udp => rvs_dns::MAX_UDP_ANSWER as usize,
        Transport::Tcp => rvs_dns::MAX_TCP_MESSAGE,
    };
    assert!(bytes.len() <= max, "answer of {} bytes", bytes.len());
    let m = Message::from_vec(bytes).expect("every answer decodes");
    if let Some(id) = id {
        assert_eq!(m.metadata.id, id);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let mut st = STATE.lock().unwrap();
    let (zone, cache, t0) = st.get_or_insert_with(|| (zone(), Cache::new(CACHE), Instant::now()));
    let net = rvs_dns::NetId::from(sel & 1);
    if sel & 2 == 0 {
        return one(zone, cache, t0, net, payload, Transport::Udp);
    }
    let mut f = TcpFramer::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let n = f.push(rest);
        rest = &rest[n..];
        match f.message() {
            Some(Ok(m)) => {
                assert!(m.len() >= 12);
                one(zone, cache, t0, net, &m, Transport::Tcp);
            }
            // The daemon closes the connection here.
            Some(Err(_)) => break,
            None => assert!(rest.is_empty() || n > 0, "the framer takes what it wants"),
        }
    }
});

fn one(
    zone: &Zone,
    cache: &mut Cache,
    t0: &mut Instant,
    net: rvs_dns::NetId,
    payload: &[u8],
    t: Transport,
) {
    // Time moves a little with every input, so cached entries expire too.
    *t0 += Duration::from_secs(7);
    let now = *t0;
    let id = Message::from_vec(payload).ok().map(|m| m.metadata.id);
    match rvs_dns::handle(zone, net, payload, t, cache, now) {
        Outcome::Answer(b) | Outcome::Cached(b) => check_answer(&b, id, t),
        Outcome::Forward(p) => {
            assert!(id.is_some(), "only a decoded query is forwarded");
            let q = p.upstream_query(0x4242);
            Message::from_vec(&q).expect("the upstream query decodes");
            // The same bytes as the upstream's reply, over UDP and TCP.
            for udp in [true, false] {
                if let Ok(r) = p.check_upstream(0x4242, payload, udp) {
                    check_answer(&p.answer(&r), id, t);
                    cache.put(&p, &r, now);
                }
            }
            check_answer(&p.servfail(), id, t);
        }
        Outcome::Malformed => assert!(id.is_none(), "a decodable query is not malformed"),
        Outcome::Ignored => {}
    }
    assert!(cache.len() <= CACHE);
}
