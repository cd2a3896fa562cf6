//! `GET /v1/cluster`: this host's membership and the members it sees; 404
//! with the reason on a daemon that is not in a cluster.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

use super::Cluster;

/// The cluster's routes (merged into the control API's router).
pub fn router(c: Option<Arc<Cluster>>) -> Router {
    Router::new().route(
        "/v1/cluster",
        get(move || {
            let c = c.clone();
            async move {
                match c {
                    Some(c) => (StatusCode::OK, axum::Json(json!(c.view()))),
                    None => (
                        StatusCode::NOT_FOUND,
                        axum::Json(json!({
                            "error": "this daemon is not in a cluster (start it with --store etcd://...)"
                        })),
                    ),
                }
            }
        }),
    )
}
