//! The VTEP table: per VNI, the remote VTEPs to flood to (head-end
//! replication list, plus an optional underlay multicast group) and which
//! remote VTEP each remote MAC sits behind (flood-and-learn entries aged
//! like local ones, and static entries from the control plane).
//!
//! How it fits the bridge: the domain's own FDB keeps saying "MAC → port"
//! and, for a remote station, the port is the VTEP port. This table is the
//! side table that port consults: "(VNI, MAC) → remote VTEP IP". It reuses
//! [`Fdb`] for it, one per VNI, with the FDB's port number standing for an
//! index into the table's list of remote VTEP addresses; so learning,
//! aging, moves, flap damping, limits and static entries behave exactly as
//! they do for local stations. A remote entry that ages out while the
//! domain FDB still points at the VTEP port only means the next frame is
//! flooded to the VNI's list, which is the right fallback.
//!
//! Owns: the per-VNI state and the interned remote addresses. Never:
//! syscalls, reading a clock, allocation on the lookup/learn path (except
//! the first sighting of a remote VTEP address, which interns it).

use std::net::IpAddr;

use hashbrown::HashMap;

use crate::fdb::{Fdb, FdbConfig, FlushFilter, Learned, fdb_key};
use crate::mac::MacAddr;
use crate::port::PortId;
use crate::wire::vxlan::Vni;

/// Distinct remote VTEP addresses one table tracks (the FDB stores its
/// "port" in 12 bits).
pub const MAX_REMOTES: usize = PortId::MAX as usize + 1;

/// How one VNI is set up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VniConfig {
    /// Aging, limits and damping of learned remote MACs (300 s by default,
    /// like local entries).
    pub fdb: FdbConfig,
    /// Remote VTEPs that get a copy of every broadcast, multicast and
    /// unknown-unicast frame (head-end replication).
    pub flood: Vec<IpAddr>,
    /// Underlay multicast group that gets one copy of those frames too (the
    /// port joins it).
    pub group: Option<IpAddr>,
}

/// Where a frame for a VNI goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    /// A known remote MAC: one copy to its VTEP.
    Unicast(IpAddr),
    /// Broadcast, multicast or unknown unicast: one copy per address (flood
    /// list, then the group); empty means nowhere to send.
    Flood(&'a [IpAddr]),
}

/// A remote MAC entry as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemoteEntryInfo {
    pub vni: Vni,
    pub mac: MacAddr,
    pub remote: IpAddr,
    #[serde(rename = "static")]
    pub is_static: bool,
    pub age_secs: u32,
}

/// Why a table change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VtepTableError {
    #[error("VNI {0} is not configured on this VTEP")]
    UnknownVni(Vni),
    #[error("VNI {0} is already configured on this VTEP")]
    DuplicateVni(Vni),
    #[error("remote VTEP {0}: table already tracks {MAX_REMOTES} remote VTEPs")]
    TooManyRemotes(IpAddr),
    #[error("{0} is not a usable remote VTEP address (unspecified or multicast)")]
    BadRemote(IpAddr),
}

#[derive(Debug)]
struct VniState {
    fdb: Fdb,
    flood: Vec<IpAddr>,
    group: Option<IpAddr>,
    /// `flood` then `group`: what a BUM frame is sent to.
    targets: Vec<IpAddr>,
}

impl VniState {
    fn retarget(&mut self) {
        self.targets.clear();
        self.targets.extend_from_slice(&self.flood);
        self.targets.extend(self.group);
    }
}

/// Remote VTEPs and remote MACs of every VNI a VTEP carries.
#[derive(Debug, Default)]
pub struct VtepTable {
    vnis: HashMap<Vni, VniState>,
    remotes: Vec<IpAddr>,
    remote_ids: HashMap<IpAddr, u16>,
}

/// The VID of every key in a VNI's FDB. Not 0: `fdb_key(0, 00:00:00:00:00:00)`
/// is 0, the FDB's empty-slot marker, which a lookup of the all-zero MAC
/// would then find in any empty slot.
const KEY_VID: u16 = 1;

