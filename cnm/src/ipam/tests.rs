//! IPAM policy tests: pool choice, overlap, gateway, exhaustion, and the
//! property that no address is handed out twice.

use super::*;
use proptest::prelude::*;

fn c(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn ipam() -> Ipam {
    Ipam::new(IpamConfig::default())
}

#[test]
fn chooses_default_pools_in_order_and_skips_used_and_reserved() {
    let mut cfg = IpamConfig::default();
    cfg.reserved.push(c("172.17.0.0/16"));
    let mut i = Ipam::new(cfg);
    let a = i
        .request_pool("rvs-local", None, None, false)
        .unwrap()
        .prefix;
    assert_eq!(a, c("172.18.0.0/16"));
    let b = i
        .request_pool("rvs-local", None, None, false)
        .unwrap()
        .prefix;
    assert_eq!(b, c("172.19.0.0/16"));
    // Another address space is independent.
    let g = i.request_pool("rvs-global", None, None, false).unwrap();
    assert_eq!(g.prefix, c("172.18.0.0/16"));
    let v6 = i.request_pool("rvs-local", None, None, true).unwrap();
    assert_eq!(v6.prefix, c("fd72:7673:7700::/64"));
    assert_eq!(v6.id, "rvs-local/fd72:7673:7700::/64");
    let e = i.request_pool("nope", None, None, false).unwrap_err();
    assert!(e.to_string().contains("rvs-local"), "{e}");
}

#[test]
fn explicit_pools_overlap_and_family_checks() {
    let mut i = ipam();
    i.request_pool("rvs-local", Some(c("10.1.0.0/16")), None, false)
        .unwrap();
    let e = i
        .request_pool("rvs-local", Some(c("10.1.2.0/24")), None, false)
        .unwrap_err();
    assert!(matches!(e, IpamError::Overlap { .. }), "{e}");
    let e = i
        .request_pool("rvs-local", Some(c("fd00::/64")), None, false)
        .unwrap_err();
    assert!(matches!(e, IpamError::Family { .. }), "{e}");
    let e = i
        .request_pool(
            "rvs-local",
            Some(c("10.2.0.0/24")),
            Some(c("10.3.0.0/25")),
            false,
        )
        .unwrap_err();
    assert!(matches!(e, IpamError::SubPool { .. }), "{e}");
}

#[test]
fn exhausted_default_list_is_a_clear_error() {
    let cfg = IpamConfig {
        default_v4: vec![PoolTemplate {
            base: c("10.9.0.0/23"),
            size: 24,
        }],
        ..IpamConfig::default()
    };
    let mut i = Ipam::new(cfg);
    i.request_pool("rvs-local", None, None, false).unwrap();
    i.request_pool("rvs-local", None, None, false).unwrap();
    let e = i.request_pool("rvs-local", None, None, false).unwrap_err();
    assert!(e.to_string().contains("10.9.0.0/23 in /24"), "{e}");
}

#[test]
fn gateway_then_hosts_then_exhaustion() {
    let mut i = ipam();
    let id = i
        .request_pool("rvs-local", Some(c("10.1.2.0/30")), None, false)
        .unwrap()
        .id
        .clone();
    let gw = i.request_address(&id, None, AddressKind::Gateway).unwrap();
    assert_eq!(gw, c("10.1.2.1/30"));
    assert_eq!(i.pool(&id).unwrap().gateway, Some(gw.addr));
    let h = i.request_address(&id, None, AddressKind::Host).unwrap();
    assert_eq!(h, c("10.1.2.2/30"));
    let e = i.request_address(&id, None, AddressKind::Host).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pool 10.1.2.0/30 has no free address (2 of 2 usable addresses in use): \
         release one or use a larger --subnet"
    );
    assert!(i.release_address(&id, h.addr).unwrap());
    assert!(!i.release_address(&id, h.addr).unwrap());
    assert_eq!(i.request_address(&id, None, AddressKind::Host).unwrap(), h);
    let e = i
        .request_address(&id, Some("10.1.2.3".parse().unwrap()), AddressKind::Host)
        .unwrap_err();
    assert!(matches!(e, IpamError::Unusable { .. }), "{e}");
    let e = i
        .request_address(&id, Some(h.addr), AddressKind::Host)
        .unwrap_err();
    assert!(matches!(e, IpamError::InUse { .. }), "{e}");
    assert!(i.release_pool(&id));
    assert!(!i.release_pool(&id));
    assert!(matches!(
        i.request_address(&id, None, AddressKind::Host),
        Err(IpamError::UnknownPool { .. })
    ));
}

