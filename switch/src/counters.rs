//! Counters: per port (packets, bytes, drops by reason) and per pipeline
//! stage (VPP style: every node names what it counted). Plain integers owned
//! by the worker; readers get copies.

use std::fmt;

macro_rules! named_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident => ($id:literal, $text:literal),)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            pub const COUNT: usize = Self::ALL.len();
            /// Stable machine name (API, JSON).
            pub const fn id(self) -> &'static str {
                match self { $($name::$v => $id,)* }
            }
            /// Text for an operator.
            pub const fn text(self) -> &'static str {
                match self { $($name::$v => $text,)* }
            }
            pub fn from_id(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|x| x.id() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.text())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.id())
            }
        }
    };
}

named_enum! {
    /// Why the switch dropped a frame.
    pub enum DropReason {
        Runt => ("runt", "frame shorter than an Ethernet header"),
        TruncatedTag => ("truncated_vlan_tag", "frame ends inside a VLAN tag"),
        ReservedVid => ("reserved_vid", "VLAN tag carries reserved VID 4095"),
        TooManyTags => ("too_many_tags", "more than two stacked VLAN tags"),
        InvalidSource => ("invalid_source_mac", "source MAC is multicast or zero"),
        LinkLocal => ("link_local_group", "802.1D reserved link-local group address (not forwarded)"),
        TaggedOnAccess => ("tagged_on_access_port", "tagged frame on an access port"),
        VlanNotAllowed => ("vlan_not_allowed", "VLAN not in the trunk's allowed list"),
        UntaggedNoNative => ("untagged_without_native_vlan", "untagged frame on a trunk without native VLAN"),
        PortDisabled => ("port_disabled", "port is administratively down"),
        Filtered => ("filtered_same_port", "destination is on the ingress port (802.1D filtering)"),
        NoEgressMember => ("egress_not_vlan_member", "destination port is not a member of the VLAN"),
        FloodEmpty => ("flood_no_members", "no other port in the flood domain"),
        PoolExhausted => ("buffer_pool_exhausted", "no free buffer for a flood copy"),
        NoHeadroom => ("no_headroom", "no headroom left to push a VLAN tag"),
        TxFull => ("tx_queue_full", "egress port could not take the frame"),
        StormControl => ("storm_control", "broadcast/multicast/unknown-unicast rate limit exceeded"),
        Oversize => ("oversize", "frame longer than the egress port MTU"),
    }
}

named_enum! {
    /// What each pipeline stage counted (besides drops).
    pub enum StageCounter {
        ParseTagged => ("parse_tagged", "parse: frames carrying a VLAN tag"),
        ParsePriorityTagged => ("parse_priority_tagged", "parse: priority-tagged frames (VID 0)"),
        LearnNew => ("learn_new", "learn: new entries"),
        LearnRefresh => ("learn_refresh", "learn: entries refreshed"),
        LearnMove => ("learn_move", "learn: stations moved to another port"),
        LearnMoveDamped => ("learn_move_damped", "learn: moves ignored while a flapping station is damped"),
        LearnLimitPort => ("learn_limit_port", "learn: not learned, port MAC limit reached"),
        LearnLimitDomain => ("learn_limit_domain", "learn: not learned, bridge domain MAC limit reached"),
        LearnStaticConflict => ("learn_static_conflict", "learn: source matches a static entry on another port"),
        FwdKnownUnicast => ("fwd_known_unicast", "forward: known unicast"),
        FwdUnknownUnicast => ("fwd_unknown_unicast", "forward: unknown unicast flooded"),
        FwdBroadcast => ("fwd_broadcast", "forward: broadcast flooded"),
        FwdMulticast => ("fwd_multicast", "forward: multicast flooded"),
        FloodCopies => ("flood_copies", "flood: copies made"),
        EgressTagPush => ("egress_tag_push", "egress: VLAN tags pushed"),
        EgressTagPop => ("egress_tag_pop", "egress: VLAN tags popped"),
        AgeExpired => ("age_expired", "aging: entries expired"),
    }
}

/// Counters of one port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl PortCounters {
    #[inline]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
    }
    pub fn drops_by(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
    /// Non-zero drop counters, for display.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops[*r as usize]))
            .filter(|(_, n)| *n > 0)
    }
}

/// Counters of the pipeline's stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageCounters(pub [u64; StageCounter::COUNT]);

impl Default for StageCounters {
    fn default() -> Self {
        StageCounters([0; StageCounter::COUNT])
    }
}

impl StageCounters {
    #[inline]
    pub fn add(&mut self, c: StageCounter, n: u64) {
        self.0[c as usize] += n;
    }
    #[inline]
    pub fn inc(&mut self, c: StageCounter) {
        self.0[c as usize] += 1;
    }
    pub fn get(&self, c: StageCounter) -> u64 {
        self.0[c as usize]
    }
    pub fn nonzero(&self) -> impl Iterator<Item = (StageCounter, u64)> + '_ {
        StageCounter::ALL
            .iter()
            .map(|c| (*c, self.0[*c as usize]))
            .filter(|(_, n)| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        let mut ids: Vec<_> = DropReason::ALL.iter().map(|r| r.id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), DropReason::COUNT);
        for r in DropReason::ALL {
            assert_eq!(DropReason::from_id(r.id()), Some(*r));
        }
        for c in StageCounter::ALL {
            assert_eq!(StageCounter::from_id(c.id()), Some(*c));
        }
    }

    #[test]
    fn port_counters_count_by_reason() {
        let mut p = PortCounters::default();
        p.drop(DropReason::Runt);
        p.drop(DropReason::Runt);
        p.drop(DropReason::Filtered);
        assert_eq!(p.drops_by(DropReason::Runt), 2);
        assert_eq!(p.total_drops(), 3);
        assert_eq!(p.nonzero_drops().count(), 2);
    }
}