fn usable_unicast(ip: IpAddr) -> bool {
    !ip.is_unspecified() && !ip.is_multicast()
}

impl VtepTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start carrying `vni`.
    pub fn add_vni(&mut self, vni: Vni, cfg: VniConfig) -> Result<(), VtepTableError> {
        if self.vnis.contains_key(&vni) {
            return Err(VtepTableError::DuplicateVni(vni));
        }
        for ip in &cfg.flood {
            if !usable_unicast(*ip) {
                return Err(VtepTableError::BadRemote(*ip));
            }
        }
        let mut st = VniState {
            fdb: Fdb::new(cfg.fdb),
            flood: Vec::new(),
            group: cfg.group,
            targets: Vec::new(),
        };
        for ip in cfg.flood {
            if !st.flood.contains(&ip) {
                st.flood.push(ip);
            }
        }
        st.retarget();
        self.vnis.insert(vni, st);
        Ok(())
    }

    /// Stop carrying `vni`, forgetting its remote MACs.
    pub fn remove_vni(&mut self, vni: Vni) -> Result<(), VtepTableError> {
        self.vnis
            .remove(&vni)
            .map(|_| ())
            .ok_or(VtepTableError::UnknownVni(vni))
    }

    /// Whether frames for `vni` are accepted (the decap check).
    #[inline]
    pub fn knows(&self, vni: Vni) -> bool {
        self.vnis.contains_key(&vni)
    }

    /// The VNIs carried, ascending.
    pub fn vnis(&self) -> Vec<Vni> {
        let mut v: Vec<_> = self.vnis.keys().copied().collect();
        v.sort();
        v
    }

    fn state(&mut self, vni: Vni) -> Result<&mut VniState, VtepTableError> {
        self.vnis
            .get_mut(&vni)
            .ok_or(VtepTableError::UnknownVni(vni))
    }

    /// Add a remote VTEP to `vni`'s flood list (no-op if present).
    pub fn add_flood(&mut self, vni: Vni, remote: IpAddr) -> Result<(), VtepTableError> {
        if !usable_unicast(remote) {
            return Err(VtepTableError::BadRemote(remote));
        }
        let st = self.state(vni)?;
        if !st.flood.contains(&remote) {
            st.flood.push(remote);
            st.retarget();
        }
        Ok(())
    }

    /// Remove a remote VTEP from the flood list. Returns whether it was there.
    pub fn remove_flood(&mut self, vni: Vni, remote: IpAddr) -> Result<bool, VtepTableError> {
        let st = self.state(vni)?;
        let before = st.flood.len();
        st.flood.retain(|r| *r != remote);
        st.retarget();
        Ok(st.flood.len() != before)
    }

    /// Set or clear the underlay multicast group of `vni`.
    pub fn set_group(&mut self, vni: Vni, group: Option<IpAddr>) -> Result<(), VtepTableError> {
        if let Some(g) = group
            && !g.is_multicast()
        {
            return Err(VtepTableError::BadRemote(g));
        }
        let st = self.state(vni)?;
        st.group = group;
        st.retarget();
        Ok(())
    }

    /// The flood list of `vni` (without the group).
    pub fn flood(&self, vni: Vni) -> &[IpAddr] {
        self.vnis.get(&vni).map_or(&[], |s| &s.flood)
    }

    pub fn group(&self, vni: Vni) -> Option<IpAddr> {
        self.vnis.get(&vni).and_then(|s| s.group)
    }

    fn intern(&mut self, remote: IpAddr) -> Result<PortId, VtepTableError> {
        if let Some(&i) = self.remote_ids.get(&remote) {
            return Ok(PortId(i));
        }
        if self.remotes.len() >= MAX_REMOTES {
            return Err(VtepTableError::TooManyRemotes(remote));
        }
        let i = self.remotes.len() as u16;
        self.remotes.push(remote);
        self.remote_ids.insert(remote, i);
        Ok(PortId(i))
    }

    /// Install a static remote entry: `mac` in `vni` is behind `remote`.
    pub fn add_static(
        &mut self,
        vni: Vni,
        mac: MacAddr,
        remote: IpAddr,
    ) -> Result<(), VtepTableError> {
        if !usable_unicast(remote) {
            return Err(VtepTableError::BadRemote(remote));
        }
        self.state(vni)?;
        let id = self.intern(remote)?;
        self.state(vni)?.fdb.add_static(KEY_VID, mac, id);
        Ok(())
    }

    /// Remove a remote entry, static or learned. Returns whether it existed.
    pub fn remove(&mut self, vni: Vni, mac: MacAddr) -> Result<bool, VtepTableError> {
        Ok(self.state(vni)?.fdb.remove(KEY_VID, mac))
    }

    /// Forget learned entries of `vni` (those behind `remote` only, if given).
    pub fn flush(&mut self, vni: Vni, remote: Option<IpAddr>) -> Result<usize, VtepTableError> {
        let port = match remote {
            Some(r) => match self.remote_ids.get(&r) {
                Some(&i) => Some(PortId(i)),
                None => return Ok(0),
            },
            None => None,
        };
        Ok(self.state(vni)?.fdb.flush(FlushFilter {
            port,
            vid: None,
            include_static: false,
        }))
    }

    /// Flood-and-learn: `mac` was the inner source of a frame for `vni` from
    /// `remote`. Multicast and zero sources are not learned (`None`), nor is
    /// anything for an unknown VNI. A remote beyond [`MAX_REMOTES`] is
    /// reported as [`Learned::LimitDomain`].
    #[inline]
    pub fn learn(&mut self, vni: Vni, mac: MacAddr, remote: IpAddr, now: u32) -> Option<Learned> {
        let m = mac.to_u64();
        if m == 0 || m & (1 << 40) != 0 || !self.vnis.contains_key(&vni) {
            return None;
        }
        let id = match self.remote_ids.get(&remote) {
            Some(&i) => PortId(i),
            None if usable_unicast(remote) => match self.intern(remote) {
                Ok(id) => id,
                Err(_) => return Some(Learned::LimitDomain),
            },
            None => return None,
        };
        let st = self.vnis.get_mut(&vni).expect("checked");
        Some(st.fdb.learn(fdb_key(KEY_VID, m), id, now))
    }

    /// The remote VTEP `mac` in `vni` is behind, if known and not expired.
    #[inline]
    pub fn lookup(&self, vni: Vni, mac: MacAddr, now: u32) -> Option<IpAddr> {
        let st = self.vnis.get(&vni)?;
        st.fdb
            .lookup(fdb_key(KEY_VID, mac.to_u64()), now)
            .map(|p| self.remotes[p.index()])
    }

    /// Where a frame for `vni` with destination `dst` goes: its remote VTEP
    /// if known unicast, else the flood targets. `None` for an unknown VNI.
    #[inline]
    pub fn destination(&self, vni: Vni, dst: MacAddr, now: u32) -> Option<Destination<'_>> {
        let st = self.vnis.get(&vni)?;
        let m = dst.to_u64();
        if m & (1 << 40) == 0
            && let Some(p) = st.fdb.lookup(fdb_key(KEY_VID, m), now)
        {
            return Some(Destination::Unicast(self.remotes[p.index()]));
        }
        Some(Destination::Flood(&st.targets))
    }

    /// An aging step over every VNI (`budget` buckets each). Returns how many
    /// learned entries expired.
    pub fn age_step(&mut self, now: u32, budget: usize) -> usize {
        self.vnis
            .values_mut()
            .map(|s| s.fdb.age_step(now, budget))
            .sum()
    }

    /// Entries of `vni`, for the control plane (allocates).
    pub fn entries(&self, vni: Vni, now: u32) -> Vec<RemoteEntryInfo> {
        let Some(st) = self.vnis.get(&vni) else {
            return Vec::new();
        };
        st.fdb
            .entries(now)
            .into_iter()
            .map(|e| RemoteEntryInfo {
                vni,
                mac: e.mac,
                remote: self.remotes[e.port.index()],
                is_static: e.is_static,
                age_secs: e.age_secs,
            })
            .collect()
    }
}
