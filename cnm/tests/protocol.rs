//! The Docker remote driver protocol, end to end through the axum router:
//! every request a real Docker 20.10 engine sent (`tests/data/*.jsonl`,
//! copies of `shared/docker/`) replayed in order, with the answers checked
//! for shape and consistency, plus malformed bodies, unknown ids, repeated
//! calls, pool exhaustion and a restart in the middle of the recording.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use common::{Call, Harness, TempDir, recording_ipam, transcript};
use rvs_cnm::Store;
use rvs_cnm::fabric::FabricCall;
use rvs_switch::MacAddr;
use serde_json::{Value, json};

/// What the replay learned and checks across calls.
#[derive(Default)]
struct Replay {
    /// Recorded PoolID → ours (the stand-in named its pools differently).
    pool_ids: BTreeMap<String, String>,
    /// Network id → (IPv4 gateway, internal).
    networks: BTreeMap<String, (Option<String>, bool)>,
    /// Endpoint id → (network, MAC we returned).
    endpoints: BTreeMap<String, (String, String)>,
    src_names: BTreeSet<String>,
}

fn substitute(v: &Value, map: &BTreeMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(map.get(s).cloned().unwrap_or_else(|| s.clone())),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, map)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), substitute(x, map)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn bare(cidr: &str) -> String {
    cidr.split('/').next().unwrap().to_string()
}

impl Replay {
    fn run(&mut self, h: &Harness, calls: &[Call]) {
        for c in calls {
            let req = substitute(&c.request, &self.pool_ids);
            let got = h.ok(&c.path, &req);
            self.check(c, &req, &got);
        }
    }

