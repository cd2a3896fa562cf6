//! The clause 17 state machines, one port's variables in [`PortVars`] and
//! the bridge's in [`Stp`]. Each `step_*` function takes at most one
//! transition of one machine and says whether it did; [`Stp::run`] steps
//! every machine until none moves (the transmit machine last, so a BPDU
//! carries the settled state).
//!
//! Names follow 802.1D-2004 17.19-17.31; the state names are the standard's.

use super::bpdu::{self, Bpdu, BpduKind, Times, flags};
use super::{
    FlushRequest, MIGRATE_TIME_MS, PortRole, PriorityVector, Stp, StpPortConfig, StpPortCounters,
};
use crate::port::PortId;

/// The 802.1D port number of a switch port: `PortId + 1` (port number 0 is
/// reserved), so `PortId::MAX` wraps to 0, still unique.
pub(crate) fn port_number(p: PortId) -> u16 {
    p.0.wrapping_add(1) & 0x0fff
}

fn path_cost(cfg: &StpPortConfig) -> u32 {
    match cfg.path_cost {
        0 => super::DEFAULT_PATH_COST,
        c => c.min(200_000_000),
    }
}

/// Rounds after settling should never exceed this; more means a livelock.
const MAX_ROUNDS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InfoIs {
    Received,
    Mine,
    Aged,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RcvdInfo {
    SuperiorDesignated,
    RepeatedDesignated,
    InferiorDesignated,
    InferiorRootAlternate,
    Other,
}

/// Port Information (17.27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pim {
    Disabled,
    Aged,
    Update,
    Current,
    Receive,
    SuperiorDesignated,
    RepeatedDesignated,
    InferiorDesignated,
    NotDesignated,
    Other,
}

/// Port Role Transitions (17.29).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prt {
    InitPort,
    DisablePort,
    DisabledPort,
    RootPort,
    RootProposed,
    RootAgreed,
    Reroot,
    RootForward,
    RootLearn,
    Rerooted,
    DesignatedPort,
    DesignatedPropose,
    DesignatedSynced,
    DesignatedRetired,
    DesignatedDiscard,
    DesignatedLearn,
    DesignatedForward,
    AlternatePort,
    AlternateProposed,
    AlternateAgreed,
    BlockPort,
    BackupPort,
}

/// Port State Transition (17.30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pst {
    Discarding,
    Learning,
    Forwarding,
}

/// Topology Change (17.31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tcm {
    Inactive,
    Learning,
    Detected,
    Active,
    NotifiedTcn,
    NotifiedTc,
    Propagating,
    Acknowledged,
}

/// Port Protocol Migration (17.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ppm {
    CheckingRstp,
    SelectingStp,
    Sensing,
}

/// Bridge Detection (17.25).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bdm {
    Edge,
    NotEdge,
}

/// Port Transmit (17.26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ptx {
    Init,
    Idle,
    Periodic,
    Config,
    Tcn,
    Rstp,
}

/// One port's protocol variables (17.19) and machine states.
#[derive(Debug)]
pub(crate) struct PortVars {
    pub id: PortId,
    /// Port identifier: priority nibble and port number.
    pub port_id: u16,
    pub cfg: StpPortConfig,
    pub path_cost: u32,

    // Timers, milliseconds left (17.17).
    edge_delay_while: u64,
    fd_while: u64,
    hello_when: u64,
    mdelay_while: u64,
    rb_while: u64,
    rcvd_info_while: u64,
    rr_while: u64,
    tc_while: u64,
    tx_count: u32,

    agree: bool,
    agreed: bool,
    disputed: bool,
    forward: bool,
    pub forwarding: bool,
    learn: bool,
    pub learning: bool,
    pub mcheck: bool,
    new_info: bool,
    pub oper_edge: bool,
    pub port_enabled: bool,
    proposed: bool,
    proposing: bool,
    rcvd_msg: bool,
    rcvd_rstp: bool,
    rcvd_stp: bool,
    rcvd_tc: bool,
    rcvd_tc_ack: bool,
    rcvd_tcn: bool,
    re_root: bool,
    reselect: bool,
    selected: bool,
    pub send_rstp: bool,
    sync: bool,
    synced: bool,
    tc_ack: bool,
    tc_prop: bool,
    updt_info: bool,

    info_is: InfoIs,
    rcvd_info: RcvdInfo,
    pub role: PortRole,
    selected_role: PortRole,
    designated_priority: PriorityVector,
    designated_times: Times,
    msg_priority: PriorityVector,
    msg_times: Times,
    pub port_priority: PriorityVector,
    port_times: Times,
    /// The BPDU the Port Information machine is processing.
    msg: Option<Bpdu>,

    pim: Pim,
    prt: Prt,
    pst: Pst,
    tcm: Tcm,
    ppm: Ppm,
    bdm: Bdm,
    ptx: Ptx,

    pub counters: StpPortCounters,
}

