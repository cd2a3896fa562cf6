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
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::control::{Control, ControlError};
use crate::api::format::{IpAddress, MacAddress};
use crate::api::*;
use crate::pcap;

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
            ControlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            axum::Json(ErrorBody {
                error: self.message,
            }),
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

/// The document's header; the paths and schemas come from the handlers'
/// `#[utoipa::path]` attributes and the types of [`crate::api`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rvswitch control API",
        version = "1",
        description = "HTTP/JSON over the daemon's Unix socket (default \
/run/rvswitch/rvswitch.sock, mode 0600). Every change is validated, applied to the data plane \
and committed to the state store before it is acknowledged; a refused request changes \
nothing. Errors are {\"error\": \"<reason>\"}. Request bodies reject unknown fields. With \
several data plane workers (--workers N), each bridge domain and all of its ports live on one \
worker, chosen as the least loaded when the domain is created (an FDB is not shared between \
threads); a port can move only between domains of the same worker.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "domains", description = "Bridge domains and their gateways"),
        (name = "fdb", description = "Forwarding databases"),
        (name = "dns", description = "Names of the embedded DNS (answered on gateway addresses, port 53)"),
        (name = "services", description = "Services of a network: VIPs balanced over backends, or DNS round robin"),
        (name = "ports", description = "Ports and their back ends"),
        (name = "vxlan", description = "Remote VTEPs of vxlan ports"),
        (name = "routing", description = "Routes and neighbors of the gateways"),
        (name = "cnm", description = "Docker networks (with --docker)"),
        (name = "cni", description = "CNI attachments (the `rvswitch cni` plugin's)"),
        (name = "cluster", description = "Hosts sharing networks through etcd (with --store)"),
        (name = "observe", description = "Counters, traces, captures, spanning tree"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// Every route of the API with its documentation: a route exists only as
/// a handler's `#[utoipa::path]`, so each one served is documented.
fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi))
        .routes(routes!(list_domains, create_domain))
        .routes(routes!(get_domain, patch_domain, delete_domain))
        .routes(routes!(list_fdb, add_static, flush_fdb))
        .routes(routes!(delete_fdb_entry))
        .routes(routes!(list_names))
        .routes(routes!(set_name, delete_name))
        .routes(routes!(list_dns_listeners))
        .routes(routes!(set_dns_listener, delete_dns_listener))
        .routes(routes!(list_services))
        .routes(routes!(get_service, set_service, delete_service))
        .routes(routes!(domain_stp))
        .routes(routes!(list_parents, attach_parent))
        .routes(routes!(detach_parent))
        .routes(routes!(list_ports, create_port))
        .routes(routes!(get_port, patch_port, delete_port))
        .routes(routes!(port_stats))
        .routes(routes!(remotes, add_remote))
        .routes(routes!(delete_remote))
        .routes(routes!(capture))
        .routes(routes!(list_routes, add_route))
        .routes(routes!(delete_route))
        .routes(routes!(neighbors))
        .routes(routes!(cnm_networks, create_cnm_network))
        .routes(routes!(delete_cnm_network))
        .routes(routes!(create_cnm_endpoint))
        .routes(routes!(delete_cnm_endpoint))
        .routes(routes!(join_cnm_endpoint))
        .routes(routes!(cnm_endpoints))
        .routes(routes!(cnm_sandboxes))
        .routes(routes!(list_cni_attachments, create_cni_attachment))
        .routes(routes!(get_cni_attachment, delete_cni_attachment))
        .routes(routes!(stats))
        .routes(routes!(trace, arm_trace))
        .routes(routes!(inject_trace))
        .routes(routes!(cluster))
        .routes(routes!(metrics))
        .routes(routes!(get_log, set_log))
}

/// The OpenAPI 3.1 document of every route, generated from the handlers
/// and the API's types (served at `GET /v1/openapi.json`).
pub fn openapi_document() -> serde_json::Value {
    let mut doc = serde_json::to_value(routes().into_openapi()).expect("the document serializes");
    merge_flattened(&mut doc);
    doc
}

/// Turn each schema that utoipa writes as `allOf` (a view that flattens
/// a record into itself, such as `Domain` or `Port`) into one object with
/// the members' properties. As `allOf`, the document would be wrong: a
/// record denies unknown fields (`additionalProperties: false`), which in
/// JSON Schema rejects the properties the other members add, so no real
/// answer would validate. The merged object leaves additional properties
/// open, as the views are never parsed by the daemon.
fn merge_flattened(doc: &mut serde_json::Value) {
    use serde_json::{Map, Value};
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let all = schemas.clone();
    for schema in schemas.values_mut() {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
            continue;
        };
        let mut properties = Map::new();
        let mut required: Vec<Value> = Vec::new();
        let mut plain = true;
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => r
                    .strip_prefix("#/components/schemas/")
                    .and_then(|n| all.get(n))
                    .unwrap_or(&Value::Null),
                None => part,
            };
            match part.get("properties").and_then(Value::as_object) {
                Some(p) => properties.extend(p.clone()),
                None => plain = false,
            }
            for r in part
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !required.contains(r) {
                    required.push(r.clone());
                }
            }
        }
        if !plain {
            continue;
        }
        let mut merged = Map::new();
        merged.insert("type".into(), "object".into());
        if let Some(d) = schema.get("description") {
            merged.insert("description".into(), d.clone());
        }
        merged.insert("required".into(), Value::Array(required));
        merged.insert("properties".into(), Value::Object(properties));
        *schema = Value::Object(merged);
    }
}

