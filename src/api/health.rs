//! Liveness, readiness, provider state and the metrics scrape.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::state::AppState;
use llm_judge_pool::ProviderStatus;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready`, `shutting_down` or `store_unavailable`.
    pub status: &'static str,
    /// Why the service is not ready, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        reason: None,
    })
}

/// The service takes requests: 503 while shutting down, and while a store on its disk cannot
/// write (the job store, the verdict cache's tier on disk, the calibration runs; a full disk:
/// each reopens itself and retries, and the service is ready again once writing works).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, description = "Shutting down, or the job store cannot write", body = Health)))]
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let not_ready = |status, reason| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status, reason }),
        )
    };
    if app.shutting_down.load(Ordering::Relaxed) {
        return not_ready("shutting_down", None);
    }
    let stores = match app.jobs.ready().await {
        Ok(()) => app.judge.cache_health().and_then(|()| app.runs.health()),
        Err(reason) => Err(format!("the job store: {reason}")),
    };
    match stores {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ready",
                reason: None,
            }),
        ),
        Err(reason) => not_ready("store_unavailable", Some(reason)),
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProvidersResponse {
    pub providers: Vec<ProviderStatus>,
    /// Route names and their steps as `provider:model`.
    pub routes: std::collections::BTreeMap<String, Vec<String>>,
    /// Panel names and their judges (routes), usable wherever a route name is.
    pub panels: std::collections::BTreeMap<String, Vec<String>>,
    pub default_route: String,
}

/// Every provider: enabled, circuit state, in flight, limits, recent error rate; and the routes.
#[utoipa::path(get, path = "/v1/providers", tag = "operations",
    responses((status = 200, body = ProvidersResponse), (status = 401, body = ErrorBody)))]
pub async fn providers(State(app): State<AppState>) -> Json<ProvidersResponse> {
    let pool = app.judge.pool();
    let routes = pool
        .route_names()
        .map(|name| {
            let steps = pool
                .steps(name)
                .unwrap_or_default()
                .iter()
                .map(|s| format!("{}:{}", s.provider, s.model))
                .collect();
            (name.to_string(), steps)
        })
        .collect();
    Json(ProvidersResponse {
        providers: pool.status(),
        routes,
        panels: app
            .judge
            .panels()
            .iter()
            .map(|(name, p)| (name.clone(), p.judges.clone()))
            .collect(),
        default_route: pool.default_route().to_string(),
    })
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let mut text = app.metrics.render();
    text.push_str(&llm_judge_metrics::render_costs());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
