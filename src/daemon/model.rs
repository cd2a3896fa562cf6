//! The control API's data, now in [`crate::api`] (one module of request,
//! response and record types shared by the daemon and its clients); this
//! path re-exports it for the daemon's own modules.

pub use crate::api::*;
