//! The Docker plugin protocol never panics and always answers JSON, whatever
//! the request bodies: a sequence of calls goes through the real plugin
//! router (body parsing, the wire types, option translation such as
//! `network_from_request`, the driver, IPAM and the redb store in memory)
//! against the in-memory fabric.
//!
//! Input layout: records separated by `\n`; a record's first byte picks the
//! method (`METHODS`, counted from `A`, so the seeds stay readable), the rest
//! is the body.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use rvs_cnm::fabric::MemoryFabric;
use rvs_cnm::{Driver, IpamConfig, Store};
use tower::ServiceExt;

/// Every route the plugin serves, and one it does not.
const METHODS: [&str; 23] = [
    "Plugin.Activate",
    "NetworkDriver.GetCapabilities",
    "NetworkDriver.CreateNetwork",
    "NetworkDriver.DeleteNetwork",
    "NetworkDriver.AllocateNetwork",
    "NetworkDriver.FreeNetwork",
    "NetworkDriver.CreateEndpoint",
    "NetworkDriver.EndpointOperInfo",
    "NetworkDriver.DeleteEndpoint",
    "NetworkDriver.Join",
    "NetworkDriver.Leave",
    "NetworkDriver.DiscoverNew",
    "NetworkDriver.DiscoverDelete",
    "NetworkDriver.ProgramExternalConnectivity",
    "NetworkDriver.RevokeExternalConnectivity",
    "IpamDriver.GetCapabilities",
    "IpamDriver.GetDefaultAddressSpaces",
    "IpamDriver.RequestPool",
    "IpamDriver.ReleasePool",
    "IpamDriver.RequestAddress",
    "IpamDriver.ReleaseAddress",
    "NetworkDriver.GwAllocCheck",
    "NetworkDriver.CreateEndpoint",
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .expect("a tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let fabric = Arc::new(MemoryFabric::new());
    let store = Store::in_memory().expect("an in-memory store");
    let driver = Arc::new(Driver::open(store, fabric.clone(), IpamConfig::default()).unwrap());
    let app = rvs_cnm::router(driver.clone());
    runtime().block_on(async {
        for rec in data.split(|&b| b == b'\n') {
            let Some((&sel, body)) = rec.split_first() else {
                continue;
            };
            let method = METHODS[sel.wrapping_sub(b'A') as usize % METHODS.len()];
            let req = Request::post(format!("/{method}"))
                .body(Body::from(body.to_vec()))
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let known = method != "NetworkDriver.GwAllocCheck";
            assert_eq!(
                status,
                if known {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
                "{method}"
            );
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).expect("every answer is JSON");
            assert!(v.is_object(), "{method} answered {v}");
            if let Some(err) = v.get("Err") {
                let err = err.as_str().expect("Err is a string");
                assert!(!err.is_empty(), "{method}: an empty error");
            }
        }
    });
    // What the driver holds is what it told the fabric to build.
    let snap = driver.snapshot();
    let mut nets: Vec<String> = snap.networks.iter().map(|n| n.id.clone()).collect();
    nets.sort();
    assert_eq!(
        nets,
        fabric.networks(),
        "driver and fabric disagree on networks"
    );
    let mut eps: Vec<String> = snap.endpoints.iter().map(|e| e.id.clone()).collect();
    eps.sort();
    let fab_eps: Vec<String> = fabric.endpoints().into_keys().collect();
    assert_eq!(eps, fab_eps, "driver and fabric disagree on endpoints");
});