    fn check(&mut self, c: &Call, req: &Value, got: &Value) {
        let rec = &c.response;
        match c.path.as_str() {
            "/Plugin.Activate" => {
                assert_eq!(got, &json!({"Implements": ["NetworkDriver", "IpamDriver"]}));
            }
            "/NetworkDriver.GetCapabilities" => {
                assert_eq!(
                    got,
                    &json!({"Scope": "local", "ConnectivityScope": "local"})
                );
            }
            "/IpamDriver.GetCapabilities" => {
                assert_eq!(got["RequiresMACAddress"], json!(false));
            }
            "/IpamDriver.GetDefaultAddressSpaces" => {
                // The recorded engine then used these names in RequestPool.
                assert_eq!(got, rec);
            }
            "/IpamDriver.RequestPool" => {
                assert_eq!(got["Pool"], rec["Pool"], "same choice as the recording");
                let ours = got["PoolID"].as_str().unwrap().to_string();
                self.pool_ids
                    .insert(rec["PoolID"].as_str().unwrap().to_string(), ours);
            }
            "/IpamDriver.RequestAddress" => {
                assert_eq!(
                    got["Address"], rec["Address"],
                    "same address as the recording"
                );
            }
            "/NetworkDriver.CreateNetwork" => {
                let gw = req["IPv4Data"][0]["Gateway"].as_str().map(bare);
                let internal = req["Options"]["com.docker.network.internal"] == json!(true);
                let id = req["NetworkID"].as_str().unwrap().to_string();
                self.networks.insert(id, (gw, internal));
                assert_eq!(got, &json!({}));
            }
            "/NetworkDriver.CreateEndpoint" => {
                let id = req["EndpointID"].as_str().unwrap().to_string();
                let net = req["NetworkID"].as_str().unwrap().to_string();
                assert_eq!(req["Interface"]["MacAddress"], json!(""));
                let mac = got["Interface"]["MacAddress"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no MAC returned: {got}"));
                let m: MacAddr = mac.parse().unwrap();
                assert!(
                    m.is_valid_source() && m.0[0] & 0x02 != 0,
                    "{m} is not local unicast"
                );
                assert!(
                    got["Interface"].get("Address").is_none(),
                    "the engine refuses a changed address"
                );
                assert!(
                    self.endpoints.values().all(|(_, other)| other != mac),
                    "MAC {mac} handed out twice"
                );
                self.endpoints.insert(id, (net, mac.to_string()));
            }
            "/NetworkDriver.Join" => {
                let id = req["EndpointID"].as_str().unwrap();
                let net = req["NetworkID"].as_str().unwrap();
                let src = got["InterfaceName"]["SrcName"].as_str().unwrap();
                assert_eq!(got["InterfaceName"]["DstPrefix"], json!("eth"));
                assert_eq!(src, format!("rvc{}", &id[..8]));
                assert!(src.len() <= 15);
                assert!(self.src_names.insert(src.to_string()), "{src} used twice");
                let (gw, internal) = self.networks[net].clone();
                if internal {
                    assert!(got.get("Gateway").is_none(), "internal: no default route");
                    assert_eq!(got["DisableGatewayService"], json!(true));
                } else {
                    assert_eq!(got["Gateway"].as_str().map(str::to_string), gw);
                    assert_eq!(got["Gateway"], rec["Gateway"]);
                    assert!(got.get("DisableGatewayService").is_none());
                }
            }
            "/NetworkDriver.EndpointOperInfo" => {
                let id = req["EndpointID"].as_str().unwrap();
                let (_, mac) = &self.endpoints[id];
                assert_eq!(
                    got["Value"]["com.docker.network.endpoint.macaddress"],
                    json!(mac)
                );
            }
            _ => assert_eq!(got, &json!({}), "{}", c.path),
        }
    }
}

#[test]
fn replays_the_recorded_session() {
    let Some(calls) = transcript("transcript.jsonl") else {
        return;
    };
    let h = Harness::memory();
    let mut r = Replay::default();
    r.run(&h, &calls);
    assert_eq!(r.endpoints.len(), 4);
    assert_eq!(r.networks.len(), 3);
    // The session tore everything down: nothing is left anywhere.
    let snap = h.driver.snapshot();
    assert!(
        snap.networks.is_empty() && snap.endpoints.is_empty(),
        "{snap:?}"
    );
    assert!(snap.pools.is_empty(), "{:?}", snap.pools);
    assert!(h.fabric.networks().is_empty() && h.fabric.endpoints().is_empty());
    // Each endpoint went through the fabric once: created, joined, deleted.
    let calls = h.fabric.calls();
    let count = |f: fn(&FabricCall) -> bool| calls.iter().filter(|c| f(c)).count();
    assert_eq!(count(|c| matches!(c, FabricCall::CreateEndpoint(_))), 4);
    assert_eq!(count(|c| matches!(c, FabricCall::Join(..))), 4);
    assert_eq!(count(|c| matches!(c, FabricCall::Leave(_))), 4);
    assert_eq!(count(|c| matches!(c, FabricCall::DeleteNetwork(_))), 3);
    // `-p 8080:80` was published for its endpoint and unpublished again.
    let published: Vec<_> = calls
        .iter()
        .filter_map(|c| match c {
            FabricCall::Publish(ep, ports) => Some((ep[..8].to_string(), ports.clone())),
            _ => None,
        })
        .collect();
    assert!(
        published.contains(&("64d06100".into(), vec![8080])),
        "{published:?}"
    );
    assert!(
        h.fabric.published().is_empty(),
        "{:?}",
        h.fabric.published()
    );
}

#[test]
fn the_error_session_then_a_restart_without_delete_network() {
    let Some(calls) = transcript("transcript-error.jsonl") else {
        return;
    };
    let dir = TempDir::new("err-session");
    {
        let h = Harness::new(Store::open(&dir.0).unwrap(), recording_ipam());
        // The stand-in refused CreateEndpoint on purpose; we accept it.
        Replay::default().run(&h, &calls);
        assert_eq!(h.driver.snapshot().endpoints.len(), 1);
    }
    // The plugin died; `docker network rm te1` succeeded without reaching
    // us. After the restart, reconciling with the engine frees it all.
    let h = Harness::new(Store::open(&dir.0).unwrap(), recording_ipam());
    assert!(h.driver.replay().is_empty());
    assert_eq!(h.fabric.endpoints().len(), 1);
    let o = h.driver.reconcile(&[], None).unwrap();
    assert_eq!(
        o.networks,
        vec![calls[0].request["NetworkID"].as_str().unwrap()]
    );
    assert_eq!(o.endpoints.len(), 1);
    assert!(h.fabric.networks().is_empty() && h.fabric.endpoints().is_empty());
    drop(h);
    let h2 = Harness::new(Store::open(&dir.0).unwrap(), recording_ipam());
    assert!(
        h2.driver.snapshot().networks.is_empty(),
        "the cleanup was committed"
    );
}

#[test]
fn a_restart_mid_session_loses_nothing_acknowledged() {
    let Some(calls) = transcript("transcript.jsonl") else {
        return;
    };
    // Cut after tc2 joined tn3 (everything created, nothing torn down yet).
    let cut = calls
        .iter()
        .position(|c| c.path == "/NetworkDriver.Leave")
        .unwrap();
    let dir = TempDir::new("restart");
    let mut r = Replay::default();
    let before = {
        let h = Harness::new(Store::open(&dir.0).unwrap(), recording_ipam());
        r.run(&h, &calls[..cut]);
        h.driver.snapshot()
    };
    assert_eq!(before.endpoints.len(), 4);
    let h = Harness::new(Store::open(&dir.0).unwrap(), recording_ipam());
    assert_eq!(h.driver.snapshot(), before);
    assert!(h.driver.replay().is_empty());
    assert_eq!(h.fabric.networks().len(), 3);
    assert_eq!(h.fabric.joined().len(), 4);
    r.run(&h, &calls[cut..]);
    assert!(h.driver.snapshot().networks.is_empty());
    assert!(h.driver.snapshot().pools.is_empty());
}

fn network(id: &str, generic: Value, pool: &str, gw: &str) -> Value {
    json!({
        "NetworkID": id,
        "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": generic},
        "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": gw, "Pool": pool}],
        "IPv6Data": []
    })
}

