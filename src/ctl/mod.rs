//! `rvswitch ctl`: the operator's CLI over the control API.
//!
//! Owns: command-line shapes, request building and human output (aligned
//! tables; `--json` prints the API's JSON as is). Never: talking to the data
//! plane or the store directly — everything goes through the socket, so the
//! CLI can do nothing the API does not allow. Requests are the API's own
//! types ([`crate::api`]); values that the API parses from strings (MACs,
//! addresses, VLAN lists, enums) are parsed here the same way, so a typo
//! is refused before anything is sent.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use rvs_switch::stp::{StpConfig, StpPortConfig};
use rvs_switch::{MacAddr, VlanProtocol, VlanSet};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{
    AddRemote, CaptureQuery, CreatePort, DnsListenerSpec, DomainPatch, DomainRecord, FlushQuery,
    Flushed, GatewaySpec, HealthCheckSpec, LogFilter, NameSpec, PortKind, PortPatch, Protocol,
    RouteRecord, ServiceMode, ServicePortSpec, ServiceSpec, StaticEntry, StormSpec,
    TraceInjectRequest, TraceRequest, VlanSpec, parse_hex,
};
use crate::client::{Client, ClientError};
use crate::daemon::DEFAULT_SOCKET;

mod output;
mod template;

use output::Output;
pub use output::{table, vlan_text};

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Unix socket of the daemon's control API.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true, conflicts_with_all = ["quiet", "format"])]
    pub json: bool,
    /// Print only names (or ids), one a line, as `docker ls -q` does; for
    /// scripts: `for p in $(rvswitch ctl port ls -q); do …`.
    #[arg(short, long, global = true, conflicts_with = "format")]
    pub quiet: bool,
    /// Print each listed item (or the one shown) through a Go template over
    /// its JSON fields, as Docker's `--format`: `'{{.name}} {{.worker}}'`,
    /// `'{{json .ports}}'`, `'table {{.name}}\t{{.kind}}'` (a header row and
    /// aligned columns). Functions: json, upper, lower, join, len, index,
    /// and Go's others. `--format json` alone is the JSON, as `--json`.
    #[arg(long, global = true, value_name = "TEMPLATE")]
    pub format: Option<String>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Bridge domains.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Ports.
    #[command(subcommand)]
    Port(PortCmd),
    /// Forwarding database of a bridge domain.
    #[command(subcommand)]
    Fdb(FdbCmd),
    /// A bridge domain's gateway (router interface).
    #[command(subcommand)]
    Gateway(GatewayCmd),
    /// Static routes (and the connected ones, listed).
    #[command(subcommand)]
    Route(RouteCmd),
    /// Names of a network's embedded DNS (answered on its gateway, port 53).
    #[command(subcommand)]
    Name(NameCmd),
    /// DNS listeners: a bridge domain's resolver addresses in VLANs other
    /// than its gateway's.
    #[command(subcommand)]
    Dns(DnsCmd),
    /// Host NICs a bridge domain's VLANs are bridged to (uplink ports).
    #[command(subcommand)]
    Parent(ParentCmd),
    /// Services of a network: VIPs balanced over backends, or DNS round robin.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// The gateways' neighbors (ARP / ND entries).
    Neigh,
    /// A bridge domain's spanning tree: root, port roles and states.
    Stp { domain: String },
    /// Docker networks (CNM) and the bridge domain behind each; `create`
    /// makes one through the daemon's own driver (`--scope global`: shared
    /// with the cluster by name, as `-o rvswitch.scope=global`).
    Network {
        #[command(subcommand)]
        cmd: Option<NetworkCmd>,
    },
    /// Docker endpoints (CNM): MAC, addresses, port and interfaces.
    Endpoint,
    /// Docker sandboxes (CNM): network namespaces and their endpoints.
    Sandbox,
    /// The cluster (`daemon --store`): members, their VTEPs and leases, and
    /// the store revision last seen.
    Cluster,
    /// Remote VTEPs of a vxlan port: flood list and static entries.
    #[command(subcommand)]
    Remote(RemoteCmd),
    /// The whole switch as a tree: domains with their gateway and ports,
    /// then the static routes (like `ovs-vsctl show`).
    Show,
    /// Counters of every port (or of one) and of the pipeline stages.
    Stats { port: Option<String> },
    /// Show the daemon's log filter, or set it (`debug`,
    /// `info,rvswitch::daemon=debug`) while it runs.
    Log {
        /// The new filter (`RUST_LOG` syntax); none: show the one in force.
        filter: Option<String>,
    },
    /// Packet trace.
    #[command(subcommand)]
    Trace(TraceCmd),
    /// Capture a port's frames into a pcap file.
    Capture {
        port: String,
        /// The pcap file to write.
        #[arg(short = 'w', long = "write")]
        file: PathBuf,
        /// Stop after this many frames.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds (default 10 when no count is given).
        #[arg(long)]
        seconds: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct DomainOpts {
    /// Seconds before a learned entry expires (0: never).
    #[arg(long)]
    aging_secs: Option<u32>,
    /// Most learned entries (default and 0: 16384).
    #[arg(long)]
    max_macs: Option<u32>,
    /// 802.1q or 802.1ad.
    #[arg(long, value_parser = api_value::<VlanProtocol>)]
    vlan_protocol: Option<VlanProtocol>,
    /// Run RSTP on the domain's ports (true/false).
    #[arg(long)]
    stp: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum DomainCmd {
    /// List bridge domains.
    #[command(visible_alias = "ls")]
    List,
    /// Create a bridge domain.
    #[command(visible_alias = "create")]
    Add {
        name: String,
        #[command(flatten)]
        opts: DomainOpts,
        /// Give it a gateway with this ADDRESS/LENGTH (repeat for more;
        /// `ctl gateway set` for the other gateway settings).
        #[arg(long = "gateway", value_name = "ADDRESS/LENGTH")]
        gateway: Vec<String>,
    },
    /// Change a bridge domain's settings.
    Set {
        name: String,
        #[command(flatten)]
        opts: DomainOpts,
    },
    /// Delete a bridge domain (it must have no ports).
    #[command(visible_alias = "rm")]
    Del { name: String },
    /// Show one bridge domain.
    #[command(visible_alias = "inspect")]
    Show { name: String },
}

#[derive(Debug, Subcommand)]
pub enum GatewayCmd {
    /// Give a bridge domain a gateway (replacing the one it has).
    Set {
        domain: String,
        /// ADDRESS/LENGTH, IPv4 or IPv6, one or more.
        #[arg(required = true)]
        addresses: Vec<String>,
        /// The gateway's MAC (default: derived from the domain name).
        #[arg(long)]
        mac: Option<MacAddr>,
        /// VLAN of the domain the gateway lives in.
        #[arg(long, default_value_t = 1)]
        vid: u16,
        /// Largest IP packet routed out of the gateway.
        #[arg(long)]
        mtu: Option<u16>,
        /// Route table: gateways of one table route to each other.
        #[arg(long, default_value_t = 0)]
        table: u16,
        /// Answer ARP/ND/ping but do not route to other domains.
        #[arg(long)]
        no_routing: bool,
    },
    /// Remove a domain's gateway (it becomes internal, L2 only).
    Clear { domain: String },
}

#[derive(Debug, Subcommand)]
pub enum RemoteCmd {
    /// The port's flood list, static entries, remote table and the
    /// addresses it answers ARP/ND for (ARP/ND suppression).
    #[command(visible_alias = "ls")]
    List { port: String },
    /// Add REMOTE to the flood list, or with --mac a static entry.
    #[command(visible_alias = "create")]
    Add {
        port: String,
        remote: IpAddr,
        #[arg(long)]
        mac: Option<MacAddr>,
    },
    /// Remove REMOTE (from the flood list and every static entry).
    #[command(visible_alias = "rm")]
    Del { port: String, remote: String },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Every CNM network (the default).
    #[command(visible_alias = "ls")]
    List,
    /// Make network NAME as `docker network create -d rvswitch` would.
    #[command(visible_alias = "add")]
    Create {
        name: String,
        /// local (this host) or global (every host of the cluster that
        /// creates NAME gets the same VNI and subnet; needs --store).
        #[arg(long, default_value = "local", value_parser = ["local", "global"])]
        scope: String,
        /// IPv4 subnet (a global network without one gets the cluster's).
        #[arg(long)]
        subnet: Option<String>,
        #[arg(long)]
        ipv6_subnet: Option<String>,
        /// VNI of a global network (default: the cluster's choice).
        #[arg(long)]
        vni: Option<u32>,
        /// No gateway, no route out (what global networks need for now).
        #[arg(long)]
        internal: bool,
    },
    /// Delete network NAME (made with `create`) and its endpoints.
    #[command(visible_alias = "rm")]
    Del { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NameCmd {
    /// List the names of bridge domain DOMAIN.
    List { domain: String },
    /// Give NAME these addresses in DOMAIN (replacing what it had).
    Set {
        domain: String,
        name: String,
        #[arg(required = true)]
        addresses: Vec<IpAddr>,
        /// The VLAN whose resolver answers it (default: the gateway's).
        #[arg(long)]
        vlan: Option<u16>,
    },
    /// Remove NAME from DOMAIN.
    Del {
        domain: String,
        name: String,
        /// The VLAN it was given (default: the gateway's).
        #[arg(long)]
        vlan: Option<u16>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DnsCmd {
    /// List the DNS listeners of bridge domain DOMAIN.
    #[command(visible_alias = "ls")]
    List { domain: String },
    /// Give DOMAIN resolver ADDRESSES in VLAN VID (not the gateway's):
    /// they answer ARP/ND, ping and DNS there with the gateway's MAC, from
    /// the names of that VLAN (`name set --vlan VID`).
    Set {
        domain: String,
        vid: u16,
        #[arg(required = true)]
        addresses: Vec<IpAddr>,
    },
    /// Remove DOMAIN's DNS listener in VLAN VID.
    Del { domain: String, vid: u16 },
}

#[derive(Debug, Subcommand)]
pub enum ParentCmd {
    /// List the parents of bridge domain DOMAIN.
    #[command(visible_alias = "ls")]
    List { domain: String },
    /// Bridge a VLAN of DOMAIN to host interface IFACE: PARENT is IFACE
    /// (untagged) or IFACE.VID (tagged VID).
    Add {
        domain: String,
        parent: String,
        /// The uplink port's back end: afpacket (default) or afxdp.
        #[arg(long, value_parser = api_value::<PortKind>)]
        kind: Option<PortKind>,
        /// The domain's VLAN carried untagged (untagged parents; default 1).
        #[arg(long)]
        vlan: Option<u16>,
    },
    /// Take PARENT off DOMAIN.
    #[command(visible_alias = "rm")]
    Del { domain: String, parent: String },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// List the services of bridge domain DOMAIN.
    #[command(visible_alias = "ls")]
    List { domain: String },
    /// Show service NAME of DOMAIN with its backends' addresses and health.
    Show { domain: String, name: String },
    /// Add (or replace) service NAME in a network:
    /// `service add web --network N --vip 10.0.0.100 --port 80/tcp --backend ep1 --backend ep2`.
    #[command(visible_alias = "set")]
    Add {
        name: String,
        /// The bridge domain (network) of the service.
        #[arg(long, value_name = "DOMAIN")]
        network: String,
        /// A VIP (one per family; repeat for IPv4 and IPv6).
        #[arg(long = "vip", value_name = "ADDRESS")]
        vips: Vec<IpAddr>,
        /// PORT/PROTO or PORT:TARGET/PROTO (tcp or udp); repeatable.
        #[arg(long = "port", value_name = "PORT[:TARGET]/PROTO", value_parser = service_port)]
        ports: Vec<ServicePortSpec>,
        /// A backend: a name of the network's DNS or an address; repeatable.
        #[arg(long = "backend", value_name = "NAME|ADDRESS", required = true)]
        backends: Vec<String>,
        /// vip (balanced by the switch) or dnsrr (DNS round robin).
        #[arg(long, default_value = "vip", value_parser = service_mode)]
        mode: ServiceMode,
        /// Check the backends with a TCP connect (to this port; default the
        /// first port's target).
        #[arg(long = "health-check", value_name = "PORT", num_args = 0..=1, default_missing_value = "0")]
        health_check: Option<u16>,
        /// Health check interval.
        #[arg(
            long,
            value_name = "MS",
            default_value_t = 1000,
            requires = "health_check"
        )]
        interval_ms: u32,
        /// A backend silent this long is down.
        #[arg(
            long,
            value_name = "MS",
            default_value_t = 2500,
            requires = "health_check"
        )]
        timeout_ms: u32,
    },
    /// Remove service NAME from DOMAIN.
    #[command(visible_alias = "rm")]
    Del { domain: String, name: String },
}

fn service_port(s: &str) -> Result<ServicePortSpec, String> {
    let bad = || format!("{s:?} is not PORT/PROTO or PORT:TARGET/PROTO (proto tcp or udp)");
    let (ports, proto) = s.split_once('/').ok_or_else(bad)?;
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return Err(bad()),
    };
    let (port, target) = match ports.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (ports, None),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let target_port = target
        .map(|t| t.parse::<u16>())
        .transpose()
        .map_err(|_| bad())?;
    Ok(ServicePortSpec {
        port,
        protocol,
        target_port,
    })
}

fn service_mode(s: &str) -> Result<ServiceMode, String> {
    match s {
        "vip" => Ok(ServiceMode::Vip),
        "dnsrr" => Ok(ServiceMode::Dnsrr),
        _ => Err(format!("{s:?} is not vip or dnsrr")),
    }
}

#[derive(Debug, Subcommand)]
pub enum RouteCmd {
    /// List routes.
    #[command(visible_alias = "ls")]
    List,
    /// Add a static route: PREFIX [via ADDRESS] through bridge domain DOMAIN.
    #[command(visible_alias = "create")]
    Add {
        prefix: String,
        /// The next-hop router (omit for a prefix on DOMAIN's link).
        #[arg(long)]
        via: Option<IpAddr>,
        /// The bridge domain the next hop is in (it must have a gateway).
        #[arg(long)]
        domain: String,
        #[arg(long, default_value_t = 0)]
        table: u16,
    },
    /// Delete a static route.
    #[command(visible_alias = "rm")]
    Del {
        prefix: String,
        #[arg(long, default_value_t = 0)]
        table: u16,
    },
}

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct VlanOpts {
    /// Access port, untagged in this VLAN.
    #[arg(long, value_name = "PVID")]
    access: Option<u16>,
    /// Trunk carrying these VLANs ("10,20-30" or "all").
    // Boxed: the parsed list is a 512-byte bitmap.
    #[arg(long, value_name = "VLANS", value_parser = vlan_list)]
    trunk: Option<Box<VlanSet>>,
    /// 802.1ad customer port mapped into this service VLAN.
    #[arg(long, value_name = "SVID")]
    tunnel: Option<u16>,
}

#[derive(Debug, Args)]
pub struct PortOpts {
    #[command(flatten)]
    vlan: VlanOpts,
    /// Untagged VLAN of a trunk.
    #[arg(long, requires = "trunk")]
    native: Option<u16>,
    /// Learn source addresses on this port.
    #[arg(long)]
    learning: Option<bool>,
    /// Administratively up.
    #[arg(long)]
    enabled: Option<bool>,
    /// Most addresses learned on the port (default and 0: 8192).
    #[arg(long)]
    mac_limit: Option<u32>,
    /// Storm control: flooded frames per second (with --storm-burst).
    #[arg(long, requires = "storm_burst")]
    storm_pps: Option<u64>,
    /// Storm control burst, in frames.
    #[arg(long, requires = "storm_pps")]
    storm_burst: Option<u64>,
    /// Spanning tree edge port (a host, not a bridge, is behind it).
    #[arg(long)]
    stp_edge: Option<bool>,
    /// Spanning tree path cost (0: the default, 20000).
    #[arg(long)]
    stp_cost: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum PortCmd {
    /// List ports (with the error of any whose back end did not open).
    #[command(visible_alias = "ls")]
    List,
    /// Open a back end and add it as a port of a bridge domain.
    #[command(visible_alias = "create")]
    Add {
        name: String,
        /// tap, afxdp, afpacket or vxlan (vxlan: --option local=ADDR
        /// --option vni=N [--option remotes='["ADDR",...]']).
        #[arg(long, value_parser = api_value::<PortKind>)]
        kind: PortKind,
        /// Interface to attach (afxdp, afpacket).
        #[arg(long)]
        iface: Option<String>,
        /// Queue of the interface (afxdp).
        #[arg(long)]
        queue: Option<u32>,
        /// Back-end option KEY=VALUE (repeatable; VALUE is JSON or a string).
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
        #[arg(long)]
        domain: String,
        #[command(flatten)]
        opts: PortOpts,
    },
    /// Change a port's settings (what is not given stays).
    Set {
        name: String,
        /// Move to another bridge domain (of the same worker).
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        opts: PortOpts,
        /// Turn storm control off.
        #[arg(long, conflicts_with = "storm_pps")]
        no_storm_control: bool,
    },
    /// Remove a port (its static entries go too).
    #[command(visible_alias = "rm")]
    Del { name: String },
    /// Show one port.
    #[command(visible_alias = "inspect")]
    Show { name: String },
}

#[derive(Debug, Subcommand)]
pub enum FdbCmd {
    /// List a bridge domain's entries.
    #[command(visible_alias = "inspect")]
    Show { domain: String },
    /// Add a static entry.
    #[command(visible_alias = "create")]
    Add {
        domain: String,
        #[arg(long)]
        vid: u16,
        #[arg(long)]
        mac: MacAddr,
        #[arg(long)]
        port: String,
    },
    /// Delete one entry (static or learned).
    #[command(visible_alias = "rm")]
    Del {
        domain: String,
        #[arg(long)]
        vid: u16,
        #[arg(long)]
        mac: String,
    },
    /// Flush learned entries (static ones stay).
    Flush {
        domain: String,
        #[arg(long)]
        port: Option<String>,
        #[arg(long)]
        vid: Option<u16>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TraceCmd {
    /// Trace the next COUNT packets (from PORT only, if given).
    Start {
        #[arg(long)]
        count: u32,
        #[arg(long)]
        port: Option<String>,
    },
    /// Print the records traced so far.
    Show,
    /// Push one frame through the pipeline as if it arrived on PORT and
    /// print each stage's verdict and what would be sent, sending nothing
    /// (like `ovs-appctl ofproto/trace`). Nothing is learned or counted.
    Inject {
        /// The ingress port.
        port: String,
        /// The frame in hex from the destination MAC on (spaces, colons and
        /// dashes between bytes are fine), or `-` to read it from stdin.
        hex: String,
        /// Add an 802.1Q tag of this VLAN, as if the frame arrived tagged.
        #[arg(long)]
        vlan: Option<u16>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Percent-encode a path segment or query value (names are plain, but a MAC
/// or a typo may not be).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parse a command-line value as the API parses the same text in JSON
/// (an enum's spelling such as `802.1ad` or `afxdp`).
fn api_value<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(s.to_string())).map_err(|e| e.to_string())
}

fn vlan_list(s: &str) -> Result<Box<VlanSet>, String> {
    s.parse()
        .map(Box::new)
        .map_err(|e: rvs_switch::vlan::VlanError| e.to_string())
}

/// The query string of a typed query (`?a=1&b=x`, or nothing).
fn query<T: Serialize>(q: &T) -> String {
    let q = serde_urlencoded::to_string(q).expect("query types serialize");
    if q.is_empty() { q } else { format!("?{q}") }
}

fn stp_config(on: bool) -> Option<StpConfig> {
    on.then(StpConfig::default)
}

fn domain_record(name: &str, o: &DomainOpts, gateway: Vec<String>) -> DomainRecord {
    let mut d = DomainRecord::named(name);
    if let Some(a) = o.aging_secs {
        d.aging_secs = a;
    }
    if let Some(m) = o.max_macs {
        d.max_macs = m;
    }
    if let Some(p) = o.vlan_protocol {
        d.vlan_protocol = p;
    }
    d.stp = o.stp.and_then(stp_config);
    if !gateway.is_empty() {
        d.gateway = Some(GatewaySpec::with_addresses(gateway));
    }
    d
}

fn domain_patch(o: &DomainOpts) -> DomainPatch {
    DomainPatch {
        aging_secs: o.aging_secs,
        max_macs: o.max_macs,
        vlan_protocol: o.vlan_protocol,
        gateway: None,
        stp: o.stp.map(stp_config),
    }
}

impl PortOpts {
    fn vlan(&self) -> Option<VlanSpec> {
        if let Some(pvid) = self.vlan.access {
            Some(VlanSpec::Access { pvid })
        } else if let Some(allowed) = &self.vlan.trunk {
            Some(VlanSpec::Trunk {
                allowed: (**allowed).clone(),
                native: self.native,
            })
        } else {
            self.vlan.tunnel.map(|svid| VlanSpec::Tunnel { svid })
        }
    }

    fn storm_control(&self) -> Option<StormSpec> {
        match (self.storm_pps, self.storm_burst) {
            (Some(pps), Some(burst)) => Some(StormSpec { pps, burst }),
            _ => None,
        }
    }

    /// The given spanning tree settings over the defaults (the API takes
    /// a port's STP settings as a whole).
    fn stp(&self) -> Option<StpPortConfig> {
        if self.stp_edge.is_none() && self.stp_cost.is_none() {
            return None;
        }
        let mut s = StpPortConfig::default();
        if let Some(e) = self.stp_edge {
            s.admin_edge = e;
        }
        if let Some(c) = self.stp_cost {
            s.path_cost = c;
        }
        Some(s)
    }
}

/// Run one `ctl` command, printing its result to stdout.
pub fn run(args: CtlArgs) -> Result<(), CtlError> {
    // `--format json` is the JSON, as with Docker.
    let json_format = args.format.as_deref() == Some("json");
    let format = match &args.format {
        Some(_) if json_format => None,
        Some(f) => Some(template::Format::parse(f).map_err(CtlError::Usage)?),
        None => None,
    };
    let c = Client::new(&args.socket)?;
    let out = Output {
        json: args.json || json_format,
        quiet: args.quiet,
        format,
    };
    match args.command {
        CtlCommand::Domain(cmd) => match cmd {
            DomainCmd::List => out.domains(&c.get("/v1/domains")?.ok()?),
            DomainCmd::Show { name } => {
                out.domain(&c.get(&format!("/v1/domains/{}", enc(&name)))?.ok()?)
            }
            DomainCmd::Add {
                name,
                opts,
                gateway,
            } => {
                let body = domain_record(&name, &opts, gateway);
                out.domain(&c.post("/v1/domains", &body)?.ok()?)
            }
            DomainCmd::Set { name, opts } => {
                let path = format!("/v1/domains/{}", enc(&name));
                out.domain(&c.patch(&path, &domain_patch(&opts))?.ok()?)
            }
            DomainCmd::Del { name } => {
                let path = format!("/v1/domains/{}", enc(&name));
                c.delete(&path)?.ok()?;
                out.done(&format!("deleted bridge domain {name}"))
            }
        },
        CtlCommand::Gateway(cmd) => match cmd {
            GatewayCmd::Set {
                domain,
                addresses,
                mac,
                vid,
                mtu,
                table,
                no_routing,
            } => {
                let g = GatewaySpec {
                    mac,
                    vid,
                    mtu,
                    table,
                    routing: !no_routing,
                    ..GatewaySpec::with_addresses(addresses)
                };
                let patch = DomainPatch {
                    gateway: Some(Some(g)),
                    ..DomainPatch::default()
                };
                let path = format!("/v1/domains/{}", enc(&domain));
                out.domain(&c.patch(&path, &patch)?.ok()?)
            }
            GatewayCmd::Clear { domain } => {
                let patch = DomainPatch {
                    gateway: Some(None),
                    ..DomainPatch::default()
                };
                let path = format!("/v1/domains/{}", enc(&domain));
                out.domain(&c.patch(&path, &patch)?.ok()?)
            }
        },
        CtlCommand::Route(cmd) => match cmd {
            RouteCmd::List => out.routes(&c.get("/v1/routes")?.ok()?),
            RouteCmd::Add {
                prefix,
                via,
                domain,
                table,
            } => {
                let route = RouteRecord {
                    table,
                    prefix: prefix.clone(),
                    via,
                    domain,
                };
                let r = c.post("/v1/routes", &route)?.ok()?;
                out.reply_or(&r, &format!("added route {prefix}"))
            }
            RouteCmd::Del { prefix, table } => {
                let Some((a, l)) = prefix.split_once('/') else {
                    return Err(CtlError::Usage(format!("{prefix:?} is not PREFIX/LENGTH")));
                };
                let path = format!("/v1/routes/{table}/{}/{}", enc(a), enc(l));
                c.delete(&path)?.ok()?;
                out.done(&format!("deleted route {prefix}"))
            }
        },
        CtlCommand::Name(cmd) => match cmd {
            NameCmd::List { domain } => out.names(
                &c.get(&format!("/v1/domains/{}/names", enc(&domain)))?
                    .ok()?,
            ),
            NameCmd::Set {
                domain,
                name,
                addresses,
                vlan,
            } => {
                let path = format!("/v1/domains/{}/names/{}", enc(&domain), enc(&name));
                let r = c
                    .send(hyper::Method::PUT, &path, &NameSpec { addresses, vlan })?
                    .ok()?;
                out.reply_or(&r, &format!("set name {name} in {domain}"))
            }
            NameCmd::Del { domain, name, vlan } => {
                let mut path = format!("/v1/domains/{}/names/{}", enc(&domain), enc(&name));
                if let Some(v) = vlan {
                    path.push_str(&format!("?vlan={v}"));
                }
                c.delete(&path)?.ok()?;
                out.done(&format!("deleted name {name} from {domain}"))
            }
        },
        CtlCommand::Dns(cmd) => match cmd {
            DnsCmd::List { domain } => {
                out.dns_listeners(&c.get(&format!("/v1/domains/{}/dns", enc(&domain)))?.ok()?)
            }
            DnsCmd::Set {
                domain,
                vid,
                addresses,
            } => {
                let path = format!("/v1/domains/{}/dns/{vid}", enc(&domain));
                let r = c
                    .send(hyper::Method::PUT, &path, &DnsListenerSpec { addresses })?
                    .ok()?;
                out.reply_or(
                    &r,
                    &format!("set the DNS listener of {domain} in VLAN {vid}"),
                )
            }
            DnsCmd::Del { domain, vid } => {
                c.delete(&format!("/v1/domains/{}/dns/{vid}", enc(&domain)))?
                    .ok()?;
                out.done(&format!(
                    "deleted the DNS listener of {domain} in VLAN {vid}"
                ))
            }
        },
        CtlCommand::Parent(cmd) => match cmd {
            ParentCmd::List { domain } => out.parents(
                &c.get(&format!("/v1/domains/{}/parents", enc(&domain)))?
                    .ok()?,
            ),
            ParentCmd::Add {
                domain,
                parent,
                kind,
                vlan,
            } => {
                let req = crate::api::ParentRequest {
                    parent: parent.clone(),
                    kind,
                    vlan,
                };
                let path = format!("/v1/domains/{}/parents", enc(&domain));
                let r = c.post(&path, &req)?.ok()?;
                out.reply_or(&r, &format!("bridged {domain} to {parent}"))
            }
            ParentCmd::Del { domain, parent } => {
                let path = format!("/v1/domains/{}/parents/{}", enc(&domain), enc(&parent));
                c.delete(&path)?.ok()?;
                out.done(&format!("took {parent} off {domain}"))
            }
        },
        CtlCommand::Service(cmd) => match cmd {
            ServiceCmd::List { domain } => out.services(
                &c.get(&format!("/v1/domains/{}/services", enc(&domain)))?
                    .ok()?,
            ),
            ServiceCmd::Show { domain, name } => {
                let path = format!("/v1/domains/{}/services/{}", enc(&domain), enc(&name));
                out.service(&c.get(&path)?.ok()?)
            }
            ServiceCmd::Add {
                name,
                network,
                vips,
                ports,
                backends,
                mode,
                health_check,
                interval_ms,
                timeout_ms,
            } => {
                let spec = ServiceSpec {
                    mode,
                    vips,
                    ports,
                    backends,
                    health_check: health_check.map(|p| HealthCheckSpec {
                        port: (p != 0).then_some(p),
                        interval_ms,
                        timeout_ms,
                    }),
                    origin: None,
                };
                let path = format!("/v1/domains/{}/services/{}", enc(&network), enc(&name));
                let r = c.send(hyper::Method::PUT, &path, &spec)?.ok()?;
                out.reply_or(&r, &format!("set service {name} in {network}"))
            }
            ServiceCmd::Del { domain, name } => {
                let path = format!("/v1/domains/{}/services/{}", enc(&domain), enc(&name));
                c.delete(&path)?.ok()?;
                out.done(&format!("deleted service {name} from {domain}"))
            }
        },
        CtlCommand::Neigh => out.neighbors(&c.get("/v1/neighbors")?.ok()?),
        CtlCommand::Network { cmd } => match cmd.unwrap_or(NetworkCmd::List) {
            NetworkCmd::List => out.cnm_networks(&c.get("/v1/cnm/networks")?.ok()?),
            NetworkCmd::Create {
                name,
                scope,
                subnet,
                ipv6_subnet,
                vni,
                internal,
            } => {
                let req = crate::api::CreateCnmNetwork {
                    name: name.clone(),
                    scope: match scope.as_str() {
                        "global" => crate::api::Scope::Global,
                        _ => crate::api::Scope::Local,
                    },
                    subnet,
                    ipv6_subnet,
                    vni,
                    internal,
                };
                let r = c
                    .send(hyper::Method::POST, "/v1/cnm/networks", &req)?
                    .ok()?;
                let v = r.json();
                let kind = match v["kind"]["type"].as_str() {
                    Some("vxlan") => format!(" (VNI {})", v["kind"]["vni"]),
                    _ => String::new(),
                };
                let subnets: Vec<String> = v["subnets"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s["pool"].as_str())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                out.reply_or(
                    &r,
                    &format!("created {scope} network {name}{kind} {}", subnets.join(" ")),
                )
            }
            NetworkCmd::Del { name } => {
                c.delete(&format!("/v1/cnm/networks/{}", enc(&name)))?
                    .ok()?;
                out.done(&format!("deleted network {name}"))
            }
        },
        CtlCommand::Endpoint => out.cnm_endpoints(&c.get("/v1/cnm/endpoints")?.ok()?),
        CtlCommand::Sandbox => out.cnm_sandboxes(&c.get("/v1/cnm/sandboxes")?.ok()?),
        CtlCommand::Cluster => out.cluster(&c.get("/v1/cluster")?.ok()?),
        CtlCommand::Stp { domain } => {
            out.stp(&c.get(&format!("/v1/domains/{}/stp", enc(&domain)))?.ok()?)
        }
        CtlCommand::Remote(cmd) => match cmd {
            RemoteCmd::List { port } => {
                out.remotes(&c.get(&format!("/v1/ports/{}/remotes", enc(&port)))?.ok()?)
            }
            RemoteCmd::Add { port, remote, mac } => {
                let path = format!("/v1/ports/{}/remotes", enc(&port));
                out.remotes(&c.post(&path, &AddRemote { remote, mac })?.ok()?)
            }
            RemoteCmd::Del { port, remote } => {
                let path = format!("/v1/ports/{}/remotes/{}", enc(&port), enc(&remote));
                c.delete(&path)?.ok()?;
                out.done(&format!("removed remote {remote} from {port}"))
            }
        },
        CtlCommand::Port(cmd) => match cmd {
            PortCmd::List => out.ports(&c.get("/v1/ports")?.ok()?),
            PortCmd::Show { name } => out.port(&c.get(&format!("/v1/ports/{}", enc(&name)))?.ok()?),
            PortCmd::Add {
                name,
                kind,
                iface,
                queue,
                options,
                domain,
                opts,
            } => {
                let mut o = BTreeMap::new();
                for kv in options {
                    let (k, val) = kv.split_once('=').ok_or_else(|| {
                        CtlError::Usage(format!("--option {kv:?}: expected KEY=VALUE"))
                    })?;
                    let val = serde_json::from_str(val)
                        .unwrap_or_else(|_| Value::String(val.to_string()));
                    o.insert(k.to_string(), val);
                }
                let mut p = CreatePort::new(&name, kind, &domain);
                p.iface = iface;
                p.queue = queue.unwrap_or(0);
                p.options = o;
                if let Some(v) = opts.vlan() {
                    p.vlan = v;
                }
                p.learning = opts.learning.unwrap_or(p.learning);
                p.enabled = opts.enabled.unwrap_or(p.enabled);
                p.mac_limit = opts.mac_limit.unwrap_or(p.mac_limit);
                p.storm_control = opts.storm_control();
                p.stp = opts.stp().unwrap_or_default();
                out.port(&c.post("/v1/ports", &p)?.ok()?)
            }
            PortCmd::Set {
                name,
                domain,
                opts,
                no_storm_control,
            } => {
                let storm_control = if no_storm_control {
                    Some(None)
                } else {
                    opts.storm_control().map(Some)
                };
                let patch = PortPatch {
                    domain,
                    vlan: opts.vlan(),
                    learning: opts.learning,
                    enabled: opts.enabled,
                    mac_limit: opts.mac_limit,
                    storm_control,
                    stp: opts.stp(),
                    security: None,
                };
                let path = format!("/v1/ports/{}", enc(&name));
                out.port(&c.patch(&path, &patch)?.ok()?)
            }
            PortCmd::Del { name } => {
                c.delete(&format!("/v1/ports/{}", enc(&name)))?.ok()?;
                out.done(&format!("deleted port {name}"))
            }
        },
        CtlCommand::Fdb(cmd) => match cmd {
            FdbCmd::Show { domain } => {
                out.fdb(&c.get(&format!("/v1/domains/{}/fdb", enc(&domain)))?.ok()?)
            }
            FdbCmd::Add {
                domain,
                vid,
                mac,
                port,
            } => {
                let path = format!("/v1/domains/{}/fdb", enc(&domain));
                let entry = StaticEntry {
                    vid,
                    mac,
                    port: port.clone(),
                };
                let r = c.post(&path, &entry)?.ok()?;
                out.reply_or(&r, &format!("added static {mac} vlan {vid} -> {port}"))
            }
            FdbCmd::Del { domain, vid, mac } => {
                let path = format!("/v1/domains/{}/fdb/{vid}/{}", enc(&domain), enc(&mac));
                c.delete(&path)?.ok()?;
                out.done(&format!("deleted {mac} vlan {vid}"))
            }
            FdbCmd::Flush { domain, port, vid } => {
                let q = query(&FlushQuery { port, vid });
                let r = c
                    .delete(&format!("/v1/domains/{}/fdb{q}", enc(&domain)))?
                    .ok()?;
                let n = serde_json::from_slice::<Flushed>(&r.body).map_or(0, |f| f.flushed);
                out.reply_or(&r, &format!("flushed {n} entries"))
            }
        },
        CtlCommand::Show => out.show(
            &c.get("/v1/domains")?.ok()?,
            &c.get("/v1/ports")?.ok()?,
            &c.get("/v1/routes")?.ok()?,
        ),
        CtlCommand::Log { filter: None } => {
            let r = c.get("/v1/log")?.ok()?;
            let f: LogFilter = serde_json::from_slice(&r.body)
                .map_err(|e| CtlError::Usage(format!("GET /v1/log: {e}")))?;
            out.reply_or(&r, &f.filter)
        }
        CtlCommand::Log {
            filter: Some(filter),
        } => {
            let r = c
                .send(hyper::Method::PUT, "/v1/log", &LogFilter { filter })?
                .ok()?;
            out.reply_or(&r, "log filter changed")
        }
        CtlCommand::Stats { port: None } => out.stats(&c.get("/v1/stats")?.ok()?),
        CtlCommand::Stats { port: Some(p) } => {
            out.port_stats(&c.get(&format!("/v1/ports/{}/stats", enc(&p)))?.ok()?)
        }
        CtlCommand::Trace(TraceCmd::Start { count, port }) => {
            c.post("/v1/trace", &TraceRequest { count, port })?.ok()?;
            out.done(&format!("tracing the next {count} packets"))
        }
        CtlCommand::Trace(TraceCmd::Show) => out.trace(&c.get("/v1/trace")?.ok()?),
        CtlCommand::Trace(TraceCmd::Inject { port, hex, vlan }) => {
            let hex = if hex == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| CtlError::Usage(format!("reading the frame from stdin: {e}")))?;
                s
            } else {
                hex
            };
            // Checked here too, for the error to name the argument.
            parse_hex(&hex).map_err(|e| CtlError::Usage(format!("HEX: {e}")))?;
            let req = TraceInjectRequest {
                port,
                frame: hex,
                vlan,
            };
            out.trace_inject(&c.post("/v1/trace/inject", &req)?.ok()?)
        }
        CtlCommand::Capture {
            port,
            file,
            count,
            seconds,
        } => {
            let q = query(&CaptureQuery { count, seconds });
            let path = format!("/v1/ports/{}/capture{q}", enc(&port));
            let ferr = |source| CtlError::File {
                path: file.clone(),
                source,
            };
            let mut f = std::fs::File::create(&file).map_err(ferr)?;
            let n = match c.download_with(&path, &mut f, || {
                eprintln!("capturing on {port} into {}", file.display())
            }) {
                Ok(n) => n,
                Err(e) => {
                    drop(f);
                    let _ = std::fs::remove_file(&file);
                    return Err(e.into());
                }
            };
            f.sync_all().map_err(ferr)?;
            eprintln!("wrote {n} bytes to {}", file.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query string ctl builds is read back by the daemon's parser as
    /// the same query, whatever the name holds.
    #[test]
    fn queries_round_trip_through_the_daemons_parser() {
        let q = FlushQuery {
            port: Some("a b&c=d%".into()),
            vid: Some(3),
        };
        let text = query(&q);
        let back: FlushQuery = serde_urlencoded::from_str(text.strip_prefix('?').unwrap()).unwrap();
        assert_eq!(back, q);
        assert_eq!(query(&FlushQuery::default()), "");
        assert_eq!(
            query(&CaptureQuery {
                count: None,
                seconds: Some(2)
            }),
            "?seconds=2"
        );
    }

    #[test]
    fn command_line_values_parse_as_the_api_parses_them() {
        assert_eq!(
            api_value::<VlanProtocol>("802.1ad"),
            Ok(VlanProtocol::Dot1Ad)
        );
        assert_eq!(api_value::<PortKind>("afxdp"), Ok(PortKind::Afxdp));
        let e = api_value::<VlanProtocol>("qinq").unwrap_err();
        assert!(e.contains("802.1q"), "{e}");
        assert!(vlan_list("10,20-30").unwrap().contains(25));
        assert!(vlan_list("1-5000").unwrap_err().contains("5000"));
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(enc("bd-0.x_y"), "bd-0.x_y");
        assert_eq!(enc("02:00:00:00:00:01"), "02%3A00%3A00%3A00%3A00%3A01");
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
    }
}
