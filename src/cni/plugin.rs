//! The CNI plugin executable (`rvswitch cni`, or the binary under the name
//! `rvswitch-cni`): one verb per run, as the CNI spec's calling convention
//! says — `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_ARGS`, `CNI_PATH` in the environment, the network configuration
//! on stdin, the result (ADD, VERSION) on stdout, or the error object on
//! stdout and a non-zero exit.
//!
//! The network configuration:
//!
//! ```json
//! { "cniVersion": "1.1.0", "name": "pods", "type": "rvswitch-cni",
//!   "socket": "/run/rvswitch/rvswitch.sock", "endpoint": "tap",
//!   "vlan": 10, "mtu": 1500, "isGateway": false, "isDefaultGateway": false,
//!   "ipam": { "type": "host-local", "ranges": [[{"subnet": "10.22.0.0/24"}]] } }
//! ```
//!
//! `ipam.type` `rvswitch` uses the daemon's IPAM (`subnet`, `gateway`,
//! `routes`); any other type is executed from `CNI_PATH` with the same
//! configuration (in the newest version both it and this plugin speak).
//!
//! Owns: the verbs and their answers. Never: the attachment itself (the
//! daemon's, see [`super::service`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rvs_cnm::prefix::Cidr;
use serde_json::{Value, json};

use super::spec::{self, CniError, CniResult, IpConfig, NetConf, code};
use super::{AttachRequest, Attachment, CniAddress, CniNetwork, CniRoute, CniSubnet};
use crate::client::{Client, ClientError};

/// The verb and its parameters, from the environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub path: String,
}

impl Env {
    pub fn from_process() -> Env {
        let v = |k: &str| std::env::var(k).unwrap_or_default();
        Env {
            command: v("CNI_COMMAND"),
            container_id: v("CNI_CONTAINERID"),
            netns: v("CNI_NETNS"),
            ifname: v("CNI_IFNAME"),
            args: v("CNI_ARGS"),
            path: v("CNI_PATH"),
        }
    }

    fn need(&self, what: &[(&str, &str)]) -> Result<(), CniError> {
        for (name, value) in what {
            if value.is_empty() {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!("{name} is required for {}", self.command),
                ));
            }
        }
        Ok(())
    }
}

/// Run the verb of the process's environment on its stdin; print the
/// answer; the exit status.
pub fn main() -> i32 {
    let env = Env::from_process();
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return fail(CniError::new(code::IO_FAILURE, "cannot read stdin").details(e));
    }
    match run(&env, &input) {
        Ok(out) => {
            if let Some(v) = out {
                let mut o = std::io::stdout().lock();
                let _ = serde_json::to_writer(&mut o, &v);
                let _ = writeln!(o);
            }
            0
        }
        Err(e) => fail(e),
    }
}

fn fail(e: CniError) -> i32 {
    let mut o = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut o, &e);
    let _ = writeln!(o);
    eprintln!("rvswitch-cni: {e}");
    1
}

/// One verb: its stdout JSON (ADD, VERSION), nothing, or the error.
pub fn run(env: &Env, input: &[u8]) -> Result<Option<Value>, CniError> {
    if env.command == "VERSION" {
        // stdin: {"cniVersion": "..."} (or nothing).
        let asked = serde_json::from_slice::<Value>(input)
            .ok()
            .and_then(|v| v["cniVersion"].as_str().map(str::to_string))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| spec::LATEST.into());
        return Ok(Some(json!({
            "cniVersion": asked,
            "supportedVersions": spec::SUPPORTED,
        })));
    }
    let conf: NetConf = serde_json::from_slice(input).map_err(|e| {
        CniError::new(
            code::DECODE_FAILURE,
            "cannot decode the network configuration",
        )
        .details(e)
    })?;
    let v = conf.cni_version.clone();
    let err_v = |mut e: CniError| {
        if spec::SUPPORTED.contains(&v.as_str()) {
            e.cni_version = v.clone();
        }
        e
    };
    if !spec::SUPPORTED.contains(&v.as_str()) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "CNI version {v} is not supported (supported: {})",
                spec::SUPPORTED.join(", ")
            ),
        ));
    }
    let p = Plugin {
        env,
        conf: &conf,
        raw: serde_json::from_slice(input).expect("decoded once already"),
    };
    match env.command.as_str() {
        "ADD" => p.add().map(Some),
        "DEL" => p.del().map(|()| None),
        "CHECK" => p.needs("0.4.0").and_then(|()| p.check()).map(|()| None),
        "STATUS" => p.needs("1.1.0").and_then(|()| p.status()).map(|()| None),
        "GC" => p.needs("1.1.0").and_then(|()| p.gc()).map(|()| None),
        "" => Err(CniError::new(code::INVALID_ENV, "CNI_COMMAND is not set")),
        other => Err(CniError::new(
            code::INVALID_ENV,
            format!("unknown CNI_COMMAND {other:?} (ADD, DEL, CHECK, STATUS, GC, VERSION)"),
        )),
    }
    .map_err(err_v)
}

