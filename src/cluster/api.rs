//! `GET /v1/cluster`: this host's membership and the members it sees.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::Cluster;

/// The cluster's routes (merged into the control API's router).
pub fn router(c: Arc<Cluster>) -> Router {
    Router::new().route(
        "/v1/cluster",
        get(move || {
            let c = c.clone();
            async move { axum::Json(c.view()) }
        }),
    )
}