impl PortVars {
    pub fn new(id: PortId, cfg: StpPortConfig, times: Times) -> Self {
        let path_cost = path_cost(&cfg);
        PortVars {
            id,
            port_id: bpdu::port_identifier(cfg.priority, port_number(id)),
            cfg,
            path_cost,
            edge_delay_while: MIGRATE_TIME_MS,
            fd_while: 0,
            hello_when: 0,
            mdelay_while: 0,
            rb_while: 0,
            rcvd_info_while: 0,
            rr_while: 0,
            tc_while: 0,
            tx_count: 0,
            agree: false,
            agreed: false,
            disputed: false,
            forward: false,
            forwarding: false,
            learn: false,
            learning: false,
            mcheck: false,
            new_info: false,
            oper_edge: false,
            port_enabled: true,
            proposed: false,
            proposing: false,
            rcvd_msg: false,
            rcvd_rstp: false,
            rcvd_stp: false,
            rcvd_tc: false,
            rcvd_tc_ack: false,
            rcvd_tcn: false,
            re_root: false,
            reselect: false,
            selected: false,
            send_rstp: false,
            sync: false,
            synced: false,
            tc_ack: false,
            tc_prop: false,
            updt_info: false,
            info_is: InfoIs::Disabled,
            rcvd_info: RcvdInfo::Other,
            role: PortRole::Disabled,
            selected_role: PortRole::Disabled,
            designated_priority: PriorityVector::default(),
            designated_times: times,
            msg_priority: PriorityVector::default(),
            msg_times: Times::default(),
            port_priority: PriorityVector::default(),
            port_times: times,
            msg: None,
            pim: Pim::Disabled,
            prt: Prt::InitPort,
            pst: Pst::Discarding,
            tcm: Tcm::Inactive,
            ppm: Ppm::CheckingRstp,
            bdm: Bdm::NotEdge,
            ptx: Ptx::Init,
            counters: StpPortCounters::default(),
        }
    }

    /// New management settings (17.13): identifier and cost take effect
    /// through a new role selection; an admin edge change takes effect at
    /// once.
    pub fn reconfigure(&mut self, cfg: StpPortConfig, version_changed: bool) {
        if cfg.admin_edge != self.cfg.admin_edge {
            self.bdm = if cfg.admin_edge {
                Bdm::Edge
            } else {
                Bdm::NotEdge
            };
            self.oper_edge = cfg.admin_edge;
        }
        self.path_cost = path_cost(&cfg);
        self.port_id = bpdu::port_identifier(cfg.priority, port_number(self.id));
        self.cfg = cfg;
        self.reselect = true;
        self.selected = false;
        if version_changed {
            self.mcheck = true;
        }
    }

    /// Port Receive, RECEIVE (17.23): a valid BPDU arrived on an enabled port.
    pub fn receive(&mut self, b: Bpdu) {
        // updtBPDUVersion (17.21.22).
        if b.kind == BpduKind::Rst {
            self.rcvd_rstp = true;
        } else {
            self.rcvd_stp = true;
        }
        if b.kind == BpduKind::Tcn {
            self.rcvd_tcn = true;
        }
        self.oper_edge = false;
        self.rcvd_msg = true;
        self.edge_delay_while = self.edge_delay();
        self.msg = Some(b);
    }

    /// EdgeDelay (17.20.4): how long a proposing port hears nothing before
    /// it counts as an edge port: Migrate Time on point-to-point links, Max
    /// Age on shared ones.
    fn edge_delay(&self) -> u64 {
        if self.cfg.point_to_point {
            MIGRATE_TIME_MS
        } else {
            self.designated_times.max_age as u64
        }
    }

    fn timers_mut(&mut self) -> [&mut u64; 8] {
        [
            &mut self.edge_delay_while,
            &mut self.fd_while,
            &mut self.hello_when,
            &mut self.mdelay_while,
            &mut self.rb_while,
            &mut self.rcvd_info_while,
            &mut self.rr_while,
            &mut self.tc_while,
        ]
    }

    /// The role the received message carries (Configuration BPDUs count
    /// as Designated, 17.21.8).
    fn msg_role(&self) -> u8 {
        match self.msg {
            Some(m) if m.kind == BpduKind::Config => flags::ROLE_DESIGNATED,
            Some(m) if m.kind == BpduKind::Rst => m.flags & flags::ROLE_MASK,
            _ => flags::ROLE_UNKNOWN,
        }
    }

    fn msg_flag(&self, f: u8) -> bool {
        self.msg
            .is_some_and(|m| m.kind != BpduKind::Tcn && m.flags & f != 0)
    }

    /// 17.21.1
    fn better_or_same_info(&self, new_info_is: InfoIs) -> bool {
        match new_info_is {
            InfoIs::Received => {
                self.info_is == InfoIs::Received && self.msg_priority <= self.port_priority
            }
            InfoIs::Mine => {
                self.info_is == InfoIs::Mine && self.designated_priority <= self.port_priority
            }
            _ => false,
        }
    }

    /// 17.21.8
    fn rcv_info(&mut self) -> RcvdInfo {
        let Some(m) = self.msg else {
            return RcvdInfo::Other;
        };
        if m.kind == BpduKind::Tcn {
            return RcvdInfo::Other;
        }
        self.msg_priority = PriorityVector {
            root: m.root,
            root_cost: m.root_path_cost,
            bridge: m.bridge,
            port: m.port,
            rx_port: m.port,
        };
        self.msg_times = m.times;
        match self.msg_role() {
            flags::ROLE_DESIGNATED => {
                if self.msg_priority.superior_to(&self.port_priority)
                    || (self.msg_priority == self.port_priority
                        && self.msg_times != self.port_times)
                {
                    RcvdInfo::SuperiorDesignated
                } else if self.msg_priority == self.port_priority {
                    RcvdInfo::RepeatedDesignated
                } else {
                    RcvdInfo::InferiorDesignated
                }
            }
            flags::ROLE_ROOT | flags::ROLE_ALT_BACKUP
                if self.msg_priority >= self.port_priority =>
            {
                RcvdInfo::InferiorRootAlternate
            }
            _ => RcvdInfo::Other,
        }
    }