/// Every route of the API.
pub fn router(control: Shared) -> Router {
    let (router, _) = routes().split_for_parts();
    router
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
        .layer(axum::middleware::from_fn(refuse_oversized))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(control)
}

/// The router of `--metrics-listen`: `GET /metrics` and nothing else — a
/// TCP address is reachable by more than the socket's owner, so no part of
/// the control API is served there.
pub fn metrics_router(control: Shared) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                message: "only /metrics is served on this address".into(),
            }
        })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "method not allowed on this resource".into(),
            }
        })
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(control)
}

/// Each request and its status, at debug level (`ctl log debug`).
async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "API request");
    resp
}

/// Most bytes of a refused body read (and dropped) so that its client
/// finishes sending and reads the 413; a larger one is cut off.
const DRAIN_MAX: usize = 16 * BODY_LIMIT;

/// Answer 413 to a body whose declared length is over [`BODY_LIMIT`]
/// after reading it to its end. Refused without reading, the connection
/// closes with the body still arriving: the client's write then fails
/// (EPIPE) and hyper's client reports that instead of the answer, so the
/// user saw "error writing a body to connection" for about a third of
/// such requests on a busy machine. The body is dropped as it arrives
/// (nothing is kept), and at most [`DRAIN_MAX`] bytes in at most 5 s bound
/// what a client can make the daemon read for nothing. Bodies without a
/// length (chunked) meet the limit in the extractor as before.
async fn refuse_oversized(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|n| n <= BODY_LIMIT as u64) {
        return next.run(req).await;
    }
    let mut body = req.into_body();
    let drain = async {
        let mut read = 0;
        while read <= DRAIN_MAX {
            match http_body_util::BodyExt::frame(&mut body).await {
                Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("request body is larger than {BODY_LIMIT} bytes"),
    }
    .into_response()
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
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: &ApiLimits,
    stop: impl std::future::Future<Output = ()>,
) where
    L: axum::serve::Listener,
{
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
        // axum's `Listener::accept` retries failed accepts itself (out of
        // fds, say), pausing instead of spinning.
        let stream = tokio::select! {
            (s, _) = listener.accept() => s,
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

/// This document
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "getOpenApi", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi() -> Response {
    static DOC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        serde_json::to_string_pretty(&openapi_document()).expect("the document serializes")
    });
    ([(header::CONTENT_TYPE, "application/json")], DOC.as_str()).into_response()
}

// ---- bridge domains ---------------------------------------------------------------

/// List bridge domains
#[utoipa::path(get, path = "/v1/domains", operation_id = "listDomains", tag = "domains",
    responses((status = 200, description = "Bridge domains", body = Vec<DomainView>)))]
async fn list_domains(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.list_domains()).await?)
}

/// Create a bridge domain (placed on the least loaded worker)
#[utoipa::path(post, path = "/v1/domains", operation_id = "createDomain", tag = "domains",
    request_body = DomainRecord,
    responses((status = 201, description = "Created", body = DomainView), (status = 400, description = "Bad input (malformed JSON, an unknown field, a value out of range); nothing changed", body = ErrorBody), (status = 409, description = "Conflict (duplicate name, domain in use, port not attached, capture running)", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn create_domain(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let rec: DomainRecord = body(&b)?;
    let v = run(&c, move |c| c.create_domain(rec)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// Show a bridge domain
#[utoipa::path(get, path = "/v1/domains/{name}", operation_id = "getDomain", tag = "domains",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "The domain", body = DomainView), (status = 404, description = "Unknown bridge domain", body = ErrorBody)))]
async fn get_domain(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.get_domain(&name)).await?)
}

/// Change aging, MAC limit, VLAN protocol, gateway or RSTP
#[utoipa::path(patch, path = "/v1/domains/{name}", operation_id = "patchDomain", tag = "domains",
    request_body = DomainPatch,
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "The domain", body = DomainView), (status = 400, description = "Bad input (malformed JSON, an unknown field, a value out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn patch_domain(State(c): State<Shared>, Path(name): Path<String>, b: Bytes) -> ApiResult {
    let p: DomainPatch = body(&b)?;
    ok(&run(&c, move |c| c.patch_domain(&name, p)).await?)
}

/// Delete a bridge domain without ports
#[utoipa::path(delete, path = "/v1/domains/{name}", operation_id = "deleteDomain", tag = "domains",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown bridge domain", body = ErrorBody), (status = 409, description = "The domain has ports", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn delete_domain(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    run(&c, move |c| c.delete_domain(&name)).await?;
    no_content()
}

/// The domain's spanning tree: bridge and root IDs, each port's role, state and counters
#[utoipa::path(get, path = "/v1/domains/{name}/stp", operation_id = "getDomainStp", tag = "observe",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "RSTP state", body = Object), (status = 404, description = "Unknown bridge domain", body = ErrorBody), (status = 409, description = "The domain does not run RSTP", body = ErrorBody)))]
async fn domain_stp(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.stp(&name)).await?)
}

