//! Every metric the service exports: names, units and descriptions in one place.
//!
//! Label values are bounded: endpoint paths from the router, provider and route names from the
//! configuration, outcome and reason labels from fixed lists. No user text, no request ids.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "llm_judge_http_requests_total";
pub const HTTP_DURATION: &str = "llm_judge_http_request_duration_seconds";
pub const HTTP_CONNECTIONS_OPEN: &str = "llm_judge_http_connections_open";
pub const VERDICTS: &str = "llm_judge_verdicts_total";
pub const UNSCORED: &str = "llm_judge_unscored_total";
pub const PROVIDER_REQUESTS: &str = "llm_judge_provider_requests_total";
pub const PROVIDER_DURATION: &str = "llm_judge_provider_request_duration_seconds";
pub const TOKENS: &str = "llm_judge_tokens_total";
pub const COST: &str = "llm_judge_cost_usd_total";
pub const FALLBACKS: &str = "llm_judge_fallbacks_total";
pub const RETRIES: &str = "llm_judge_retries_total";
pub const RATE_LIMIT_WAIT: &str = "llm_judge_rate_limit_wait_seconds";
pub const INFLIGHT: &str = "llm_judge_inflight";
pub const CIRCUIT_STATE: &str = "llm_judge_circuit_state";
pub const OVERHEAD: &str = "llm_judge_overhead_seconds";
pub const BATCH_ITEMS: &str = "llm_judge_batch_items_total";
pub const CACHE_HITS: &str = "llm_judge_cache_hits_total";
pub const CACHE_MISSES: &str = "llm_judge_cache_misses_total";
pub const REDIS_ERRORS: &str = "llm_judge_redis_errors_total";
pub const REDIS_UP: &str = "llm_judge_redis_up";
pub const RATE_LIMIT_SHARED: &str = "llm_judge_rate_limit_shared";
pub const RATE_LIMIT_USED: &str = "llm_judge_rate_limit_window_used";
pub const RATE_LIMIT_LIMIT: &str = "llm_judge_rate_limit_window_limit";
pub const JOB_ITEMS_CLAIMED: &str = "llm_judge_job_items_claimed_total";
pub const JOBS_WAITING: &str = "llm_judge_jobs_waiting";
pub const JOB_ITEMS_REQUEUED: &str = "llm_judge_job_items_requeued_total";
pub const STREAMS: &str = "llm_judge_streams_total";
pub const CONFIDENCE_FALLBACKS: &str = "llm_judge_confidence_fallbacks_total";
pub const POSITION_FLIPS: &str = "llm_judge_position_flips_total";
pub const FALLBACK_VERDICTS: &str = "llm_judge_fallback_verdicts_total";
pub const VERDICT_PARSERS: &str = "llm_judge_verdict_parsers_total";
pub const PANEL_AGREEMENT: &str = "llm_judge_panel_agreement";

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];
const WAIT_BUCKETS: &[f64] = &[0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// A panel's agreement on an item: the share of its judges that voted with the decision.
const AGREEMENT_BUCKETS: &[f64] = &[0.34, 0.5, 0.6, 0.67, 0.75, 0.8, 0.9, 0.99, 1.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(PROVIDER_DURATION.into()),
                        LATENCY_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(OVERHEAD.into()), OVERHEAD_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(RATE_LIMIT_WAIT.into()), WAIT_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(PANEL_AGREEMENT.into()),
                        AGREEMENT_BUCKETS,
                    )
                })
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (several apps in one test process).
            let _ = metrics::set_global_recorder(recorder);
            describe();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawn metrics upkeep thread");
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by endpoint and status code"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration, by endpoint"
    );
    describe_gauge!(
        HTTP_CONNECTIONS_OPEN,
        "Client connections open (at most server.max_connections)"
    );
    describe_counter!(
        VERDICTS,
        "Judgments made, by kind, route and verdict (correct, incorrect, unscored)"
    );
    describe_counter!(UNSCORED, "Unscored judgments, by reason");
    describe_counter!(
        PROVIDER_REQUESTS,
        "Provider attempts, by provider, model and outcome"
    );
    describe_histogram!(
        PROVIDER_DURATION,
        Unit::Seconds,
        "Provider attempt duration, by provider and model"
    );
    describe_counter!(
        TOKENS,
        "Tokens used, by provider, model and type: prompt (every input token), completion, and \
         the input tokens among the prompt ones that were read from (cached_prompt) or written \
         to (cache_write) the provider's prompt cache"
    );
    describe_counter!(
        FALLBACKS,
        "Route steps abandoned for the next one, by route, from, to and reason"
    );
    describe_counter!(
        RETRIES,
        "Retries of a provider call, by provider and reason"
    );
    describe_histogram!(
        RATE_LIMIT_WAIT,
        Unit::Seconds,
        "Time spent waiting for a rate-limit or concurrency permit, by provider"
    );
    describe_gauge!(INFLIGHT, "Provider calls in flight, by provider");
    describe_gauge!(
        CIRCUIT_STATE,
        "Circuit breaker state by provider: 0 closed, 1 half-open, 2 open"
    );
    describe_histogram!(
        OVERHEAD,
        Unit::Seconds,
        "Time a judgment spent in the service itself: total minus time waiting on providers"
    );
    describe_counter!(BATCH_ITEMS, "Batch items finished, by status (ok, error)");
    describe_counter!(
        CACHE_HITS,
        "Verdict cache lookups answered, by tier (memory, disk, redis)"
    );
    describe_counter!(
        CACHE_MISSES,
        "Verdict cache lookups a tier could not answer, by tier (memory, disk, redis)"
    );
    describe_counter!(
        REDIS_ERRORS,
        "Redis calls that failed or timed out, by operation"
    );
    describe_gauge!(
        REDIS_UP,
        "1 while the configured Redis answers, 0 while it does not"
    );
    describe_gauge!(
        RATE_LIMIT_SHARED,
        "By provider: 1 while its limits are enforced fleet-wide in Redis, 0 while this replica enforces its share locally"
    );
    describe_gauge!(
        RATE_LIMIT_USED,
        "By provider and unit (requests, tokens): what the provider's window held at the last grant (fleet-wide when shared)"
    );
    describe_gauge!(
        RATE_LIMIT_LIMIT,
        "By provider and unit (requests, tokens): the limit of the provider's window"
    );
    describe_work();
}

