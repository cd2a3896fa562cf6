//! The router's part of a dry run (`Switch::inject_dry`): while `dry` is
//! set, the paths that would change state — learning a neighbor from ARP or
//! ND, holding a packet for an unresolved neighbor, punting a DNS query,
//! inserting a load-balancer flow — record what they would do in
//! `dry_notes` instead. Counters and rate limits are saved before and put
//! back after (`DrySaved`). Routing itself takes its ordinary path; `explain`
//! only names the route it matched, for the report.

use std::net::IpAddr;

use crate::config::DomainId;
use crate::ratelimit::TokenBucket;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::read_u16;

use super::family::{Family, Lpm, V4, V6};
use super::{L3Counters, NeighKey, NextHop, Punted, Router};
use crate::lb::Verdict;
use crate::mac::MacAddr;

const ETH: usize = ethernet::HEADER_LEN;

/// What a dry run may change in passing and gets back afterwards.
pub(crate) struct DrySaved {
    counters: L3Counters,
    icmp: TokenBucket,
    solicit: TokenBucket,
}

impl Router {
    /// Enter (or leave) a dry run.
    pub(crate) fn set_dry(&mut self, on: bool) {
        self.dry = on;
        self.lb.dry = on;
        self.dry_notes.clear();
    }

    /// Record what a dry run would have done here. (The notes are built
    /// in these out-of-line functions, so the paths that call them carry
    /// only the test of `dry`.)
    #[cold]
    #[inline(never)]
    pub(super) fn dry_note(&mut self, s: String) {
        self.dry_notes.push(s);
    }

    #[cold]
    #[inline(never)]
    pub(super) fn dry_learn(&mut self, ip: IpAddr, mac: MacAddr) {
        self.dry_note(format!("would learn neighbor {ip} at {mac}"));
    }

    #[cold]
    #[inline(never)]
    pub(super) fn dry_punt(&mut self, p: &Punted) {
        let n = p.payload.len();
        self.dry_note(format!(
            "punted to DNS ({n} byte query from {}; dry run: not delivered)",
            p.client
        ));
    }

    #[cold]
    #[inline(never)]
    pub(super) fn dry_lb(&mut self, d: DomainId, v6: bool, svc: u32, v: Verdict) {
        let what = match v {
            Verdict::ToBackend(ip) => {
                let k = NeighKey { domain: d, v6, ip };
                format!("to backend {}", ip_of(&k))
            }
            Verdict::ToClient(m) => format!("reply to client {m}"),
            other => format!("{other:?}"),
        };
        self.dry_note(format!(
            "load balancer: service {svc} {what} (new flow, not recorded)"
        ));
    }

    /// The notes of the dry run so far.
    pub(crate) fn take_dry_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.dry_notes)
    }

    pub(crate) fn dry_save(&self) -> DrySaved {
        DrySaved {
            counters: self.counters.clone(),
            icmp: self.icmp_bucket.clone(),
            solicit: self.solicit_bucket.clone(),
        }
    }

    pub(crate) fn dry_restore(&mut self, s: DrySaved) {
        self.counters = s.counters;
        self.icmp_bucket = s.icmp;
        self.solicit_bucket = s.solicit;
    }

    /// Which route an untagged IP `frame` to the gateway of `in_d` matches,
    /// in words, domains by `name` (`None` for what is not IP).
    pub(crate) fn explain(
        &self,
        in_d: DomainId,
        frame: &[u8],
        name: &dyn Fn(DomainId) -> String,
    ) -> Option<String> {
        if frame.len() < ETH {
            return None;
        }
        match read_u16(frame, 12) {
            EtherType::IPV4 => self.explain_as::<V4>(in_d, &frame[ETH..], name),
            EtherType::IPV6 => self.explain_as::<V6>(in_d, &frame[ETH..], name),
            EtherType::ARP => Some("ARP for the gateway".into()),
            _ => None,
        }
    }

    fn explain_as<F: Family>(
        &self,
        in_d: DomainId,
        ip: &[u8],
        name: &dyn Fn(DomainId) -> String,
    ) -> Option<String> {
        let g = self.gw_state(in_d)?;
        // The header must be whole for the fields read below.
        F::check(ip, true).ok()?;
        let dst = F::dst(ip);
        let ttl = F::ttl(ip);
        if let Some(svc) = self.lb_service::<F>(in_d, dst) {
            return Some(format!(
                "{} is the VIP of service {svc}: load balanced",
                F::to_ip(dst)
            ));
        }
        let lpm = F::lpm(&self.tables[g.table]);
        let Some(id) = lpm.lookup(dst) else {
            return Some(format!(
                "no route to {} in table {}",
                F::to_ip(dst),
                g.cfg.table
            ));
        };
        // The longest prefix holding `id` that covers `dst` is the match.
        let len = (0..=F::MAX_LEN)
            .rev()
            .find(|&l| lpm.get(F::mask(dst, l), l) == Some(id))
            .unwrap_or(0);
        let prefix = F::to_ip(F::mask(dst, len));
        let hop = match self.nh[id as usize].nh {
            NextHop::Local => return Some(format!("{} is the gateway itself", F::to_ip(dst))),
            NextHop::Connected { domain } => format!("connected, domain {}", name(domain)),
            NextHop::Via { gateway, domain } => {
                format!("via {gateway}, domain {}", name(domain))
            }
        };
        let hop_limit = if F::V6 { "hop limit" } else { "ttl" };
        let edit = if ttl <= 1 {
            format!("{hop_limit} {ttl}: expires")
        } else {
            format!("{hop_limit} {ttl}\u{2192}{}", ttl - 1)
        };
        Some(format!("route {prefix}/{len} {hop}, {edit}"))
    }
}

/// An address for a note.
pub(super) fn ip_of(k: &NeighKey) -> IpAddr {
    if k.v6 {
        V6::to_ip(V6::from_key(k.ip))
    } else {
        V4::to_ip(V4::from_key(k.ip))
    }
}