// ---- VXLAN remotes ------------------------------------------------------------------

/// A vxlan port's flood list, static entries, remote table and counters
#[utoipa::path(get, path = "/v1/ports/{name}/remotes", operation_id = "listRemotes", tag = "vxlan",
    params(("name" = String, Path, description = "Port name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "Remotes", body = RemotesView), (status = 404, description = "Unknown port", body = ErrorBody), (status = 409, description = "Not a vxlan port", body = ErrorBody)))]
async fn remotes(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.remotes(&name)).await?)
}

/// Add a remote VTEP to the flood list, or a static remote entry
#[utoipa::path(post, path = "/v1/ports/{name}/remotes", operation_id = "addRemote", tag = "vxlan",
    request_body = AddRemote,
    params(("name" = String, Path, description = "Port name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 201, description = "Remotes", body = RemotesView), (status = 400, description = "Bad address or MAC, or the port's own address", body = ErrorBody), (status = 404, description = "Unknown port", body = ErrorBody), (status = 409, description = "Not a vxlan port", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn add_remote(State(c): State<Shared>, Path(name): Path<String>, b: Bytes) -> ApiResult {
    let r: AddRemote = body(&b)?;
    let v = run(&c, move |c| c.add_remote(&name, r)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// Forget a remote VTEP (flood list and static entries)
#[utoipa::path(delete, path = "/v1/ports/{name}/remotes/{remote}", operation_id = "deleteRemote", tag = "vxlan",
    params(("name" = String, Path, description = "Port name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("remote" = IpAddress, Path, description = "The remote VTEP's address")),
    responses((status = 204, description = "Removed"), (status = 400, description = "Bad address", body = ErrorBody), (status = 404, description = "Unknown port or remote", body = ErrorBody), (status = 409, description = "Not a vxlan port", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
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

/// List routes: connected (from gateways) and static
#[utoipa::path(get, path = "/v1/routes", operation_id = "listRoutes", tag = "routing",
    responses((status = 200, description = "Routes", body = Vec<RouteView>)))]
async fn list_routes(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.list_routes()).await?)
}

/// Add a static route
#[utoipa::path(post, path = "/v1/routes", operation_id = "addRoute", tag = "routing",
    request_body = RouteRecord,
    responses((status = 201, description = "The route", body = RouteView), (status = 400, description = "Bad input (prefix, family, unknown field)", body = ErrorBody), (status = 404, description = "Unknown bridge domain", body = ErrorBody), (status = 409, description = "The route exists, or the domain has no gateway", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn add_route(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let r: RouteRecord = body(&b)?;
    let v = run(&c, move |c| c.add_route(r)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// Delete a static route
#[utoipa::path(delete, path = "/v1/routes/{table}/{addr}/{len}", operation_id = "deleteRoute", tag = "routing",
    params(("table" = u16, Path, description = "Route table"), ("addr" = IpAddress, Path, description = "The prefix's network address"), ("len" = u8, Path, description = "The prefix length", maximum = 128)),
    responses((status = 204, description = "Deleted"), (status = 400, description = "Bad table number or prefix", body = ErrorBody), (status = 404, description = "No such static route", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
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

/// The gateways' neighbors (ARP/ND entries)
#[utoipa::path(get, path = "/v1/neighbors", operation_id = "listNeighbors", tag = "routing",
    responses((status = 200, description = "Neighbors", body = Vec<NeighborView>)))]
async fn neighbors(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.neighbors()).await?)
}

/// This host's cluster: members, their VTEPs, leases, the last revision seen
#[utoipa::path(get, path = "/v1/cluster", operation_id = "getCluster", tag = "cluster",
    responses((status = 200, description = "Membership", body = crate::cluster::ClusterView), (status = 404, description = "The daemon is not in a cluster (no --store)", body = ErrorBody)))]
async fn cluster(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.cluster_view()).await?)
}

/// Docker networks (CNM) with the bridge domain and endpoint count of each
#[utoipa::path(get, path = "/v1/cnm/networks", operation_id = "listCnmNetworks", tag = "cnm",
    responses((status = 200, description = "Networks", body = Vec<Object>), (status = 404, description = "The daemon does not serve Docker (no --docker)", body = ErrorBody)))]
async fn cnm_networks(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.cnm_networks()).await?)
}

/// Make a network through the CNM driver (what `docker network create -d
/// rvswitch` makes); `scope: global` shares it with the cluster by name
#[utoipa::path(post, path = "/v1/cnm/networks", operation_id = "createCnmNetwork", tag = "cnm",
    request_body = CreateCnmNetwork,
    responses((status = 201, description = "Created (or already there with these settings)", body = Object), (status = 400, description = "Bad request, or scope global without --store", body = ErrorBody), (status = 404, description = "The daemon does not serve Docker (no --docker)", body = ErrorBody), (status = 409, description = "Refused by the cluster (another subnet or VNI: nothing changed) or the data plane, or the name is Docker's", body = ErrorBody), (status = 503, description = "The cluster's store (etcd) is unavailable (no quorum, no member reachable): nothing changed, try again", body = ErrorBody)))]
