//! HTTP: the router and the layers in front of it, and its OpenAPI document.

pub mod access;
pub mod batch;
pub mod budget;
pub mod calibrate;
pub mod compat;
mod docs;
pub mod error;
pub mod error_docs;
pub mod extract;
pub mod health;
pub mod jobs;
pub mod judge;
pub mod layers;
pub mod state;
pub mod tenant;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use error::ApiError;
pub use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "llm-judge",
        description = "Grades model outputs with LLM judges, alone or in batches, across providers with rate limits, retries and fallback.",
        license(name = "Apache-2.0")
    ),
    // The error bodies the shared error rows (`error_docs`) refer to.
    components(schemas(error::ErrorBody, compat::errors::OpenAiErrorBody)),
    tags(
        (name = "judge", description = "Judging items"),
        (name = "jobs", description = "Persistent batch jobs"),
        (name = "openai", description = "OpenAI-compatible chat completions through the routes; errors in OpenAI's shape"),
        (name = "operations", description = "Health, provider state and metrics")
    )
)]
struct ApiDoc;

/// The router with every documented route, and the OpenAPI document.
fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(judge::binary))
        .routes(routes!(judge::score))
        .routes(routes!(judge::compare))
        .routes(routes!(batch::batch))
        .routes(routes!(calibrate::calibrate))
        .routes(routes!(calibrate::runs))
        .routes(routes!(jobs::submit::create, jobs::follow::list))
        .routes(routes!(jobs::follow::get, jobs::follow::cancel))
        .routes(routes!(jobs::follow::results))
        .routes(routes!(jobs::follow::events))
        .routes(routes!(jobs::retry::retry))
        .routes(routes!(compat::completions))
        .routes(routes!(compat::models))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::providers))
        .routes(routes!(health::metrics))
        .split_for_parts()
}

/// The OpenAPI document as served at `/openapi.json` and printed by `llm-judge openapi`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().1;
    doc.paths.paths.insert(
        "/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("operations")
                .summary(Some("This document"))
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("The OpenAPI document")
                        .content(
                            "application/json",
                            utoipa::openapi::content::Content::new(
                                None::<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>,
                            ),
                        ),
                ),
        ),
    );
    docs::job_fields_apart(&mut doc);
    docs::calibration_forms(&mut doc);
    doc
}

/// The whole HTTP application: the routes behind the layers every request passes, listed
/// here from the outermost (first to see a request) in.
pub fn router(state: AppState) -> Router {
    let doc = openapi();
    let json = serde_json::to_string_pretty(&doc).expect("the OpenAPI document serialises");
    let server = &state.settings.server;
    let allowed: Arc<[HeaderValue]> = server
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let auth = &state.settings.auth;
    let tokens = Arc::new(layers::Tokens::new(&auth.tokens, &auth.admin_tokens));
    let layers = tower::ServiceBuilder::new()
        // A client's id is kept only if it is usable in our log lines.
        .map_request(layers::drop_unusable_request_id)
        .layer(SetRequestIdLayer::new(
            layers::X_REQUEST_ID,
            layers::NewRequestId,
        ))
        // Every answer carries the id, refusals included.
        .layer(PropagateRequestIdLayer::new(layers::X_REQUEST_ID))
        // One access line per request, and the request metrics, refusals included.
        .layer(access::AccessLogLayer::default())
        // Refusals on the OpenAI-compatible paths in OpenAI's error shape, whichever layer
        // below made them.
        .layer(compat::errors::OpenAiErrorsLayer)
        // The request's debug span (its id on every debug line); nothing logged of its own.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::debug_span!(
                        "request",
                        request_id = req
                            .headers()
                            .get(layers::X_REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default(),
                        method = %req.method(),
                        endpoint = access::endpoint_label(req),
                    )
                })
                .on_request(())
                .on_response(())
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        // Pages of other sites are refused before anything else is looked at.
        .layer(ValidateRequestHeaderLayer::custom(layers::origin_check(
            allowed.clone(),
        )))
        // Outside client auth: a browser's preflight carries no token.
        .layer(layers::cors(&allowed))
        .layer(ValidateRequestHeaderLayer::custom(layers::client_auth(
            tokens,
        )))
        // Inside auth, which names the client: a token whose day's budget is spent is refused.
        .layer(ValidateRequestHeaderLayer::custom(layers::daily_budget(
            state.daily_budgets.clone(),
        )))
        .layer(ValidateRequestHeaderLayer::custom(
            layers::refuse_while_draining(state.shutting_down.clone()),
        ))
        // A body sent compressed (Content-Encoding gzip, deflate or br) is read decompressed, so
        // that the bounds below count what it expands to; another encoding is refused (415).
        .map_response(layers::encoding_refusal)
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .map_request(layers::decompressed)
        .layer(layers::BodyBoundsLayer {
            max_bytes: server.max_body_bytes,
            timeout: std::time::Duration::from_secs_f64(server.body_read_timeout_s),
        })
        // A bug must still answer with the error body, never drop the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::Internal("the server hit a bug; the request was not completed".into())
                .into_response()
        }));
    routes()
        .0
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The body layer bounds every body; axum's own default limit would cut NDJSON uploads.
        .layer(DefaultBodyLimit::disable())
        .layer(layers)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; GET /openapi.json lists them".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed(
        "this endpoint does not take that method; GET /openapi.json lists them".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_path_has_its_own_endpoint_label() {
        let doc = openapi();
        for path in doc.paths.paths.keys() {
            assert!(
                access::ENDPOINTS.contains(&path.as_str()),
                "{path} is not in ENDPOINTS"
            );
        }
        assert_eq!(
            doc.paths.paths.len(),
            access::ENDPOINTS.len(),
            "ENDPOINTS lists a path the router does not serve"
        );
    }

    #[test]
    fn request_ids_are_32_lowercase_hex_digits() {
        let ids: Vec<String> = (0..100)
            .map(|_| layers::new_request_id().to_str().unwrap().to_string())
            .collect();
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                u128::from_str_radix(id, 16).is_ok() && id.to_lowercase() == *id,
                "{id}"
            );
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
