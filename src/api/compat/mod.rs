//! The OpenAI-compatible endpoints, so that code written against OpenAI's API (its official
//! SDKs, lmms-eval's judge) uses the service by changing only its base URL:
//! `POST /v1/chat/completions`, whole or streamed, through a route of the pool, and
//! `GET /v1/models`, the routes.
//!
//! `model` names a route or an ad-hoc route of configured providers; the request goes through
//! the judge layer's pass-through (the verdict cache at temperature 0) to the pool (limits,
//! retries, circuit breakers, fallback, metrics and cost). The answer is OpenAI's shape with
//! llm-judge's account under `x_llm_judge` and in the `x-llm-judge-provider` and
//! `x-llm-judge-fallback` headers. Errors are OpenAI-shaped ([`errors`]).

pub mod errors;
pub mod request;
pub mod response;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::budget;
use super::error::ApiError;
use super::error_docs::{BodyErrors, GateErrors};
use super::extract::JsonBody;
use crate::api::state::AppState;
use errors::OpenAiErrorBody;
use llm_judge_judge::JudgeError;
use llm_judge_work::budget::daily::ClientId;
use request::ChatCompletionRequest;
use response::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, Choice, ChoiceLogprobs, Meta, Model,
    ModelList, ModelMeta, StreamHead, finish_reason, logprobs_out,
};

const X_PROVIDER: HeaderName = HeaderName::from_static("x-llm-judge-provider");
const X_FALLBACK: HeaderName = HeaderName::from_static("x-llm-judge-fallback");
const X_CACHED: HeaderName = HeaderName::from_static("x-llm-judge-cached");

/// The completion budget a daily budget holds for a request that sets none: what a provider
/// that needs one is sent.
use llm_judge_chat::DEFAULT_MAX_TOKENS;

/// A chat completion through a route: OpenAI's request and answer, whole or as server-sent
/// events (`stream: true`). At temperature 0 an identical request is answered from the verdict
/// cache (send `Cache-Control: no-cache` to skip it).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The answer; with `stream: true`, `chat.completion.chunk` events ending with `data: [DONE]`, or with an `error` event when the provider failed mid-answer",
            content((ChatCompletion = "application/json"), (ChatCompletionChunk = "text/event-stream")),
            headers(
                ("x-llm-judge-provider" = String, description = "The provider of the route step that answered"),
                ("x-llm-judge-fallback" = String, description = "`true` when a later step of the route answered"),
                ("x-llm-judge-cached" = String, description = "`true` when the verdict cache answered"),
            )),
        GateErrors<OpenAiErrorBody>,
        BodyErrors<OpenAiErrorBody>,
        (status = 400, description = "Malformed JSON, a missing or invalid field, a parameter the service does not take, or a request every provider refused as malformed", body = OpenAiErrorBody),
        (status = 404, description = "`model` names no route and no ad-hoc route of configured providers", body = OpenAiErrorBody),
        (status = 429, description = "Every step of the route was rate-limited, or the client token's daily budget is spent (Retry-After: seconds to 00:00 UTC; x-should-retry: false)", body = OpenAiErrorBody),
        (status = 502, description = "No provider in the route produced an answer; every attempt is listed under x_llm_judge (answered with x-should-retry: false: the route was already retried)", body = OpenAiErrorBody),
    ))]