async fn create_cnm_network(State(c): State<Shared>, b: Bytes) -> ApiResult {
    c.require_cnm()?;
    let req: CreateCnmNetwork = body(&b)?;
    let v = run(&c, move |c| c.create_cnm_network(req)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// Delete a network made through the API, with its endpoints
#[utoipa::path(delete, path = "/v1/cnm/networks/{name}", operation_id = "deleteCnmNetwork", tag = "cnm",
    params(("name" = String, Path, description = "Network name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown network, or no --docker", body = ErrorBody), (status = 409, description = "The network is Docker's", body = ErrorBody)))]
async fn delete_cnm_network(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    run(&c, move |c| c.delete_cnm_network(&name)).await?;
    no_content()
}

/// Make an endpoint on a network made through the API (Docker's
/// CreateEndpoint: on a global network its address comes from the cluster)
#[utoipa::path(post, path = "/v1/cnm/networks/{name}/endpoints", operation_id = "createCnmEndpoint", tag = "cnm",
    params(("name" = String, Path, description = "Network name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body = CreateCnmEndpoint,
    responses((status = 201, description = "The endpoint (address, MAC, interfaces)", body = Object), (status = 400, description = "Bad request", body = ErrorBody), (status = 404, description = "Unknown network, or no --docker", body = ErrorBody), (status = 409, description = "Address or MAC taken, refused by the cluster, or the network is Docker's", body = ErrorBody), (status = 503, description = "The cluster's store (etcd) is unavailable: nothing changed, try again", body = ErrorBody)))]
async fn create_cnm_endpoint(
    State(c): State<Shared>,
    Path(name): Path<String>,
    b: Bytes,
) -> ApiResult {
    c.require_cnm()?;
    let req: CreateCnmEndpoint = body(&b)?;
    let v = run(&c, move |c| c.create_cnm_endpoint(&name, req)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// Make an endpoint's interface for a network namespace (Docker's Join);
/// the caller moves it in
#[utoipa::path(post, path = "/v1/cnm/networks/{name}/endpoints/{id}/join", operation_id = "joinCnmEndpoint", tag = "cnm",
    params(("name" = String, Path, description = "Network name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("id" = String, Path, description = "Endpoint id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body = JoinCnmEndpoint,
    responses((status = 200, description = "The interface to move into the namespace", body = CnmJoinView), (status = 400, description = "Bad request", body = ErrorBody), (status = 404, description = "Unknown network or endpoint, or no --docker", body = ErrorBody), (status = 409, description = "Joined to another namespace, or the network is Docker's", body = ErrorBody)))]
async fn join_cnm_endpoint(
    State(c): State<Shared>,
    Path((name, id)): Path<(String, String)>,
    b: Bytes,
) -> ApiResult {
    c.require_cnm()?;
    let req: JoinCnmEndpoint = body(&b)?;
    ok(&run(&c, move |c| c.join_cnm_endpoint(&name, &id, req)).await?)
}

/// Delete an endpoint of a network made through the API
#[utoipa::path(delete, path = "/v1/cnm/networks/{name}/endpoints/{id}", operation_id = "deleteCnmEndpoint", tag = "cnm",
    params(("name" = String, Path, description = "Network name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("id" = String, Path, description = "Endpoint id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown network or endpoint, or no --docker", body = ErrorBody), (status = 409, description = "The network is Docker's", body = ErrorBody), (status = 503, description = "The cluster's store (etcd) is unavailable: nothing changed, try again", body = ErrorBody)))]
async fn delete_cnm_endpoint(
    State(c): State<Shared>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult {
    run(&c, move |c| c.delete_cnm_endpoint(&name, &id)).await?;
    no_content()
}

/// Docker endpoints (CNM): MAC, addresses, port, interfaces, sandbox
#[utoipa::path(get, path = "/v1/cnm/endpoints", operation_id = "listCnmEndpoints", tag = "cnm",
    responses((status = 200, description = "Endpoints", body = Vec<Object>), (status = 404, description = "The daemon does not serve Docker (no --docker)", body = ErrorBody)))]
async fn cnm_endpoints(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.cnm_endpoints()).await?)
}

/// Docker sandboxes (CNM): namespace paths and joined endpoints
#[utoipa::path(get, path = "/v1/cnm/sandboxes", operation_id = "listCnmSandboxes", tag = "cnm",
    responses((status = 200, description = "Sandboxes", body = Vec<Object>), (status = 404, description = "The daemon does not serve Docker (no --docker)", body = ErrorBody)))]
async fn cnm_sandboxes(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.cnm_sandboxes()).await?)
}

// ---- CNI ------------------------------------------------------------------------

/// CNI attachments (container interfaces the CNI plugin attached)
#[utoipa::path(get, path = "/v1/cni/attachments", operation_id = "listCniAttachments", tag = "cni",
    responses((status = 200, description = "Attachments", body = Vec<crate::cni::Attachment>)))]
async fn list_cni_attachments(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.cni_attachments()).await?)
}

/// Attach a container's interface (CNI ADD): creates the network with its
/// first attachment, the endpoint (TAP or veth) in the container's
/// namespace, its addresses and routes; an existing identical attachment
/// is returned as it is
#[utoipa::path(post, path = "/v1/cni/attachments", operation_id = "createCniAttachment", tag = "cni",
    request_body = crate::cni::AttachRequest,
    responses((status = 200, description = "Attached", body = crate::cni::Attachment), (status = 400, description = "Bad input (names, addresses, a namespace that does not exist); nothing changed", body = ErrorBody), (status = 409, description = "The network exists with other settings, or the interface is attached in another namespace", body = ErrorBody), (status = 500, description = "Plumbing or store failure; nothing changed", body = ErrorBody)))]
