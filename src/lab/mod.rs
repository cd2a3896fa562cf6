//! `rvswitch lab`: deploy, inspect, check and destroy topologies of network
//! namespaces wired through rvswitch, declared in one YAML file (the format
//! and its validation are `rvs_lab`).
//!
//! A lab named L keeps its daemons' sockets under `/run/rvswitch/lab/L/` and
//! everything else — the daemons' stores and logs, the node commands' logs
//! and the lab state file `lab.json` — under `/var/lib/rvswitch/lab/L/`.
//! The state file records each namespace, link and daemon *before* it is
//! made, so `destroy` removes all of it even after a crash half-way.
//!
//! `lab deploy --reconfigure` applies only the difference between the
//! topology the state records as deployed and a changed file (see
//! `reconfigure.rs`; the plan is `rvs_lab::plan`).
//!
//! Owns: the lab's lifecycle and its names (`L-NODE` namespaces, links from
//! `rvs_lab::link_name`). Never: anything it did not record making —
//! deploy refuses to adopt a namespace or link that exists but is not in
//! the lab's state.

mod check;
mod container;
mod deploy;
mod dns;
mod host;
mod reconfigure;
mod services;
mod state;
mod store;
mod switches;

use std::path::{Path, PathBuf};

use rvs_lab::{self as model, Topology};

pub use deploy::{deploy, destroy};
pub use state::LabState;

