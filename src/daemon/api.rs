//! The control API: HTTP/JSON routes under `/v1` mapped onto [`Control`].
//!
//! Owns: routing, request parsing (bodies and query strings are parsed here
//! so every malformed request is a JSON 400, not axum's plain-text 422), the
//! error → status mapping (every error answer, axum's own rejections such as
//! 413 included, is `{"error": "..."}`), the pcap stream, and the accept
//! loop with its connection limits ([`serve`]). Never: state of its own, or
//! blocking the async runtime — each operation runs on the blocking pool
//! because it waits for a worker and for the store's fsync.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::control::{Control, ControlError};
use super::model::*;
use crate::pcap;

/// The OpenAPI 3 description of every route below.
pub const OPENAPI: &str = include_str!("openapi.json");

type Shared = Arc<Control>;

/// An error answer: `{"error": "<reason>"}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad(message: String) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match e {
            ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            ControlError::Conflict(_) => StatusCode::CONFLICT,
            ControlError::Backend(_) | ControlError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        }
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn body<T: DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("invalid request body: {e}")))
}

fn query<T: DeserializeOwned>(q: Option<String>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad(format!("invalid query string: {e}")))
}

/// Run a control operation on the blocking pool.
async fn run<T, F>(c: &Shared, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Control) -> Result<T, ControlError> + Send + 'static,
{
    let c = c.clone();
    tokio::task::spawn_blocking(move || f(&c))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("control task failed: {e}"),
        })?
        .map_err(ApiError::from)
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    (status, axum::Json(v)).into_response()
}

fn ok<T: Serialize>(v: &T) -> ApiResult {
    Ok(json(StatusCode::OK, v))
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Largest request body (JSON); a larger one is refused with 413.
pub const BODY_LIMIT: usize = 2 << 20;

/// Every route of the API.
pub fn router(control: Shared) -> Router {
    use axum::routing::delete;
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/domains", get(list_domains).post(create_domain))
        .route(
            "/v1/domains/{name}",
            get(get_domain).patch(patch_domain).delete(delete_domain),
        )
        .route(
            "/v1/domains/{name}/fdb",
            get(list_fdb).post(add_static).delete(flush_fdb),
        )
        .route(
            "/v1/domains/{name}/fdb/{vid}/{mac}",
            delete(delete_fdb_entry),
        )
        .route("/v1/domains/{name}/stp", get(domain_stp))
        .route("/v1/ports", get(list_ports).post(create_port))
        .route(
            "/v1/ports/{name}",
            get(get_port).patch(patch_port).delete(delete_port),
        )
        .route("/v1/ports/{name}/stats", get(port_stats))
        .route("/v1/ports/{name}/remotes", get(remotes).post(add_remote))
        .route("/v1/ports/{name}/remotes/{remote}", delete(delete_remote))
        .route("/v1/ports/{name}/capture", get(capture))
        .route("/v1/routes", get(list_routes).post(add_route))
        .route("/v1/routes/{table}/{addr}/{len}", delete(delete_route))
        .route("/v1/neighbors", get(neighbors))
        .route("/v1/cnm/networks", get(cnm_networks))
        .route("/v1/cnm/endpoints", get(cnm_endpoints))
        .route("/v1/cnm/sandboxes", get(cnm_sandboxes))
        .route("/v1/stats", get(stats))
        .route("/v1/trace", get(trace).post(arm_trace))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                message: "no such resource".into(),
            }
        })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "method not allowed on this resource".into(),
            }
        })
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(control)
}

/// Give every error answer the one JSON shape: axum's extractors reject
/// some requests before a handler runs (a body over [`BODY_LIMIT`], a path
/// segment that is not UTF-8) with plain text; re-wrap that text.
async fn json_errors(r: Response) -> Response {
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("request body is larger than {BODY_LIMIT} bytes")
    } else {
        let text = axum::body::to_bytes(r.into_body(), 64 * 1024)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            text
        }
    };
    ApiError { status, message }.into_response()
}

/// Limits on the API's connections.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiLimits {
    /// Close an API connection that has no request in progress after this
    /// many seconds (a running capture stream is a request in progress).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub api_idle_secs: u64,
    /// Serve at most this many API connections at once; further clients
    /// wait in the socket's backlog until one closes.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub api_max_connections: u32,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            api_idle_secs: 30,
            api_max_connections: 128,
        }
    }
}

/// Serve `app` on `listener` until `stop` resolves, then stop accepting
/// and wait for the connections in progress (idle ones close at once).
/// Written out instead of `axum::serve`, which has neither an idle timeout
/// nor a connection limit: hyper's header read timeout closes a connection
/// that sends no request head for `api_idle_secs` — between requests as well
/// as before the first — and a semaphore bounds the connections served.
pub async fn serve(
    listener: tokio::net::UnixListener,
    app: Router,
    limits: &ApiLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(tokio::sync::Semaphore::new(
        limits.api_max_connections as usize,
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(limits.api_idle_secs));
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    // At most one warning a minute, however often the limit is met.
    let mut warned: Option<std::time::Instant> = None;
    loop {
        if slots.available_permits() == 0
            && warned.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60))
        {
            tracing::warn!(
                max = limits.api_max_connections,
                "API connection limit reached; new clients wait until one closes"
            );
            warned = Some(std::time::Instant::now());
        }
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of fds, say: do not spin on it.
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "API connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

// ---- bridge domains ---------------------------------------------------------------

async fn list_domains(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.list_domains()).await?)
}

