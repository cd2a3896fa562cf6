//! Rapid Spanning Tree Protocol (IEEE 802.1D-2004 clause 17, née 802.1w) for
//! one bridge domain, as a pure state machine: frames in, frames out, port
//! states and flush requests for the pipeline to apply. Written by hand from
//! the standard's state machines (no crate implements RSTP).
//!
//! The caller feeds received BPDUs ([`bpdu::is_bpdu_frame`]) to
//! [`Stp::rx_bpdu`], calls [`Stp::tick`] at least every 100 ms, sends what
//! [`Stp::drain_tx`] hands out (on the port named, whatever its state: BPDUs
//! are not subject to the forwarding gate), applies [`Stp::drain_flush`] to
//! the FDB and gates learning and forwarding on [`Stp::learning`] /
//! [`Stp::forwarding`]. Ports not added are Disabled and Discarding.
//!
//! The state machines of clause 17 (Port Receive, Protocol Migration,
//! Bridge Detection, Port Information, Port Role Selection, Port Role
//! Transitions, Port State Transition, Topology Change, Port Transmit) are
//! kept state for state, with the variable names of the standard in
//! snake_case, and run to quiescence after every input. Departures, each for
//! a reason: timers count milliseconds (not whole seconds) so any tick rate
//! works; where 802.1D-2004 sets `fdWhile` to `forwardDelay` (17.20.5: Hello
//! Time when the neighbor speaks RSTP) this uses Forward Delay, as 802.1w
//! did, so a designated port that gets no agreement (shared link, silent or
//! one-way neighbor) waits Forward Delay in Discarding and again in Learning
//! instead of two Hello Times; FDB flushes are requests that complete at
//! once; a received TCN sets `rcvdTcn` directly (the Port Information
//! machine never reaches `setTcFlags` for one); a BPDU carrying this port's
//! own bridge and port identifier is dropped as a loop-back (9.3.4 says so
//! for Configuration BPDUs; it is as true for RST BPDUs).
//!
//! A newly enabled port starts with `fdWhile` = Max Age (17.29, INIT_PORT
//! and DISABLED_PORT), so without an agreement it learns after Max Age and
//! forwards Forward Delay later (35 s with the defaults).
//!
//! Owns: the bridge's and ports' protocol variables, BPDUs waiting to be
//! sent, flush requests. Never: reading a clock (time is the caller's
//! `now_ms`), I/O, touching the FDB, allocation on the per-batch queries
//! ([`Stp::state`], [`Stp::learning`], [`Stp::forwarding`]).

pub mod bpdu;
mod machine;
#[cfg(test)]
mod tests;

use crate::mac::MacAddr;
use crate::port::PortId;

pub use bpdu::{Bpdu, BpduError, BpduKind, BridgeId, Times, is_bpdu_frame};
use machine::PortVars;

/// 802.1D-2004 17.13.9: how long a port waits before changing protocol
/// version again, and (17.25) before an auto edge port is declared edge.
pub const MIGRATE_TIME_MS: u64 = 3_000;

/// The default port path cost: 1 Gb/s per 802.1D-2004 table 17-3.
pub const DEFAULT_PATH_COST: u32 = 20_000;

/// Recommended port path cost for a link speed (802.1D-2004 table 17-3:
/// 20 000 000 000 / speed in kb/s, clamped to 1..=200 000 000).
pub const fn path_cost_for_speed(mbps: u64) -> u32 {
    if mbps == 0 {
        return 200_000_000;
    }
    let c = 20_000_000 / mbps;
    if c == 0 {
        1
    } else if c > 200_000_000 {
        200_000_000
    } else {
        c as u32
    }
}

/// Bridge-wide settings (17.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StpConfig {
    /// Bridge priority; only the top 4 bits count (a multiple of 4096).
    pub priority: u16,
    pub hello_ms: u64,
    pub max_age_ms: u64,
    pub forward_delay_ms: u64,
    /// Most BPDUs a port sends per second.
    pub tx_hold_count: u32,
    /// 2 = RSTP, 0 = STP-compatible (sends only Configuration and TCN BPDUs).
    pub force_version: u8,
}

