//! The netlink, namespace and ethtool helpers against the real kernel (root).
//! Results are read back with `ip -j`, independently of the code under test.

use std::net::IpAddr;

use rvs_drivers::netlink::{Netlink, Route};
use rvs_drivers::netns;
use rvs_drivers::testutil::{Link, Netns, ip, root_or_skip, unique};
use serde_json::Value;

fn json(out: std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("ip -j prints JSON")
}

fn link_json(ns: Option<&Netns>, name: &str) -> Value {
    let mut a = vec!["-j", "link", "show", "dev", name];
    if let Some(ns) = ns {
        a.splice(0..0, ["-n", ns.name.as_str()]);
    }
    json(ip(&a))[0].clone()
}

fn addrs(ns: &Netns, dev: &str) -> Vec<String> {
    let v = json(ip(&["-n", &ns.name, "-j", "addr", "show", "dev", dev]));
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] != "link")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn routes(ns: &Netns, six: bool) -> Vec<(String, Option<String>)> {
    let fam = if six { "-6" } else { "-4" };
    json(ip(&["-n", &ns.name, fam, "-j", "route", "show"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dst"].as_str().unwrap().to_string(),
                r["gateway"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn netlink_veth_mtu_mac_up_move_rename_delete() {
    if !root_or_skip("netlink_veth_mtu_mac_up_move_rename_delete") {
        return;
    }
    let ns = Netns::new("nlt");
    let (a, b) = (unique("nla"), unique("nlb"));
    let nl = Netlink::new().unwrap();
    nl.create_veth(&a, &b).unwrap();
    let _cleanup = Link::adopt(&a);
    nl.set_mtu(&a, 1400).unwrap();
    nl.set_mac(&a, [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01])
        .unwrap();
    nl.set_up(&a).unwrap();
    let j = link_json(None, &a);
    assert_eq!(j["mtu"], 1400);
    assert_eq!(j["address"], "02:aa:bb:cc:dd:01");
    assert!(j["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert_eq!(
        nl.ifindex(&a).unwrap() as u64,
        j["ifindex"].as_u64().unwrap()
    );
    let info = nl.link(&a).unwrap();
    assert!(info.up && info.mtu == 1400);

    nl.set_down(&a).unwrap();
    assert!(!nl.link(&a).unwrap().up);

    // By path, as with Docker's /var/run/docker/netns/ID.
    nl.move_to_netns(&b, &format!("/run/netns/{}", ns.name))
        .unwrap();
    assert!(
        nl.find_link(&b).unwrap().is_none(),
        "peer left this namespace"
    );
    Netlink::in_netns(&ns.name, |nl| {
        nl.rename(&b, "eth7")?;
        nl.set_up("eth7")
    })
    .unwrap();
    let j = link_json(Some(&ns), "eth7");
    assert!(j["flags"].as_array().unwrap().iter().any(|f| f == "UP"));

    let e = nl.set_up("rvs-no-such0").unwrap_err();
    assert_eq!(
        e.to_string(),
        "set link rvs-no-such0 up: no such link \"rvs-no-such0\""
    );
    let e = nl.create_veth(&a, &unique("nlc")).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert!(
        e.to_string().starts_with(&format!("create veth {a} peer ")),
        "{e}"
    );

    nl.delete_link(&a).unwrap();
    assert!(nl.find_link(&a).unwrap().is_none());
    let gone = Netlink::in_netns(&ns.name, |nl| nl.find_link("eth7")).unwrap();
    assert!(gone.is_none(), "the peer went with it");
}

#[test]
fn netlink_addresses_and_routes_in_a_namespace() {
    if !root_or_skip("netlink_addresses_and_routes_in_a_namespace") {
        return;
    }
    let ns = Netns::new("nlr");
    let v4: IpAddr = "10.77.0.1".parse().unwrap();
    let v6: IpAddr = "fd00:77::1".parse().unwrap();
    let gw4: IpAddr = "10.77.0.254".parse().unwrap();
    let gw6: IpAddr = "fd00:77::fe".parse().unwrap();
    let net = Route {
        dst: "192.168.77.0".parse().unwrap(),
        prefix: 24,
        via: Some("10.77.0.2".parse().unwrap()),
        dev: None,
    };
    let net6 = Route {
        dst: "2001:db8:77::".parse().unwrap(),
        prefix: 48,
        via: Some(gw6),
        dev: Some("va".into()),
    };
    let onlink = Route {
        dst: "172.31.77.0".parse().unwrap(),
        prefix: 24,
        via: None,
        dev: Some("va".into()),
    };
    Netlink::in_netns(&ns.name, |nl| {
        nl.create_veth("va", "vb")?;
        nl.set_up("va")?;
        nl.set_up("vb")?;
        nl.add_address("va", v4, 24)?;
        nl.add_address("va", v6, 64)?;
        nl.add_route(&Route::default_via(gw4))?;
        nl.add_route(&net)?;
        nl.add_route(&net6)?;
        nl.add_route(&onlink)?;
        let mut got = nl.addresses("va")?;
        got.retain(|(a, _)| !matches!(a, IpAddr::V6(v) if v.segments()[0] == 0xfe80));
        got.sort();
        assert_eq!(got, vec![(v4, 24), (v6, 64)]);
        Ok(())
    })
    .unwrap();
    let mut a = addrs(&ns, "va");
    a.sort();
    assert_eq!(a, vec!["10.77.0.1/24", "fd00:77::1/64"]);
    let r4 = routes(&ns, false);
    assert!(
        r4.contains(&("default".into(), Some("10.77.0.254".into()))),
        "{r4:?}"
    );
    assert!(
        r4.contains(&("192.168.77.0/24".into(), Some("10.77.0.2".into()))),
        "{r4:?}"
    );
    assert!(r4.contains(&("172.31.77.0/24".into(), None)), "{r4:?}");
    let r6 = routes(&ns, true);
    assert!(
        r6.contains(&("2001:db8:77::/48".into(), Some("fd00:77::fe".into()))),
        "{r6:?}"
    );

    Netlink::in_netns(&ns.name, |nl| {
        nl.del_route(&Route::default_via(gw4))?;
        nl.del_route(&net)?;
        nl.del_route(&net6)?;
        nl.del_route(&onlink)?;
        nl.del_address("va", v4, 24)?;
        let e = nl.del_address("va", v4, 24).unwrap_err();
        assert!(e.to_string().contains("no such address"), "{e}");
        Ok(())
    })
    .unwrap();
    let r4 = routes(&ns, false);
    assert!(
        r4.iter()
            .all(|(d, _)| d != "default" && d != "192.168.77.0/24"),
        "{r4:?}"
    );
    assert!(!r4.iter().any(|(d, _)| d == "172.31.77.0/24"), "{r4:?}");
    assert!(
        !routes(&ns, true)
            .iter()
            .any(|(d, _)| d == "2001:db8:77::/48")
    );
    assert_eq!(addrs(&ns, "va"), vec!["fd00:77::1/64"]);
}

#[test]
fn netns_create_enter_delete_named() {
    if !root_or_skip("netns_create_enter_delete_named") {
        return;
    }
    let name = unique("nsx");
    let path = netns::create_named(&name).unwrap();
    // Remove it even if an assertion below fails.
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = netns::delete_named(&self.0);
        }
    }
    let guard = Del(name.clone());
    let listed = String::from_utf8(ip(&["netns", "list"]).stdout).unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&name)),
        "{listed}"
    );
    let me = netns::netns_inode(std::path::Path::new("/proc/thread-self/ns/net")).unwrap();
    let target = netns::netns_inode(&path).unwrap();
    assert_ne!(me, target, "a new namespace");
    let inside = netns::in_netns(&name, || {
        netns::netns_inode(std::path::Path::new("/proc/thread-self/ns/net")).unwrap()
    })
    .unwrap();
    assert_eq!(inside, target, "the closure ran inside it");
    let after = netns::netns_inode(std::path::Path::new("/proc/thread-self/ns/net")).unwrap();
    assert_eq!(after, me, "the caller's thread never moved");
    // `ip` sees only a loopback in it.
    let links = json(ip(&["-n", &name, "-j", "link", "show"]));
    assert_eq!(links.as_array().unwrap().len(), 1);
    assert!(netns::create_named(&name).is_err(), "exists already");
    drop(guard);
    assert!(!path.exists());
    let listed = String::from_utf8(ip(&["netns", "list"]).stdout).unwrap();
    assert!(!listed.contains(&name), "{listed}");
}

#[test]
fn ethtool_turns_veth_tx_checksum_off_and_on() {
    if !root_or_skip("ethtool_turns_veth_tx_checksum_off_and_on") {
        return;
    }
    use rvs_drivers::ethtool;
    let (host, _peer) = Link::veth("eth", None);
    assert!(
        ethtool::tx_checksum(&host.name).unwrap(),
        "veth starts with tx csum on"
    );
    ethtool::set_tx_checksum(&host.name, false).unwrap();
    assert!(!ethtool::tx_checksum(&host.name).unwrap());
    ethtool::set_tx_checksum(&host.name, true).unwrap();
    assert!(ethtool::tx_checksum(&host.name).unwrap());
}
