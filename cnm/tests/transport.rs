//! The plugin protocol over its transports: a real Unix socket (as the
//! engine connects) and concurrent calls through the router.

mod common;

use std::collections::BTreeSet;

use common::{Harness, TempDir};
use serde_json::{Value, json};

fn network(id: &str, pool: &str, gw: &str) -> Value {
    json!({
        "NetworkID": id,
        "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {}},
        "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": gw, "Pool": pool}],
        "IPv6Data": []
    })
}

/// Over a real Unix socket, as the engine talks: HTTP/1.1, no
/// Content-Type, an empty body for Plugin.Activate.
#[test]
fn serves_the_engine_over_a_unix_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = TempDir::new("socket");
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("rvswitch.sock");
    let h = Harness::memory();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(rvs_cnm::docker::serve(listener, h.driver.clone(), async {
            let _ = stopped.await;
        }));
        let post = |path: &str, body: &str| {
            format!(
                "POST /{path} HTTP/1.1\r\nHost: plugin\r\n\
                 Accept: application/vnd.docker.plugins.v1.2+json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let mut answers = Vec::new();
        for (method, body) in [
            ("Plugin.Activate", String::new()),
            (
                "NetworkDriver.CreateNetwork",
                network("n1", "10.0.0.0/24", "10.0.0.1/24").to_string(),
            ),
        ] {
            let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
            s.write_all(post(method, &body).as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            answers.push(out);
        }
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        assert!(answers[0].starts_with("HTTP/1.1 200"), "{}", answers[0]);
        assert!(answers[0].contains("application/vnd.docker.plugins.v1+json"));
        assert!(answers[0].ends_with(r#"{"Implements":["NetworkDriver","IpamDriver"]}"#));
        assert!(
            answers[1].starts_with("HTTP/1.1 200") && answers[1].ends_with("{}"),
            "{}",
            answers[1]
        );
    });
    assert!(h.driver.network("n1").is_some());
}

/// Concurrent calls (the engine runs several containers at once) never
/// share an address.
#[test]
fn concurrent_address_requests_never_collide() {
    let h = Harness::memory();
    let p = h.ok(
        "/IpamDriver.RequestPool",
        &json!({"AddressSpace": "rvs-local", "Pool": "10.3.0.0/26"}),
    );
    let id = p["PoolID"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let got: Vec<Value> = rt.block_on(async {
        let tasks: Vec<_> = (0..70)
            .map(|_| {
                let router = h.router.clone();
                let body = json!({"PoolID": id, "Address": "", "Options": null}).to_string();
                tokio::spawn(async move {
                    use http_body_util::BodyExt;
                    use tower::ServiceExt;
                    let req = axum::http::Request::post("/IpamDriver.RequestAddress")
                        .body(axum::body::Body::from(body))
                        .unwrap();
                    let resp = router.oneshot(req).await.unwrap();
                    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                    serde_json::from_slice::<Value>(&bytes).unwrap()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let addrs: BTreeSet<&str> = got.iter().filter_map(|v| v["Address"].as_str()).collect();
    let errs: Vec<&str> = got.iter().filter_map(|v| v["Err"].as_str()).collect();
    assert_eq!(
        addrs.len(),
        62,
        "a /26 has 62 usable addresses, each given once"
    );
    assert_eq!(errs.len(), 8);
    assert!(
        errs.iter().all(|e| e.contains("has no free address")),
        "{errs:?}"
    );
}
