//! `rvswitch daemon`: the data plane workers, the control API on a Unix
//! socket and the persistent store, started and stopped in order.
//!
//! Owns: the process's lifecycle — open the store (its directory 0700, its
//! files 0600), start the workers, replay the stored state, bind the socket
//! (mode 0600, checked with its directory), serve until SIGTERM/SIGINT,
//! then stop accepting, stop the workers (ports close) and remove the socket.
//! Never: deciding which port back ends exist — the caller passes a
//! [`PortFactory`] (`main.rs` wires in `rvs-drivers`).
//!
//! With several workers (`--workers N`) each bridge domain, with all of its
//! ports, is placed on one worker (the least loaded when it is created), as
//! an FDB is not shared between threads. Placement is not stored: a restart
//! places the stored domains again (in name order), so `--workers` may change
//! between runs.

pub mod api;
pub mod cnm;
pub mod control;
pub mod error;
pub mod fdb;
pub mod l3;
pub mod model;
pub mod observe;
pub mod overlay;
pub mod reconcile;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::spec::PortFactory;
use crate::worker::Dataplane;
pub use control::{Control, ControlError};

/// Where the API socket lives unless `--socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/rvswitch/rvswitch.sock";
/// Where the state lives unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/rvswitch";
/// How long requests in flight (a capture stream, say) may take to finish
/// once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// `rvswitch daemon` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Unix socket of the control API.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Directory of the state store (`rvswitch.redb`).
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Data plane worker threads; each bridge domain lives on one of them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Run the workers as SCHED_FIFO threads at this priority (1-99; needs
    /// CAP_SYS_NICE). On a machine busy with other work this keeps a lone
    /// packet from waiting milliseconds for a woken worker to be scheduled;
    /// under sustained traffic a worker then holds its core (the kernel's
    /// real-time throttling leaves others 5 %). Off by default.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=99))]
    pub worker_rt_priority: Option<u8>,
    /// FOR TESTS ONLY: every port is an in-memory port that carries no
    /// traffic, whatever its kind. Lets API tests run without TAP/XDP.
    #[arg(long, hide = true)]
    pub test_memory_ports: bool,
    #[command(flatten)]
    pub api: api::ApiLimits,
    #[command(flatten)]
    pub docker: crate::docker::DockerArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerError),
    #[error("replay stored state: {0}")]
    Replay(ControlError),
    #[error("control socket {path}: {what}: {cause}")]
    Socket {
        path: PathBuf,
        what: &'static str,
        cause: std::io::Error,
    },
    #[error("control socket {0}: another daemon is answering on it")]
    InUse(PathBuf),
    #[error("control socket {path}: {why}")]
    Unsafe { path: PathBuf, why: String },
    #[error("state directory {path}: {what}: {cause}")]
    StateDir {
        path: PathBuf,
        what: &'static str,
        cause: std::io::Error,
    },
    #[error("async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("Docker driver: {0}")]
    Docker(String),
}

fn sock_err(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> DaemonError {
    let path = path.to_path_buf();
    move |cause| DaemonError::Socket { path, what, cause }
}

/// Bind the API socket so that it is never reachable with looser
/// permissions: bind under a temporary name, chmod 0600, rename into place.
/// A directory we create for it is 0700.
pub(crate) fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, DaemonError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(sock_err(path, "create directory"))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(sock_err(path, "chmod directory"))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp).map_err(sock_err(path, "bind"))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(sock_err(path, "chmod and rename")(e));
    }
    if let Err(why) = check_socket_private(path, dir) {
        let _ = std::fs::remove_file(path);
        return Err(DaemonError::Unsafe {
            path: path.to_path_buf(),
            why,
        });
    }
    Ok(listener)
}

/// The socket in place must be ours and 0600, and its directory must not
/// let anyone else replace it (owned by us or root, and not writable by
/// group or others unless sticky, as /tmp is): whoever reaches the socket
/// controls the whole switch.
fn check_socket_private(path: &Path, dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let me = nix::unistd::geteuid().as_raw();
    let m = std::fs::symlink_metadata(path).map_err(|e| format!("stat: {e}"))?;
    if !m.file_type().is_socket() {
        return Err("is not a socket after binding it".into());
    }
    if m.uid() != me || m.mode() & 0o777 != 0o600 {
        return Err(format!(
            "is owned by uid {} with mode {:o} after binding; want uid {me}, mode 600",
            m.uid(),
            m.mode() & 0o777
        ));
    }
    let d = std::fs::metadata(dir).map_err(|e| format!("stat {}: {e}", dir.display()))?;
    if d.uid() != me && d.uid() != 0 {
        return Err(format!(
            "its directory {} is owned by uid {}, who could replace the socket",
            dir.display(),
            d.uid()
        ));
    }
    let sticky = d.mode() & 0o1000 != 0;
    if d.mode() & 0o022 != 0 && !sticky {
        return Err(format!(
            "its directory {} has mode {:o}: group or others could replace the socket",
            dir.display(),
            d.mode() & 0o777
        ));
    }
    Ok(())
}