async fn create_domain(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let rec: DomainRecord = body(&b)?;
    let v = run(&c, move |c| c.create_domain(rec)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

async fn get_domain(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.get_domain(&name)).await?)
}

async fn patch_domain(State(c): State<Shared>, Path(name): Path<String>, b: Bytes) -> ApiResult {
    let p: DomainPatch = body(&b)?;
    ok(&run(&c, move |c| c.patch_domain(&name, p)).await?)
}

async fn delete_domain(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    run(&c, move |c| c.delete_domain(&name)).await?;
    no_content()
}

async fn domain_stp(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.stp(&name)).await?)
}

// ---- VXLAN remotes ------------------------------------------------------------------

async fn remotes(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.remotes(&name)).await?)
}

async fn add_remote(State(c): State<Shared>, Path(name): Path<String>, b: Bytes) -> ApiResult {
    let r: super::overlay::AddRemote = body(&b)?;
    let v = run(&c, move |c| c.add_remote(&name, r)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

async fn delete_remote(
    State(c): State<Shared>,
    Path((name, remote)): Path<(String, String)>,
) -> ApiResult {
    let ip: std::net::IpAddr = remote.parse().map_err(|_| ApiError {
        status: StatusCode::BAD_REQUEST,
        message: format!("{remote:?} is not an IP address"),
    })?;
    run(&c, move |c| c.delete_remote(&name, ip)).await?;
    no_content()
}

// ---- routing --------------------------------------------------------------------

async fn list_routes(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.list_routes()).await?)
}

async fn add_route(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let r: RouteRecord = body(&b)?;
    let v = run(&c, move |c| c.add_route(r)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

async fn delete_route(
    State(c): State<Shared>,
    Path((table, addr, len)): Path<(String, String, String)>,
) -> ApiResult {
    let table: u16 = table.parse().map_err(|_| ApiError {
        status: StatusCode::BAD_REQUEST,
        message: format!("route table {table:?} is not a number 0..=65535"),
    })?;
    let prefix = format!("{addr}/{len}");
    run(&c, move |c| c.delete_route(table, &prefix)).await?;
    no_content()
}

async fn neighbors(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.neighbors()).await?)
}

async fn cnm_networks(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.cnm_networks()).await?)
}

async fn cnm_endpoints(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.cnm_endpoints()).await?)
}

async fn cnm_sandboxes(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.cnm_sandboxes()).await?)
}

// ---- FDB ------------------------------------------------------------------------

async fn list_fdb(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.list_fdb(&name)).await?)
}

async fn add_static(State(c): State<Shared>, Path(name): Path<String>, b: Bytes) -> ApiResult {
    let e: StaticEntry = body(&b)?;
    let echo = e.clone();
    run(&c, move |c| c.add_static(&name, e)).await?;
    Ok(json(StatusCode::CREATED, &echo))
}

async fn flush_fdb(
    State(c): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let q: FlushQuery = query(q)?;
    let n = run(&c, move |c| c.flush_fdb(&name, q)).await?;
    ok(&serde_json::json!({ "flushed": n }))
}

async fn delete_fdb_entry(
    State(c): State<Shared>,
    Path((name, vid, mac)): Path<(String, String, String)>,
) -> ApiResult {
    run(&c, move |c| c.delete_fdb_entry(&name, &vid, &mac)).await?;
    no_content()
}

// ---- ports ---------------------------------------------------------------------

async fn list_ports(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.list_ports()).await?)
}

async fn create_port(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let req: CreatePort = body(&b)?;
    let v = run(&c, move |c| c.create_port(req)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

async fn get_port(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.get_port(&name)).await?)
}

async fn patch_port(State(c): State<Shared>, Path(name): Path<String>, b: Bytes) -> ApiResult {
    let p: PortPatch = body(&b)?;
    ok(&run(&c, move |c| c.patch_port(&name, p)).await?)
}

async fn delete_port(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    run(&c, move |c| c.delete_port(&name)).await?;
    no_content()
}

// ---- observation ---------------------------------------------------------------------

async fn stats(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.stats()).await?)
}

async fn port_stats(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.port_stats(&name)).await?)
}

async fn arm_trace(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let req: TraceRequest = body(&b)?;
    run(&c, move |c| c.arm_trace(req)).await?;
    no_content()
}

async fn trace(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.trace()).await?)
}

/// Stream a pcap of the port's frames until `count` frames or `seconds`.
async fn capture(
    State(c): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let q: CaptureQuery = query(q)?;
    let mut session = run(&c, move |c| c.start_capture(&name, &q)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let ctl = c.clone();
    tokio::task::spawn_blocking(move || {
        let mut alive = tx
            .blocking_send(Bytes::copy_from_slice(&pcap::global_header()))
            .is_ok();
        while alive {
            match session.next_record() {
                None => break,
                // A quiet interval: only check the client is still there.
                Some(r) if r.is_empty() => alive = !tx.is_closed(),
                Some(r) => alive = tx.blocking_send(Bytes::from(r)).is_ok(),
            }
        }
        ctl.stop_capture(session);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/vnd.tcpdump.pcap")],
        Body::from_stream(stream),
    )
        .into_response())
}
