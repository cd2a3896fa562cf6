//! The daemon's log filter, changed while it runs (`ctl log level debug`,
//! `PUT /v1/log`), as `ovs-appctl vlog/set` does for Open vSwitch.
//!
//! Owns: the hook the binary installs when it builds the subscriber (the
//! library does not build one: in-process tests bring their own), and the
//! filter in force. Never: formatting or writing log lines.

use std::sync::{Mutex, OnceLock};

/// Puts a new filter (`RUST_LOG` syntax) in force.
pub type Hook = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static HOOK: OnceLock<Hook> = OnceLock::new();
static CURRENT: Mutex<String> = Mutex::new(String::new());

/// Installed once by the binary: how to put a new filter in force, and the
/// filter it started with.
pub fn install(initial: &str, hook: Hook) {
    if HOOK.set(hook).is_ok() {
        *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = initial.to_string();
    }
}

/// The filter in force (`RUST_LOG` syntax), or `None` when this process
/// did not install a changeable subscriber.
pub fn current() -> Option<String> {
    HOOK.get()?;
    Some(CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// Put `filter` in force: a level (`debug`) or directives
/// (`info,rvswitch::daemon=debug`). A bad one is refused, the old stays.
pub fn set(filter: &str) -> Result<(), String> {
    let hook = HOOK
        .get()
        .ok_or("this process's log filter cannot be changed")?;
    hook(filter)?;
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = filter.to_string();
    tracing::info!(filter, "log filter changed");
    Ok(())
}