impl Default for StpConfig {
    fn default() -> Self {
        StpConfig {
            priority: 32768,
            hello_ms: 2_000,
            max_age_ms: 20_000,
            forward_delay_ms: 15_000,
            tx_hold_count: 6,
            force_version: 2,
        }
    }
}

/// A setting outside what 802.1D-2004 17.14 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("spanning tree: {0}")]
pub struct StpConfigError(pub &'static str);

impl StpConfig {
    /// Check the ranges of 802.1D-2004 table 17-1 (hello widened to 1-10 s
    /// as common implementations do) and the relation
    /// 2 × (Forward Delay − 1 s) ≥ Max Age ≥ 2 × (Hello Time + 1 s).
    /// [`Stp::new`] does not insist; the API layer should.
    pub fn validate(&self) -> Result<(), StpConfigError> {
        let e = |m| Err(StpConfigError(m));
        if !self.priority.is_multiple_of(4096) {
            return e("bridge priority must be a multiple of 4096");
        }
        if !(1_000..=10_000).contains(&self.hello_ms) {
            return e("hello time must be 1-10 s");
        }
        if !(6_000..=40_000).contains(&self.max_age_ms) {
            return e("max age must be 6-40 s");
        }
        if !(4_000..=30_000).contains(&self.forward_delay_ms) {
            return e("forward delay must be 4-30 s");
        }
        if !(1..=10).contains(&self.tx_hold_count) {
            return e("transmit hold count must be 1-10");
        }
        if 2 * (self.forward_delay_ms - 1_000) < self.max_age_ms {
            return e("max age must not exceed 2 × (forward delay − 1 s)");
        }
        if self.max_age_ms < 2 * (self.hello_ms + 1_000) {
            return e("max age must be at least 2 × (hello time + 1 s)");
        }
        if !matches!(self.force_version, 0 | 2) {
            return e("force version must be 0 (STP) or 2 (RSTP)");
        }
        Ok(())
    }
}

impl StpPortConfig {
    /// Port priority in steps of 16, path cost 0 (default) or at most
    /// 200 000 000.
    pub fn validate(&self) -> Result<(), StpConfigError> {
        if !self.priority.is_multiple_of(16) {
            return Err(StpConfigError("port priority must be a multiple of 16"));
        }
        if self.path_cost > 200_000_000 {
            return Err(StpConfigError("path cost must be at most 200000000"));
        }
        Ok(())
    }
}

/// Per-port settings (17.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StpPortConfig {
    /// Port priority; only the top 4 bits count (a multiple of 16).
    pub priority: u8,
    /// Port path cost; 0 means [`DEFAULT_PATH_COST`] (the caller that knows
    /// the link speed passes [`path_cost_for_speed`]).
    pub path_cost: u32,
    /// Configured as an edge port: forwards at once, until a BPDU arrives.
    pub admin_edge: bool,
    /// Becomes an edge port when it proposes and hears no BPDU for
    /// [`MIGRATE_TIME_MS`] (Max Age on a link that is not point-to-point).
    pub auto_edge: bool,
    /// Point-to-point link: the proposal/agreement handshake is allowed.
    pub point_to_point: bool,
}

impl Default for StpPortConfig {
    fn default() -> Self {
        StpPortConfig {
            priority: 128,
            path_cost: 0,
            admin_edge: false,
            auto_edge: true,
            point_to_point: true,
        }
    }
}

/// A port's role in the active topology (17.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortRole {
    Root,
    Designated,
    Alternate,
    Backup,
    #[default]
    Disabled,
}

/// What a port does with frames (17.4): discarding neither learns nor
/// forwards, learning learns but does not forward, forwarding does both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    #[default]
    Discarding,
    Learning,
    Forwarding,
}

/// Remove the dynamic FDB entries learned on `port` (all VLANs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FlushRequest {
    pub port: PortId,
}

/// Per-port protocol counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct StpPortCounters {
    pub bpdu_rx: u64,
    pub bpdu_tx: u64,
    /// BPDUs received with the TC flag, and TCNs.
    pub tc_rx: u64,
    /// BPDUs sent with the TC flag, and TCNs.
    pub tc_tx: u64,
    /// Times the port entered Forwarding.
    pub forward_transitions: u64,
}