async fn create_cni_attachment(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let req: crate::cni::AttachRequest = body(&b)?;
    ok(&run(&c, move |c| c.cni_attach(req)).await?)
}

/// One CNI attachment
#[utoipa::path(get, path = "/v1/cni/attachments/{id}", operation_id = "getCniAttachment", tag = "cni",
    params(("id" = String, Path, description = "Attachment id (`cni-` and 16 hex digits)")),
    responses((status = 200, description = "The attachment", body = crate::cni::Attachment), (status = 404, description = "No such attachment", body = ErrorBody)))]
async fn get_cni_attachment(State(c): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.cni_attachment(&id)).await?)
}

/// Remove a CNI attachment (CNI DEL), and its network with the last one;
/// an unknown one is already removed
#[utoipa::path(delete, path = "/v1/cni/attachments/{id}", operation_id = "deleteCniAttachment", tag = "cni",
    params(("id" = String, Path, description = "Attachment id (`cni-` and 16 hex digits)")),
    responses((status = 204, description = "Removed (or was not there)"), (status = 500, description = "Plumbing or store failure", body = ErrorBody)))]
async fn delete_cni_attachment(State(c): State<Shared>, Path(id): Path<String>) -> ApiResult {
    run(&c, move |c| c.cni_detach(&id)).await?;
    no_content()
}

// ---- FDB ------------------------------------------------------------------------

/// List FDB entries
#[utoipa::path(get, path = "/v1/domains/{name}/fdb", operation_id = "listFdb", tag = "fdb",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "Entries", body = Vec<FdbEntryView>), (status = 404, description = "Unknown bridge domain", body = ErrorBody)))]
async fn list_fdb(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.list_fdb(&name)).await?)
}

/// Add (or replace) a static entry; stored
#[utoipa::path(post, path = "/v1/domains/{name}/fdb", operation_id = "addStaticEntry", tag = "fdb",
    request_body = StaticEntry,
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 201, description = "Added", body = StaticEntry), (status = 400, description = "Bad input (malformed JSON, an unknown field, a value out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain or port", body = ErrorBody), (status = 409, description = "The port is in another domain or not attached", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn add_static(State(c): State<Shared>, Path(name): Path<String>, b: Bytes) -> ApiResult {
    let e: StaticEntry = body(&b)?;
    let echo = e.clone();
    run(&c, move |c| c.add_static(&name, e)).await?;
    Ok(json(StatusCode::CREATED, &echo))
}

/// Flush learned entries (static ones stay)
#[utoipa::path(delete, path = "/v1/domains/{name}/fdb", operation_id = "flushFdb", tag = "fdb",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), FlushQuery),
    responses((status = 200, description = "How many went", body = Flushed), (status = 400, description = "Bad input (malformed JSON, an unknown field, a value out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain or port", body = ErrorBody), (status = 409, description = "Conflict (duplicate name, domain in use, port not attached, capture running)", body = ErrorBody)))]
async fn flush_fdb(
    State(c): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let q: FlushQuery = query(q)?;
    let flushed = run(&c, move |c| c.flush_fdb(&name, q)).await?;
    ok(&Flushed { flushed })
}

/// Delete one entry, static (also from the store) or learned
#[utoipa::path(delete, path = "/v1/domains/{name}/fdb/{vid}/{mac}", operation_id = "deleteFdbEntry", tag = "fdb",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("vid" = u16, Path, description = "VLAN id", minimum = 1, maximum = 4094), ("mac" = MacAddress, Path, description = "MAC address")),
    responses((status = 204, description = "Deleted"), (status = 400, description = "Bad input (malformed JSON, an unknown field, a value out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain or entry", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn delete_fdb_entry(
    State(c): State<Shared>,
    Path((name, vid, mac)): Path<(String, String, String)>,
) -> ApiResult {
    run(&c, move |c| c.delete_fdb_entry(&name, &vid, &mac)).await?;
    no_content()
}

// ---- DNS names ------------------------------------------------------------------

/// List the names of a network's embedded DNS
#[utoipa::path(get, path = "/v1/domains/{name}/names", operation_id = "listNames", tag = "dns",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "Names", body = Vec<NameRecord>), (status = 404, description = "Unknown bridge domain", body = ErrorBody)))]
async fn list_names(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.list_names(&name)).await?)
}

/// Give a name addresses in a network's embedded DNS (added or replaced); stored
#[utoipa::path(put, path = "/v1/domains/{name}/names/{host}", operation_id = "setName", tag = "dns",
    request_body = NameSpec,
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("host" = String, Path, description = "DNS name (labels of letters, digits, '-', '_')")),
    responses((status = 200, description = "Stored", body = NameRecord), (status = 400, description = "Bad input (malformed JSON, an unknown field, a bad name or address, a VLAN out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain", body = ErrorBody), (status = 500, description = "A store or worker failure", body = ErrorBody)))]