    /// 17.21.11
    fn record_proposal(&mut self) {
        if self.msg_role() == flags::ROLE_DESIGNATED && self.msg_flag(flags::PROPOSAL) {
            self.proposed = true;
        }
    }

    /// 17.21.9
    fn record_agreement(&mut self, rstp_version: bool) {
        if rstp_version
            && self.cfg.point_to_point
            && self.msg.is_some_and(|m| m.kind == BpduKind::Rst)
            && self.msg_flag(flags::AGREEMENT)
        {
            self.agreed = true;
            self.proposing = false;
        } else {
            self.agreed = false;
        }
    }

    /// 17.21.10
    fn record_dispute(&mut self) {
        if self.msg.is_some_and(|m| m.kind == BpduKind::Rst) && self.msg_flag(flags::LEARNING) {
            self.disputed = true;
            self.agreed = false;
        }
    }

    /// 17.21.17
    fn set_tc_flags(&mut self) {
        if self.msg_flag(flags::TC) {
            self.rcvd_tc = true;
        }
        if self.msg.is_some_and(|m| m.kind == BpduKind::Config) && self.msg_flag(flags::TCA) {
            self.rcvd_tc_ack = true;
        }
    }

    /// 17.21.12, 17.21.13
    fn record_priority_and_times(&mut self) {
        self.port_priority = self.msg_priority;
        self.port_times = self.msg_times;
        self.port_times.hello = self.port_times.hello.clamp(1_000, 10_000);
    }

    /// 17.21.23
    fn updt_rcvd_info_while(&mut self) {
        let t = self.port_times;
        self.rcvd_info_while = if t.message_age as u64 + 1_000 <= t.max_age as u64 {
            3 * t.hello as u64
        } else {
            0
        };
    }
}

/// Round to the nearest whole second.
fn round_sec(ms: u32) -> u32 {
    (ms.saturating_add(500) / 1000).saturating_mul(1000)
}

macro_rules! port {
    ($s:ident, $i:expr) => {
        $s.ports[$i].as_mut().expect("stp port")
    };
}

impl Stp {
    fn rstp_version(&self) -> bool {
        self.cfg.force_version >= 2
    }

    fn hello_time(&self) -> u64 {
        self.cfg.hello_ms
    }

    /// Advance every timer to `now_ms` (Port Timers, 17.22).
    pub(crate) fn advance(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.now_ms = self.now_ms.max(now_ms);
        if elapsed == 0 {
            return;
        }
        self.last_ms = now_ms;
        self.second_ms += elapsed;
        let seconds = self.second_ms / 1000;
        self.second_ms %= 1000;
        for v in self.ports.iter_mut().flatten() {
            for t in v.timers_mut() {
                *t = t.saturating_sub(elapsed);
            }
            v.tx_count = v
                .tx_count
                .saturating_sub(seconds.min(u32::MAX as u64) as u32);
        }
    }

    /// BEGIN for one port: every machine to its initial state.
    pub(crate) fn begin_port(&mut self, i: usize) {
        let times = self.root_times;
        let rstp = self.rstp_version();
        let p = port!(self, i);
        p.designated_times = times;
        p.port_times = times;
        // Port Receive DISCARD.
        p.rcvd_rstp = false;
        p.rcvd_stp = false;
        p.rcvd_msg = false;
        p.edge_delay_while = p.edge_delay();
        // Protocol Migration CHECKING_RSTP.
        p.ppm = Ppm::CheckingRstp;
        p.mcheck = false;
        p.send_rstp = rstp;
        p.mdelay_while = MIGRATE_TIME_MS;
        // Bridge Detection.
        p.bdm = if p.cfg.admin_edge {
            Bdm::Edge
        } else {
            Bdm::NotEdge
        };
        p.oper_edge = p.cfg.admin_edge;
        // Port State Transition DISCARDING.
        p.pst = Pst::Discarding;
        p.learning = false;
        p.forwarding = false;
        // Topology Change INACTIVE; nothing to flush on a new port.
        p.tcm = Tcm::Inactive;
        p.tc_while = 0;
        p.tc_ack = false;
        // Port Transmit TRANSMIT_INIT.
        p.ptx = Ptx::Init;
        p.new_info = true;
        p.tx_count = 0;
        // updtRoleDisabledTree for this port.
        p.selected_role = PortRole::Disabled;
        self.enter_pim(i, Pim::Disabled);
        self.enter_prt(i, Prt::InitPort);
    }