/// One port, for the API/CLI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StpPortInfo {
    pub port: PortId,
    pub enabled: bool,
    pub role: PortRole,
    pub state: PortState,
    pub edge: bool,
    /// Sending RST BPDUs (false: fell back to STP for an 802.1D-1998 peer).
    pub rstp: bool,
    pub path_cost: u32,
    /// This port's identifier (priority and number).
    pub port_id: u16,
    /// The port priority vector: what the designated bridge of the LAN says.
    pub designated_root: BridgeId,
    pub designated_cost: u32,
    pub designated_bridge: BridgeId,
    pub designated_port: u16,
    pub counters: StpPortCounters,
}

/// The whole bridge, for the API/CLI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StpInfo {
    pub bridge_id: BridgeId,
    pub root_id: BridgeId,
    pub root_path_cost: u32,
    /// `None` when this bridge is the root.
    pub root_port: Option<PortId>,
    pub force_version: u8,
    pub hello_ms: u64,
    pub max_age_ms: u64,
    pub forward_delay_ms: u64,
    /// Topology changes this bridge detected.
    pub topology_changes: u64,
    pub last_topology_change_ms: Option<u64>,
    pub ports: Vec<StpPortInfo>,
}

/// A priority vector (17.6). Lower is better; compared component by
/// component in field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct PriorityVector {
    pub root: BridgeId,
    pub root_cost: u32,
    /// Designated bridge.
    pub bridge: BridgeId,
    /// Designated port.
    pub port: u16,
    /// The receiving port (the bridge port component).
    pub rx_port: u16,
}

impl PriorityVector {
    /// 17.6: `self` (a message) is superior to `other` (a port's vector):
    /// better, or a different vector from the same designated bridge and
    /// port (that bridge's information changed).
    pub fn superior_to(&self, other: &Self) -> bool {
        self < other
            || (self != other
                && self.bridge.mac() == other.bridge.mac()
                && self.port & 0x0fff == other.port & 0x0fff)
    }
}

/// The spanning tree of one bridge domain.
#[derive(Debug)]
pub struct Stp {
    pub(crate) cfg: StpConfig,
    pub(crate) bridge_id: BridgeId,
    pub(crate) bridge_mac: MacAddr,
    pub(crate) bridge_priority: PriorityVector,
    pub(crate) bridge_times: Times,
    pub(crate) root_priority: PriorityVector,
    pub(crate) root_times: Times,
    pub(crate) root_port: Option<PortId>,
    /// Indexed by [`PortId::index`].
    pub(crate) ports: Vec<Option<PortVars>>,
    /// Forces a role selection (a port was removed).
    pub(crate) reselect_all: bool,
    pub(crate) tx: Vec<(PortId, Vec<u8>)>,
    pub(crate) flush: Vec<FlushRequest>,
    pub(crate) now_ms: u64,
    pub(crate) last_ms: u64,
    /// Milliseconds towards the next whole second (txCount decrements).
    pub(crate) second_ms: u64,
    pub(crate) topology_changes: u64,
    pub(crate) last_topology_change_ms: Option<u64>,
}

impl Stp {
    pub fn new(bridge_mac: MacAddr, cfg: StpConfig, now_ms: u64) -> Self {
        let bridge_id = BridgeId::new(cfg.priority, bridge_mac);
        let bridge_priority = PriorityVector {
            root: bridge_id,
            root_cost: 0,
            bridge: bridge_id,
            port: 0,
            rx_port: 0,
        };
        let bridge_times = Times {
            message_age: 0,
            max_age: cfg.max_age_ms as u32,
            hello: cfg.hello_ms as u32,
            forward_delay: cfg.forward_delay_ms as u32,
        };
        Stp {
            cfg,
            bridge_id,
            bridge_mac,
            bridge_priority,
            bridge_times,
            root_priority: bridge_priority,
            root_times: bridge_times,
            root_port: None,
            ports: Vec::new(),
            reselect_all: false,
            tx: Vec::new(),
            flush: Vec::new(),
            now_ms,
            last_ms: now_ms,
            second_ms: 0,
            topology_changes: 0,
            last_topology_change_ms: None,
        }
    }

