//! The lab state file: what a deployment made (or was about to make), so
//! `destroy` can remove it all, also after a crash. Each entry is written
//! (and synced) before the thing it names is made.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{LabError, Paths, err};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    pub lab: String,
    /// The topology file it was deployed from, and a digest of its text.
    pub file: PathBuf,
    pub digest: String,
    /// Switch name → its daemon's socket.
    pub daemons: BTreeMap<String, PathBuf>,
    /// Namespaces (by name under /run/netns).
    pub namespaces: Vec<String>,
    /// Links in the host namespace (veth ends; a veth takes its peer along).
    pub links: Vec<String>,
    /// Nodes whose `exec` commands have run.
    pub exec_done: Vec<String>,
    /// Containers of container nodes (Docker names).
    #[serde(default)]
    pub containers: Vec<String>,
    /// Every step of the last deploy finished.
    pub complete: bool,
    /// The topology deployed: the whole file's once a deploy completes;
    /// during `--reconfigure`, updated after each step applied, so it names
    /// what is really there. `None`: state written before it was recorded.
    #[serde(default)]
    pub deployed: Option<rvs_lab::Topology>,
}

impl LabState {
    pub fn load(paths: &Paths) -> Result<Option<LabState>, LabError> {
        let f = paths.state_file();
        match std::fs::read(&f) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| err(format!("{}: unreadable lab state: {e}", f.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(format!("{}: {e}", f.display()))),
        }
    }

    /// Write atomically (temp file, fsync, rename).
    pub fn save(&self, paths: &Paths) -> Result<(), LabError> {
        let f = paths.state_file();
        let tmp = f.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&paths.state)?;
            let mut o = std::fs::File::create(&tmp)?;
            o.write_all(&serde_json::to_vec_pretty(self).expect("state serializes"))?;
            o.sync_all()?;
            std::fs::rename(&tmp, &f)
        };
        write().map_err(|e| err(format!("write lab state {}: {e}", f.display())))
    }

    pub fn record_netns(&mut self, paths: &Paths, ns: &str) -> Result<(), LabError> {
        if !self.namespaces.iter().any(|n| n == ns) {
            self.namespaces.push(ns.to_string());
            self.save(paths)?;
        }
        Ok(())
    }

    pub fn record_link(&mut self, paths: &Paths, link: &str) -> Result<(), LabError> {
        if !self.links.iter().any(|n| n == link) {
            self.links.push(link.to_string());
            self.save(paths)?;
        }
        Ok(())
    }
}

/// FNV-1a of the file's text, hex.
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Whether `path` names an existing file or directory.
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}