/// Where labs keep their sockets.
pub const RUN_ROOT: &str = "/run/rvswitch/lab";
/// Where labs keep their state.
pub const STATE_ROOT: &str = "/var/lib/rvswitch/lab";

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Make (or complete) the lab: daemons, namespaces, links, ports,
    /// addresses, routes, sysctls, start-up commands. Re-running it on the
    /// same file changes nothing; a changed file needs --reconfigure.
    Deploy {
        /// The topology file (default: -t, or the one topology file in the
        /// current directory).
        file: Option<PathBuf>,
        #[command(flatten)]
        topo: TopoArg,
        /// Also run the expectations (like `lab check`) afterwards.
        #[arg(long)]
        check: bool,
        /// The lab runs from another version of the file: apply only the
        /// difference (nodes, links, networks, addresses and routes added,
        /// removed or changed); what did not change is not touched.
        #[arg(long)]
        reconfigure: bool,
        /// With --reconfigure: print the plan, change nothing.
        #[arg(long, requires = "reconfigure")]
        dry_run: bool,
    },
    /// Remove everything the lab made: processes in its namespaces, its
    /// daemons, namespaces, links, sockets and state.
    Destroy {
        /// The topology file (or name the lab with --lab; default: -t, or
        /// the one topology file in the current directory).
        file: Option<PathBuf>,
        #[command(flatten)]
        topo: TopoArg,
        /// The lab's name, when its file is gone.
        #[arg(long, conflicts_with_all = ["file", "topo"])]
        lab: Option<String>,
    },
    /// Table of nodes, interfaces, addresses, switch ports and networks.
    Inspect {
        file: Option<PathBuf>,
        #[command(flatten)]
        topo: TopoArg,
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a node: `lab exec [FILE] NODE -- CMD...` (the
    /// file as -t, or the one in the current directory, when left out).
    Exec {
        /// `[FILE] NODE`.
        #[arg(required = true, num_args = 1..=2, value_name = "[FILE] NODE")]
        target: Vec<String>,
        #[command(flatten)]
        topo: TopoArg,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Ping the expectation matrix (reach and isolate) from inside the
    /// namespaces, print the grid; exit status 1 if any check fails.
    Check {
        file: Option<PathBuf>,
        #[command(flatten)]
        topo: TopoArg,
    },
    /// Draw the topology.
    Graph {
        file: Option<PathBuf>,
        #[command(flatten)]
        topo: TopoArg,
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Validate a file and print what deploy would make, touching nothing.
    Validate {
        file: Option<PathBuf>,
        #[command(flatten)]
        topo: TopoArg,
    },
    /// The labs deployed on this machine (from their state files).
    List,
}

/// `-t FILE`, as containerlab takes its topology.
#[derive(Debug, Clone, clap::Args)]
pub struct TopoArg {
    /// The topology file (as `containerlab -t`); instead of the positional
    /// FILE.
    #[arg(short = 't', long = "topo", value_name = "FILE")]
    pub topo: Option<PathBuf>,
}

/// The topology file a command works on: the positional one, `-t`, or —
/// as containerlab does — the one topology file in the current directory
/// (`*.clab.yml`/`*.clab.yaml` first, then any `*.yml`/`*.yaml` whose top
/// level has `nodes:` or `topology:`).
pub fn topology_file(file: Option<PathBuf>, topo: &TopoArg) -> Result<PathBuf, LabError> {
    match (file, topo.topo.clone()) {
        (Some(_), Some(_)) => Err(err("give the topology file once: as FILE or as -t FILE")),
        (Some(f), None) | (None, Some(f)) => Ok(f),
        (None, None) => find_topology(Path::new("")),
    }
}

fn find_topology(dir: &Path) -> Result<PathBuf, LabError> {
    let list = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut yml: Vec<PathBuf> = std::fs::read_dir(list)
        .map_err(|e| {
            err(format!(
                "no topology file given, and the current directory cannot be read: {e}"
            ))
        })?
        .filter_map(|e| e.ok().map(|e| dir.join(e.file_name())))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    yml.sort();
    let clab: Vec<&PathBuf> = yml
        .iter()
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".clab.yml") || n.ends_with(".clab.yaml")
        })
        .collect();
    let candidates: Vec<&PathBuf> = if clab.is_empty() {
        yml.iter()
            .filter(|p| {
                std::fs::read_to_string(p).is_ok_and(|t| {
                    t.lines()
                        .any(|l| l.starts_with("nodes:") || l.starts_with("topology:"))
                })
            })
            .collect()
    } else {
        clab
    };
    match candidates.as_slice() {
        [one] => Ok(one.to_path_buf()),
        [] => Err(err(
            "no topology file given (FILE or -t FILE), and none in the current directory",
        )),
        many => Err(err(format!(
            "no topology file given, and the current directory has {}: {}; name one with -t",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Svg,
    Mermaid,
}

/// Why a lab command failed. The message is for the operator as it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LabError(pub String);

pub fn err(what: impl std::fmt::Display) -> LabError {
    LabError(what.to_string())
}

/// Paths of one lab.
#[derive(Debug, Clone)]
pub struct Paths {
    pub run: PathBuf,
    pub state: PathBuf,
}

impl Paths {
    pub fn of(lab: &str) -> Paths {
        Paths {
            run: Path::new(RUN_ROOT).join(lab),
            state: Path::new(STATE_ROOT).join(lab),
        }
    }

    pub fn socket(&self, switch: &str) -> PathBuf {
        self.run.join(format!("{switch}.sock"))
    }

    pub fn store(&self, switch: &str) -> PathBuf {
        self.state.join(format!("switch-{switch}"))
    }

    pub fn log(&self, what: &str) -> PathBuf {
        self.state.join(format!("{what}.log"))
    }

    pub fn state_file(&self) -> PathBuf {
        self.state.join("lab.json")
    }
}

pub fn load(file: &Path) -> Result<Topology, LabError> {
    model::parse_file(file).map_err(|e| err(format!("{e}\n(no changes made)")))
}

/// Held while a deploy or destroy runs: one at a time on this machine (they
/// take a second; two at once on one lab would race on its state).
pub struct LabLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

pub fn lock() -> Result<LabLock, LabError> {
    std::fs::create_dir_all(RUN_ROOT).map_err(|e| err(format!("create {RUN_ROOT}: {e}")))?;
    let dir = std::fs::File::open(RUN_ROOT).map_err(|e| err(format!("open {RUN_ROOT}: {e}")))?;
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
        .map(LabLock)
        .map_err(|(_, e)| err(format!("lock {RUN_ROOT}: {e}")))
}

fn need_root(what: &str) -> Result<(), LabError> {
    if rvs_drivers::testutil::is_root() {
        Ok(())
    } else {
        Err(err(format!(
            "lab {what} needs root: it works with network namespaces, links and daemons (run it with sudo)"
        )))
    }
}

/// Run a `lab` subcommand; `Ok(code)` is the exit status to leave with.
pub fn run(args: LabArgs) -> Result<i32, LabError> {
    match args.command {
        LabCommand::Deploy {
            file,
            topo,
            check,
            reconfigure,
            dry_run,
        } => {
            let file = topology_file(file, &topo)?;
            let topo = load(&file)?;
            need_root("deploy")?;
            let guard = lock()?;
            if dry_run {
                reconfigure::dry_run(&topo)?;
                return Ok(0);
            }
            if reconfigure {
                reconfigure::reconfigure(&topo, &file)?;
            } else if let Err(e) = deploy(&topo, &file) {
                // A refusal (another version of the file, names that are
                // not the lab's) made nothing: nothing to complete.
                if e.0.ends_with("(no changes made)") {
                    return Err(e);
                }
                if Paths::of(&topo.name).state_file().exists() {
                    return Err(err(format!(
                        "{e}\nlab {}: deploy stopped half-way; what it made is recorded: `rvswitch lab deploy {f}` again completes it, `rvswitch lab destroy {f}` removes it",
                        topo.name,
                        f = file.display()
                    )));
                }
                return Err(e);
            }
            drop(guard);
            if check {
                return check::check(&topo);
            }
            Ok(0)
        }
        LabCommand::Destroy { file, topo, lab } => {
            let name = match lab {
                Some(l) => l,
                None => load(&topology_file(file, &topo)?)?.name,
            };
            need_root("destroy")?;
            let _guard = lock()?;
            destroy(&name)?;
            Ok(0)
        }
        LabCommand::Inspect { file, topo, json } => {
            let topo = load(&topology_file(file, &topo)?)?;
            check::inspect(&topo, json)?;
            Ok(0)
        }
        LabCommand::Exec {
            mut target,
            topo,
            command,
        } => {
            let node = target.pop().unwrap_or_default();
            let file = topology_file(target.pop().map(PathBuf::from), &topo)?;
            let topo = load(&file)?;
            need_root("exec")?;
            check::exec(&topo, &node, &command)
        }
        LabCommand::Check { file, topo } => {
            let topo = load(&topology_file(file, &topo)?)?;
            need_root("check")?;
            check::check(&topo)
        }
        LabCommand::Graph {
            file,
            topo,
            format,
            output,
        } => {
            let topo = load(&topology_file(file, &topo)?)?;
            let text = match format {
                GraphFormat::Dot => model::to_dot(&topo),
                GraphFormat::Mermaid => model::to_mermaid(&topo),
                GraphFormat::Svg => svg(&model::to_dot(&topo))?,
            };
            match output {
                Some(p) => std::fs::write(&p, text)
                    .map_err(|e| err(format!("write {}: {e}", p.display())))?,
                None => print!("{text}"),
            }
            Ok(0)
        }
        LabCommand::List => {
            list();
            Ok(0)
        }
        LabCommand::Validate { file, topo } => {
            let file = topology_file(file, &topo)?;
            let topo = load(&file)?;
            check::print_table(&topo, None);
            println!(
                "\n{}: valid, {} probe(s) in the expectation matrix",
                file.display(),
                topo.probes.len()
            );
            Ok(0)
        }
    }
}

fn list() {
    let mut rows = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(STATE_ROOT)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for name in names {
        let paths = Paths::of(&name);
        let (file, status, switches) = match LabState::load(&paths) {
            Ok(Some(st)) => {
                let up = st
                    .daemons
                    .values()
                    .filter(|s| {
                        crate::client::Client::new(s)
                            .ok()
                            .and_then(|c| c.get("/v1/domains").ok())
                            .is_some_and(|r| r.status == 200)
                    })
                    .count();
                let status = if st.complete {
                    "deployed"
                } else {
                    "incomplete"
                };
                (
                    st.file.display().to_string(),
                    status.to_string(),
                    format!("{up}/{} answering", st.daemons.len()),
                )
            }
            Ok(None) => ("-".into(), "no state".into(), "-".into()),
            Err(e) => ("-".into(), e.to_string(), "-".into()),
        };
        rows.push(vec![name, status, switches, file]);
    }
    if rows.is_empty() {
        println!("no labs deployed");
        return;
    }
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(3);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(6);
    let w2 = rows.iter().map(|r| r[2].len()).max().unwrap_or(0).max(8);
    println!(
        "{:<w0$}  {:<w1$}  {:<w2$}  FILE",
        "LAB", "STATUS", "SWITCHES"
    );
    for r in rows {
        println!("{:<w0$}  {:<w1$}  {:<w2$}  {}", r[0], r[1], r[2], r[3]);
    }
}

/// DOT to SVG with layout-rs.
pub fn svg(dot: &str) -> Result<String, LabError> {
    use layout::backends::svg::SVGWriter;
    use layout::gv::{DotParser, GraphBuilder};
    let mut parser = DotParser::new(dot);
    let ast = parser
        .process()
        .map_err(|e| err(format!("graph: internal DOT does not parse: {e}")))?;
    let mut gb = GraphBuilder::new();
    gb.visit_graph(&ast);
    let mut vg = gb.get();
    let mut w = SVGWriter::new();
    vg.do_it(false, false, false, &mut w);
    Ok(w.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "rvs-find-topo-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for (n, t) in files {
            std::fs::write(d.join(n), t).unwrap();
        }
        d
    }

    #[test]
    fn the_one_topology_file_of_a_directory_is_found_as_containerlab_finds_it() {
        let lab = "name: x\nnodes:\n  a: {}\n";
        let d = dir_with(&[("lab.yml", lab), ("ci.yml", "jobs: {}\n")]);
        assert_eq!(find_topology(&d).unwrap(), d.join("lab.yml"));
        let d2 = dir_with(&[
            ("a.yml", lab),
            ("b.clab.yaml", "name: y\ntopology: {}\n"),
            ("c.yaml", lab),
        ]);
        assert_eq!(find_topology(&d2).unwrap(), d2.join("b.clab.yaml"));
        let d3 = dir_with(&[("a.yml", lab), ("b.yml", lab), ("c.txt", lab)]);
        let e = find_topology(&d3).unwrap_err().0;
        assert!(e.contains("has 2") && e.contains("-t"), "{e}");
        let d4 = dir_with(&[
            ("notes.txt", lab),
            ("x.yml", "a: 1\n"),
            ("y.yml", "b: 2\n"),
            ("z.yml", "c: 3\n"),
            ("w.yml", "d: 4\n"),
        ]);
        assert!(
            find_topology(&d4)
                .unwrap_err()
                .0
                .contains("none in the current directory")
        );
        let t = TopoArg {
            topo: Some("a.yml".into()),
        };
        assert!(topology_file(Some("b.yml".into()), &t).is_err());
        assert_eq!(topology_file(None, &t).unwrap(), PathBuf::from("a.yml"));
        for d in [d, d2, d3, d4] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