#[test]
fn sub_pool_limits_hosts_not_gateway_and_v6_skips_anycast() {
    let mut i = ipam();
    let id = i
        .request_pool(
            "rvs-local",
            Some(c("10.5.0.0/24")),
            Some(c("10.5.0.128/25")),
            false,
        )
        .unwrap()
        .id
        .clone();
    assert_eq!(id, "rvs-local/10.5.0.0/24/10.5.0.128/25");
    let gw = i.request_address(&id, None, AddressKind::Gateway).unwrap();
    assert_eq!(gw, c("10.5.0.1/24"));
    let h = i.request_address(&id, None, AddressKind::Host).unwrap();
    assert_eq!(h, c("10.5.0.128/24"));
    let id6 = i
        .request_pool("rvs-local", Some(c("fd00:1::/64")), None, true)
        .unwrap()
        .id
        .clone();
    let a = i.request_address(&id6, None, AddressKind::Host).unwrap();
    assert_eq!(a, c("fd00:1::1/64"));
}

#[test]
fn records_round_trip() {
    let mut i = ipam();
    let id = i
        .request_pool("rvs-local", Some(c("10.1.0.0/24")), None, false)
        .unwrap()
        .id
        .clone();
    i.request_address(&id, None, AddressKind::Gateway).unwrap();
    for _ in 0..5 {
        i.request_address(&id, None, AddressKind::Host).unwrap();
    }
    i.release_address(&id, "10.1.0.3".parse().unwrap()).unwrap();
    let rec = i.pool(&id).unwrap().record();
    assert_eq!(rec.allocated.len(), 2);
    let back = Pool::from_record(&rec);
    assert_eq!(&back, i.pool(&id).unwrap());
}

proptest! {
    /// Under any sequence of requests and releases, no address is
    /// handed out twice, every address is usable, exhaustion happens
    /// only when every usable address is taken, and released
    /// addresses can be allocated again.
    #[test]
    fn never_hands_out_an_address_twice(
        len in 26u8..=30,
        ops in proptest::collection::vec((any::<bool>(), any::<u8>()), 1..300),
    ) {
        let mut i = ipam();
        let pool = Cidr::parse_prefix(&format!("10.7.0.0/{len}")).unwrap();
        let id = i.request_pool("rvs-local", Some(pool), None, false).unwrap().id.clone();
        let usable = (1u128 << (32 - len)) - 2;
        let mut held: Vec<IpAddr> = Vec::new();
        for (alloc, pick) in ops {
            if alloc || held.is_empty() {
                match i.request_address(&id, None, AddressKind::Host) {
                    Ok(a) => {
                        prop_assert!(!held.contains(&a.addr), "{} handed out twice", a);
                        prop_assert!(usable_in(&pool, a.addr));
                        held.push(a.addr);
                    }
                    Err(IpamError::Exhausted { used, .. }) => {
                        prop_assert_eq!(held.len() as u128, usable);
                        prop_assert_eq!(used, usable);
                    }
                    Err(e) => prop_assert!(false, "unexpected {}", e),
                }
            } else {
                let ip = held.swap_remove(usize::from(pick) % held.len());
                prop_assert!(i.release_address(&id, ip).unwrap());
                // The released address is free again: asking for it works.
                let again = i.request_address(&id, Some(ip), AddressKind::Host).unwrap();
                prop_assert_eq!(again.addr, ip);
                prop_assert!(i.release_address(&id, ip).unwrap());
            }
            prop_assert_eq!(i.pool(&id).unwrap().used(), held.len() as u128);
        }
    }
}