struct Plugin<'a> {
    env: &'a Env,
    conf: &'a NetConf,
    /// The configuration as received, handed to a delegated IPAM plugin.
    raw: Value,
}

/// The daemon's reply, or the CNI error for its failure.
fn daemon_error(e: ClientError) -> CniError {
    match e {
        ClientError::Connect { .. } => CniError::new(
            code::TRY_AGAIN,
            "the rvswitch daemon is not reachable; try again later",
        )
        .details(e),
        ClientError::Api(f) if f.status == 400 => CniError::new(code::INVALID_CONFIG, f.message),
        other => CniError::new(code::DAEMON, other.to_string()),
    }
}

impl Plugin<'_> {
    fn needs(&self, min: &str) -> Result<(), CniError> {
        if spec::at_least(&self.conf.cni_version, min) {
            Ok(())
        } else {
            Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "{} needs cniVersion {min} or later (the configuration says {})",
                    self.env.command, self.conf.cni_version
                ),
            ))
        }
    }

    fn client(&self) -> Result<Client, CniError> {
        let socket = self
            .conf
            .socket
            .clone()
            .unwrap_or_else(|| crate::daemon::DEFAULT_SOCKET.into());
        Client::new(Path::new(&socket)).map_err(|e| CniError::new(code::IO_FAILURE, e.to_string()))
    }

    fn id(&self) -> String {
        super::attachment_id(&self.conf.name, &self.env.container_id, &self.env.ifname)
    }

    /// The IPAM plugin to run, if the configuration delegates.
    fn delegate(&self) -> Option<&str> {
        self.conf
            .ipam
            .as_ref()
            .map(|i| i.kind.as_str())
            .filter(|k| *k != "rvswitch")
    }

    fn network(&self, subnets: Vec<CniSubnet>) -> CniNetwork {
        CniNetwork {
            name: self.conf.name.clone(),
            endpoint: self.conf.endpoint,
            vlan: self.conf.vlan,
            mtu: self.conf.mtu,
            is_gateway: self.conf.is_gateway || self.conf.is_default_gateway,
            subnets,
        }
    }

    fn add(&self) -> Result<Value, CniError> {
        let e = self.env;
        e.need(&[
            ("CNI_CONTAINERID", &e.container_id),
            ("CNI_NETNS", &e.netns),
            ("CNI_IFNAME", &e.ifname),
        ])?;
        if !Path::new(&e.netns).exists() {
            return Err(CniError::new(
                code::UNKNOWN_CONTAINER,
                format!("network namespace {} does not exist", e.netns),
            ));
        }
        let prev: Option<CniResult> = match &self.conf.prev_result {
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(|x| {
                CniError::new(code::DECODE_FAILURE, "cannot decode prevResult").details(x)
            })?),
            None => None,
        };
        // Addresses, routes and DNS: the delegate's or rvswitch's.
        let mut subnets = Vec::new();
        let mut addresses = Vec::new();
        let mut routes = Vec::new();
        let mut dns = Value::Null;
        let delegated = match self.delegate() {
            Some(kind) => {
                let r = self.ipam(kind, "ADD")?.unwrap_or_default();
                for ip in &r.ips {
                    let c: Cidr = ip.address.parse().map_err(|x| {
                        CniError::new(
                            code::DECODE_FAILURE,
                            format!("IPAM plugin {kind} gave address {:?}", ip.address),
                        )
                        .details(x)
                    })?;
                    subnets.push(CniSubnet {
                        subnet: c.network().to_string(),
                        gateway: ip.gateway.clone(),
                    });
                    addresses.push(CniAddress {
                        address: ip.address.clone(),
                        gateway: ip.gateway.clone(),
                    });
                }
                routes.extend(r.routes.iter().map(|r| CniRoute {
                    dst: r.dst.clone(),
                    gw: r.gw.clone(),
                }));
                dns = r.dns;
                true
            }
            None => {
                if let Some(i) = &self.conf.ipam {
                    let subnet = i.subnet.clone().ok_or_else(|| {
                        CniError::new(
                            code::INVALID_CONFIG,
                            "ipam type rvswitch needs a subnet (\"subnet\": \"10.22.0.0/24\")",
                        )
                    })?;
                    subnets.push(CniSubnet {
                        subnet,
                        gateway: i.gateway.clone(),
                    });
                    routes.extend(i.routes.iter().map(|r| CniRoute {
                        dst: r.dst.clone(),
                        gw: r.gw.clone(),
                    }));
                }
                false
            }
        };
        if self.conf.is_default_gateway {
            for s in &subnets {
                if let Some(gw) = &s.gateway {
                    let dst = if gw.contains(':') {
                        "::/0"
                    } else {
                        "0.0.0.0/0"
                    };
                    if !routes.iter().any(|r| r.dst == dst) {
                        routes.push(CniRoute {
                            dst: dst.into(),
                            gw: Some(gw.clone()),
                        });
                    }
                }
            }
        }
        let req = AttachRequest {
            network: self.network(subnets),
            container_id: e.container_id.clone(),
            ifname: e.ifname.clone(),
            netns: e.netns.clone(),
            addresses,
            routes,
            mac: cni_arg(&e.args, "MAC"),
        };
        let attached = self.client().and_then(|c| {
            c.post("/v1/cni/attachments", &req)
                .and_then(|r| r.ok())
                .map_err(daemon_error)
        });
        let reply = match attached {
            Ok(r) => r,
            Err(err) => {
                if delegated && let Err(x) = self.ipam(self.delegate().unwrap_or(""), "DEL") {
                    eprintln!("rvswitch-cni: releasing the address after a failed ADD: {x}");
                }
                return Err(err);
            }
        };
        let a: Attachment = serde_json::from_slice(&reply.body).map_err(|x| {
            CniError::new(code::DECODE_FAILURE, "cannot decode the daemon's answer").details(x)
        })?;
        // Chained: this interface joins the previous plugins' result.
        let mut out = prev.unwrap_or_default();
        let index = out.interfaces.len();
        out.interfaces.push(spec::Interface {
            name: a.ifname.clone(),
            mac: a.mac.clone(),
            mtu: Some(a.mtu),
            sandbox: a.netns.clone(),
        });
        out.ips.extend(a.addresses.iter().map(|x| IpConfig {
            version: None,
            address: x.address.clone(),
            gateway: x.gateway.clone(),
            interface: Some(index),
        }));
        out.routes.extend(a.routes.iter().map(|r| spec::Route {
            dst: r.dst.clone(),
            gw: r.gw.clone(),
        }));
        if out.dns.is_null() {
            out.dns = dns;
        }
        let out = out.in_version(&self.conf.cni_version);
        Ok(serde_json::to_value(out).expect("results serialize"))
    }

    fn del(&self) -> Result<(), CniError> {
        let e = self.env;
        e.need(&[
            ("CNI_CONTAINERID", &e.container_id),
            ("CNI_IFNAME", &e.ifname),
        ])?;
        let c = self.client()?;
        c.delete(&format!("/v1/cni/attachments/{}", self.id()))
            .and_then(|r| r.ok())
            .map_err(daemon_error)?;
        if let Some(kind) = self.delegate() {
            self.ipam(kind, "DEL")?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), CniError> {
        let e = self.env;
        e.need(&[
            ("CNI_CONTAINERID", &e.container_id),
            ("CNI_NETNS", &e.netns),
            ("CNI_IFNAME", &e.ifname),
        ])?;
        let bad = |m: String| CniError::new(code::CHECK_FAILED, m);
        let prev: CniResult = match &self.conf.prev_result {
            Some(v) => serde_json::from_value(v.clone()).map_err(|x| {
                CniError::new(code::DECODE_FAILURE, "cannot decode prevResult").details(x)
            })?,
            None => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    "CHECK needs prevResult (the result of ADD)",
                ));
            }
        };
        if let Some(kind) = self.delegate() {
            self.ipam(kind, "CHECK")?;
        }
        let reply = self
            .client()?
            .get(&format!("/v1/cni/attachments/{}", self.id()))
            .map_err(daemon_error)?;
        if reply.status == 404 {
            return Err(bad(format!(
                "container {} has no interface {} on network {}",
                e.container_id, e.ifname, self.conf.name
            )));
        }
        let a: Attachment = serde_json::from_slice(&reply.ok().map_err(daemon_error)?.body)
            .map_err(|x| {
                CniError::new(code::DECODE_FAILURE, "cannot decode the daemon's answer").details(x)
            })?;
        if a.netns != e.netns {
            return Err(bad(format!(
                "the interface is in namespace {}, not {}",
                a.netns, e.netns
            )));
        }
        let mine = prev
            .interfaces
            .iter()
            .position(|i| i.name == e.ifname && (i.sandbox.is_empty() || i.sandbox == e.netns))
            .ok_or_else(|| bad(format!("prevResult has no interface {}", e.ifname)))?;
        if !prev.interfaces[mine].mac.is_empty()
            && !prev.interfaces[mine].mac.eq_ignore_ascii_case(&a.mac)
        {
            return Err(bad(format!(
                "prevResult says MAC {}, the attachment has {}",
                prev.interfaces[mine].mac, a.mac
            )));
        }
        // The interface in the namespace, as the attachment says.
        let ifname = e.ifname.clone();
        let (link, have) = rvs_drivers::netlink::Netlink::in_netns(&e.netns, |n| {
            Ok((
                n.find_link(&ifname)?,
                n.addresses(&ifname).unwrap_or_default(),
            ))
        })
        .map_err(|x| {
            CniError::new(code::IO_FAILURE, format!("namespace {}", e.netns)).details(x)
        })?;
        let link = link.ok_or_else(|| bad(format!("no interface {} in {}", e.ifname, e.netns)))?;
        let mac = link
            .mac
            .map(|m| rvs_switch::MacAddr(m).to_string())
            .unwrap_or_default();
        if !mac.eq_ignore_ascii_case(&a.mac) {
            return Err(bad(format!(
                "interface {} has MAC {mac}, the attachment {}",
                e.ifname, a.mac
            )));
        }
        if !link.up {
            return Err(bad(format!("interface {} is down", e.ifname)));
        }
        let want: Vec<&str> = prev
            .ips
            .iter()
            .filter(|i| i.interface == Some(mine))
            .map(|i| i.address.as_str())
            .chain(a.addresses.iter().map(|x| x.address.as_str()))
            .collect();
        for w in want {
            let c: Cidr = w.parse().map_err(|x| bad(format!("address {w:?}: {x}")))?;
            if !have.contains(&(c.addr, c.len)) {
                return Err(bad(format!("interface {} lacks address {w}", e.ifname)));
            }
        }
        Ok(())
    }

    fn status(&self) -> Result<(), CniError> {
        self.client()?
            .get("/v1/cni/attachments")
            .and_then(|r| r.ok())
            .map_err(|x| {
                CniError::new(
                    code::NOT_AVAILABLE,
                    "the rvswitch daemon is not available to attach containers",
                )
                .details(x)
            })?;
        if let Some(kind) = self.delegate()
            && self
                .speaks(kind)?
                .iter()
                .any(|v| spec::at_least(v, "1.1.0"))
        {
            self.ipam(kind, "STATUS")?;
        }
        Ok(())
    }

    /// GC: remove this network's attachments the runtime no longer lists.
    fn gc(&self) -> Result<(), CniError> {
        let valid = self.conf.valid_attachments.clone().unwrap_or_default();
        let c = self.client()?;
        let all: Vec<Attachment> = serde_json::from_slice(
            &c.get("/v1/cni/attachments")
                .and_then(|r| r.ok())
                .map_err(daemon_error)?
                .body,
        )
        .map_err(|x| {
            CniError::new(code::DECODE_FAILURE, "cannot decode the daemon's answer").details(x)
        })?;
        let delegate = self.delegate();
        let ipam_gc = match delegate {
            Some(k) => self.speaks(k)?.iter().any(|v| spec::at_least(v, "1.1.0")),
            None => false,
        };
        for a in all.iter().filter(|a| a.network == self.conf.name) {
            if valid
                .iter()
                .any(|v| v.container_id == a.container_id && v.ifname == a.ifname)
            {
                continue;
            }
            c.delete(&format!("/v1/cni/attachments/{}", a.id))
                .and_then(|r| r.ok())
                .map_err(daemon_error)?;
            // An IPAM plugin without GC frees the attachment's address on
            // DEL.
            if let Some(kind) = delegate
                && !ipam_gc
            {
                let env = Env {
                    command: "DEL".into(),
                    container_id: a.container_id.clone(),
                    ifname: a.ifname.clone(),
                    netns: String::new(),
                    ..self.env.clone()
                };
                self.exec(kind, &env)?;
            }
        }
        if let Some(kind) = delegate
            && ipam_gc
        {
            self.ipam(kind, "GC")?;
        }
        Ok(())
    }

    /// Run the IPAM plugin `kind` with verb `command` for this call's
    /// container; its result (ADD).
    fn ipam(&self, kind: &str, command: &str) -> Result<Option<CniResult>, CniError> {
        let env = Env {
            command: command.into(),
            ..self.env.clone()
        };
        self.exec(kind, &env)
    }

    /// Where plugin `kind` is on `CNI_PATH`.
    fn find(&self, kind: &str) -> Result<PathBuf, CniError> {
        if kind.is_empty() || kind.contains('/') {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("plugin type {kind:?} is not a plugin name"),
            ));
        }
        self.env
            .path
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                CniError::new(
                    code::INVALID_CONFIG,
                    format!("plugin {kind} not found on CNI_PATH {:?}", self.env.path),
                )
            })
    }

    /// The versions plugin `kind` speaks (its VERSION answer).
    fn speaks(&self, kind: &str) -> Result<Vec<String>, CniError> {
        let path = self.find(kind)?;
        let out = run_plugin(
            &path,
            &Env {
                command: "VERSION".into(),
                ..self.env.clone()
            },
            json!({"cniVersion": self.conf.cni_version})
                .to_string()
                .as_bytes(),
        )?;
        let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        Ok(v["supportedVersions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect())
    }

    /// Run plugin `kind` with `env` and this configuration, in the newest
    /// version both speak (the configuration's if it can).
    fn exec(&self, kind: &str, env: &Env) -> Result<Option<CniResult>, CniError> {
        let path = self.find(kind)?;
        let theirs = self.speaks(kind)?;
        let mine = &self.conf.cni_version;
        let version = if theirs.iter().any(|v| v == mine) {
            mine.clone()
        } else {
            theirs
                .iter()
                .filter(|v| spec::SUPPORTED.contains(&v.as_str()))
                .filter(|v| spec::at_least(mine, v))
                .max_by_key(|v| spec::version(v))
                .cloned()
                .ok_or_else(|| {
                    CniError::new(
                        code::INCOMPATIBLE_VERSION,
                        format!("plugin {kind} speaks none of the versions up to {mine}"),
                    )
                })?
        };
        let mut conf = self.raw.clone();
        conf["cniVersion"] = json!(version);
        let out = run_plugin(&path, env, conf.to_string().as_bytes())?;
        if env.command != "ADD" {
            return Ok(None);
        }
        let r: CniResult = serde_json::from_slice(&out).map_err(|x| {
            CniError::new(
                code::DECODE_FAILURE,
                format!("cannot decode the result of plugin {kind}"),
            )
            .details(x)
        })?;
        Ok(Some(r))
    }
}

/// Run a plugin executable as a runtime does; its stdout, or its error.
fn run_plugin(path: &Path, env: &Env, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let vars: BTreeMap<&str, &str> = [
        ("CNI_COMMAND", env.command.as_str()),
        ("CNI_CONTAINERID", &env.container_id),
        ("CNI_NETNS", &env.netns),
        ("CNI_IFNAME", &env.ifname),
        ("CNI_ARGS", &env.args),
        ("CNI_PATH", &env.path),
    ]
    .into();
    let mut child = Command::new(path)
        .envs(vars)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            CniError::new(code::IO_FAILURE, format!("cannot run {}", path.display())).details(e)
        })?;
    if let Some(mut i) = child.stdin.take() {
        // A plugin that exits without reading gives EPIPE here: its answer
        // tells what went wrong.
        let _ = i.write_all(stdin);
    }
    let out = child.wait_with_output().map_err(|e| {
        CniError::new(code::IO_FAILURE, format!("waiting for {}", path.display())).details(e)
    })?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Err(match serde_json::from_slice::<CniError>(&out.stdout) {
        Ok(e) => CniError {
            msg: format!("plugin {name} ({}): {}", env.command, e.msg),
            ..e
        },
        Err(_) => CniError::new(
            code::DAEMON,
            format!(
                "plugin {name} ({}) failed with {}: {}",
                env.command,
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        ),
    })
}