fn endpoint(net: &str, id: &str, addr: &str) -> Value {
    json!({"NetworkID": net, "EndpointID": id,
           "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""}, "Options": {}})
}

#[test]
fn malformed_bodies_are_clear_errors() {
    let h = Harness::memory();
    for body in [
        &b"{not json"[..],
        b"",
        b"  \n",
        b"\"text\"",
        br#"{"NetworkID": 5}"#,
    ] {
        let (status, v) = h.raw("/NetworkDriver.CreateNetwork", body);
        assert_eq!(status, StatusCode::OK);
        let e = v["Err"].as_str().unwrap();
        assert!(
            e.starts_with("malformed NetworkDriver.CreateNetwork request"),
            "{e}"
        );
    }
    let e = h.err("/NetworkDriver.CreateNetwork", &json!({"NetworkID": ""}));
    assert!(e.contains("invalid network id"), "{e}");
    let e = h.err(
        "/NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": "n", "EndpointID": "e", "Interface": {"Address": "10.0.0.2"}}),
    );
    assert!(e.contains("Interface.Address"), "{e}");
    let e = h.err(
        "/NetworkDriver.CreateNetwork",
        &network(
            "n1",
            json!({"rvswitch.vlan": "9999"}),
            "10.0.0.0/24",
            "10.0.0.1/24",
        ),
    );
    assert_eq!(e, "option rvswitch.vlan=9999: expected a VLAN id 1-4094");
    let e = h.err(
        "/IpamDriver.RequestPool",
        &json!({"AddressSpace": "rvs-local", "Pool": "10.0.0.1/24"}),
    );
    assert!(e.contains("did you mean 10.0.0.0/24"), "{e}");
    // Calls without arguments ignore whatever body they get.
    assert_eq!(h.raw("/Plugin.Activate", b"garbage").0, StatusCode::OK);
}

#[test]
fn unknown_ids_fail_or_succeed_as_the_engine_expects() {
    let h = Harness::memory();
    let e = h.err(
        "/NetworkDriver.CreateEndpoint",
        &endpoint("nope", "e1", "10.0.0.2/24"),
    );
    assert!(e.contains("network nope is not known to rvswitch"), "{e}");
    h.ok(
        "/NetworkDriver.CreateNetwork",
        &network("n1", json!({}), "10.0.0.0/24", "10.0.0.1/24"),
    );
    let ep = json!({"NetworkID": "n1", "EndpointID": "ghost"});
    let e = h.err(
        "/NetworkDriver.Join",
        &json!({"NetworkID": "n1", "EndpointID": "ghost", "SandboxKey": "/var/run/docker/netns/x"}),
    );
    assert_eq!(e, "endpoint ghost is not known on network n1");
    assert!(
        h.err("/NetworkDriver.EndpointOperInfo", &ep)
            .contains("ghost")
    );
    assert!(
        h.err("/NetworkDriver.ProgramExternalConnectivity", &ep)
            .contains("ghost")
    );
    let e = h.err(
        "/IpamDriver.RequestAddress",
        &json!({"PoolID": "rvs-local/1.2.3.0/24", "Address": "", "Options": null}),
    );
    assert!(e.contains("does not exist"), "{e}");
    // Deleting, leaving and releasing what is not there: already done.
    for (path, body) in [
        ("/NetworkDriver.DeleteEndpoint", ep.clone()),
        ("/NetworkDriver.Leave", ep.clone()),
        ("/NetworkDriver.RevokeExternalConnectivity", ep.clone()),
        ("/NetworkDriver.DeleteNetwork", json!({"NetworkID": "nope"})),
        (
            "/IpamDriver.ReleasePool",
            json!({"PoolID": "rvs-local/1.2.3.0/24"}),
        ),
        (
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": "rvs-local/1.2.3.0/24", "Address": "1.2.3.4"}),
        ),
    ] {
        assert_eq!(h.ok(path, &body), json!({}), "{path}");
    }
    let (status, v) = h.raw("/NetworkDriver.GwAllocCheck", b"{}");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v["Err"].as_str().unwrap().contains("does not implement"));
}

