//! IP address management: address spaces, pools (IPv4 and IPv6, explicit
//! or chosen from a configurable default list), gateway reservation and
//! address allocation.
//!
//! Owns: which pools exist, which addresses in them are taken, and the
//! policy (lowest free usable address first; IPv4 network and broadcast
//! addresses and the IPv6 subnet-router anycast address are never handed
//! out). Errors say what to do next. Never: persistence (the caller stores
//! [`PoolRecord`]s after each change) or any wire format.

mod intervals;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use intervals::IntervalSet;

use crate::model::usable_in;
use crate::prefix::{Cidr, from_u128, to_u128};

/// Which address a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// The network's gateway (Docker's `com.docker.network.gateway`).
    Gateway,
    /// An endpoint.
    Host,
}

/// "Carve pools of length `size` out of `base`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolTemplate {
    pub base: Cidr,
    pub size: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// Name of the local address space (`GetDefaultAddressSpaces`).
    pub local_space: String,
    /// Name of the global address space.
    pub global_space: String,
    /// Where "choose a pool for me" looks, in order.
    pub default_v4: Vec<PoolTemplate>,
    pub default_v6: Vec<PoolTemplate>,
    /// Prefixes never chosen automatically (host routes, docker0, VPNs).
    pub reserved: Vec<Cidr>,
}

impl Default for IpamConfig {
    /// Docker's defaults: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s;
    /// IPv6 from the ULA fd72:7673:7700::/48 ("rvs") in /64s.
    fn default() -> Self {
        let t = |base: &str, size| PoolTemplate {
            base: Cidr::parse_prefix(base).expect("valid default"),
            size,
        };
        let mut v4: Vec<PoolTemplate> = (17..=31)
            .map(|b| t(&format!("172.{b}.0.0/16"), 16))
            .collect();
        v4.push(t("192.168.0.0/16", 20));
        IpamConfig {
            local_space: "rvs-local".into(),
            global_space: "rvs-global".into(),
            default_v4: v4,
            default_v6: vec![t("fd72:7673:7700::/48", 64)],
            reserved: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("unknown address space {space:?} (this driver has {local:?} and {global:?})")]
    UnknownSpace {
        space: String,
        local: String,
        global: String,
    },
    #[error("pool {id:?} does not exist (already released, or never requested from rvswitch)")]
    UnknownPool { id: String },
    #[error(
        "pool {pool} overlaps pool {other} already in use in address space {space}: choose another --subnet"
    )]
    Overlap {
        pool: Cidr,
        other: Cidr,
        space: String,
    },
    #[error("{family} pool {pool} given for a request that asked for {want}")]
    Family {
        family: &'static str,
        pool: Cidr,
        want: &'static str,
    },
    #[error("sub-pool (--ip-range) {sub} is not inside pool {pool}")]
    SubPool { sub: Cidr, pool: Cidr },
    #[error(
        "no free {family} pool left in the default list ({tried}): pass --subnet or free a network"
    )]
    NoDefaultPool { family: &'static str, tried: String },
    #[error(
        "pool {pool} has no free address ({used} of {usable} usable addresses in use): release one or use a larger --subnet"
    )]
    Exhausted {
        pool: Cidr,
        used: u128,
        usable: u128,
    },
    #[error("address {addr} is already allocated in pool {pool}")]
    InUse { addr: IpAddr, pool: Cidr },
    #[error("address {addr} is not a usable address of pool {pool}")]
    Unusable { addr: IpAddr, pool: Cidr },
}

/// One pool and its allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub id: String,
    pub space: String,
    pub prefix: Cidr,
    /// Where automatic host addresses come from (`SubPool`), if narrower.
    pub range: Option<Cidr>,
    pub gateway: Option<IpAddr>,
    allocated: IntervalSet,
}

/// A pool as stored: allocations as inclusive address ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub id: String,
    pub space: String,
    pub prefix: Cidr,
    pub range: Option<Cidr>,
    pub gateway: Option<IpAddr>,
    pub allocated: Vec<(IpAddr, IpAddr)>,
}

