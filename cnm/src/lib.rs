//! The Container Network Model layer of rvswitch (see docs/architecture.md).
