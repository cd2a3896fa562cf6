use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

fn zone() -> Zone {
    let mut z = Zone::new();
    let a: IpAddr = Ipv4Addr::new(10, 0, 0, 2).into();
    let a6: IpAddr = "fd00::2".parse::<Ipv6Addr>().unwrap().into();
    z.insert(1, "Web", &[a, a6]);
    z.insert(1, "www.alias", &[a]);
    z.insert(2, "db", &[Ipv4Addr::new(10, 0, 1, 2).into()]);
    z
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

fn answer(o: Outcome) -> Message {
    match o {
        Outcome::Answer(b) | Outcome::Cached(b) => Message::from_vec(&b).unwrap(),
        o => panic!("not answered: {o:?}"),
    }
}

fn run(z: &Zone, net: NetId, bytes: &[u8]) -> Outcome {
    handle(
        z,
        net,
        bytes,
        Transport::Udp,
        &mut Cache::new(16),
        Instant::now(),
    )
}

fn addrs(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn names_answer_in_their_network_case_insensitively() {
    let z = zone();
    let m = answer(run(&z, 1, &query("WEB.", RecordType::A)));
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && m.metadata.recursion_available);
    assert_eq!(addrs(&m), ["10.0.0.2"]);
    let m = answer(run(&z, 1, &query("web", RecordType::AAAA)));
    assert_eq!(addrs(&m), ["fd00::2"]);
    let m = answer(run(&z, 1, &query("www.alias.", RecordType::A)));
    assert_eq!(addrs(&m), ["10.0.0.2"]);
    // A name of the network without addresses of that type: no data, not
    // forwarded.
    let m = answer(run(&z, 1, &query("www.alias.", RecordType::AAAA)));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[test]
fn each_vlan_of_a_domain_is_its_own_scope() {
    let mut z = Zone::new();
    let (red, blue) = (net_id(3, 10), net_id(3, 20));
    assert_ne!(red, blue);
    assert_ne!(net_id(3, 10), net_id(10, 3));
    let r1: IpAddr = Ipv4Addr::new(10, 0, 10, 2).into();
    let b1: IpAddr = Ipv4Addr::new(10, 0, 20, 2).into();
    z.insert(red, "r1", &[r1]);
    z.insert(blue, "b1", &[b1]);
    let m = answer(run(&z, red, &query("r1.", RecordType::A)));
    assert_eq!(addrs(&m), ["10.0.10.2"]);
    let m = answer(run(&z, blue, &query("b1.", RecordType::A)));
    assert_eq!(addrs(&m), ["10.0.20.2"]);
    for (net, name) in [(red, "b1."), (blue, "r1."), (net_id(3, 30), "r1.")] {
        assert!(
            matches!(
                run(&z, net, &query(name, RecordType::A)),
                Outcome::Forward(_)
            ),
            "{name} is not a name of scope {net:#x}"
        );
    }
}

#[test]
fn a_name_of_another_network_is_not_answered_there() {
    let z = zone();
    assert!(matches!(
        run(&z, 2, &query("web.", RecordType::A)),
        Outcome::Forward(_)
    ));
    assert!(matches!(
        run(&z, 1, &query("db.", RecordType::A)),
        Outcome::Forward(_)
    ));
    assert!(matches!(
        run(&z, 9, &query("web.", RecordType::A)),
        Outcome::Forward(_)
    ));
}

#[test]
fn reverse_lookups_answer_the_first_name() {
    let z = zone();
    let m = answer(run(
        &z,
        1,
        &query("2.0.0.10.in-addr.arpa.", RecordType::PTR),
    ));
    assert_eq!(addrs(&m), ["web."]);
    let v6 = Name::from(IpAddr::from("fd00::2".parse::<Ipv6Addr>().unwrap()));
    let m = answer(run(&z, 1, &query(&v6.to_ascii(), RecordType::PTR)));
    assert_eq!(addrs(&m), ["web."]);
    // Not ours, or another network's: forwarded.
    assert!(matches!(
        run(&z, 2, &query("2.0.0.10.in-addr.arpa.", RecordType::PTR)),
        Outcome::Forward(_)
    ));
    assert!(matches!(
        run(&z, 1, &query("0.10.in-addr.arpa.", RecordType::PTR)),
        Outcome::Forward(_)
    ));
}

#[test]
fn malformed_packets_are_malformed_and_responses_ignored() {
    let z = zone();
    let good = query("web.", RecordType::A);
    // Truncated anywhere.
    for n in 0..good.len() {
        assert!(
            matches!(run(&z, 1, &good[..n]), Outcome::Malformed),
            "cut at {n}"
        );
    }
    // A compression pointer to itself: a loop.
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert!(matches!(run(&z, 1, &looped), Outcome::Malformed));
    // Counts far larger than the packet.
    let mut huge = good.clone();
    huge[4..12].copy_from_slice(&[0xff; 8]);
    assert!(matches!(run(&z, 1, &huge), Outcome::Malformed));
    // A response is never answered.
    let mut resp = Message::from_vec(&good).unwrap();
    resp.metadata.message_type = MessageType::Response;
    assert!(matches!(
        run(&z, 1, &resp.to_vec().unwrap()),
        Outcome::Ignored
    ));
}

#[test]
fn other_opcodes_and_question_counts_are_refused_with_a_code() {
    let z = zone();
    let mut m = Message::from_vec(&query("web.", RecordType::A)).unwrap();
    m.metadata.op_code = OpCode::Status;
    let r = answer(run(&z, 1, &m.to_vec().unwrap()));
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    let mut m = Message::from_vec(&query("web.", RecordType::A)).unwrap();
    m.add_query(Query::query(
        Name::from_ascii("db.").unwrap(),
        RecordType::A,
    ));
    let r = answer(run(&z, 1, &m.to_vec().unwrap()));
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
}

fn upstream_reply(p: &Pending, id: u16, ttl: u32, n: usize) -> Vec<u8> {
    let q = Message::from_vec(&p.upstream_query(id)).unwrap();
    let mut m = Message::response(id, OpCode::Query);
    m.add_query(q.queries[0].clone());
    for i in 0..n {
        let a = Ipv4Addr::new(192, 0, 2, (i % 250) as u8 + 1);
        m.add_answer(Record::from_rdata(
            q.queries[0].name().clone(),
            ttl,
            RData::A(A(a)),
        ));
    }
    m.to_vec().unwrap()
}

#[test]
fn forwarded_answers_are_checked_readdressed_and_cached() {
    let z = zone();
    let mut cache = Cache::new(16);
    let t0 = Instant::now();
    let Outcome::Forward(p) = handle(
        &z,
        1,
        &query("example.org.", RecordType::A),
        Transport::Udp,
        &mut cache,
        t0,
    ) else {
        panic!("forwarded")
    };
    let up = Message::from_vec(&p.upstream_query(77)).unwrap();
    assert!(up.metadata.recursion_desired);
    assert_eq!(
        up.edns.as_ref().unwrap().max_payload(),
        UPSTREAM_UDP_PAYLOAD
    );
    let reply = upstream_reply(&p, 77, 60, 1);
    assert_eq!(
        p.check_upstream(78, &reply, true).unwrap_err(),
        Reject::Mismatch
    );
    assert_eq!(
        p.check_upstream(77, &reply[..5], true).unwrap_err(),
        Reject::Malformed
    );
    let mut tc = Message::from_vec(&reply).unwrap();
    tc.metadata.truncation = true;
    let tc = tc.to_vec().unwrap();
    assert_eq!(
        p.check_upstream(77, &tc, true).unwrap_err(),
        Reject::Truncated
    );
    assert!(p.check_upstream(77, &tc, false).is_ok(), "over TCP");
    let r = p.check_upstream(77, &reply, true).unwrap();
    let m = Message::from_vec(&p.answer(&r)).unwrap();
    assert_eq!(m.metadata.id, 0x1234, "the client's id");
    assert_eq!(addrs(&m), ["192.0.2.1"]);
    cache.put(&p, &r, t0);
    // Within the TTL: from the cache, TTL lowered.
    let later = t0 + Duration::from_secs(20);
    let q = query("EXAMPLE.org.", RecordType::A);
    let m = answer(handle(&z, 1, &q, Transport::Udp, &mut cache, later));
    assert_eq!(m.answers[0].ttl, 40);
    // Expired: forwarded again.
    let much_later = t0 + Duration::from_secs(61);
    assert!(matches!(
        handle(&z, 1, &q, Transport::Udp, &mut cache, much_later),
        Outcome::Forward(_)
    ));
    assert!(cache.is_empty());
}

#[test]
fn the_cache_is_bounded() {
    let z = zone();
    let mut cache = Cache::new(8);
    let t0 = Instant::now();
    for i in 0..50u64 {
        let name = format!("n{i}.example.");
        let now = t0 + Duration::from_millis(i);
        let Outcome::Forward(p) = handle(
            &z,
            1,
            &query(&name, RecordType::A),
            Transport::Udp,
            &mut cache,
            now,
        ) else {
            panic!()
        };
        let r = p
            .check_upstream(1, &upstream_reply(&p, 1, 100, 1), true)
            .unwrap();
        cache.put(&p, &r, now);
        assert!(cache.len() <= 8);
    }
    assert_eq!(cache.len(), 8);
}

#[test]
fn answers_larger_than_the_client_takes_are_truncated() {
    let z = zone();
    let mut cache = Cache::new(0);
    let Outcome::Forward(p) = handle(
        &z,
        1,
        &query("big.example.", RecordType::A),
        Transport::Udp,
        &mut cache,
        Instant::now(),
    ) else {
        panic!()
    };
    let r = p
        .check_upstream(5, &upstream_reply(&p, 5, 60, 60), false)
        .unwrap();
    let b = p.answer(&r);
    assert!(b.len() <= 512);
    let m = Message::from_vec(&b).unwrap();
    assert!(m.metadata.truncation && m.answers.is_empty());
    // EDNS offering 4096 bytes: at most 1232 are sent (one frame at any
    // MTU from 1280): 60 records fit, 100 do not.
    let mut q = Message::from_vec(&query("big.example.", RecordType::A)).unwrap();
    let mut e = Edns::new();
    e.set_max_payload(4096);
    q.set_edns(e);
    let Outcome::Forward(p4) = handle(
        &z,
        1,
        &q.to_vec().unwrap(),
        Transport::Udp,
        &mut cache,
        Instant::now(),
    ) else {
        panic!()
    };
    let r = p4
        .check_upstream(6, &upstream_reply(&p4, 6, 60, 60), false)
        .unwrap();
    let m = Message::from_vec(&p4.answer(&r)).unwrap();
    assert_eq!(m.answers.len(), 60);
    let r = p4
        .check_upstream(6, &upstream_reply(&p4, 6, 60, 100), false)
        .unwrap();
    let b = p4.answer(&r);
    assert!(b.len() <= MAX_UDP_ANSWER as usize);
    assert!(Message::from_vec(&b).unwrap().metadata.truncation);
    let s = Message::from_vec(&p.servfail()).unwrap();
    assert_eq!(s.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn resolv_conf_and_names() {
    let t = "# c\nsearch x\nnameserver 10.1.1.1\nnameserver fe80::1%eth0\nnameserver nonsense\n";
    let s = resolv_conf_servers(t);
    assert_eq!(
        s,
        vec![
            "10.1.1.1:53".parse().unwrap(),
            "[fe80::1]:53".parse().unwrap()
        ]
    );
    assert!(check_name("web-1.svc").is_ok());
    for bad in ["", "a..b", "a b", &"x".repeat(64), "é"] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}

/// A round-robin name (a `dnsrr` service) answers every address, each
/// answer starting where its query's id says: over many queries every
/// address comes first about as often. Plain names keep their order.
#[test]
fn round_robin_names_rotate_their_answers() {
    let mut z = zone();
    let backends: Vec<IpAddr> = (1..=3)
        .map(|i| Ipv4Addr::new(10, 0, 0, 10 + i).into())
        .collect();
    z.insert_round_robin(1, "svc", &backends);
    let mut first = std::collections::HashMap::new();
    for id in 0..300u16 {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("svc.").unwrap(),
            RecordType::A,
        ));
        let r = answer(run(&z, 1, &m.to_vec().unwrap()));
        let mut got = addrs(&r);
        assert_eq!(got.len(), 3);
        *first.entry(got[0].clone()).or_insert(0) += 1;
        got.sort();
        assert_eq!(got, ["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
    }
    assert_eq!(first.len(), 3);
    assert!(first.values().all(|&n| n == 100), "{first:?}");
    assert!(!z.is_round_robin(1, "web") && z.is_round_robin(1, "SVC"));
}

/// A name with more addresses than a UDP answer holds: over UDP the answer
/// is truncated (TC, no records, within 512 bytes without EDNS); the same
/// query over TCP gets every address.
#[test]
fn many_addresses_truncate_over_udp_and_answer_whole_over_tcp() {
    let mut z = zone();
    let many: Vec<IpAddr> = (1..=100)
        .map(|i| Ipv4Addr::new(10, 9, 0, i).into())
        .collect();
    z.insert(1, "many", &many);
    let q = query("many.", RecordType::A);
    let b = match run(&z, 1, &q) {
        Outcome::Answer(b) => b,
        o => panic!("{o:?}"),
    };
    assert!(b.len() <= 512, "{} bytes", b.len());
    let m = Message::from_vec(&b).unwrap();
    assert!(m.metadata.truncation && m.answers.is_empty());
    assert_eq!(m.metadata.id, 0x1234);
    let o = handle(
        &z,
        1,
        &q,
        Transport::Tcp,
        &mut Cache::new(1),
        Instant::now(),
    );
    let m = answer(o);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100);
    // A name in another network is still not this one's, over TCP too.
    let o = handle(
        &z,
        2,
        &q,
        Transport::Tcp,
        &mut Cache::new(1),
        Instant::now(),
    );
    assert!(matches!(o, Outcome::Forward(_)), "{o:?}");
    // At most MAX_ADDRS records, even over TCP.
    let lots: Vec<IpAddr> = (0..300u32)
        .map(|i| Ipv4Addr::from(0x0a0a_0000 + i).into())
        .collect();
    z.insert(1, "lots", &lots);
    let o = handle(
        &z,
        1,
        &query("lots.", RecordType::A),
        Transport::Tcp,
        &mut Cache::new(1),
        Instant::now(),
    );
    assert_eq!(answer(o).answers.len(), MAX_ADDRS);
}

#[test]
fn tcp_framing_yields_whole_messages_and_refuses_short_ones() {
    let q1 = query("web.", RecordType::A);
    let q2 = query("db.", RecordType::AAAA);
    let mut stream = tcp_frame(&q1).unwrap();
    stream.extend(tcp_frame(&q2).unwrap());
    // Byte by byte: the same two messages, nothing before they are whole.
    let mut f = TcpFramer::new();
    let mut got = Vec::new();
    for b in &stream {
        assert_eq!(f.push(std::slice::from_ref(b)), 1);
        if let Some(m) = f.message() {
            got.push(m.unwrap());
        }
    }
    assert_eq!(got, vec![q1.clone(), q2.clone()]);
    assert!(f.is_empty());
    // All at once: push takes only the first message.
    let n = f.push(&stream);
    assert_eq!(n, q1.len() + 2);
    assert_eq!(f.message(), Some(Ok(q1)));
    f.push(&stream[n..]);
    assert_eq!(f.message(), Some(Ok(q2)));
    assert_eq!(f.message(), None);
    // A zero or too short length is not DNS.
    let mut f = TcpFramer::new();
    f.push(&[0, 0]);
    assert_eq!(f.message(), Some(Err(FrameError::TooShort(0))));
    f.push(&[0, 5, 1, 2, 3, 4, 5]);
    assert_eq!(f.message(), Some(Err(FrameError::TooShort(5))));
    assert!(tcp_frame(&vec![0; 70_000]).is_none());
}
