//! Driver unit tests: commit failures, fabric failures, naming.

use std::sync::Arc;

use super::driver::{Driver, NewEndpoint};
use crate::fabric::{FabricCall, MemoryFabric};
use crate::ipam::AddressKind;
use crate::ipam::IpamConfig;
use crate::model::{DEFAULT_MTU, Network, NetworkKind, PortType, Subnet};
use crate::store::Store;

fn driver() -> (Driver, Arc<MemoryFabric>) {
    let f = Arc::new(MemoryFabric::new());
    let d = Driver::open(
        Store::in_memory().unwrap(),
        f.clone(),
        IpamConfig::default(),
    )
    .unwrap();
    (d, f)
}

fn net(id: &str) -> Network {
    Network {
        id: id.into(),
        name: id.into(),
        kind: NetworkKind::Bridge,
        subnets: vec![Subnet {
            pool: "10.1.0.0/24".parse().unwrap(),
            gateway: Some("10.1.0.1".parse().unwrap()),
            address_space: "rvs-local".into(),
        }],
        internal: false,
        enable_ipv6: false,
        mtu: DEFAULT_MTU,
        port_type: PortType::Tap,
        port_security: true,
        routing: true,
        options: Default::default(),
        labels: Default::default(),
    }
}

#[test]
fn failed_commits_leave_memory_and_fabric_as_they_were() {
    let (d, f) = driver();
    let (id, _) = d
        .request_pool(
            "rvs-local",
            Some("10.1.0.0/24".parse().unwrap()),
            None,
            false,
        )
        .unwrap();
    d.store().db().inject_write_failures(true);
    assert!(d.request_address(&id, None, AddressKind::Gateway).is_err());
    assert!(d.release_pool(&id).is_err());
    assert!(d.create_network(net("n1")).is_err());
    assert!(f.networks().is_empty(), "the fabric network was undone");
    assert_eq!(
        f.calls(),
        vec![
            FabricCall::CreateNetwork("n1".into()),
            FabricCall::DeleteNetwork("n1".into())
        ]
    );
    d.store().db().inject_write_failures(false);
    // Nothing was allocated by the failed call: the gateway is still .1.
    let gw = d.request_address(&id, None, AddressKind::Gateway).unwrap();
    assert_eq!(gw.to_string(), "10.1.0.1/24");
    d.create_network(net("n1")).unwrap();
    d.store().db().inject_write_failures(true);
    let req = NewEndpoint {
        id: "e1".into(),
        network_id: "n1".into(),
        mac: None,
        ipv4: Some("10.1.0.2/24".parse().unwrap()),
        ipv6: None,
    };
    assert!(d.create_endpoint(req.clone()).is_err());
    assert!(f.endpoints().is_empty(), "the fabric endpoint was undone");
    d.store().db().inject_write_failures(false);
    d.create_endpoint(req).unwrap();
    assert_eq!(d.snapshot(), d.store().load().unwrap());
}

#[test]
fn fabric_failure_reaches_the_caller_and_stores_nothing() {
    let (d, f) = driver();
    f.fail_next("create_network");
    let e = d.create_network(net("n1")).unwrap_err().to_string();
    assert_eq!(e, "rvswitch data plane: create_network: injected failure");
    assert!(d.store().load().unwrap().networks.is_empty());
    d.create_network(net("n1")).unwrap();
}

#[test]
fn endpoints_sharing_an_id_prefix_get_distinct_names() {
    let (d, _) = driver();
    let mut n = net("n1");
    n.port_type = PortType::Afxdp;
    d.create_network(n).unwrap();
    let mk = |id: &str, ip: &str| NewEndpoint {
        id: id.into(),
        network_id: "n1".into(),
        mac: None,
        ipv4: Some(ip.parse().unwrap()),
        ipv6: None,
    };
    let a = d
        .create_endpoint(mk("4f8681690000", "10.1.0.2/24"))
        .unwrap();
    let b = d
        .create_endpoint(mk("4f868169ffff", "10.1.0.3/24"))
        .unwrap();
    assert_eq!(a.ifaces.sandbox, "rvc4f868169");
    assert_ne!(a.ifaces.sandbox, b.ifaces.sandbox);
    assert_ne!(a.ifaces.host, b.ifaces.host);
    assert_ne!(a.ifaces.port, b.ifaces.port);
    assert!(
        a.ifaces.host.is_some(),
        "AF_XDP ports have a host-side veth end"
    );
    assert_ne!(a.mac, b.mac);
}

