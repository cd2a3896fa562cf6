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
        StpDiscarding => ("stp_discarding", "spanning tree: the port is not forwarding"),
        PortSecurityMac => ("port_security_mac", "port security: source MAC is not the port's station"),
        PortSecurityIp => ("port_security_ip", "port security: source IP is not the port's station's"),
        StpBadBpdu => ("stp_bad_bpdu", "spanning tree: malformed or unexpected BPDU"),
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
        L3NoGateway => ("l3_no_gateway", "L3: bridge domain has no gateway (internal network)"),
        L3NotForGateway => ("l3_not_for_gateway", "L3: frame not addressed to the gateway MAC"),
        L3Malformed => ("l3_malformed", "L3: IP/ARP header invalid (version, length)"),
        L3BadChecksum => ("l3_bad_checksum", "L3: IPv4 header checksum wrong"),
        L3NotRoutable => ("l3_not_routable", "L3: multicast, broadcast or link-local destination not routed"),
        L3TtlExceeded => ("l3_ttl_exceeded", "L3: TTL or hop limit expired"),
        L3NoRoute => ("l3_no_route", "L3: no route to the destination"),
        L3RoutingDisabled => ("l3_routing_disabled", "L3: routing between these networks is off"),
        L3FragNeeded => ("l3_frag_needed", "L3: larger than the egress MTU and may not be fragmented"),
        L3FragUnsupported => ("l3_fragmentation_unsupported", "L3: larger than the egress MTU (fragmentation not implemented)"),
        L3LocalUnsupported => ("l3_local_unsupported", "L3: packet to the gateway that it does not answer"),
        NeighPendingFull => ("neigh_pending_full", "L3: unresolved neighbor's hold queue full"),
        NeighTableFull => ("neigh_table_full", "L3: neighbor table full"),
        NeighUnresolved => ("neigh_unresolved", "L3: neighbor never answered ARP/ND; held packet dropped, sender told host unreachable"),
        DnsPuntFull => ("dns_punt_full", "L3: DNS query to the gateway dropped, the DNS service's queue is full"),
        LbNoPort => ("lb_no_port", "LB: packet to a service VIP on a port the service does not offer"),
        LbNoBackend => ("lb_no_backend", "LB: service VIP without a live backend"),
        LbFlowsFull => ("lb_flows_full", "LB: new flow refused, flow table or the VIP's source ports full"),
        VxlanTruncated => ("vxlan_truncated", "VXLAN: datagram shorter than its outer headers"),
        VxlanNoIFlag => ("vxlan_no_i_flag", "VXLAN: I flag clear (no valid VNI)"),
        VxlanUnknownVni => ("vxlan_unknown_vni", "VXLAN: VNI not configured on this VTEP"),
        VxlanNotForUs => ("vxlan_not_for_us", "VXLAN: outer header is not UDP to our VTEP"),
        VxlanOversize => ("vxlan_oversize", "VXLAN: inner frame plus encapsulation exceeds the underlay MTU"),
        VxlanNoRemote => ("vxlan_no_remote", "VXLAN: no remote VTEP to send to (empty flood list)"),
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
        L3Forwarded => ("l3_forwarded", "L3: packets routed"),
        L3ArpReplies => ("l3_arp_replies", "L3: ARP replies sent for gateway addresses"),
        L3ArpRequests => ("l3_arp_requests", "L3: ARP requests sent to resolve neighbors"),
        L3NdAdverts => ("l3_nd_adverts", "L3: neighbor advertisements sent for gateway addresses"),
        L3NdSolicits => ("l3_nd_solicits", "L3: neighbor solicitations sent to resolve neighbors"),
        L3EchoReplies => ("l3_echo_replies", "L3: ICMP/ICMPv6 echo replies sent by the gateway"),
        L3IcmpErrors => ("l3_icmp_errors", "L3: ICMP/ICMPv6 errors sent"),
        L3IcmpRateLimited => ("l3_icmp_rate_limited", "L3: ICMP errors suppressed by the rate limit"),
        L3SolicitRateLimited => ("l3_solicit_rate_limited", "L3: ARP/ND solicitations suppressed by the rate limit"),
        L3NeighConsumed => ("l3_neigh_consumed", "L3: ARP/ND messages taken in by the gateway"),
        NeighHeld => ("neigh_held", "L3: packets held waiting for a neighbor"),
        NeighReleased => ("neigh_released", "L3: held packets sent after resolution"),
        NeighExpired => ("neigh_expired", "L3: neighbor entries aged out"),
        DnsPunted => ("dns_punted", "L3: DNS queries to a gateway handed to the DNS service"),
        DnsReplies => ("dns_replies", "L3: DNS answers sent from a gateway"),
        LbToBackend => ("lb_to_backend", "LB: packets to a VIP sent to a backend"),
        LbFastPath => ("lb_fast_path", "LB: of lb_to_backend, packets of established IPv4 flows the vip node sent"),
        LbToClient => ("lb_to_client", "LB: backend replies sent back to the client from the VIP"),
        LbNewFlows => ("lb_new_flows", "LB: flows added to the flow table"),
        LbExpiredFlows => ("lb_expired_flows", "LB: idle flows removed from the flow table"),
        LbProbes => ("lb_probes", "LB: health-check SYNs sent to backends"),
        LbProbeAnswers => ("lb_probe_answers", "LB: health-check answers (SYN-ACK or RST) received"),
        VxlanDecap => ("vxlan_decap", "vxlan: frames decapsulated"),
        VxlanEncap => ("vxlan_encap", "vxlan: frames encapsulated (each head-end copy counted)"),
        VxlanReplicas => ("vxlan_replicas", "vxlan: head-end replication copies beyond the first"),
        VxlanLearnNew => ("vxlan_learn_new", "vxlan: remote MACs learned"),
        VxlanLearnMove => ("vxlan_learn_move", "vxlan: remote MACs moved to another VTEP"),
        VxlanLearnLimit => ("vxlan_learn_limit", "vxlan: remote MACs not learned (limit or remote table full)"),
        VxlanAgeExpired => ("vxlan_age_expired", "vxlan: remote MACs aged out"),
    }
}

/// Counters of one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl Default for PortCounters {
    fn default() -> Self {
        PortCounters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            drops: [0; DropReason::COUNT],
        }
    }
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