    /// Run every machine until none moves.
    pub(crate) fn run(&mut self) {
        for _ in 0..MAX_ROUNDS {
            for round in 0.. {
                let mut moved = self.step_prs();
                for i in 0..self.ports.len() {
                    if self.ports[i].is_none() {
                        continue;
                    }
                    moved |= self.step_prx(i);
                    moved |= self.step_ppm(i);
                    moved |= self.step_bdm(i);
                    moved |= self.step_pim(i);
                    moved |= self.step_prt(i);
                    moved |= self.step_pst(i);
                    moved |= self.step_tcm(i);
                }
                if !moved {
                    break;
                }
                if round >= MAX_ROUNDS {
                    debug_assert!(false, "stp: state machines do not settle");
                    break;
                }
            }
            let mut sent = false;
            for i in 0..self.ports.len() {
                if self.ports[i].is_some() {
                    sent |= self.step_ptx(i);
                }
            }
            if !sent {
                return;
            }
        }
        debug_assert!(false, "stp: transmit machine does not settle");
    }

    // ---- Port Receive (17.23), the DISCARD half -------------------------

    fn step_prx(&mut self, i: usize) -> bool {
        let p = port!(self, i);
        if !p.port_enabled && (p.edge_delay_while != p.edge_delay() || p.rcvd_msg) {
            p.rcvd_rstp = false;
            p.rcvd_stp = false;
            p.rcvd_msg = false;
            p.msg = None;
            p.edge_delay_while = p.edge_delay();
            return true;
        }
        false
    }

    // ---- Port Protocol Migration (17.24) --------------------------------

    fn step_ppm(&mut self, i: usize) -> bool {
        let rstp = self.rstp_version();
        let p = port!(self, i);
        let next = match p.ppm {
            Ppm::CheckingRstp if p.mdelay_while == 0 => Ppm::Sensing,
            Ppm::CheckingRstp if p.mdelay_while != MIGRATE_TIME_MS && !p.port_enabled => {
                Ppm::CheckingRstp
            }
            Ppm::SelectingStp if p.mdelay_while == 0 || !p.port_enabled || p.mcheck => Ppm::Sensing,
            Ppm::Sensing
                if !p.port_enabled || p.mcheck || (rstp && !p.send_rstp && p.rcvd_rstp) =>
            {
                Ppm::CheckingRstp
            }
            Ppm::Sensing if p.send_rstp && p.rcvd_stp => Ppm::SelectingStp,
            _ => return false,
        };
        p.ppm = next;
        match next {
            Ppm::CheckingRstp => {
                p.mcheck = false;
                p.send_rstp = rstp;
                p.mdelay_while = MIGRATE_TIME_MS;
            }
            Ppm::SelectingStp => {
                p.send_rstp = false;
                p.mdelay_while = MIGRATE_TIME_MS;
            }
            Ppm::Sensing => {
                p.rcvd_rstp = false;
                p.rcvd_stp = false;
            }
        }
        true
    }

    // ---- Bridge Detection (17.25) ---------------------------------------

    fn step_bdm(&mut self, i: usize) -> bool {
        let p = port!(self, i);
        match p.bdm {
            Bdm::Edge if (!p.port_enabled && !p.cfg.admin_edge) || !p.oper_edge => {
                p.bdm = Bdm::NotEdge;
                p.oper_edge = false;
                true
            }
            Bdm::NotEdge
                if (!p.port_enabled && p.cfg.admin_edge)
                    || (p.edge_delay_while == 0
                        && p.cfg.auto_edge
                        && p.send_rstp
                        && p.proposing) =>
            {
                p.bdm = Bdm::Edge;
                p.oper_edge = true;
                true
            }
            _ => false,
        }
    }

    // ---- Port Information (17.27) ---------------------------------------

    fn step_pim(&mut self, i: usize) -> bool {
        let p = port!(self, i);
        if !p.port_enabled && p.info_is != InfoIs::Disabled {
            self.enter_pim(i, Pim::Disabled);
            return true;
        }
        let next = match p.pim {
            Pim::Disabled if p.rcvd_msg => Pim::Disabled,
            Pim::Disabled if p.port_enabled => Pim::Aged,
            Pim::Aged if p.selected && p.updt_info => Pim::Update,
            Pim::Update
            | Pim::SuperiorDesignated
            | Pim::RepeatedDesignated
            | Pim::InferiorDesignated
            | Pim::NotDesignated
            | Pim::Other => Pim::Current,
            Pim::Current if p.selected && p.updt_info => Pim::Update,
            Pim::Current
                if p.info_is == InfoIs::Received
                    && p.rcvd_info_while == 0
                    && !p.updt_info
                    && !p.rcvd_msg =>
            {
                Pim::Aged
            }
            Pim::Current if p.rcvd_msg && !p.updt_info => Pim::Receive,
            Pim::Receive => match p.rcvd_info {
                RcvdInfo::SuperiorDesignated => Pim::SuperiorDesignated,
                RcvdInfo::RepeatedDesignated => Pim::RepeatedDesignated,
                RcvdInfo::InferiorDesignated => Pim::InferiorDesignated,
                RcvdInfo::InferiorRootAlternate => Pim::NotDesignated,
                RcvdInfo::Other => Pim::Other,
            },
            _ => return false,
        };
        self.enter_pim(i, next);
        true
    }

