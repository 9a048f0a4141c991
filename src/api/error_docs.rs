//! The error answers of the OpenAPI document that many endpoints share: each status and what it
//! means is written once here, and an endpoint's `#[utoipa::path]` names the sets it answers
//! (`responses(NewWorkErrors, (status = 422, ...))`) beside the rows that are its own. A set
//! with a body parameter is listed in the service's error shape ([`ErrorBody`], the default) or
//! in OpenAI's, on the OpenAI-compatible endpoints.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

use super::error::ErrorBody;

/// One error answer as the document lists it: its status and what it means (empty: the status
/// says it all).
type Row = (u16, &'static str);

const MALFORMED_JSON: Row = (400, "Malformed JSON");
const INVALID_ID: Row = (400, "The id is not valid UTF-8");
const UNAUTHORIZED: Row = (401, "Missing or wrong client token");
const FOREIGN_ORIGIN: Row = (
    403,
    "Sent from a web page whose origin is not in server.allowed_origins",
);
const BODY_TIMEOUT: Row = (408, "The body took longer than server.body_read_timeout_s");
const BODY_TOO_LARGE: Row = (413, "Body over the limit");
const NOT_JSON: Row = (415, "The body is declared as something other than JSON");
const DAILY_BUDGET_SPENT: Row = (
    429,
    "The client token's daily budget is spent (Retry-After: seconds to 00:00 UTC)",
);
const SHUTTING_DOWN: Row = (503, "Shutting down: new work is refused");

/// The responses of `rows`, each with a JSON body of the schema `B`.
fn responses<B: ToSchema>(rows: &[Row]) -> BTreeMap<String, RefOr<Response>> {
    rows.iter()
        .map(|&(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(B::name())))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// 401: the client token is missing or wrong.
pub struct UnauthorizedError<B = ErrorBody>(PhantomData<B>);

impl<B: ToSchema> IntoResponses for UnauthorizedError<B> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses::<B>(&[UNAUTHORIZED])
    }
}

/// 429: the client token's daily budget is spent.
pub struct DailyBudgetError;

impl IntoResponses for DailyBudgetError {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses::<ErrorBody>(&[DAILY_BUDGET_SPENT])
    }
}

/// The refusals of the checks in front of an endpoint that takes new work: no client token
/// (401), a web page of another site (403), shutting down (503).
pub struct GateErrors<B = ErrorBody>(PhantomData<B>);

impl<B: ToSchema> IntoResponses for GateErrors<B> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses::<B>(&[UNAUTHORIZED, FOREIGN_ORIGIN, SHUTTING_DOWN])
    }
}

/// The refusals of a JSON body as it is read: too slow (408), too large (413), not declared
/// JSON (415).
pub struct BodyErrors<B = ErrorBody>(PhantomData<B>);

impl<B: ToSchema> IntoResponses for BodyErrors<B> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses::<B>(&[BODY_TIMEOUT, BODY_TOO_LARGE, NOT_JSON])
    }
}

/// Every refusal of an endpoint that takes new work as a JSON body, before its own checks:
/// [`GateErrors`], [`BodyErrors`], malformed JSON (400) and the daily budget (429).
pub struct NewWorkErrors;

impl IntoResponses for NewWorkErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = GateErrors::<ErrorBody>::responses();
        all.append(&mut BodyErrors::<ErrorBody>::responses());
        all.append(&mut responses::<ErrorBody>(&[
            MALFORMED_JSON,
            DAILY_BUDGET_SPENT,
        ]));
        all
    }
}

/// The refusals of an endpoint that reads one job by its id: an id that is not valid UTF-8
/// (400), no client token (401), no such job (404), the job store failed (503).
pub struct JobLookupErrors;

impl IntoResponses for JobLookupErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses::<ErrorBody>(&[INVALID_ID, (401, ""), (404, ""), (503, "")])
    }
}