#[test]
fn tap_endpoints_have_no_host_side_interface() {
    let (d, _) = driver();
    d.create_network(net("n1")).unwrap();
    for (id, ip) in [("e1", "10.1.0.2/24"), ("e2", "10.1.0.3/24")] {
        let e = d
            .create_endpoint(NewEndpoint {
                id: id.into(),
                network_id: "n1".into(),
                mac: None,
                ipv4: Some(ip.parse().unwrap()),
                ipv6: None,
            })
            .unwrap();
        assert_eq!(e.ifaces.host, None);
    }
}

#[test]
fn the_periodic_sweep_removes_only_what_two_rounds_missed() {
    use super::driver::Sweeper;
    let (d, f) = driver();
    d.create_network(net("keep")).unwrap();
    let mut lost = net("lost");
    lost.subnets[0].pool = "10.2.0.0/24".parse().unwrap();
    lost.subnets[0].gateway = Some("10.2.0.1".parse().unwrap());
    d.create_network(lost).unwrap();
    let mut s = Sweeper::default();
    let engine = ["keep".to_string()];
    // First round: "lost" is only a suspect.
    assert_eq!(
        s.round(&d, &engine, &[]).unwrap().networks,
        Vec::<String>::new()
    );
    assert!(d.network("lost").is_some());
    // A network made between rounds is not taken by the second round.
    let mut fresh = net("fresh");
    fresh.subnets[0].pool = "10.3.0.0/24".parse().unwrap();
    fresh.subnets[0].gateway = Some("10.3.0.1".parse().unwrap());
    d.create_network(fresh).unwrap();
    let removed = s.round(&d, &engine, &[]).unwrap();
    assert_eq!(removed.networks, ["lost".to_string()]);
    assert!(d.network("lost").is_none() && d.network("fresh").is_some());
    assert!(d.network("keep").is_some());
    assert!(
        f.calls()
            .contains(&FabricCall::DeleteNetwork("lost".into()))
    );
    // The engine lists "fresh" now: nothing more goes.
    let engine = ["keep".to_string(), "fresh".to_string()];
    assert_eq!(s.round(&d, &engine, &[]).unwrap(), Default::default());
    assert!(d.network("fresh").is_some());
}

#[test]
fn one_network_per_parent_and_vlan() {
    let (d, f) = driver();
    let on = |id: &str, parent: &str| {
        let mut n = net(id);
        n.routing = false;
        let p: crate::Parent = parent.parse().unwrap();
        n.kind = match p.vid {
            Some(vid) => NetworkKind::Vlan { vid },
            None => NetworkKind::Bridge,
        };
        n.options
            .insert(super::options::PARENT.into(), parent.into());
        n
    };
    d.create_network(on("n10", "eth0.10")).unwrap();
    d.create_network(on("n20", "eth0.20")).unwrap();
    d.create_network(on("nu", "eth0")).unwrap();
    // The same VID on another interface, and a VLAN network of the switch's
    // own with that VID, are other segments.
    d.create_network(on("m10", "eth1.10")).unwrap();
    let mut v = net("v10");
    v.kind = NetworkKind::Vlan { vid: 10 };
    d.create_network(v).unwrap();
    let calls = f.calls().len();
    for (id, parent) in [("x10", "eth0.10"), ("xu", "eth0")] {
        let e = d.create_network(on(id, parent)).unwrap_err().to_string();
        assert!(e.contains(&format!("already on parent {parent}")), "{e}");
    }
    assert_eq!(f.calls().len(), calls, "refused before the fabric");
    assert_eq!(f.networks().len(), 5);
}