    fn enter_pim(&mut self, i: usize, s: Pim) {
        let rstp = self.rstp_version();
        let p = port!(self, i);
        p.pim = s;
        match s {
            Pim::Disabled => {
                p.rcvd_msg = false;
                p.proposing = false;
                p.proposed = false;
                p.agree = false;
                p.agreed = false;
                p.rcvd_info_while = 0;
                p.info_is = InfoIs::Disabled;
                p.reselect = true;
                p.selected = false;
            }
            Pim::Aged => {
                p.info_is = InfoIs::Aged;
                p.reselect = true;
                p.selected = false;
            }
            Pim::Update => {
                p.proposing = false;
                p.proposed = false;
                p.agreed = p.agreed && p.better_or_same_info(InfoIs::Mine);
                p.synced = p.synced && p.agreed;
                p.port_priority = p.designated_priority;
                p.port_times = p.designated_times;
                p.updt_info = false;
                p.info_is = InfoIs::Mine;
                p.new_info = true;
            }
            Pim::Current => {}
            Pim::Receive => {
                p.rcvd_info = p.rcv_info();
            }
            Pim::SuperiorDesignated => {
                p.agreed = false;
                p.proposing = false;
                p.record_proposal();
                p.set_tc_flags();
                p.agree = p.agree && p.better_or_same_info(InfoIs::Received);
                p.record_priority_and_times();
                p.updt_rcvd_info_while();
                p.info_is = InfoIs::Received;
                p.reselect = true;
                p.selected = false;
                p.rcvd_msg = false;
            }
            Pim::RepeatedDesignated => {
                p.record_proposal();
                p.set_tc_flags();
                p.updt_rcvd_info_while();
                p.rcvd_msg = false;
            }
            Pim::InferiorDesignated => {
                p.record_dispute();
                p.rcvd_msg = false;
            }
            Pim::NotDesignated => {
                p.record_agreement(rstp);
                p.set_tc_flags();
                p.rcvd_msg = false;
            }
            Pim::Other => {
                p.rcvd_msg = false;
            }
        }
    }

    // ---- Port Role Selection (17.28) ------------------------------------

    fn step_prs(&mut self) -> bool {
        let any = self.reselect_all || self.ports.iter().flatten().any(|v| v.reselect);
        if !any {
            return false;
        }
        self.reselect_all = false;
        // clearReselectTree
        for v in self.ports.iter_mut().flatten() {
            v.reselect = false;
        }
        self.updt_roles_tree();
        // setSelectedTree: nothing can have set reselect in between.
        for v in self.ports.iter_mut().flatten() {
            v.selected = true;
        }
        true
    }

    /// 17.21.25
    fn updt_roles_tree(&mut self) {
        let mut best = self.bridge_priority;
        let mut best_port = None;
        for (i, v) in self.ports.iter().enumerate() {
            let Some(v) = v else { continue };
            if v.info_is != InfoIs::Received || v.port_priority.bridge.mac() == self.bridge_mac {
                continue;
            }
            let root_path = PriorityVector {
                root_cost: v.port_priority.root_cost.saturating_add(v.path_cost),
                rx_port: v.port_id,
                ..v.port_priority
            };
            if root_path < best {
                best = root_path;
                best_port = Some(i);
            }
        }
        self.root_priority = best;
        self.root_port = best_port.map(|i| port!(self, i).id);
        self.root_times = match best_port {
            None => self.bridge_times,
            Some(i) => {
                let t = port!(self, i).port_times;
                Times {
                    message_age: round_sec(t.message_age.saturating_add(1_000)),
                    ..t
                }
            }
        };
        let hello = self.bridge_times.hello;
        let (bridge_id, bridge_mac, root_times) =
            (self.bridge_id, self.bridge_mac, self.root_times);
        for (i, v) in self.ports.iter_mut().enumerate() {
            let Some(v) = v else { continue };
            v.designated_priority = PriorityVector {
                root: best.root,
                root_cost: best.root_cost,
                bridge: bridge_id,
                port: v.port_id,
                rx_port: v.port_id,
            };
            v.designated_times = Times {
                hello,
                ..root_times
            };
            match v.info_is {
                InfoIs::Disabled => v.selected_role = PortRole::Disabled,
                InfoIs::Aged => {
                    v.selected_role = PortRole::Designated;
                    v.updt_info = true;
                }
                InfoIs::Mine => {
                    v.selected_role = PortRole::Designated;
                    if v.port_priority != v.designated_priority
                        || v.port_times != v.designated_times
                    {
                        v.updt_info = true;
                    }
                }
                InfoIs::Received => {
                    if best_port == Some(i) {
                        v.selected_role = PortRole::Root;
                        v.updt_info = false;
                    } else if v.designated_priority >= v.port_priority {
                        v.selected_role = if v.port_priority.bridge.mac() != bridge_mac {
                            PortRole::Alternate
                        } else {
                            PortRole::Backup
                        };
                        v.updt_info = false;
                    } else {
                        v.selected_role = PortRole::Designated;
                        v.updt_info = true;
                    }
                }
            }
        }
    }

    // ---- Port Role Transitions (17.29) ----------------------------------

    /// allSynced (17.20.3)
    fn all_synced(&self) -> bool {
        self.ports.iter().flatten().all(|v| {
            v.selected
                && v.role == v.selected_role
                && !v.updt_info
                && (v.role == PortRole::Root || v.synced)
        })
    }