pub async fn completions(
    State(app): State<AppState>,
    client: Option<Extension<ClientId>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChatCompletionRequest>,
) -> Result<Response, Response> {
    let (route, req, wanted) = body.into_chat().map_err(IntoResponse::into_response)?;
    let judge = &app.judge;
    let route = judge
        .resolve_route(Some(&route))
        .map_err(|e| failed(&route, e))?;
    if judge.pool().route_is_rules(&route) {
        return Err(ApiError::NotAChatModel(format!(
            "model {route:?} is the deterministic rules judge, which grades judge items (POST /v1/judge/*) and writes no free-form answers; name a route with a model (GET /v1/models lists them)"
        ))
        .into_response());
    }
    // Under the client token's daily budget, the most the answer may cost is held first.
    let held = budget::hold(
        app.daily_budgets.as_deref(),
        client.map(|Extension(c)| c),
        judge.pool(),
        &route,
        judge.pool().estimate(
            &route,
            req.estimated_prompt_tokens(),
            req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        ),
    )?;
    let use_cache = !no_cache(&headers);
    let id = format!(
        "chatcmpl-{}",
        headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    );
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if wanted.stream {
        let a = match judge.chat_stream(&route, req, use_cache).await {
            Ok(a) => a,
            Err(e) => {
                held.settle(Some(0.0), 0);
                return Err(failed(&route, e));
            }
        };
        let llm_judge_judge::passthrough::ChatStreamAnswer {
            stream,
            provider,
            model,
            attempts,
            fallback,
            cached,
            pricing,
        } = a;
        let marks = marks(&provider, fallback, cached);
        let head = StreamHead {
            id,
            created,
            model: model.clone(),
            include_usage: wanted.include_usage,
            logprobs: wanted.logprobs,
            meta: Meta {
                route,
                provider,
                model,
                attempts,
                fallback,
                cost_usd: None,
                cached,
            },
            // Told once, when the stream ends well. A stream that fails or is dropped midway
            // leaves its hold unsettled: the whole estimate counts as spent, as the provider
            // may have billed it.
            cost: Box::new({
                let held = std::sync::Mutex::new(Some(held));
                move |usage| {
                    // A cached answer cost nothing.
                    let cost = match &pricing {
                        None => Some(0.0),
                        Some(p) => usage.and_then(|u| p.cost(u)),
                    };
                    if let Some(h) = held.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        let tokens = if pricing.is_none() {
                            0
                        } else {
                            usage.map_or(0, |u| u.total())
                        };
                        h.settle(cost, tokens);
                    }
                    cost
                }
            }),
        };
        let sse = Sse::new(response::events(head, stream)).keep_alive(KeepAlive::default());
        return Ok((marks, sse).into_response());
    }
    let answer = match judge.chat(&route, req, use_cache).await {
        Ok(a) => a,
        Err(e) => {
            held.settle(Some(0.0), 0);
            return Err(failed(&route, e));
        }
    };
    let (a, cached) = (answer.delivered, answer.cached);
    if cached {
        held.settle(Some(0.0), 0);
    } else {
        held.settle(a.cost_usd, a.completion.usage.total());
    }
    let c = a.completion;
    let logprobs = c
        .logprobs
        .filter(|_| wanted.logprobs)
        .map(|l| ChoiceLogprobs {
            content: logprobs_out(l),
            refusal: None,
        });
    let out = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: a.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: Some(c.text),
                refusal: c.refusal,
            },
            logprobs,
            finish_reason: finish_reason(c.finish_reason.as_deref()),
        }],
        usage: c.usage.into(),
        system_fingerprint: None,
        x_llm_judge: Meta {
            route,
            provider: a.provider.clone(),
            model: a.model,
            attempts: a.attempts,
            fallback: a.fallback,
            cost_usd: a.cost_usd,
            cached,
        },
    };
    Ok((marks(&a.provider, a.fallback, cached), Json(out)).into_response())
}

/// The llm-judge headers of an answer.
fn marks(provider: &str, fallback: bool, cached: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(provider) {
        h.insert(X_PROVIDER, v);
    }
    let flag = |b: bool| HeaderValue::from_static(if b { "true" } else { "false" });
    h.insert(X_FALLBACK, flag(fallback));
    h.insert(X_CACHED, flag(cached));
    h
}

/// `Cache-Control: no-cache` (or `no-store`) asks for a fresh answer.
fn no_cache(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            matches!(
                d.trim().to_ascii_lowercase().as_str(),
                "no-cache" | "no-store"
            )
        })
}

/// The answer when no answer could be had.
fn failed(route: &str, e: JudgeError) -> Response {
    let (code, message, attempts) = match e {
        JudgeError::UnknownRoute(name) => {
            return ApiError::ModelNotFound(format!(
                "the model {name:?} does not exist here: it is neither a route of this service (GET /v1/models lists them) nor an ad-hoc route of configured providers (provider:model[,provider:model...]; GET /v1/providers lists the providers)"
            ))
            .into_response();
        }
        JudgeError::Failed {
            code,
            message,
            attempts,
            ..
        } => (code, message, attempts),
        // The API delivers every call online: nothing parks one.
        JudgeError::Parked => {
            return ApiError::Internal("a call was kept for later on an online request".into())
                .into_response();
        }
    };
    let rate_limited = !attempts.is_empty()
        && attempts.iter().all(|a| {
            a.status == Some(429)
                || a.error
                    .as_deref()
                    .is_some_and(|e| e.contains("rate-limit permit"))
        });
    let err = if code == "provider_rejected_request" {
        ApiError::ProviderRejected { message, attempts }
    } else if rate_limited {
        ApiError::RateLimited { message, attempts }
    } else {
        ApiError::ProvidersFailed {
            code,
            message,
            attempts,
        }
    };
    let (status, code) = err.status_and_code();
    tracing::debug!(route, code, "chat completion failed");
    let mut resp = err.into_response();
    if status == StatusCode::BAD_GATEWAY {
        resp.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("false"));
    }
    resp
}

/// The configured routes that can answer chat completions (every route but those of the rules
/// judge alone). Ad-hoc routes (`provider:model,...`) are taken too, without being listed.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses(
        (status = 200, description = "The routes", body = ModelList),
        GateErrors<OpenAiErrorBody>,
    ))]
pub async fn models(State(app): State<AppState>) -> Json<ModelList> {
    let pool = app.judge.pool();
    let data = pool
        .route_names()
        .filter(|name| !pool.route_is_rules(name))
        .map(|name| Model {
            id: name.to_string(),
            object: "model",
            created: 0,
            owned_by: "llm-judge",
            x_llm_judge: ModelMeta {
                steps: pool
                    .steps(name)
                    .unwrap_or_default()
                    .iter()
                    .map(|s| format!("{}:{}", s.provider, s.model))
                    .collect(),
                default: name == pool.default_route(),
            },
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}