/// The state directory holds the whole network configuration: create it
/// 0700, or tighten it to 0700 if it exists with looser permissions. A
/// directory that is not ours alone (another owner, or sticky like /tmp)
/// is refused rather than changed.
fn private_state_dir(dir: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let err = |what| {
        let path = dir.to_path_buf();
        move |cause| DaemonError::StateDir { path, what, cause }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err("create"))?;
    let m = std::fs::metadata(dir).map_err(err("stat"))?;
    let mode = m.mode();
    if m.uid() != nix::unistd::geteuid().as_raw() || mode & 0o1000 != 0 {
        return Err(DaemonError::StateDir {
            path: dir.to_path_buf(),
            what: "not the daemon's own directory (another owner, or shared and sticky)",
            cause: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
    }
    if mode & 0o077 != 0 {
        tracing::info!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "state directory tightened to 700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(err("chmod 700"))?;
    }
    Ok(())
}

/// The stores' database files become 0600 (redb creates them with the
/// default 0644).
fn private_state_files(dir: &Path) -> Result<(), DaemonError> {
    for name in [store::STATE_FILE] {
        let path = dir.join(name);
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if m.is_file() && m.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
                |cause| DaemonError::StateDir {
                    path,
                    what: "chmod 600",
                    cause,
                },
            )?;
        }
    }
    Ok(())
}

/// Refuse to start next to a live daemon on the same socket (checked before
/// anything is opened, so its ports are not touched). A stale socket file
/// is replaced when the new one is renamed into place.
fn check_socket_free(path: &Path) -> Result<(), DaemonError> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(DaemonError::InUse(path.to_path_buf()));
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    let t = Box::pin(term.recv());
    let i = Box::pin(int.recv());
    futures_util::future::select(t, i).await;
}

/// Send a state to the service manager if the daemon was started with a
/// `NOTIFY_SOCKET` (nothing otherwise); a failure is only logged.
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "readiness notification (NOTIFY_SOCKET) failed");
    }
}

/// Run the daemon until `shutdown` resolves (the binary passes
/// [`termination_signal`]; in-process tests pass their own trigger).
pub fn run<F>(args: &DaemonArgs, factory: PortFactory, shutdown: F) -> Result<(), DaemonError>
where
    F: Future<Output = ()> + Send + 'static,
{
    check_socket_free(&args.socket)?;
    private_state_dir(&args.state_dir)?;
    let db = store::open_state(&args.state_dir)?;
    let store = store::Store::new(db.clone());
    let dp = Dataplane::start_opts(
        args.workers as usize,
        crate::worker::IDLE_TIMEOUT,
        args.worker_rt_priority,
    )?;
    let control = Arc::new(Control::start(dp, store, factory).map_err(DaemonError::Replay)?);
    let plugin = if args.docker.docker {
        Some(crate::docker::Plugin::open(
            &args.docker,
            rvs_cnm::Store::new(db),
            control.clone(),
        )?)
    } else {
        None
    };
    if let Some(p) = &plugin {
        control.set_cnm(p.driver());
    }
    private_state_files(&args.state_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rvs-api")
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    let socket = args.socket.clone();
    let served = rt.block_on(async {
        let listener = bind_socket(&socket)?;
        let plugin = plugin.as_ref().map(|p| p.serve()).transpose()?;
        tracing::info!(socket = %socket.display(), workers = args.workers, "control API listening");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = api::router(control.clone());
        let limits = args.api.clone();
        let server = tokio::spawn(async move {
            api::serve(listener, app, &limits, async {
                let _ = stop_rx.await;
            })
            .await
        });
        // Serving: tell whoever started us (systemd's Type=notify, the lab
        // tool, the tests), when they asked through NOTIFY_SOCKET.
        notify(&[sd_notify::NotifyState::Ready]);
        shutdown.await;
        notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!("shutting down: no new connections");
        control.begin_shutdown();
        if let Some(p) = plugin {
            p.stop().await;
        }
        let _ = stop_tx.send(());
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "API server task failed"),
            Err(_) => tracing::warn!("requests still in flight after the grace period; dropped"),
        }
        Ok::<(), DaemonError>(())
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    // Workers stop and drop their switches: TAP fds close, XDP detaches.
    control.shutdown();
    if served.is_ok() {
        let _ = std::fs::remove_file(&socket);
    }
    tracing::info!("stopped; state kept in {}", args.state_dir.display());
    served
}