async fn set_name(
    State(c): State<Shared>,
    Path((name, host)): Path<(String, String)>,
    b: Bytes,
) -> ApiResult {
    let spec: NameSpec = body(&b)?;
    ok(&run(&c, move |c| c.set_name(&name, &host, spec)).await?)
}

/// Remove a name from a network's embedded DNS
#[utoipa::path(delete, path = "/v1/domains/{name}/names/{host}", operation_id = "deleteName", tag = "dns",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("host" = String, Path, description = "DNS name"), NameQuery),
    responses((status = 204, description = "Deleted"), (status = 400, description = "Bad input (a VLAN out of range, an unknown query parameter); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain or name", body = ErrorBody), (status = 500, description = "A store or worker failure", body = ErrorBody)))]
async fn delete_name(
    State(c): State<Shared>,
    Path((name, host)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let q: NameQuery = query(q)?;
    run(&c, move |c| c.delete_name_in(&name, &host, q)).await?;
    no_content()
}

/// List the DNS listeners of a bridge domain (resolver addresses in its VLANs other than the gateway's)
#[utoipa::path(get, path = "/v1/domains/{name}/dns", operation_id = "listDnsListeners", tag = "dns",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "DNS listeners, by VLAN", body = Vec<DnsListenerRecord>), (status = 404, description = "Unknown bridge domain", body = ErrorBody)))]
async fn list_dns_listeners(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.list_dns_listeners(&name)).await?)
}

/// Give a bridge domain resolver addresses in one of its VLANs other than the gateway's (added or replaced); they answer ARP/ND, ping and DNS there with the gateway's MAC, from the names of that VLAN, and never route; stored
#[utoipa::path(put, path = "/v1/domains/{name}/dns/{vid}", operation_id = "setDnsListener", tag = "dns",
    request_body = DnsListenerSpec,
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("vid" = u16, Path, description = "VLAN id (not the gateway's)", minimum = 1, maximum = 4094)),
    responses((status = 200, description = "Stored", body = DnsListenerRecord), (status = 400, description = "Bad input (malformed JSON, an unknown field, a VLAN out of range or the gateway's own, a bad address or one of the gateway's); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain", body = ErrorBody), (status = 409, description = "The bridge domain has no gateway", body = ErrorBody), (status = 500, description = "A store or worker failure", body = ErrorBody)))]
async fn set_dns_listener(
    State(c): State<Shared>,
    Path((name, vid)): Path<(String, String)>,
    b: Bytes,
) -> ApiResult {
    let spec: DnsListenerSpec = body(&b)?;
    ok(&run(&c, move |c| c.set_dns_listener(&name, &vid, spec)).await?)
}

/// Remove a bridge domain's DNS listener of one VLAN
#[utoipa::path(delete, path = "/v1/domains/{name}/dns/{vid}", operation_id = "deleteDnsListener", tag = "dns",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("vid" = u16, Path, description = "VLAN id", minimum = 1, maximum = 4094)),
    responses((status = 204, description = "Deleted"), (status = 400, description = "A VLAN out of range", body = ErrorBody), (status = 404, description = "Unknown bridge domain, or no listener in that VLAN", body = ErrorBody), (status = 500, description = "A store or worker failure", body = ErrorBody)))]
async fn delete_dns_listener(
    State(c): State<Shared>,
    Path((name, vid)): Path<(String, String)>,
) -> ApiResult {
    run(&c, move |c| c.delete_dns_listener(&name, &vid)).await?;
    no_content()
}

// ---- parents (a domain's VLANs on a host NIC) -------------------------------------

/// List the host interfaces (and VLANs) a bridge domain is bridged to
#[utoipa::path(get, path = "/v1/domains/{name}/parents", operation_id = "listParents", tag = "domains",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "Parents", body = Vec<ParentView>), (status = 404, description = "Unknown bridge domain", body = ErrorBody)))]
async fn list_parents(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.list_parents(&name)).await?)
}

/// Bridge a VLAN of a bridge domain to a host interface's LAN (untagged or tagged), through the interface's uplink port (made with its first VLAN); stored
#[utoipa::path(post, path = "/v1/domains/{name}/parents", operation_id = "attachParent", tag = "domains",
    request_body = ParentRequest,
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 201, description = "Bridged", body = ParentView), (status = 400, description = "Bad input (malformed JSON, an unknown field, a bad parent or VLAN id); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain, or no such interface in the daemon's namespace", body = ErrorBody), (status = 409, description = "The interface is enslaved, held by another port or in another domain's use, or carries that VLAN already", body = ErrorBody), (status = 500, description = "A back end, store or worker failure", body = ErrorBody)))]
async fn attach_parent(State(c): State<Shared>, Path(name): Path<String>, b: Bytes) -> ApiResult {
    let req: ParentRequest = body(&b)?;
    let v = run(&c, move |c| c.attach_parent(&name, req)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// Take a parent off a bridge domain; the interface's last VLAN takes its uplink port away
#[utoipa::path(delete, path = "/v1/domains/{name}/parents/{parent}", operation_id = "detachParent", tag = "domains",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("parent" = String, Path, description = "IFACE or IFACE.VID")),
    responses((status = 204, description = "Detached"), (status = 400, description = "A bad parent", body = ErrorBody), (status = 404, description = "Unknown bridge domain, or not on that parent", body = ErrorBody), (status = 500, description = "A store or worker failure", body = ErrorBody)))]
