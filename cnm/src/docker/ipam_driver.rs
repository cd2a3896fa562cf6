//! The IPAM half of the driver: pools and addresses, each change committed
//! to the store before it is acknowledged, undone in memory if the commit
//! fails.
//!
//! Owns: idempotence for releases (releasing what is already free
//! succeeds: the engine retries and also releases on rollback paths).
//! Never: policy (see `ipam`) or wire formats.

use std::net::IpAddr;

use crate::ipam::AddressKind;
use crate::prefix::Cidr;

use super::driver::{Driver, DriverError};

impl Driver {
    /// Create a pool (`pool: None`: choose one). Returns (id, prefix).
    pub fn request_pool(
        &self,
        space: &str,
        pool: Option<Cidr>,
        sub_pool: Option<Cidr>,
        v6: bool,
    ) -> Result<(String, Cidr), DriverError> {
        let mut st = self.lock();
        let p = st.ipam.request_pool(space, pool, sub_pool, v6)?;
        let (id, prefix) = (p.id.clone(), p.prefix);
        self.commit_pool(&mut st, None, &id)?;
        Ok((id, prefix))
    }

    /// Releasing an unknown pool succeeds.
    pub fn release_pool(&self, id: &str) -> Result<(), DriverError> {
        let mut st = self.lock();
        let Some(before) = st.ipam.pool(id).cloned() else {
            return Ok(());
        };
        st.ipam.release_pool(id);
        self.commit_pool(&mut st, Some(before), id)
    }

    pub fn request_address(
        &self,
        pool_id: &str,
        want: Option<IpAddr>,
        kind: AddressKind,
    ) -> Result<Cidr, DriverError> {
        let mut st = self.lock();
        let before = st.ipam.pool(pool_id).cloned();
        let a = st.ipam.request_address(pool_id, want, kind)?;
        self.commit_pool(&mut st, before, pool_id)?;
        Ok(a)
    }

    /// Releasing a free address succeeds; an unknown pool does too (it was
    /// released with everything in it).
    pub fn release_address(&self, pool_id: &str, ip: IpAddr) -> Result<(), DriverError> {
        let mut st = self.lock();
        let Some(before) = st.ipam.pool(pool_id).cloned() else {
            return Ok(());
        };
        if !st.ipam.release_address(pool_id, ip)? {
            return Ok(());
        }
        self.commit_pool(&mut st, Some(before), pool_id)
    }
}