/// `KEY=VALUE` from `CNI_ARGS` (`;`-separated).
fn cni_arg(args: &str, key: &str) -> Option<String> {
    args.split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cmd: &str) -> Env {
        Env {
            command: cmd.into(),
            ..Default::default()
        }
    }

    #[test]
    fn version_answers_what_it_speaks() {
        let v = run(&env("VERSION"), br#"{"cniVersion":"1.0.0"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert!(
            v["supportedVersions"]
                .as_array()
                .unwrap()
                .contains(&json!("1.1.0"))
        );
        let v = run(&env("VERSION"), b"").unwrap().unwrap();
        assert_eq!(v["cniVersion"], spec::LATEST);
    }

    #[test]
    fn bad_input_gets_the_spec_codes() {
        let conf = br#"{"cniVersion":"1.1.0","name":"n","type":"rvswitch-cni"}"#;
        let e = run(&env("ADD"), b"{not json").unwrap_err();
        assert_eq!(e.code, code::DECODE_FAILURE);
        let e = run(
            &env("ADD"),
            br#"{"cniVersion":"9.9.9","name":"n","type":"rvswitch-cni"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        let e = run(&env("ADD"), conf).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV, "{e}");
        assert_eq!(e.cni_version, "1.1.0");
        let e = run(&env("FROB"), conf).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        let old = br#"{"cniVersion":"1.0.0","name":"n","type":"rvswitch-cni"}"#;
        let e = run(&env("GC"), old).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        let e = run(&env("STATUS"), old).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        let older = br#"{"cniVersion":"0.3.1","name":"n","type":"rvswitch-cni"}"#;
        let e = run(&env("CHECK"), older).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
    }

    #[test]
    fn cni_args_are_parsed() {
        assert_eq!(
            cni_arg("IgnoreUnknown=1;MAC=02:00:00:00:00:01", "MAC").as_deref(),
            Some("02:00:00:00:00:01")
        );
        assert_eq!(cni_arg("", "MAC"), None);
    }
}