async fn detach_parent(
    State(c): State<Shared>,
    Path((name, parent)): Path<(String, String)>,
) -> ApiResult {
    run(&c, move |c| c.detach_parent(&name, &parent)).await?;
    no_content()
}

// ---- services --------------------------------------------------------------------

/// List the services of a network, with each backend's address and health
#[utoipa::path(get, path = "/v1/domains/{name}/services", operation_id = "listServices", tag = "services",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "Services", body = Vec<ServiceView>), (status = 404, description = "Unknown bridge domain", body = ErrorBody), (status = 500, description = "A worker failure", body = ErrorBody)))]
async fn list_services(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.list_services(&name)).await?)
}

/// A service of a network, with each backend's address and health
#[utoipa::path(get, path = "/v1/domains/{name}/services/{service}", operation_id = "getService", tag = "services",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("service" = String, Path, description = "Service name (a DNS name)")),
    responses((status = 200, description = "The service", body = ServiceView), (status = 404, description = "Unknown bridge domain or service", body = ErrorBody), (status = 500, description = "A worker failure", body = ErrorBody)))]
async fn get_service(
    State(c): State<Shared>,
    Path((name, service)): Path<(String, String)>,
) -> ApiResult {
    ok(&run(&c, move |c| c.get_service(&name, &service)).await?)
}

/// Add or replace a service (VIPs balanced over backends, or dnsrr); stored
#[utoipa::path(put, path = "/v1/domains/{name}/services/{service}", operation_id = "setService", tag = "services",
    request_body = ServiceSpec,
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("service" = String, Path, description = "Service name (a DNS name)")),
    responses((status = 200, description = "Stored and applied", body = ServiceView), (status = 400, description = "Bad input (malformed JSON, an unknown field, a bad name, VIP, port, backend or check); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain", body = ErrorBody), (status = 409, description = "The network has no gateway, or the VIP is taken (by the gateway or another service)", body = ErrorBody), (status = 500, description = "A store or worker failure", body = ErrorBody)))]
async fn set_service(
    State(c): State<Shared>,
    Path((name, service)): Path<(String, String)>,
    b: Bytes,
) -> ApiResult {
    let spec: ServiceSpec = body(&b)?;
    ok(&run(&c, move |c| c.set_service(&name, &service, spec)).await?)
}

/// Remove a service
#[utoipa::path(delete, path = "/v1/domains/{name}/services/{service}", operation_id = "deleteService", tag = "services",
    params(("name" = String, Path, description = "Bridge domain name", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("service" = String, Path, description = "Service name")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown bridge domain or service", body = ErrorBody), (status = 500, description = "A store or worker failure", body = ErrorBody)))]
async fn delete_service(
    State(c): State<Shared>,
    Path((name, service)): Path<(String, String)>,
) -> ApiResult {
    run(&c, move |c| c.delete_service(&name, &service)).await?;
    no_content()
}

// ---- ports ---------------------------------------------------------------------

/// List ports (stored ports whose back end failed to open are listed with state failed and the error)
#[utoipa::path(get, path = "/v1/ports", operation_id = "listPorts", tag = "ports",
    responses((status = 200, description = "Ports", body = Vec<PortView>)))]
async fn list_ports(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.list_ports()).await?)
}

/// Open a back end and add the port to its bridge domain
#[utoipa::path(post, path = "/v1/ports", operation_id = "createPort", tag = "ports",
    request_body = CreatePort,
    responses((status = 201, description = "Created", body = PortView), (status = 400, description = "Bad input (malformed JSON, an unknown field, a value out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown bridge domain or interface", body = ErrorBody), (status = 409, description = "Duplicate name, or the interface is held by something else", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn create_port(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let req: CreatePort = body(&b)?;
    let v = run(&c, move |c| c.create_port(req)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// Show a port
#[utoipa::path(get, path = "/v1/ports/{name}", operation_id = "getPort", tag = "ports",
    params(("name" = String, Path, description = "Port name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "The port", body = PortView), (status = 404, description = "Unknown port", body = ErrorBody)))]
async fn get_port(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.get_port(&name)).await?)
}

/// Change a port's settings
#[utoipa::path(patch, path = "/v1/ports/{name}", operation_id = "patchPort", tag = "ports",
    request_body = PortPatch,
    params(("name" = String, Path, description = "Port name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "The port", body = PortView), (status = 400, description = "Bad input (malformed JSON, an unknown field, a value out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown port or bridge domain", body = ErrorBody), (status = 409, description = "The new domain is on another worker, or the port is not attached", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn patch_port(State(c): State<Shared>, Path(name): Path<String>, b: Bytes) -> ApiResult {
    let p: PortPatch = body(&b)?;
    ok(&run(&c, move |c| c.patch_port(&name, p)).await?)
}

/// Remove a port (closes its back end, drops its static entries)
#[utoipa::path(delete, path = "/v1/ports/{name}", operation_id = "deletePort", tag = "ports",
    params(("name" = String, Path, description = "Port name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown port", body = ErrorBody), (status = 500, description = "A back end failed to open, or a store or worker failure", body = ErrorBody)))]
async fn delete_port(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    run(&c, move |c| c.delete_port(&name)).await?;
    no_content()
}

// ---- observation ---------------------------------------------------------------------

/// The daemon's log filter in force
#[utoipa::path(get, path = "/v1/log", operation_id = "getLogFilter", tag = "observe",
    responses((status = 200, description = "The filter", body = LogFilter), (status = 404, description = "This process's filter cannot be changed (an in-process daemon)", body = ErrorBody)))]
async fn get_log() -> ApiResult {
    match super::logging::current() {
        Some(filter) => ok(&LogFilter { filter }),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: "this process's log filter cannot be changed".into(),
        }),
    }
}