    /// reRooted (17.20.10)
    fn re_rooted(&self, i: usize) -> bool {
        self.ports
            .iter()
            .enumerate()
            .all(|(j, v)| j == i || v.as_ref().is_none_or(|v| v.rr_while == 0))
    }

    fn step_prt(&mut self, i: usize) -> bool {
        let rstp = self.rstp_version();
        let hello2 = 2 * self.hello_time();
        // Whole-bridge conditions only where they are read (O(ports) each).
        let prt = self.ports[i].as_ref().expect("stp port").prt;
        let all_synced = matches!(prt, Prt::RootPort | Prt::AlternatePort) && self.all_synced();
        let re_rooted = prt == Prt::RootPort && self.re_rooted(i);
        let p = port!(self, i);
        if p.prt == Prt::InitPort {
            self.enter_prt(i, Prt::DisablePort);
            return true;
        }
        if !p.selected || p.updt_info {
            return false;
        }
        let fwd_delay = p.designated_times.forward_delay as u64;
        let max_age = p.designated_times.max_age as u64;
        if p.selected_role != p.role {
            let next = match p.selected_role {
                PortRole::Disabled => Prt::DisablePort,
                PortRole::Root => Prt::RootPort,
                PortRole::Designated => Prt::DesignatedPort,
                PortRole::Alternate | PortRole::Backup => Prt::BlockPort,
            };
            self.enter_prt(i, next);
            return true;
        }
        let next = match p.prt {
            Prt::InitPort => Prt::DisablePort,
            Prt::DisablePort if !p.learning && !p.forwarding => Prt::DisabledPort,
            Prt::DisabledPort if p.fd_while != max_age || p.sync || p.re_root || !p.synced => {
                Prt::DisabledPort
            }
            Prt::RootProposed
            | Prt::RootAgreed
            | Prt::Reroot
            | Prt::RootForward
            | Prt::RootLearn
            | Prt::Rerooted => Prt::RootPort,
            Prt::RootPort => {
                let may_go = p.fd_while == 0 || (re_rooted && p.rb_while == 0 && rstp);
                if p.proposed && !p.agree {
                    Prt::RootProposed
                } else if (all_synced && !p.agree) || (p.proposed && p.agree) {
                    Prt::RootAgreed
                } else if !p.forward && !p.re_root {
                    Prt::Reroot
                } else if may_go && !p.learn {
                    Prt::RootLearn
                } else if may_go && p.learn && !p.forward {
                    Prt::RootForward
                } else if p.re_root && p.forward {
                    Prt::Rerooted
                } else if p.rr_while != fwd_delay {
                    Prt::RootPort
                } else {
                    return false;
                }
            }
            Prt::DesignatedPropose
            | Prt::DesignatedSynced
            | Prt::DesignatedRetired
            | Prt::DesignatedDiscard
            | Prt::DesignatedLearn
            | Prt::DesignatedForward => Prt::DesignatedPort,
            Prt::DesignatedPort => {
                let may_go = (p.fd_while == 0 || p.agreed || p.oper_edge)
                    && (p.rr_while == 0 || !p.re_root)
                    && !p.sync;
                if !p.forward && !p.agreed && !p.proposing && !p.oper_edge {
                    Prt::DesignatedPropose
                } else if (!p.learning && !p.forwarding && !p.synced)
                    || (p.agreed && !p.synced)
                    || (p.oper_edge && !p.synced)
                    || (p.sync && p.synced)
                {
                    Prt::DesignatedSynced
                } else if p.rr_while == 0 && p.re_root {
                    Prt::DesignatedRetired
                } else if ((p.sync && !p.synced) || (p.re_root && p.rr_while != 0) || p.disputed)
                    && !p.oper_edge
                    && (p.learn || p.forward)
                {
                    Prt::DesignatedDiscard
                } else if may_go && !p.learn {
                    Prt::DesignatedLearn
                } else if may_go && p.learn && !p.forward {
                    Prt::DesignatedForward
                } else {
                    return false;
                }
            }
            Prt::AlternateProposed | Prt::AlternateAgreed | Prt::BackupPort => Prt::AlternatePort,
            Prt::BlockPort if !p.learning && !p.forwarding => Prt::AlternatePort,
            Prt::AlternatePort => {
                if p.proposed && !p.agree {
                    Prt::AlternateProposed
                } else if (all_synced && !p.agree) || (p.proposed && p.agree) {
                    Prt::AlternateAgreed
                } else if p.fd_while != fwd_delay || p.sync || p.re_root || !p.synced {
                    Prt::AlternatePort
                } else if p.rb_while != hello2 && p.role == PortRole::Backup {
                    Prt::BackupPort
                } else {
                    return false;
                }
            }
            _ => return false,
        };
        self.enter_prt(i, next);
        true
    }