/// The metrics of jobs, streams and confidences.
fn describe_work() {
    describe_counter!(
        JOB_ITEMS_CLAIMED,
        "Job items taken over from a replica that stopped answering (shared jobs)"
    );
    describe_gauge!(
        JOBS_WAITING,
        "Jobs on this process waiting for their route's providers to answer again (an outage, a rate limit, timeouts): they send one item at a time until one gets through"
    );
    describe_counter!(
        JOB_ITEMS_REQUEUED,
        "Job items put back in their job's queue because their route could not be served (sent again once it can)"
    );
    describe_counter!(
        STREAMS,
        "Streamed answers that ended, by provider and outcome (complete, failed: the provider's stream broke or reported an error after its first piece, abandoned: the client went away)"
    );
    describe_counter!(
        POSITION_FLIPS,
        "Pairwise items asked in both orders whose two answers chose different winners, by route (position bias)"
    );
    describe_counter!(
        FALLBACK_VERDICTS,
        "Verdicts given by a step after the route's first (another judge than the route names first), by route"
    );
    describe_counter!(
        VERDICT_PARSERS,
        "Verdicts read, by route and the reader that read them (json, a verdict line, a last verdict word, ...)"
    );
    describe_histogram!(
        PANEL_AGREEMENT,
        "Per item a panel judged: the share of its judges that voted with its decision, by panel"
    );
    describe_counter!(
        CONFIDENCE_FALLBACKS,
        "Verdicts of routes with confidence = \"logprobs\" that got no confidence, by route and reason (not_returned: the answer had no log probabilities; no_verdict_token: none at a verdict token)"
    );
}

/// Spend in dollars is fractional, and the recorder's counters count whole numbers: the cost
/// counter is kept here and rendered beside the recorder's output.
static COSTS: std::sync::Mutex<std::collections::BTreeMap<(String, String), f64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Adds spend for `provider` and `model`.
pub fn add_cost(provider: &str, model: &str, usd: f64) {
    if usd.is_finite() && usd > 0.0 {
        let mut c = COSTS.lock().unwrap();
        *c.entry((provider.to_string(), model.to_string()))
            .or_insert(0.0) += usd;
    }
}

/// The cost counter in the Prometheus text format.
pub fn render_costs() -> String {
    let c = COSTS.lock().unwrap();
    let mut out = format!(
        "# HELP {COST} Estimated spend in US dollars, by provider and model\n# TYPE {COST} counter\n"
    );
    for ((p, m), v) in c.iter() {
        out.push_str(&format!(
            "{COST}{{provider=\"{}\",model=\"{}\"}} {v}\n",
            escape(p),
            escape(m)
        ));
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