    pub fn config(&self) -> &StpConfig {
        &self.cfg
    }

    pub fn bridge_id(&self) -> BridgeId {
        self.bridge_id
    }

    /// The root bridge as this bridge sees it.
    pub fn root_id(&self) -> BridgeId {
        self.root_priority.root
    }

    pub fn root_port(&self) -> Option<PortId> {
        self.root_port
    }

    /// The source MAC of BPDUs sent on `p`: the bridge MAC, locally
    /// administered, with the port number in the low 16 bits.
    pub fn port_mac(&self, p: PortId) -> MacAddr {
        let mut m = self.bridge_mac.0;
        m[0] = (m[0] | 0x02) & !0x01;
        let n = machine::port_number(p).to_be_bytes();
        m[4] ^= n[0];
        m[5] ^= n[1];
        MacAddr(m)
    }

    /// A port joins the tree with its link up (BEGIN for that port): it
    /// starts Discarding, or Forwarding at once if it is an admin edge port.
    /// Re-adding a port starts it afresh.
    pub fn add_port(&mut self, p: PortId, cfg: StpPortConfig, now_ms: u64) {
        self.advance(now_ms);
        let i = p.index();
        if self.ports.len() <= i {
            self.ports.resize_with(i + 1, || None);
        }
        self.ports[i] = Some(PortVars::new(p, cfg, self.root_times));
        self.begin_port(i);
        self.run();
    }

    /// A port leaves the tree (removed from the domain).
    pub fn remove_port(&mut self, p: PortId) {
        if let Some(slot) = self.ports.get_mut(p.index())
            && slot.take().is_some()
        {
            self.tx.retain(|(q, _)| *q != p);
            self.flush.retain(|f| f.port != p);
            self.reselect_all = true;
            self.run();
        }
    }

    /// Link down (`up == false`) or back up.
    pub fn set_port_enabled(&mut self, p: PortId, up: bool, now_ms: u64) {
        self.advance(now_ms);
        let Some(v) = self.port_mut(p) else { return };
        if v.port_enabled == up {
            return;
        }
        v.port_enabled = up;
        self.run();
    }

    /// Change the bridge's settings (priority, timers, hold count,
    /// version); the tree re-forms as the standard's management operations
    /// would make it.
    pub fn set_config(&mut self, cfg: StpConfig, now_ms: u64) {
        self.advance(now_ms);
        let version_changed = cfg.force_version != self.cfg.force_version;
        let fresh = Stp::new(self.bridge_mac, cfg, now_ms);
        self.cfg = cfg;
        self.bridge_id = fresh.bridge_id;
        self.bridge_priority = fresh.bridge_priority;
        self.bridge_times = fresh.bridge_times;
        for v in self.ports.iter_mut().flatten() {
            let c = v.cfg;
            v.reconfigure(c, version_changed);
        }
        self.run();
    }

    /// Change a port's settings (priority, path cost, edge, link type).
    pub fn set_port_config(&mut self, p: PortId, cfg: StpPortConfig, now_ms: u64) {
        self.advance(now_ms);
        if let Some(v) = self.port_mut(p) {
            v.reconfigure(cfg, false);
            self.run();
        }
    }

    /// Protocol migration check (17.19.13): try RSTP again on a port that
    /// fell back to STP.
    pub fn mcheck(&mut self, p: PortId, now_ms: u64) {
        self.advance(now_ms);
        let rstp = self.cfg.force_version >= 2;
        if let Some(v) = self.port_mut(p)
            && rstp
        {
            v.mcheck = true;
            self.run();
        }
    }