    fn enter_prt(&mut self, i: usize, s: Prt) {
        let hello2 = 2 * self.hello_time();
        let p = port!(self, i);
        let fwd_delay = p.designated_times.forward_delay as u64;
        let max_age = p.designated_times.max_age as u64;
        p.prt = s;
        match s {
            Prt::InitPort => {
                p.role = PortRole::Disabled;
                p.learn = false;
                p.forward = false;
                p.synced = false;
                p.sync = true;
                p.re_root = true;
                p.rr_while = fwd_delay;
                p.fd_while = max_age;
                p.rb_while = 0;
            }
            Prt::DisablePort | Prt::BlockPort => {
                p.role = p.selected_role;
                p.learn = false;
                p.forward = false;
            }
            Prt::DisabledPort => {
                p.fd_while = max_age;
                p.synced = true;
                p.rr_while = 0;
                p.sync = false;
                p.re_root = false;
            }
            Prt::RootPort => {
                p.role = PortRole::Root;
                p.rr_while = fwd_delay;
            }
            Prt::RootProposed | Prt::AlternateProposed => {
                p.proposed = false;
                self.set_sync_tree();
            }
            Prt::RootAgreed | Prt::AlternateAgreed => {
                p.proposed = false;
                if s == Prt::RootAgreed {
                    p.sync = false;
                }
                p.agree = true;
                p.new_info = true;
            }
            Prt::Reroot => {
                for v in self.ports.iter_mut().flatten() {
                    v.re_root = true;
                }
            }
            Prt::RootForward => {
                p.fd_while = 0;
                p.forward = true;
            }
            Prt::RootLearn | Prt::DesignatedLearn => {
                p.fd_while = fwd_delay;
                p.learn = true;
            }
            Prt::Rerooted | Prt::DesignatedRetired => {
                p.re_root = false;
            }
            Prt::DesignatedPort => {
                p.role = PortRole::Designated;
            }
            Prt::DesignatedPropose => {
                p.proposing = true;
                p.new_info = true;
            }
            Prt::DesignatedSynced => {
                p.rr_while = 0;
                p.synced = true;
                p.sync = false;
            }
            Prt::DesignatedDiscard => {
                p.learn = false;
                p.forward = false;
                p.disputed = false;
                p.fd_while = fwd_delay;
            }
            Prt::DesignatedForward => {
                p.forward = true;
                p.fd_while = 0;
                p.agreed = p.send_rstp;
            }
            Prt::AlternatePort => {
                p.fd_while = fwd_delay;
                p.synced = true;
                p.rr_while = 0;
                p.sync = false;
                p.re_root = false;
            }
            Prt::BackupPort => {
                p.rb_while = hello2;
            }
        }
    }

    /// setSyncTree (17.21.14)
    fn set_sync_tree(&mut self) {
        for v in self.ports.iter_mut().flatten() {
            v.sync = true;
        }
    }

    // ---- Port State Transition (17.30) ----------------------------------

    fn step_pst(&mut self, i: usize) -> bool {
        let p = port!(self, i);
        match p.pst {
            Pst::Discarding if p.learn => {
                p.pst = Pst::Learning;
                p.learning = true;
            }
            Pst::Learning if !p.learn => {
                p.pst = Pst::Discarding;
                p.learning = false;
                p.forwarding = false;
            }
            Pst::Forwarding if !p.forward => {
                p.pst = Pst::Discarding;
                p.learning = false;
                p.forwarding = false;
            }
            Pst::Learning if p.forward => {
                p.pst = Pst::Forwarding;
                p.forwarding = true;
                p.counters.forward_transitions += 1;
            }
            _ => return false,
        }
        true
    }

    // ---- Topology Change (17.31) ----------------------------------------

    fn step_tcm(&mut self, i: usize) -> bool {
        let p = port!(self, i);
        let active_role = matches!(p.role, PortRole::Root | PortRole::Designated);
        let any_rcvd = p.rcvd_tc || p.rcvd_tcn || p.rcvd_tc_ack || p.tc_prop;
        let next = match p.tcm {
            Tcm::Inactive if p.learn => Tcm::Learning,
            Tcm::Learning if active_role && p.forward && !p.oper_edge => Tcm::Detected,
            Tcm::Learning if any_rcvd => Tcm::Learning,
            Tcm::Learning if !(active_role || p.learn || p.learning) => Tcm::Inactive,
            Tcm::Detected | Tcm::NotifiedTc | Tcm::Propagating | Tcm::Acknowledged => Tcm::Active,
            Tcm::NotifiedTcn => Tcm::NotifiedTc,
            Tcm::Active if !active_role || p.oper_edge => Tcm::Learning,
            Tcm::Active if p.rcvd_tcn => Tcm::NotifiedTcn,
            Tcm::Active if p.rcvd_tc => Tcm::NotifiedTc,
            Tcm::Active if p.tc_prop && !p.oper_edge => Tcm::Propagating,
            Tcm::Active if p.rcvd_tc_ack => Tcm::Acknowledged,
            _ => return false,
        };
        self.enter_tcm(i, next);
        true
    }