/// Change the daemon's log filter at run time (like `ovs-appctl vlog/set`)
#[utoipa::path(put, path = "/v1/log", operation_id = "setLogFilter", tag = "observe",
    request_body = LogFilter,
    responses((status = 200, description = "In force", body = LogFilter), (status = 400, description = "Not a filter; the old one stays", body = ErrorBody), (status = 404, description = "This process's filter cannot be changed", body = ErrorBody)))]
async fn set_log(b: Bytes) -> ApiResult {
    let want: LogFilter = body(&b)?;
    if super::logging::current().is_none() {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: "this process's log filter cannot be changed".into(),
        });
    }
    super::logging::set(&want.filter).map_err(|message| ApiError {
        status: StatusCode::BAD_REQUEST,
        message,
    })?;
    ok(&want)
}

/// Every counter in the OpenMetrics text format (per port, drop reason,
/// pipeline stage and router drop reason; FDB sizes; ports by state)
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "observe",
    responses((status = 200, description = "OpenMetrics text format 1.0.0 (which Prometheus scrapes)", body = String, content_type = "application/openmetrics-text")))]
async fn metrics(State(c): State<Shared>) -> ApiResult {
    let text = run(&c, super::metrics::render).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Counters of every port and of the pipeline stages
#[utoipa::path(get, path = "/v1/stats", operation_id = "getStats", tag = "observe",
    responses((status = 200, description = "Counters", body = Stats)))]
async fn stats(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.stats()).await?)
}

/// Counters of one port
#[utoipa::path(get, path = "/v1/ports/{name}/stats", operation_id = "getPortStats", tag = "observe",
    params(("name" = String, Path, description = "Port name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "Counters", body = PortStats), (status = 404, description = "Unknown port", body = ErrorBody)))]
async fn port_stats(State(c): State<Shared>, Path(name): Path<String>) -> ApiResult {
    ok(&run(&c, move |c| c.port_stats(&name)).await?)
}

/// Arm the tracer for the next count packets (from port only, if given); earlier records are discarded
#[utoipa::path(post, path = "/v1/trace", operation_id = "armTrace", tag = "observe",
    request_body = TraceRequest,
    responses((status = 204, description = "Armed"), (status = 400, description = "Bad input (malformed JSON, an unknown field, a value out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown port", body = ErrorBody), (status = 409, description = "The port is not attached", body = ErrorBody)))]
async fn arm_trace(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let req: TraceRequest = body(&b)?;
    run(&c, move |c| c.arm_trace(req)).await?;
    no_content()
}

/// Trace records since the tracer was last armed
#[utoipa::path(get, path = "/v1/trace", operation_id = "getTrace", tag = "observe",
    responses((status = 200, description = "Records", body = Vec<TraceView>)))]
async fn trace(State(c): State<Shared>) -> ApiResult {
    ok(&run(&c, |c| c.trace()).await?)
}

/// Push one frame through the pipeline as if it arrived on port and report each stage's verdict and the frames a real run would send (like Open vSwitch's ofproto/trace); nothing is sent, learned or counted
#[utoipa::path(post, path = "/v1/trace/inject", operation_id = "injectTrace", tag = "observe",
    request_body = TraceInjectRequest,
    responses((status = 200, description = "What the frame would do", body = TraceInjectView), (status = 400, description = "Bad input (malformed JSON, an unknown field, bad hex, a frame shorter than an Ethernet header or longer than a buffer, a VLAN out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown port", body = ErrorBody), (status = 409, description = "The port is not attached", body = ErrorBody)))]
async fn inject_trace(State(c): State<Shared>, b: Bytes) -> ApiResult {
    let req: TraceInjectRequest = body(&b)?;
    ok(&run(&c, move |c| c.inject_trace(req)).await?)
}

/// Stream a pcap of the port's frames until `count` frames or `seconds`.
#[utoipa::path(get, path = "/v1/ports/{name}/capture", operation_id = "capturePort", tag = "observe",
    params(("name" = String, Path, description = "Port name", pattern = "^[A-Za-z0-9._-]{1,64}$"), CaptureQuery),
    responses((status = 200, description = "libpcap file (LINKTYPE_ETHERNET), streamed", content_type = "application/vnd.tcpdump.pcap", body = Vec<u8>), (status = 400, description = "Bad input (malformed JSON, an unknown field, a value out of range); nothing changed", body = ErrorBody), (status = 404, description = "Unknown port", body = ErrorBody), (status = 409, description = "The port is not attached, or a capture of it is running", body = ErrorBody)))]
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