#[test]
fn repeated_calls_get_the_same_answer() {
    let h = Harness::memory();
    let n = network(
        "n1",
        json!({"rvswitch.kind": "vlan", "rvswitch.vlan": "10"}),
        "10.0.0.0/24",
        "10.0.0.1/24",
    );
    h.ok("/NetworkDriver.CreateNetwork", &n);
    h.ok("/NetworkDriver.CreateNetwork", &n);
    let other = network("n1", json!({}), "10.0.0.0/24", "10.0.0.1/24");
    let e = h.err("/NetworkDriver.CreateNetwork", &other);
    assert!(e.contains("already exists with other settings"), "{e}");
    let clash = network(
        "n2",
        json!({"rvswitch.vlan": "10"}),
        "10.9.0.0/24",
        "10.9.0.1/24",
    );
    assert!(
        h.err("/NetworkDriver.CreateNetwork", &clash)
            .contains("already uses VLAN 10")
    );
    let a = h.ok(
        "/NetworkDriver.CreateEndpoint",
        &endpoint("n1", "e1", "10.0.0.2/24"),
    );
    let b = h.ok(
        "/NetworkDriver.CreateEndpoint",
        &endpoint("n1", "e1", "10.0.0.2/24"),
    );
    assert_eq!(a, b);
    let e = h.err(
        "/NetworkDriver.CreateEndpoint",
        &endpoint("n1", "e1", "10.0.0.3/24"),
    );
    assert!(e.contains("already exists"), "{e}");
    let e = h.err(
        "/NetworkDriver.CreateEndpoint",
        &endpoint("n1", "e2", "10.0.0.2/24"),
    );
    assert!(e.contains("already used by endpoint e1"), "{e}");
    let join = json!({"NetworkID": "n1", "EndpointID": "e1", "SandboxKey": "/var/run/docker/netns/abc", "Options": {}});
    let j1 = h.ok("/NetworkDriver.Join", &join);
    assert_eq!(h.ok("/NetworkDriver.Join", &join), j1);
    let mut elsewhere = join.clone();
    elsewhere["SandboxKey"] = json!("/var/run/docker/netns/other");
    assert!(
        h.err("/NetworkDriver.Join", &elsewhere)
            .contains("leave it first")
    );
    let ep = json!({"NetworkID": "n1", "EndpointID": "e1"});
    for _ in 0..2 {
        h.ok("/NetworkDriver.Leave", &ep);
    }
    for _ in 0..2 {
        h.ok("/NetworkDriver.DeleteEndpoint", &ep);
    }
    for _ in 0..2 {
        h.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": "n1"}));
    }
    let calls = h.fabric.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, FabricCall::CreateNetwork(_)))
            .count(),
        1
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, FabricCall::Join(..)))
            .count(),
        1
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, FabricCall::DeleteEndpoint(_)))
            .count(),
        1
    );
}

#[test]
fn a_mac_from_the_engine_is_kept_and_not_echoed() {
    let h = Harness::memory();
    h.ok(
        "/NetworkDriver.CreateNetwork",
        &network("n1", json!({}), "10.0.0.0/24", "10.0.0.1/24"),
    );
    let mut e = endpoint("n1", "e1", "10.0.0.2/24");
    e["Interface"]["MacAddress"] = json!("02:42:0a:00:00:02");
    assert_eq!(h.ok("/NetworkDriver.CreateEndpoint", &e), json!({}));
    let info = h.ok(
        "/NetworkDriver.EndpointOperInfo",
        &json!({"NetworkID": "n1", "EndpointID": "e1"}),
    );
    assert_eq!(
        info["Value"]["com.docker.network.endpoint.macaddress"],
        json!("02:42:0a:00:00:02")
    );
    let mut dup = endpoint("n1", "e2", "10.0.0.3/24");
    dup["Interface"]["MacAddress"] = json!("02:42:0a:00:00:02");
    assert!(
        h.err("/NetworkDriver.CreateEndpoint", &dup)
            .contains("MAC 02:42:0a:00:00:02 is already used")
    );
}