    fn enter_tcm(&mut self, i: usize, s: Tcm) {
        let now = self.now_ms;
        let p = port!(self, i);
        p.tcm = s;
        match s {
            Tcm::Inactive => {
                // fdbFlush completes at once: ask the caller.
                let id = p.id;
                p.tc_while = 0;
                p.tc_ack = false;
                self.request_flush(id);
            }
            Tcm::Learning => {
                p.rcvd_tc = false;
                p.rcvd_tcn = false;
                p.rcvd_tc_ack = false;
                p.tc_prop = false;
            }
            Tcm::Detected => {
                self.new_tc_while(i);
                self.set_tc_prop_tree(i);
                port!(self, i).new_info = true;
                self.topology_changes += 1;
                self.last_topology_change_ms = Some(now);
            }
            Tcm::Active => {}
            Tcm::NotifiedTcn => self.new_tc_while(i),
            Tcm::NotifiedTc => {
                p.rcvd_tcn = false;
                p.rcvd_tc = false;
                if p.role == PortRole::Designated {
                    p.tc_ack = true;
                }
                self.set_tc_prop_tree(i);
            }
            Tcm::Propagating => {
                self.new_tc_while(i);
                let p = port!(self, i);
                p.tc_prop = false;
                let id = p.id;
                self.request_flush(id);
            }
            Tcm::Acknowledged => {
                p.tc_while = 0;
                p.rcvd_tc_ack = false;
            }
        }
    }

    /// newTcWhile (17.21.7)
    fn new_tc_while(&mut self, i: usize) {
        let hello = self.hello_time();
        let root = self.root_times;
        let p = port!(self, i);
        if p.tc_while == 0 {
            if p.send_rstp {
                p.tc_while = hello + 1_000;
                p.new_info = true;
            } else {
                p.tc_while = root.max_age as u64 + root.forward_delay as u64;
            }
        }
    }

    /// setTcPropTree (17.21.18): every port but `i`.
    fn set_tc_prop_tree(&mut self, i: usize) {
        for (j, v) in self.ports.iter_mut().enumerate() {
            if let Some(v) = v
                && j != i
            {
                v.tc_prop = true;
            }
        }
    }

    fn request_flush(&mut self, port: PortId) {
        if !self.flush.iter().any(|f| f.port == port) {
            self.flush.push(FlushRequest { port });
        }
    }

    // ---- Port Transmit (17.26) ------------------------------------------

    fn step_ptx(&mut self, i: usize) -> bool {
        let hello = self.hello_time();
        let hold = self.cfg.tx_hold_count;
        let p = port!(self, i);
        if !p.port_enabled {
            if p.ptx == Ptx::Init {
                return false;
            }
            p.ptx = Ptx::Init;
            p.new_info = true;
            p.tx_count = 0;
            return true;
        }
        match p.ptx {
            Ptx::Init | Ptx::Periodic | Ptx::Config | Ptx::Tcn | Ptx::Rstp => {
                p.ptx = Ptx::Idle;
                p.hello_when = hello;
                true
            }
            Ptx::Idle => {
                if !p.selected || p.updt_info {
                    return false;
                }
                if p.hello_when == 0 {
                    p.ptx = Ptx::Periodic;
                    p.new_info = p.new_info
                        || p.role == PortRole::Designated
                        || (p.role == PortRole::Root && p.tc_while != 0);
                    return true;
                }
                if !p.new_info || p.tx_count >= hold {
                    return false;
                }
                let kind = match p.role {
                    PortRole::Disabled => return false,
                    _ if p.send_rstp => BpduKind::Rst,
                    PortRole::Root => BpduKind::Tcn,
                    PortRole::Designated => BpduKind::Config,
                    _ => return false,
                };
                p.ptx = match kind {
                    BpduKind::Rst => Ptx::Rstp,
                    BpduKind::Tcn => Ptx::Tcn,
                    BpduKind::Config => Ptx::Config,
                };
                p.new_info = false;
                p.tx_count += 1;
                self.transmit(i, kind);
                true
            }
        }
    }

    /// txConfig, txTcn, txRstp (17.21.19-21).
    fn transmit(&mut self, i: usize, kind: BpduKind) {
        let p = self.ports[i].as_ref().expect("stp port");
        let mut f = 0;
        if p.tc_while != 0 {
            f |= flags::TC;
        }
        match kind {
            BpduKind::Config if p.tc_ack => f |= flags::TCA,
            BpduKind::Rst => {
                if p.proposing {
                    f |= flags::PROPOSAL;
                }
                f |= match p.role {
                    PortRole::Root => flags::ROLE_ROOT,
                    PortRole::Designated => flags::ROLE_DESIGNATED,
                    PortRole::Alternate | PortRole::Backup => flags::ROLE_ALT_BACKUP,
                    PortRole::Disabled => flags::ROLE_UNKNOWN,
                };
                if p.learning {
                    f |= flags::LEARNING;
                }
                if p.forwarding {
                    f |= flags::FORWARDING;
                }
                if p.agree {
                    f |= flags::AGREEMENT;
                }
            }
            _ => {}
        }
        let b = match kind {
            BpduKind::Tcn => Bpdu::tcn(),
            _ => Bpdu {
                kind,
                version: if kind == BpduKind::Rst { 2 } else { 0 },
                flags: f,
                root: p.designated_priority.root,
                root_path_cost: p.designated_priority.root_cost,
                bridge: p.designated_priority.bridge,
                port: p.designated_priority.port,
                times: p.designated_times,
            },
        };
        let id = p.id;
        let frame = b.encode_frame(self.port_mac(id));
        let p = port!(self, i);
        p.counters.bpdu_tx += 1;
        if kind == BpduKind::Tcn || f & flags::TC != 0 {
            p.counters.tc_tx += 1;
        }
        if kind != BpduKind::Tcn {
            p.tc_ack = false;
        }
        self.tx.push((id, frame));
    }
}