    /// A received frame sent to 01:80:C2:00:00:00 with LLC 42 42 03: the
    /// whole Ethernet frame, padding allowed. Errors are for the caller's
    /// drop counters; nothing changed.
    pub fn rx_bpdu(&mut self, p: PortId, frame: &[u8], now_ms: u64) -> Result<(), BpduError> {
        let bpdu = Bpdu::decode_frame(frame)?;
        self.advance(now_ms);
        let own_port = match self.port(p) {
            Some(v) => v.port_id,
            None => return Err(BpduError::UnknownPort),
        };
        if bpdu.kind != BpduKind::Tcn && bpdu.bridge == self.bridge_id && bpdu.port == own_port {
            return Err(BpduError::Loopback);
        }
        let Some(v) = self.port_mut(p) else {
            return Err(BpduError::UnknownPort);
        };
        if !v.port_enabled {
            return Ok(());
        }
        v.counters.bpdu_rx += 1;
        if bpdu.kind == BpduKind::Tcn || bpdu.flags & bpdu::flags::TC != 0 {
            v.counters.tc_rx += 1;
        }
        v.receive(bpdu);
        self.run();
        Ok(())
    }

    /// Advance the timers to `now_ms` and act on whatever expired. Call at
    /// least every 100 ms.
    pub fn tick(&mut self, now_ms: u64) {
        self.advance(now_ms);
        self.run();
    }

    /// Take the frames to send: whole Ethernet frames to the Bridge Group
    /// Address, already limited by the transmit hold count.
    pub fn drain_tx(&mut self, out: &mut Vec<(PortId, Vec<u8>)>) {
        out.append(&mut self.tx);
    }

    /// Take the FDB flushes the topology changes asked for (one per port).
    pub fn drain_flush(&mut self, out: &mut Vec<FlushRequest>) {
        out.append(&mut self.flush);
    }

    /// The port's state; ports not in the tree are Discarding.
    #[inline]
    pub fn state(&self, p: PortId) -> PortState {
        match self.port(p) {
            Some(v) if v.forwarding => PortState::Forwarding,
            Some(v) if v.learning => PortState::Learning,
            _ => PortState::Discarding,
        }
    }

    /// The port's role; ports not in the tree are Disabled.
    pub fn role(&self, p: PortId) -> PortRole {
        self.port(p).map_or(PortRole::Disabled, |v| v.role)
    }

    /// May the pipeline learn source addresses on `p`?
    #[inline]
    pub fn learning(&self, p: PortId) -> bool {
        self.port(p).is_some_and(|v| v.learning)
    }

    /// May the pipeline forward frames received on, or sent to, `p`?
    #[inline]
    pub fn forwarding(&self, p: PortId) -> bool {
        self.port(p).is_some_and(|v| v.forwarding)
    }

    /// Is `p` an (operational) edge port?
    pub fn is_edge(&self, p: PortId) -> bool {
        self.port(p).is_some_and(|v| v.oper_edge)
    }

    pub fn info(&self) -> StpInfo {
        let ports = self
            .ports
            .iter()
            .flatten()
            .map(|v| StpPortInfo {
                port: v.id,
                enabled: v.port_enabled,
                role: v.role,
                state: self.state(v.id),
                edge: v.oper_edge,
                rstp: v.send_rstp,
                path_cost: v.path_cost,
                port_id: v.port_id,
                designated_root: v.port_priority.root,
                designated_cost: v.port_priority.root_cost,
                designated_bridge: v.port_priority.bridge,
                designated_port: v.port_priority.port,
                counters: v.counters,
            })
            .collect();
        StpInfo {
            bridge_id: self.bridge_id,
            root_id: self.root_priority.root,
            root_path_cost: self.root_priority.root_cost,
            root_port: self.root_port,
            force_version: self.cfg.force_version,
            hello_ms: self.cfg.hello_ms,
            max_age_ms: self.cfg.max_age_ms,
            forward_delay_ms: self.cfg.forward_delay_ms,
            topology_changes: self.topology_changes,
            last_topology_change_ms: self.last_topology_change_ms,
            ports,
        }
    }

    #[inline]
    pub(crate) fn port(&self, p: PortId) -> Option<&PortVars> {
        self.ports.get(p.index()).and_then(Option::as_ref)
    }

    pub(crate) fn port_mut(&mut self, p: PortId) -> Option<&mut PortVars> {
        self.ports.get_mut(p.index()).and_then(Option::as_mut)
    }
}