impl Pool {
    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.prefix.contains(ip) && self.allocated.contains(to_u128(ip))
    }

    /// Addresses in use (gateway included).
    pub fn used(&self) -> u128 {
        self.allocated.len()
    }

    /// Usable addresses of `r` (network/broadcast/anycast excluded).
    fn usable_count(&self, r: &Cidr) -> u128 {
        let (lo, hi) = r.range();
        let span = hi - lo;
        let excluded = [lo, hi]
            .iter()
            .filter(|&&v| !usable_in(&self.prefix, from_u128(r.addr, v)))
            .count() as u128;
        if lo == hi {
            1 - excluded.min(1)
        } else {
            (span - excluded).saturating_add(1)
        }
    }

    pub fn record(&self) -> PoolRecord {
        PoolRecord {
            id: self.id.clone(),
            space: self.space.clone(),
            prefix: self.prefix,
            range: self.range,
            gateway: self.gateway,
            allocated: self
                .allocated
                .intervals()
                .into_iter()
                .map(|(s, e)| {
                    (
                        from_u128(self.prefix.addr, s),
                        from_u128(self.prefix.addr, e),
                    )
                })
                .collect(),
        }
    }

    pub fn from_record(r: &PoolRecord) -> Pool {
        let iv: Vec<(u128, u128)> = r
            .allocated
            .iter()
            .map(|&(s, e)| (to_u128(s), to_u128(e)))
            .collect();
        Pool {
            id: r.id.clone(),
            space: r.space.clone(),
            prefix: r.prefix,
            range: r.range,
            gateway: r.gateway,
            allocated: IntervalSet::from_intervals(&iv),
        }
    }
}

/// All pools of all address spaces.
#[derive(Debug, Clone)]
pub struct Ipam {
    config: IpamConfig,
    pools: BTreeMap<String, Pool>,
}

fn pool_id(space: &str, prefix: &Cidr, range: Option<&Cidr>) -> String {
    match range {
        Some(r) => format!("{space}/{prefix}/{r}"),
        None => format!("{space}/{prefix}"),
    }
}

fn family(v4: bool) -> &'static str {
    if v4 { "IPv4" } else { "IPv6" }
}

impl Ipam {
    pub fn new(config: IpamConfig) -> Ipam {
        Ipam {
            config,
            pools: BTreeMap::new(),
        }
    }

    /// Rebuild from stored pools.
    pub fn from_records(config: IpamConfig, records: &[PoolRecord]) -> Ipam {
        let mut ipam = Ipam::new(config);
        for r in records {
            ipam.pools.insert(r.id.clone(), Pool::from_record(r));
        }
        ipam
    }

    pub fn config(&self) -> &IpamConfig {
        &self.config
    }

    pub fn pool(&self, id: &str) -> Option<&Pool> {
        self.pools.get(id)
    }

    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    fn check_space(&self, space: &str) -> Result<(), IpamError> {
        if space == self.config.local_space || space == self.config.global_space {
            return Ok(());
        }
        Err(IpamError::UnknownSpace {
            space: space.into(),
            local: self.config.local_space.clone(),
            global: self.config.global_space.clone(),
        })
    }

    fn overlapping(&self, space: &str, p: &Cidr) -> Option<&Pool> {
        self.pools
            .values()
            .find(|o| o.space == space && o.prefix.overlaps(p))
    }

    /// Create a pool: `pool` given, or chosen from the default list.
    /// Returns the new pool (its id is what later calls name).
    pub fn request_pool(
        &mut self,
        space: &str,
        pool: Option<Cidr>,
        sub_pool: Option<Cidr>,
        v6: bool,
    ) -> Result<&Pool, IpamError> {
        self.check_space(space)?;
        let prefix = match pool {
            Some(p) => {
                if p.is_v4() == v6 {
                    return Err(IpamError::Family {
                        family: family(p.is_v4()),
                        pool: p,
                        want: family(!v6),
                    });
                }
                if let Some(o) = self.overlapping(space, &p) {
                    return Err(IpamError::Overlap {
                        pool: p,
                        other: o.prefix,
                        space: space.into(),
                    });
                }
                p
            }
            None => self.choose(space, v6)?,
        };
        if let Some(sub) = sub_pool
            && (sub.is_v4() != prefix.is_v4() || sub.len < prefix.len || !prefix.contains(sub.addr))
        {
            return Err(IpamError::SubPool { sub, pool: prefix });
        }
        let range = sub_pool.filter(|s| *s != prefix);
        let id = pool_id(space, &prefix, range.as_ref());
        let p = Pool {
            id: id.clone(),
            space: space.into(),
            prefix,
            range,
            gateway: None,
            allocated: IntervalSet::new(),
        };
        Ok(self.pools.entry(id).or_insert(p))
    }

