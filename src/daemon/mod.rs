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
pub mod apply;
pub mod cnm;
pub mod control;
pub mod error;
pub mod fdb;
pub mod files;
pub mod l3;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod names;
pub mod observe;
pub mod overlay;
pub mod parent;
pub mod ready;
pub mod reconcile;
pub mod services;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::spec::PortFactory;
use crate::worker::Dataplane;
pub use control::{Control, ControlError, RemoteNames};
pub use error::DaemonError;
pub(crate) use files::bind_socket;
use files::{check_socket_free, private_state_dir, private_state_files};

/// Where the API socket lives unless `--socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/rvswitch/rvswitch.sock";
/// Where the state lives unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/rvswitch";
/// How long requests in flight (a capture stream, say) may take to finish
/// once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How the daemon writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

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
    /// Log lines as text (the default) or as one JSON object per line (for
    /// a log collector).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Also serve `GET /metrics` (and nothing else) on this TCP address,
    /// for a Prometheus that scrapes over the network, e.g.
    /// `127.0.0.1:9477` or `[::]:9477`. The control API stays on the unix
    /// socket only.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// FOR TESTS ONLY: every port is an in-memory port that carries no
    /// traffic, whatever its kind. Lets API tests run without TAP/XDP.
    #[arg(long, hide = true)]
    pub test_memory_ports: bool,
    #[command(flatten)]
    pub api: api::ApiLimits,
    #[command(flatten)]
    pub docker: crate::docker::DockerArgs,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
    #[command(flatten)]
    pub dns: crate::dns::DnsArgs,
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

/// With a service manager's watchdog (`WatchdogSec=` in a systemd unit:
/// `WATCHDOG_USEC` and `WATCHDOG_PID` set), send `WATCHDOG=1` at half the
/// interval — but only after every worker answered a call: a worker stuck
/// in a loop stops the pings, and the manager restarts the daemon.
fn watchdog(
    control: Arc<Control>,
) -> Option<(
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
)> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2);
    tracing::info!(interval = ?Duration::from_micros(usec), "service manager watchdog on");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::Builder::new()
        .name("rvs-watchdog".into())
        .spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Acquire) {
                if control.workers_answer() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                }
                std::thread::park_timeout(every);
            }
        })
        .ok()?;
    Some((stop, t))
}

/// Send a state to the service manager if the daemon was started with a
/// `NOTIFY_SOCKET` (nothing otherwise). A failed READY=1 is a warning (the
/// manager will time out); later ones only debug lines (a supervisor that
/// only waited for readiness may have gone).
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        if matches!(state.first(), Some(sd_notify::NotifyState::Ready)) {
            tracing::warn!(error = %e, "readiness notification (NOTIFY_SOCKET) failed");
        } else {
            tracing::debug!(error = %e, "service manager notification failed");
        }
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
    // Joined before the Docker driver replays: its global networks and
    // endpoints are published again under this run's lease.
    let cluster = crate::cluster::Cluster::join(&args.cluster)
        .map_err(|e| DaemonError::Cluster(e.to_string()))?;
    let plugin = if args.docker.docker {
        Some(crate::docker::Plugin::open(
            &args.docker,
            rvs_cnm::Store::new(db.clone()),
            control.clone(),
            cluster.clone(),
        )?)
    } else {
        None
    };
    if let Some(p) = &plugin {
        control.set_cnm(p.driver());
    }
    // CNI attachments share the Docker driver's uplink (one per daemon).
    let fabric = crate::fabric::SwitchFabric::with_uplink(
        control.clone(),
        crate::fabric::Uplink::for_driver(&args.docker.name()),
    )
    .owned_by(&crate::cni::service::owner(&args.state_dir));
    let cni = crate::cni::service::Service::open(db.clone(), Arc::new(fabric))
        .map_err(|e| DaemonError::Cni(e.to_string()))?;
    control.set_cni(Some(Arc::new(cni)));
    if let Some(c) = &cluster {
        control.set_cluster(c.clone());
    }
    if let (Some(c), Some(p)) = (&cluster, &plugin) {
        c.start_sync(control.clone(), p.driver());
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
        let metrics_listener = match args.metrics_listen {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|e| DaemonError::MetricsListen(a, e))?,
            ),
            None => None,
        };
        let plugin = plugin.as_ref().map(|p| p.serve()).transpose()?;
        tracing::info!(socket = %socket.display(), workers = args.workers, "control API listening");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // The embedded DNS: its task runs on this runtime; the punt sink
        // goes to worker 0 before the API answers anyone.
        let dns = crate::dns::start(control.clone(), &args.dns);
        let app = api::router(control.clone());
        let limits = args.api.clone();
        let server = tokio::spawn(async move {
            api::serve(listener, app, &limits, async {
                let _ = stop_rx.await;
            })
            .await
        });
        let metrics_server = metrics_listener.map(|l| {
            if let Ok(a) = l.local_addr() {
                tracing::info!(address = %a, "metrics listening");
            }
            let app = api::metrics_router(control.clone());
            let limits = args.api.clone();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                api::serve(l, app, &limits, async {
                    let _ = rx.await;
                })
                .await
            });
            (tx, task)
        });
        // Serving: tell whoever started us (systemd's Type=notify, the lab
        // tool, the tests), when they asked through NOTIFY_SOCKET.
        notify(&[sd_notify::NotifyState::Ready]);
        let watchdog = watchdog(control.clone());
        shutdown.await;
        notify(&[sd_notify::NotifyState::Stopping]);
        if let Some((stop, t)) = watchdog {
            stop.store(true, std::sync::atomic::Ordering::Release);
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        tracing::info!("shutting down: no new connections");
        control.begin_shutdown();
        if dns.is_some() {
            let _ = control.set_dns_punt(None);
        }
        if let Some(p) = plugin {
            p.stop().await;
        }
        let _ = stop_tx.send(());
        if let Some((tx, task)) = metrics_server {
            let _ = tx.send(());
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "API server task failed"),
            Err(_) => tracing::warn!("requests still in flight after the grace period; dropped"),
        }
        Ok::<(), DaemonError>(())
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    // Leaving revokes the lease: the other hosts drop this one's endpoints
    // now instead of after the TTL.
    if let Some(c) = &cluster {
        c.leave();
    }
    control.set_cni(None);
    // Workers stop and drop their switches: TAP fds close, XDP detaches.
    control.shutdown();
    if served.is_ok() {
        let _ = std::fs::remove_file(&socket);
    }
    tracing::info!("stopped; state kept in {}", args.state_dir.display());
    served
}
