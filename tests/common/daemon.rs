//! One `rvswitch daemon` process for a test (optionally inside a
//! namespace), with a private socket and state directory; killed and its
//! directory removed on drop, also when the test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use rvs_drivers::testutil::{Netns, unique};
use serde_json::Value;

use super::BIN;

pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    netns: Option<String>,
    extra: Vec<String>,
}

impl Daemon {
    /// Start it with the daemon options `extra`; returns once it is ready.
    pub fn start(netns: Option<&Netns>, extra: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(unique("rvd"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon {
            child: None,
            dir,
            netns: netns.map(|n| n.name.clone()),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    fn spawn(&mut self) {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("daemon")
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        self.child = Some(super::spawn_ready(&mut cmd, None));
    }

    /// Stop it with SIGTERM (it must exit cleanly) and start it again on
    /// the same state.
    pub fn restart(&mut self) {
        if let Some(c) = self.child.take() {
            assert!(super::terminate(c).success());
        }
        self.spawn();
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    #[track_caller]
    pub fn ctl(&self, args: &[&str]) -> String {
        super::ctl_ok(&self.socket(), args)
    }

    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        super::ctl_json(&self.socket(), args)
    }

    pub fn client(&self) -> rvswitch::client::Client {
        rvswitch::client::Client::new(&self.socket()).unwrap()
    }

    /// `M PATH [BODY]` on its API: the status and the JSON answer.
    pub fn call(&self, m: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.client(), m, path, body)
    }

    /// A pipeline stage counter of `ctl stats`.
    pub fn stage(&self, key: &str) -> u64 {
        self.json(&["stats"])["stages"][key].as_u64().unwrap_or(0)
    }

    /// A router drop counter of `ctl stats`.
    pub fn l3_drop(&self, key: &str) -> u64 {
        self.json(&["stats"])["l3_drops"][key].as_u64().unwrap_or(0)
    }
}

/// `M PATH [BODY]` through client `c`: the status and the JSON answer
/// (null when the body is not JSON).
pub fn call(
    c: &rvswitch::client::Client,
    m: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = hyper::Method::from_bytes(m.as_bytes()).unwrap();
    let r = c.request(m, path, body.as_ref()).unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
