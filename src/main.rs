//! The `rvswitch` binary: parses the command line and hands over to the
//! library (`rvswitch::daemon`, `rvswitch::ctl`). Errors meet `anyhow` here.

use anyhow::Context;
use clap::{Parser, Subcommand};
use rvswitch::{daemon, spec};

#[derive(Debug, Parser)]
#[command(name = "rvswitch", version, about = "A userspace virtual switch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the data plane and its control API.
    Daemon(daemon::DaemonArgs),
    /// Operate a running daemon over its API socket.
    Ctl(rvswitch::ctl::CtlArgs),
    /// Labs: namespaces wired through rvswitch from one YAML file.
    Lab(rvswitch::lab::LabArgs),
    /// Run as a CNI plugin: the verb in CNI_COMMAND, the network
    /// configuration on stdin, the result on stdout (CNI spec 1.1). The
    /// binary does the same when called as `rvswitch-cni` (a link in
    /// /opt/cni/bin).
    Cni,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Write man pages (rvswitch.1 and one per subcommand) into DIR.
    Man {
        /// Directory to write the pages into (created if missing).
        dir: std::path::PathBuf,
    },
}

/// The name under which the binary is a CNI plugin (CNI runs plugins by
/// the `type` of their configuration, with no arguments).
const CNI_NAME: &str = "rvswitch-cni";

fn main() -> anyhow::Result<()> {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0).file_name() == Some(std::ffi::OsStr::new(CNI_NAME)) {
        std::process::exit(rvswitch::cni::plugin::main());
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Daemon(args) => {
            let initial = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
            let filter = tracing_subscriber::EnvFilter::try_new(&initial)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            // `ctl log level` changes the filter of the subscriber built here.
            fn hook<L, S>(h: tracing_subscriber::reload::Handle<L, S>) -> daemon::logging::Hook
            where
                L: From<tracing_subscriber::EnvFilter> + Send + Sync + 'static,
                S: Send + Sync + 'static,
            {
                Box::new(move |f: &str| {
                    let filter = tracing_subscriber::EnvFilter::try_new(f)
                        .map_err(|e| format!("log filter {f:?}: {e}"))?;
                    h.reload(filter).map_err(|e| e.to_string())
                })
            }
            match args.log_format {
                daemon::LogFormat::Json => {
                    let log = tracing_subscriber::fmt()
                        .json()
                        .with_env_filter(filter)
                        .with_writer(std::io::stderr)
                        .with_filter_reloading();
                    daemon::logging::install(&initial, hook(log.reload_handle()));
                    log.init()
                }
                daemon::LogFormat::Text => {
                    let log = tracing_subscriber::fmt()
                        .with_env_filter(filter)
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                        .with_filter_reloading();
                    daemon::logging::install(&initial, hook(log.reload_handle()));
                    log.init()
                }
            }
            let factory = if args.test_memory_ports {
                tracing::warn!("--test-memory-ports: ports are in-memory test ports");
                spec::memory_port_factory()
            } else {
                rvswitch::backends::driver_factory()
            };
            daemon::run(&args, factory, daemon::termination_signal()).context("rvswitch daemon")
        }
        Command::Lab(args) => {
            rvs_drivers::sigpipe::exit_quietly_on_broken_pipe();
            match rvswitch::lab::run(args) {
                Ok(code) => std::process::exit(code),
                Err(e) => {
                    eprintln!("rvswitch lab: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Cni => std::process::exit(rvswitch::cni::plugin::main()),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rvswitch", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("write man pages into {}", dir.display()))?;
            Ok(())
        }
        Command::Ctl(args) => {
            rvs_drivers::sigpipe::exit_quietly_on_broken_pipe();
            if let Err(e) = rvswitch::ctl::run(args) {
                eprintln!("rvswitch ctl: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