#[test]
fn pool_exhaustion_reaches_the_caller() {
    let h = Harness::memory();
    let p = h.ok(
        "/IpamDriver.RequestPool",
        &json!({"AddressSpace": "rvs-local", "Pool": "10.1.2.0/30", "SubPool": "", "Options": {}, "V6": false}),
    );
    let id = p["PoolID"].clone();
    let gw = h.ok(
        "/IpamDriver.RequestAddress",
        &json!({"PoolID": id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    assert_eq!(gw["Address"], json!("10.1.2.1/30"));
    let host = json!({"PoolID": id, "Address": "", "Options": null});
    assert_eq!(
        h.ok("/IpamDriver.RequestAddress", &host)["Address"],
        json!("10.1.2.2/30")
    );
    let e = h.err("/IpamDriver.RequestAddress", &host);
    assert_eq!(
        e,
        "pool 10.1.2.0/30 has no free address (2 of 2 usable addresses in use): \
         release one or use a larger --subnet"
    );
    h.ok(
        "/IpamDriver.ReleaseAddress",
        &json!({"PoolID": id, "Address": "10.1.2.2"}),
    );
    assert_eq!(
        h.ok("/IpamDriver.RequestAddress", &host)["Address"],
        json!("10.1.2.2/30")
    );
    let e = h.err(
        "/IpamDriver.RequestPool",
        &json!({"AddressSpace": "rvs-local", "Pool": "10.1.2.0/24", "V6": false}),
    );
    assert!(e.contains("overlaps pool 10.1.2.0/30"), "{e}");
}

#[test]
fn ipv6_pools_and_internal_routing_networks() {
    let h = Harness::memory();
    let p = h.ok(
        "/IpamDriver.RequestPool",
        &json!({"AddressSpace": "rvs-local", "Pool": "", "V6": true}),
    );
    assert_eq!(p["Pool"], json!("fd72:7673:7700::/64"));
    let a = h.ok("/IpamDriver.RequestAddress", &json!({"PoolID": p["PoolID"], "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}));
    assert_eq!(a["Address"], json!("fd72:7673:7700::1/64"));
    // An internal network gets no default gateway and no routes to other
    // networks (it has no gateway in the switch).
    h.ok(
        "/NetworkDriver.CreateNetwork",
        &network("out", json!({}), "10.8.0.0/24", "10.8.0.1/24"),
    );
    let mut n = network("in", json!({}), "10.9.0.0/24", "10.9.0.1/24");
    n["Options"]["com.docker.network.internal"] = json!(true);
    h.ok("/NetworkDriver.CreateNetwork", &n);
    h.ok(
        "/NetworkDriver.CreateEndpoint",
        &endpoint("in", "e1", "10.9.0.2/24"),
    );
    let j = h.ok(
        "/NetworkDriver.Join",
        &json!({"NetworkID": "in", "EndpointID": "e1", "SandboxKey": "/run/netns/x"}),
    );
    assert_eq!(j["DisableGatewayService"], json!(true));
    assert!(j.get("Gateway").is_none());
    assert!(
        j.get("StaticRoutes")
            .is_none_or(|r| r.as_array().is_some_and(|a| a.is_empty())),
        "{j}"
    );
    // A network without an IPv4 gateway: no Gateway, and DisableGatewayService
    // so the engine does not attach the container to docker_gwbridge.
    let mut bare_net = network("nogw", json!({}), "10.7.0.0/24", "");
    bare_net["IPv4Data"][0]
        .as_object_mut()
        .unwrap()
        .remove("Gateway");
    h.ok("/NetworkDriver.CreateNetwork", &bare_net);
    h.ok(
        "/NetworkDriver.CreateEndpoint",
        &endpoint("nogw", "e2", "10.7.0.2/24"),
    );
    let j = h.ok(
        "/NetworkDriver.Join",
        &json!({"NetworkID": "nogw", "EndpointID": "e2", "SandboxKey": "/run/netns/y"}),
    );
    assert!(j.get("Gateway").is_none());
    assert_eq!(j["DisableGatewayService"], json!(true));
    let sb = h.driver.sandboxes();
    assert_eq!(sb.len(), 2);
    assert_eq!(sb[0].key, "/run/netns/x");
    assert_eq!(sb[0].endpoints, vec!["e1".to_string()]);
}