    fn choose(&self, space: &str, v6: bool) -> Result<Cidr, IpamError> {
        let templates = if v6 {
            &self.config.default_v6
        } else {
            &self.config.default_v4
        };
        for t in templates {
            if t.base.is_v4() == v6 || t.size < t.base.len || t.size > t.base.bits() {
                continue;
            }
            let count_bits = u32::from(t.size - t.base.len);
            let count = if count_bits >= 32 {
                1u128 << 32
            } else {
                1u128 << count_bits
            };
            for i in 0..count {
                let Some(c) = t.base.subnet(t.size, i) else {
                    break;
                };
                let reserved = self.config.reserved.iter().any(|r| r.overlaps(&c));
                if !reserved && self.overlapping(space, &c).is_none() {
                    return Ok(c);
                }
            }
        }
        let tried: Vec<String> = templates
            .iter()
            .map(|t| format!("{} in /{}", t.base, t.size))
            .collect();
        Err(IpamError::NoDefaultPool {
            family: family(!v6),
            tried: if tried.is_empty() {
                "the list is empty".into()
            } else {
                tried.join(", ")
            },
        })
    }

    /// Put a pool back as it was (undo after a failed commit).
    pub fn restore(&mut self, p: Pool) {
        self.pools.insert(p.id.clone(), p);
    }

    /// Drop a pool and all its allocations. False if it did not exist.
    pub fn release_pool(&mut self, id: &str) -> bool {
        self.pools.remove(id).is_some()
    }

    /// Allocate `want`, or the lowest free usable address. Returns the
    /// address with the pool's prefix length.
    pub fn request_address(
        &mut self,
        pool_id: &str,
        want: Option<IpAddr>,
        kind: AddressKind,
    ) -> Result<Cidr, IpamError> {
        let p = self
            .pools
            .get_mut(pool_id)
            .ok_or_else(|| IpamError::UnknownPool { id: pool_id.into() })?;
        let ip = match want {
            Some(ip) => {
                if !usable_in(&p.prefix, ip) {
                    return Err(IpamError::Unusable {
                        addr: ip,
                        pool: p.prefix,
                    });
                }
                if p.allocated.contains(to_u128(ip)) {
                    return Err(IpamError::InUse {
                        addr: ip,
                        pool: p.prefix,
                    });
                }
                ip
            }
            None => {
                // The gateway comes from the whole pool (it is usually .1,
                // outside an --ip-range); hosts from the range if set.
                let r = match kind {
                    AddressKind::Gateway => p.prefix,
                    AddressKind::Host => p.range.unwrap_or(p.prefix),
                };
                let (mut lo, mut hi) = r.range();
                if !usable_in(&p.prefix, from_u128(r.addr, lo)) {
                    lo += 1;
                }
                if hi > lo && !usable_in(&p.prefix, from_u128(r.addr, hi)) {
                    hi -= 1;
                }
                let free = usable_in(&p.prefix, from_u128(r.addr, lo))
                    .then(|| p.allocated.first_absent(lo, hi))
                    .flatten();
                let Some(v) = free else {
                    return Err(IpamError::Exhausted {
                        pool: r,
                        used: p.allocated.count_in(lo, hi),
                        usable: p.usable_count(&r),
                    });
                };
                from_u128(r.addr, v)
            }
        };
        p.allocated.insert(to_u128(ip));
        if kind == AddressKind::Gateway {
            p.gateway = Some(ip);
        }
        Ok(p.prefix.with_addr(ip))
    }

    /// Free an address. False if it was not allocated (a repeated release).
    pub fn release_address(&mut self, pool_id: &str, ip: IpAddr) -> Result<bool, IpamError> {
        let p = self
            .pools
            .get_mut(pool_id)
            .ok_or_else(|| IpamError::UnknownPool { id: pool_id.into() })?;
        if !p.prefix.contains(ip) {
            return Err(IpamError::Unusable {
                addr: ip,
                pool: p.prefix,
            });
        }
        if p.gateway == Some(ip) {
            p.gateway = None;
        }
        Ok(p.allocated.remove(to_u128(ip)))
    }
}

#[cfg(test)]
mod tests;
