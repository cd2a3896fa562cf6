//! Helpers for the protocol tests: a driver over a [`MemoryFabric`], calls
//! through the axum router with `oneshot`, and the recorded transcripts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use rvs_cnm::fabric::MemoryFabric;
use rvs_cnm::ipam::{IpamConfig, PoolTemplate};
use rvs_cnm::{Driver, Store};
use serde_json::Value;
use tower::ServiceExt;

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub request: Value,
    pub response: Value,
}

/// The recorded engine traffic: the copy in `tests/data/` first, else
/// `../shared/docker/` beside the workspace. `None` (skip) when neither
/// exists, unless `RVS_TEST_STRICT=1`.
pub fn transcript(name: &str) -> Option<Vec<Call>> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: [PathBuf; 2] = [
        manifest.join("tests/data").join(name),
        manifest.join("../../shared/docker").join(name),
    ];
    let Some(path) = candidates.iter().find(|p| p.exists()) else {
        let msg = format!(
            "transcript {name} not found in {} or {}",
            candidates[0].display(),
            candidates[1].display()
        );
        if std::env::var("RVS_TEST_STRICT").as_deref() == Ok("1") {
            panic!("{msg} (RVS_TEST_STRICT=1)");
        }
        eprintln!("SKIP: {msg}");
        return None;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let calls = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
            Call {
                path: v["path"].as_str().expect("path").to_string(),
                request: v["request"].clone(),
                response: v["response"].clone(),
            }
        })
        .collect();
    Some(calls)
}

/// The IPAM defaults the recording's stand-in used (it chose 10.240.0.0/24),
/// so our answers can be compared with the recorded ones.
pub fn recording_ipam() -> IpamConfig {
    IpamConfig {
        default_v4: vec![PoolTemplate {
            base: "10.240.0.0/16".parse().unwrap(),
            size: 24,
        }],
        ..IpamConfig::default()
    }
}

pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub fabric: Arc<MemoryFabric>,
    pub driver: Arc<Driver>,
    pub router: Router,
}

impl Harness {
    pub fn new(store: Store, ipam: IpamConfig) -> Harness {
        let fabric = Arc::new(MemoryFabric::new());
        let driver = Arc::new(Driver::open(store, fabric.clone(), ipam).unwrap());
        Harness {
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            fabric,
            router: rvs_cnm::router(driver.clone()),
            driver,
        }
    }

    pub fn memory() -> Harness {
        Harness::new(Store::in_memory().unwrap(), recording_ipam())
    }

    /// POST raw bytes; returns the status and the JSON answer.
    pub fn raw(&self, path: &str, body: &[u8]) -> (StatusCode, Value) {
        let req = Request::post(path).body(Body::from(body.to_vec())).unwrap();
        self.rt.block_on(async {
            let resp = self.router.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{path}: answer is not JSON ({e}): {bytes:?}"));
            (status, v)
        })
    }

    /// POST a JSON body (`null`: an empty body, as the engine sends for
    /// calls without arguments); the answer must be HTTP 200.
    pub fn call(&self, path: &str, body: &Value) -> Value {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        let (status, v) = self.raw(path, &bytes);
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert!(v.is_object(), "{path}: answer is not an object: {v}");
        v
    }

    /// A call that must succeed (no `Err`).
    pub fn ok(&self, path: &str, body: &Value) -> Value {
        let v = self.call(path, body);
        assert!(
            v.get("Err").is_none(),
            "{path} failed: {v}\nrequest: {body}"
        );
        v
    }

    /// A call that must fail; returns the `Err` text.
    pub fn err(&self, path: &str, body: &Value) -> String {
        let v = self.call(path, body);
        v["Err"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} should have failed: {v}"))
            .to_string()
    }
}

/// A unique directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        TempDir(std::env::temp_dir().join(format!("rvs-cnm-{tag}-{}-{n}", std::process::id())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
