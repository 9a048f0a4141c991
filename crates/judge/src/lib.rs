//! Judging: turns items into prompts, sends them along a route of the pool, and parses the
//! answers into three-state verdicts (correct, incorrect, unscored with a reason).
//!
//! Knows templates, parsing, the verdict cache, the rules pre-check, confidence (from log
//! probabilities, panels and swapped comparisons) and panels of judges; knows nothing of HTTP.
//! Also passes a client's own chat requests through to a route, with the verdict cache
//! ([`passthrough`]).

pub mod cache;
pub mod confidence;
pub mod items;
pub mod panel;
pub mod parse;
pub mod passthrough;
pub mod prompts;
pub mod rules;
pub mod settings;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::settings::{ConfidenceMode, JudgeSettings, PanelSettings, RouteOptions};
use cache::{CachedAnswer, VerdictCache};
pub use confidence::ConfidenceSource;
pub use items::{BinaryItem, CompareItem, FieldError, Options, ScoreItem};
use llm_judge_chat::{
    ChatRequest, GradingTask, ImageRef, Part, ResponseFormat, TokenLogprob, Usage,
};
use llm_judge_metrics as m;
use llm_judge_pool::cost::Estimate;
use llm_judge_pool::{Attempt, Pool, RouteFailed, Via};
pub use panel::{PanelReport, PanelVote};
use parse::{Unscored, UnscoredReason, Winner};
use prompts::{Rendered, Shape};
use rules::RulesVerdict;

/// The kind of judgment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JudgeKind {
    Binary,
    Score,
    Compare,
}

impl JudgeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            JudgeKind::Binary => "binary",
            JudgeKind::Score => "score",
            JudgeKind::Compare => "compare",
        }
    }
}

/// The outcome of one judgment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Correct,
    Incorrect,
    /// A score or a pairwise winner was read (no pass mark was asked for).
    Scored,
    /// The judge's answer could not be read as a verdict; `reason` says why.
    Unscored,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Incorrect => "incorrect",
            Verdict::Scored => "scored",
            Verdict::Unscored => "unscored",
        }
    }
}

/// Fields every judgment has.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Judgment {
    /// 1 correct, 0 incorrect, null when unscored (or not a pass/fail judgment).
    pub result: Option<u8>,
    pub verdict: Verdict,
    /// Why the item is unscored (or what the rules judge matched).
    pub reason: Option<String>,
    /// A bounded label for the unscored reason (`empty_response`, `refusal`, `unparseable`,
    /// `ambiguous`, `out_of_range`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unscored_reason: Option<&'static str>,
    /// The judge's answer text, as it came.
    pub raw_response: String,
    pub provider: String,
    pub model: String,
    pub attempts: Vec<Attempt>,
    /// True when a later step of the route answered.
    pub fallback: bool,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub latency_ms: f64,
    /// True when the answer came from the verdict cache (no provider was called).
    pub cached: bool,
    /// The prompt template and its version (part of what identifies a judgment).
    pub template_version: String,
    /// How sure the judge is of this verdict, from 0 to 1 (see `confidence_source`); null when
    /// nothing measured it.
    pub confidence: Option<f64>,
    /// Where `confidence` comes from: `logprobs` (the verdict token's probabilities, on routes
    /// with `confidence = "logprobs"`), `panel` (the panel's agreement), `swap` (a comparison
    /// asked in both orders: 1 when they agree, 0.5 when not) or `none`.
    pub confidence_source: ConfidenceSource,
    /// Binary verdicts with `logprobs` confidence: P(correct) = P(positive) / (P(positive) +
    /// P(negative)) at the verdict token (`confidence` is the probability of the verdict given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_correct: Option<f64>,
    /// Which path read the verdict: `structured` (the JSON answer a `structured` route asked
    /// for), `json` (a JSON object in a free answer, as the rules judge gives), `text` (the
    /// free-text parser, also the fallback when a structured answer did not come); null when
    /// nothing was parsed (an empty answer, a refusal, a panel).
    pub parser: Option<&'static str>,
    /// For a panel: every judge's verdict and the panel's agreement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panel: Option<Box<PanelReport>>,
    /// Jobs with `provider_batch`: the id of the provider batch that answered (at the batch
    /// price); absent for an online answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_batch: Option<String>,
}

/// A scale judgment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScoreJudgment {
    #[serde(flatten)]
    pub judgment: Judgment,
    pub score: Option<f64>,
    /// With `logprobs` confidence: the probability-weighted score over the scale points the
    /// judge considered at the score token (G-Eval style), next to the parsed `score`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weighted_score: Option<f64>,
    /// The length of the rated response in characters (summaries correlate it with the score,
    /// to show a length bias).
    pub prediction_chars: usize,
}

/// A pairwise judgment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CompareJudgment {
    #[serde(flatten)]
    pub judgment: Judgment,
    /// `a`, `b`, `tie`, or null when unscored.
    pub winner: Option<&'static str>,
    /// 1 for the winner, 0 for the loser, 0.5 each for a tie.
    pub scores: [Option<f64>; 2],
    /// With `swap`: whether both orders chose the same winner (disagreement is a tie).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent: Option<bool>,
    /// The position the judge preferred in each order asked: `first`, `second` or `tie` (null
    /// when that answer was not read). The first order shows A first; with `swap`, the second
    /// shows B first. Summaries count these for the first-position preference.
    pub positions: Vec<Option<&'static str>>,
}

/// A position's name for a pairwise answer in presented order.
fn position(w: &Result<Winner, Unscored>) -> Option<&'static str> {
    match w {
        Ok(Winner::A) => Some("first"),
        Ok(Winner::B) => Some("second"),
        Ok(Winner::Tie) => Some("tie"),
        Err(_) => None,
    }
}

/// Why no judgment could be made.
#[derive(Debug, Clone)]
pub enum JudgeError {
    UnknownRoute(String),
    /// No step of the route produced an answer.
    Failed {
        code: &'static str,
        message: String,
        attempts: Vec<Attempt>,
    },
}

impl JudgeError {
    fn from_route(route: &str, f: RouteFailed) -> Self {
        JudgeError::Failed {
            code: if f.client_error {
                "provider_rejected_request"
            } else {
                "all_providers_failed"
            },
            message: format!(
                "no provider in route {route:?} produced an answer; last error: {}",
                f.last_error
            ),
            attempts: f.attempts,
        }
    }
}

/// What one call along a route gave back.
struct Asked {
    text: String,
    refusal: Option<String>,
    finish_reason: Option<String>,
    provider: String,
    model: String,
    attempts: Vec<Attempt>,
    fallback: bool,
    usage: Usage,
    cost_usd: Option<f64>,
    cached: bool,
    provider_time: Duration,
    cache_key: Option<[u8; 32]>,
    /// The answer's tokens with their alternatives, when asked for and returned.
    logprobs: Option<Vec<TokenLogprob>>,
    /// The provider batch that answered.
    provider_batch: Option<String>,
}

/// What a judgment's parse gave, for [`Judge::finish`].
struct Reading {
    result: Option<u8>,
    verdict: Verdict,
    reason: Option<String>,
    unscored_reason: Option<&'static str>,
    version: String,
    parser: Option<&'static str>,
    confidence: Option<f64>,
    source: ConfidenceSource,
    /// The index of the token the confidence was read at: the only one kept in the cache.
    decisive_token: Option<usize>,
}

impl Reading {
    fn new(version: &str) -> Reading {
        Reading {
            result: None,
            verdict: Verdict::Unscored,
            reason: None,
            unscored_reason: None,
            version: version.to_string(),
            parser: None,
            confidence: None,
            source: ConfidenceSource::None,
            decisive_token: None,
        }
    }

    fn unscored(mut self, u: Unscored) -> Reading {
        self.verdict = Verdict::Unscored;
        self.result = None;
        self.reason = Some(u.detail);
        self.unscored_reason = Some(u.reason.as_str());
        self
    }
}

/// The judge service, shared by every request.
pub struct Judge {
    pool: Arc<Pool>,
    cfg: JudgeSettings,
    cache: VerdictCache,
    verdicts: VerdictCounters,
    batch_items: std::sync::OnceLock<[metrics::Counter; 2]>,
    overhead: std::sync::OnceLock<metrics::Histogram>,
    /// Panels of judges by name (checked before routes).
    panels: BTreeMap<String, PanelSettings>,
    /// Options of configured routes; other routes use the defaults.
    route_options: BTreeMap<String, RouteOptions>,
}

/// What one call asks a route: the rendered prompt, the item's images and options, and the raw
/// fields a rules step reads.
struct Question<'a> {
    rendered: &'a Rendered,
    images: &'a [String],
    grading: GradingTask,
    options: &'a Options,
    /// Ask for the answer tokens' log probabilities.
    logprobs: bool,
}

impl Judge {
    pub fn new(pool: Arc<Pool>, cfg: JudgeSettings) -> Self {
        let cache = VerdictCache::new(cfg.cache_entries, 256 << 20);
        Self::with_cache(pool, cfg, cache)
    }

    /// A judge with the verdict cache given (its tiers built by the caller).
    pub fn with_cache(pool: Arc<Pool>, cfg: JudgeSettings, cache: VerdictCache) -> Self {
        Self {
            cache,
            pool,
            cfg,
            verdicts: VerdictCounters::default(),
            batch_items: std::sync::OnceLock::new(),
            overhead: std::sync::OnceLock::new(),
            panels: BTreeMap::new(),
            route_options: BTreeMap::new(),
        }
    }

    /// The judge with panels and route options (structured answers, confidence).
    pub fn with_quality(
        mut self,
        panels: BTreeMap<String, PanelSettings>,
        route_options: BTreeMap<String, RouteOptions>,
    ) -> Self {
        self.panels = panels;
        self.route_options = route_options;
        self
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The panels, by name.
    pub fn panels(&self) -> &BTreeMap<String, PanelSettings> {
        &self.panels
    }

    /// The route (or panel) to use: the one named, or the default. A name is looked up among
    /// the panels, then the configured routes, then read as an ad-hoc route.
    pub fn resolve_route(&self, name: Option<&str>) -> Result<String, JudgeError> {
        let name = name.unwrap_or(self.pool.default_route());
        if self.panels.contains_key(name) || self.pool.has_route(name) {
            Ok(name.to_string())
        } else {
            Err(JudgeError::UnknownRoute(name.to_string()))
        }
    }

    fn options(&self, route: &str) -> RouteOptions {
        self.route_options.get(route).copied().unwrap_or_default()
    }

    fn shape(&self, route: &str) -> Shape {
        if self.options(route).structured {
            Shape::Json
        } else {
            Shape::Text
        }
    }

    fn wants_logprobs(&self, route: &str) -> bool {
        self.options(route).confidence == ConfidenceMode::Logprobs
    }

    /// Counts a verdict whose route asks for log probabilities but got none to read, in
    /// `llm_judge_confidence_fallbacks_total`.
    fn confidence_fallback(&self, route: &str, why: confidence::Missing) {
        metrics::counter!(m::CONFIDENCE_FALLBACKS, "route" => self.route_label(route).to_string(), "reason" => why.as_str())
            .increment(1);
    }

    /// The label a route or panel gets in metrics: its configured name, or `adhoc`.
    fn route_label<'a>(&self, route: &'a str) -> &'a str {
        if self.panels.contains_key(route) {
            route
        } else {
            self.pool.route_label(route)
        }
    }

    /// Judges whether a prediction matches the reference.
    pub async fn binary(
        &self,
        route: &str,
        item: &BinaryItem,
        via: &Via,
    ) -> Result<Judgment, JudgeError> {
        match self.panels.get(route) {
            Some(panel) => self.panel_binary(route, panel, item, via).await,
            None => self.binary_single(route, item, via).await,
        }
    }

    /// Grades a response on a scale.
    pub async fn score(
        &self,
        route: &str,
        item: &ScoreItem,
        via: &Via,
    ) -> Result<ScoreJudgment, JudgeError> {
        match self.panels.get(route) {
            Some(panel) => self.panel_score(route, panel, item, via).await,
            None => self.score_single(route, item, via).await,
        }
    }

    /// Decides which of two responses is better; with `swap`, in both orders.
    pub async fn compare(
        &self,
        route: &str,
        item: &CompareItem,
        via: &Via,
    ) -> Result<CompareJudgment, JudgeError> {
        match self.panels.get(route) {
            Some(panel) => self.panel_compare(route, panel, item, via).await,
            None => self.compare_single(route, item, via).await,
        }
    }

    /// One route's binary judgment.
    async fn binary_single(
        &self,
        route: &str,
        item: &BinaryItem,
        via: &Via,
    ) -> Result<Judgment, JudgeError> {
        let started = Instant::now();
        if self.cfg.rules_precheck && !self.route_is_rules(route) {
            if let Some(j) = self.precheck(item, started) {
                self.record_verdict(JudgeKind::Binary, route, &j);
                return Ok(j);
            }
        }
        let rendered = render_binary(item, self.shape(route));
        let grading = GradingTask::Binary {
            question: item.question.clone(),
            reference: item.answer.clone(),
            prediction: item.prediction.clone(),
        };
        let logprobs = self.wants_logprobs(route);
        let asked = self
            .ask(
                route,
                Question {
                    rendered: &rendered,
                    images: &item.images,
                    grading,
                    options: &item.options,
                    logprobs,
                },
                via,
            )
            .await?;
        let mut reading = Reading::new(&rendered.version);
        match unscored_first(&asked).map_or_else(|| parse::parse_binary(&asked.text), Err) {
            Ok(correct) => {
                reading.result = Some(u8::from(correct));
                reading.verdict = if correct {
                    Verdict::Correct
                } else {
                    Verdict::Incorrect
                };
                reading.parser = Some(parser_of(&asked.text, &rendered));
                if logprobs {
                    match confidence::binary(asked.logprobs.as_deref()) {
                        Ok((i, p)) => {
                            reading.confidence = Some(if correct { p } else { 1.0 - p });
                            reading.source = ConfidenceSource::Logprobs;
                            reading.decisive_token = Some(i);
                        }
                        Err(why) => self.confidence_fallback(route, why),
                    }
                }
            }
            Err(u) => reading = reading.unscored(u),
        }
        let p_correct = reading.confidence.map(|c| {
            if reading.result == Some(1) {
                c
            } else {
                1.0 - c
            }
        });
        let mut j = self.finish(asked, started, reading);
        j.p_correct = p_correct.map(crate::stats::round6);
        self.record_verdict(JudgeKind::Binary, route, &j);
        Ok(j)
    }

    /// One route's scale judgment.
    async fn score_single(
        &self,
        route: &str,
        item: &ScoreItem,
        via: &Via,
    ) -> Result<ScoreJudgment, JudgeError> {
        let started = Instant::now();
        let rendered = render_score(item, self.shape(route));
        let grading = GradingTask::Score {
            question: item.question.clone(),
            reference: item.answer.clone(),
            prediction: item.prediction.clone(),
            min: item.min,
            max: item.max,
        };
        let logprobs = self.wants_logprobs(route);
        let asked = self
            .ask(
                route,
                Question {
                    rendered: &rendered,
                    images: &item.images,
                    grading,
                    options: &item.options,
                    logprobs,
                },
                via,
            )
            .await?;
        let mut reading = Reading::new(&rendered.version);
        let mut score = None;
        let mut weighted_score = None;
        match unscored_first(&asked)
            .map_or_else(|| parse::parse_score(&asked.text, item.min, item.max), Err)
        {
            Ok(s) => {
                score = Some(s);
                (reading.result, reading.verdict) = pass_mark(s, item.pass_score);
                reading.parser = Some(parser_of(&asked.text, &rendered));
                if logprobs {
                    match confidence::score(asked.logprobs.as_deref(), item.min, item.max) {
                        Ok((i, weighted, share)) => {
                            weighted_score = Some(crate::stats::round6(weighted));
                            reading.confidence = Some(share);
                            reading.source = ConfidenceSource::Logprobs;
                            reading.decisive_token = Some(i);
                        }
                        Err(why) => self.confidence_fallback(route, why),
                    }
                }
            }
            Err(u) => reading = reading.unscored(u),
        }
        let judgment = self.finish(asked, started, reading);
        self.record_verdict(JudgeKind::Score, route, &judgment);
        Ok(ScoreJudgment {
            judgment,
            score,
            weighted_score,
            prediction_chars: item.prediction.chars().count(),
        })
    }

    /// One route's pairwise judgment; with `swap`, in both orders.
    async fn compare_single(
        &self,
        route: &str,
        item: &CompareItem,
        via: &Via,
    ) -> Result<CompareJudgment, JudgeError> {
        let started = Instant::now();
        // With both orders, their agreement is the confidence; otherwise, when the route asks
        // for it, the winner token's probabilities.
        let logprobs = !item.swap && self.wants_logprobs(route);
        let first = self.compare_once(route, item, false, logprobs, via);
        let (a, b) = if item.swap {
            let (a, b) = futures::join!(first, self.compare_once(route, item, true, false, via));
            (a?, Some(b?))
        } else {
            (first.await?, None)
        };
        let (asked1, parsed1, rendered) = a;
        let mut positions = vec![position(&parsed1)];
        let mut winner = parsed1.clone();
        let mut consistent = None;
        let mut reading = Reading::new(&rendered.version);
        if parsed1.is_ok() {
            reading.parser = Some(parser_of(&asked1.text, &rendered));
        }
        if logprobs && parsed1.is_ok() {
            match confidence::pairwise(asked1.logprobs.as_deref()) {
                Ok((i, shares)) => {
                    let w = match parsed1 {
                        Ok(Winner::A) => 0,
                        Ok(Winner::B) => 1,
                        _ => 2,
                    };
                    reading.confidence = Some(shares[w]);
                    reading.source = ConfidenceSource::Logprobs;
                    reading.decisive_token = Some(i);
                }
                Err(why) => self.confidence_fallback(route, why),
            }
        }
        let mut asked = asked1;
        if let Some((asked2, parsed2, _)) = b {
            positions.push(position(&parsed2));
            // The swapped run saw B as A: map its winner back.
            let back = parsed2.map(|w| match w {
                Winner::A => Winner::B,
                Winner::B => Winner::A,
                Winner::Tie => Winner::Tie,
            });
            winner = match (&parsed1, &back) {
                (Ok(x), Ok(y)) if x == y => {
                    consistent = Some(true);
                    Ok(*x)
                }
                (Ok(_), Ok(_)) => {
                    consistent = Some(false);
                    Ok(Winner::Tie)
                }
                (Err(e), _) | (_, Err(e)) => Err(e.clone()),
            };
            if let Some(c) = consistent {
                reading.confidence = Some(if c { 1.0 } else { 0.5 });
                reading.source = ConfidenceSource::Swap;
            }
            asked = merge(asked, asked2);
        }
        let (w, scores) = match winner {
            Ok(w) => {
                reading.verdict = Verdict::Scored;
                winner_fields(w)
            }
            Err(u) => {
                reading = reading.unscored(u);
                (None, [None, None])
            }
        };
        let judgment = self.finish(asked, started, reading);
        self.record_verdict(JudgeKind::Compare, route, &judgment);
        Ok(CompareJudgment {
            judgment,
            winner: w,
            scores,
            consistent,
            positions,
        })
    }

    async fn compare_once(
        &self,
        route: &str,
        item: &CompareItem,
        swapped: bool,
        logprobs: bool,
        via: &Via,
    ) -> Result<(Asked, Result<Winner, Unscored>, Rendered), JudgeError> {
        let (a, b) = if swapped {
            (&item.response_b, &item.response_a)
        } else {
            (&item.response_a, &item.response_b)
        };
        let rendered = render_compare(item, a, b, self.shape(route));
        let grading = GradingTask::Compare {
            question: item.question.clone(),
            reference: item.answer.clone(),
            response_a: a.clone(),
            response_b: b.clone(),
        };
        let asked = self
            .ask(
                route,
                Question {
                    rendered: &rendered,
                    images: &item.images,
                    grading,
                    options: &item.options,
                    logprobs,
                },
                via,
            )
            .await?;
        let parsed = unscored_first(&asked).map_or_else(|| parse::parse_pairwise(&asked.text), Err);
        Ok((asked, parsed, rendered))
    }

    /// The most judging a binary item along `route` may cost, before anything is sent.
    pub fn estimate_binary(&self, route: &str, item: &BinaryItem) -> Estimate {
        self.estimate(
            route,
            &render_binary(item, self.shape(route)),
            item.images.len(),
            &item.options,
            1,
        )
    }

    /// The most judging a score item along `route` may cost, before anything is sent.
    pub fn estimate_score(&self, route: &str, item: &ScoreItem) -> Estimate {
        self.estimate(
            route,
            &render_score(item, self.shape(route)),
            item.images.len(),
            &item.options,
            1,
        )
    }

    /// The most judging a pairwise item along `route` may cost (both orders with `swap`).
    pub fn estimate_compare(&self, route: &str, item: &CompareItem) -> Estimate {
        let rendered = render_compare(item, &item.response_a, &item.response_b, self.shape(route));
        let calls = if item.swap { 2 } else { 1 };
        self.estimate(route, &rendered, item.images.len(), &item.options, calls)
    }

    /// `calls` calls of a rendered prompt: its prompt estimate and whole completion budget
    /// each, at the dearest step of the route. The rules pre-check and the verdict cache may
    /// make the item free; the estimate does not count on it.
    fn estimate(
        &self,
        route: &str,
        rendered: &Rendered,
        images: usize,
        options: &Options,
        calls: u32,
    ) -> Estimate {
        let max_tokens = options.max_tokens.unwrap_or(self.cfg.max_tokens);
        let text = rendered.system.as_deref().map_or(0, str::len) + rendered.user.len();
        let one = self.pool.estimate(
            route,
            ChatRequest::prompt_tokens_of(text, images),
            max_tokens,
        );
        Estimate {
            cost_usd: one.cost_usd.map(|c| c * f64::from(calls)),
            tokens: one.tokens * u64::from(calls),
        }
    }

    fn route_is_rules(&self, route: &str) -> bool {
        self.pool.route_is_rules(route)
    }

    /// The rules pre-check: when the deterministic judge is sure, no model is called.
    fn precheck(&self, item: &BinaryItem, started: Instant) -> Option<Judgment> {
        if item.prompt.is_some() {
            return None;
        }
        let (result, verdict, reason) =
            match rules::grade_binary(&item.question, &item.answer, &item.prediction) {
                RulesVerdict::Correct(r) => (1, Verdict::Correct, r),
                // Two short answers with no word in common may still be aliases ("Au" /
                // "gold"): in front of a model, that is for the model to decide.
                RulesVerdict::Incorrect(r) if r.starts_with("different short answers") => {
                    return None;
                }
                RulesVerdict::Incorrect(r) => (0, Verdict::Incorrect, r),
                RulesVerdict::Unsure(_) => return None,
            };
        let raw = serde_json::json!({"verdict": verdict.as_str(), "reason": reason}).to_string();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.record_overhead(started.elapsed());
        Some(Judgment {
            result: Some(result),
            verdict,
            reason: Some(reason),
            unscored_reason: None,
            raw_response: raw,
            provider: "rules".into(),
            model: "rules".into(),
            attempts: Vec::new(),
            fallback: false,
            usage: Usage::default(),
            cost_usd: Some(0.0),
            latency_ms,
            cached: false,
            template_version: "rules-precheck-v1".into(),
            confidence: None,
            confidence_source: ConfidenceSource::None,
            p_correct: None,
            parser: Some("json"),
            panel: None,
            provider_batch: None,
        })
    }

    /// Sends a rendered prompt along the route, through the verdict cache; with `logprobs`,
    /// asks for the answer tokens' log probabilities.
    async fn ask(&self, route: &str, q: Question<'_>, via: &Via) -> Result<Asked, JudgeError> {
        let Question {
            rendered,
            images,
            grading,
            options,
            logprobs,
        } = q;
        let temperature = options.temperature.unwrap_or(self.cfg.temperature);
        let max_tokens = options.max_tokens.unwrap_or(self.cfg.max_tokens);
        let cacheable = options.cache.unwrap_or(true) && temperature == 0.0 && self.cache.enabled();
        let cache_key = cacheable.then(|| {
            let mut parts: Vec<&str> = vec![
                route,
                parse::PARSER_VERSION,
                &rendered.version,
                rendered.system.as_deref().unwrap_or(""),
                &rendered.user,
            ];
            let mt = max_tokens.to_string();
            parts.push(&mt);
            // What the provider is asked besides the prompt changes the answer kept.
            parts.push(rendered.schema.map_or("", |(name, _)| name));
            parts.push(if logprobs { "logprobs" } else { "" });
            parts.extend(images.iter().map(String::as_str));
            VerdictCache::key(&parts)
        });
        let hit = match &cache_key {
            Some(k) => self.cache.get(k).await,
            None => None,
        };
        if let Some(hit) = hit {
            return Ok(Asked {
                text: hit.text,
                refusal: None,
                finish_reason: None,
                provider: hit.provider,
                model: hit.model,
                attempts: Vec::new(),
                fallback: false,
                usage: Usage::default(),
                cost_usd: Some(0.0),
                cached: true,
                provider_time: Duration::ZERO,
                cache_key: None,
                logprobs: hit.logprobs,
                provider_batch: None,
            });
        }
        let mut user = Vec::with_capacity(1 + images.len());
        user.push(Part::Text(rendered.user.clone()));
        user.extend(
            images
                .iter()
                .map(|url| Part::Image(ImageRef { url: url.clone() })),
        );
        let req = ChatRequest {
            temperature: Some(temperature),
            max_tokens: Some(max_tokens),
            // Built-in templates put their fixed instructions (and a score rubric, shared by a
            // batch) in the system prompt and the item in the user message: the system prompt
            // is the prefix a provider's prompt cache can reuse. Client templates have none.
            cache_system: rendered.system.is_some(),
            // Only a rules step reads the raw fields; other routes do not carry them along.
            grading: self.pool.route_uses_rules(route).then_some(grading),
            response_format: rendered
                .schema
                .map(|(name, schema)| ResponseFormat::JsonSchema {
                    name: name.to_string(),
                    schema: schema.clone(),
                    strict: true,
                }),
            top_logprobs: logprobs.then_some(TOP_LOGPROBS),
            ..ChatRequest::user(rendered.system.clone(), user)
        };
        let d = self
            .pool
            .send(route, req, via)
            .await
            .map_err(|f| JudgeError::from_route(route, f))?;
        Ok(Asked {
            text: d.completion.text,
            refusal: d.completion.refusal,
            finish_reason: d.completion.finish_reason,
            provider: d.provider,
            model: d.model,
            attempts: d.attempts,
            fallback: d.fallback,
            usage: d.completion.usage,
            cost_usd: d.cost_usd,
            cached: false,
            provider_time: d.provider_time,
            cache_key,
            logprobs: d.completion.logprobs,
            provider_batch: d.provider_batch,
        })
    }

    fn finish(&self, asked: Asked, started: Instant, r: Reading) -> Judgment {
        // Only readable answers are cached: an unscored one may read differently next time.
        // Of the log probabilities, only the token the confidence was read at is kept.
        if let Some(key) = asked.cache_key
            && r.verdict != Verdict::Unscored
        {
            let decisive = r
                .decisive_token
                .and_then(|i| asked.logprobs.as_ref()?.get(i).cloned());
            self.cache.put(
                key,
                CachedAnswer {
                    text: asked.text.clone(),
                    provider: asked.provider.clone(),
                    model: asked.model.clone(),
                    logprobs: decisive.map(|t| vec![t]),
                },
            );
        }
        // A structured answer may explain itself (the rules judge always does).
        let reason = r.reason.or_else(|| {
            let v: serde_json::Value = serde_json::from_str(asked.text.trim()).ok()?;
            v.get("reason")?.as_str().map(str::to_string)
        });
        let total = started.elapsed();
        self.record_overhead(total.saturating_sub(asked.provider_time));
        Judgment {
            result: r.result,
            verdict: r.verdict,
            reason,
            unscored_reason: r.unscored_reason,
            raw_response: asked.text,
            provider: asked.provider,
            model: asked.model,
            attempts: asked.attempts,
            fallback: asked.fallback,
            usage: asked.usage,
            cost_usd: asked.cost_usd,
            latency_ms: (total.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            cached: asked.cached,
            template_version: r.version,
            confidence: r.confidence.map(crate::stats::round6),
            confidence_source: r.source,
            p_correct: None,
            parser: r.parser,
            panel: None,
            provider_batch: asked.provider_batch,
        }
    }
}

/// Alternatives asked for at each answer token when a route wants log probabilities.
const TOP_LOGPROBS: u8 = 5;

/// Which path read a verdict: `structured` when a JSON answer was asked for and given, `json`
/// for a JSON object in a free answer, `text` otherwise.
fn parser_of(text: &str, rendered: &Rendered) -> &'static str {
    match (parse::has_json_object(text), rendered.schema.is_some()) {
        (true, true) => "structured",
        (true, false) => "json",
        (false, _) => "text",
    }
}

/// A score's result and verdict: correct or incorrect against the pass mark, else `scored`.
fn pass_mark(score: f64, pass: Option<f64>) -> (Option<u8>, Verdict) {
    match pass {
        Some(p) if score >= p => (Some(1), Verdict::Correct),
        Some(_) => (Some(0), Verdict::Incorrect),
        None => (None, Verdict::Scored),
    }
}

/// A pairwise winner's `winner` and `scores` fields.
fn winner_fields(w: Winner) -> (Option<&'static str>, [Option<f64>; 2]) {
    match w {
        Winner::A => (Some("a"), [Some(1.0), Some(0.0)]),
        Winner::B => (Some("b"), [Some(0.0), Some(1.0)]),
        Winner::Tie => (Some("tie"), [Some(0.5), Some(0.5)]),
    }
}

/// A binary item's prompt: its own template, or the built-in grader.
fn render_binary(item: &BinaryItem, shape: Shape) -> Rendered {
    match &item.prompt {
        Some(t) => prompts::render_custom(
            t,
            &[
                ("question", &item.question),
                ("answer", &item.answer),
                ("prediction", &item.prediction),
            ],
        ),
        None => prompts::binary(
            &item.question,
            &item.answer,
            &item.prediction,
            item.output_format.into(),
            shape,
        ),
    }
}

/// A score item's prompt: its own template, or the built-in grader.
fn render_score(item: &ScoreItem, shape: Shape) -> Rendered {
    match &item.prompt {
        Some(t) => prompts::render_custom(
            t,
            &[
                ("question", &item.question),
                ("answer", item.answer.as_deref().unwrap_or("")),
                ("prediction", &item.prediction),
                ("rubric", item.rubric.as_deref().unwrap_or("")),
            ],
        ),
        None => prompts::score(
            &item.question,
            item.answer.as_deref(),
            &item.prediction,
            item.rubric.as_deref(),
            item.min,
            item.max,
            shape,
        ),
    }
}

/// A pairwise item's prompt with `a` and `b` in that order.
fn render_compare(item: &CompareItem, a: &str, b: &str, shape: Shape) -> Rendered {
    match &item.prompt {
        Some(t) => prompts::render_custom(
            t,
            &[
                ("question", &item.question),
                ("answer", item.answer.as_deref().unwrap_or("")),
                ("response_a", a),
                ("response_b", b),
            ],
        ),
        None => prompts::compare(&item.question, item.answer.as_deref(), a, b, shape),
    }
}

/// A refusal or an empty answer is unscored before any parsing.
fn unscored_first(a: &Asked) -> Option<Unscored> {
    if a.text.trim().is_empty() {
        if let Some(r) = &a.refusal {
            return Some(Unscored {
                reason: UnscoredReason::Refusal,
                detail: format!("the judge refused: {}", llm_judge_chat::clip(r, 300)),
            });
        }
        let detail = match a.finish_reason.as_deref() {
            Some("length") | Some("max_tokens") | Some("MAX_TOKENS") => {
                "the judge's answer was empty: it ran out of tokens (raise options.max_tokens)"
                    .to_string()
            }
            _ => "the judge's answer was empty".to_string(),
        };
        return Some(Unscored {
            reason: UnscoredReason::EmptyResponse,
            detail,
        });
    }
    None
}

/// Combines the two runs of a swapped comparison.
fn merge(mut a: Asked, b: Asked) -> Asked {
    a.text = format!("{}\n\n--- swapped order ---\n\n{}", a.text, b.text);
    a.attempts.extend(b.attempts);
    a.fallback |= b.fallback;
    a.usage.add(b.usage);
    a.cost_usd = match (a.cost_usd, b.cost_usd) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
    a.cached &= b.cached;
    a.provider_time += b.provider_time;
    a.cache_key = None;
    a.provider_batch = a.provider_batch.or(b.provider_batch);
    a
}

impl Judge {
    /// Counts one finished batch or job item in `llm_judge_batch_items_total`.
    pub fn count_batch_item(&self, ok: bool) {
        let [ok_items, error_items] = self.batch_items.get_or_init(|| {
            [
                metrics::counter!(m::BATCH_ITEMS, "status" => "ok"),
                metrics::counter!(m::BATCH_ITEMS, "status" => "error"),
            ]
        });
        if ok { ok_items } else { error_items }.increment(1);
    }

    /// Records a judgment's time in the service itself in `llm_judge_overhead_seconds`.
    fn record_overhead(&self, d: Duration) {
        self.overhead
            .get_or_init(|| metrics::histogram!(m::OVERHEAD))
            .record(d.as_secs_f64());
    }

    fn record_verdict(&self, kind: JudgeKind, route: &str, j: &Judgment) {
        self.verdicts
            .increment(kind, self.route_label(route), j.verdict);
        if let Some(r) = j.unscored_reason {
            metrics::counter!(m::UNSCORED, "reason" => r).increment(1);
        }
    }
}

/// The `llm_judge_verdicts_total` handles by route, kind and verdict, each made once: making
/// one means building its label set and looking it up in the registry. Routes are the
/// configured ones, so the map stays small.
#[derive(Default)]
struct VerdictCounters(std::sync::RwLock<HashMap<String, RouteVerdicts>>);

/// One route's verdict counters.
type RouteVerdicts = HashMap<(JudgeKind, Verdict), metrics::Counter>;

impl VerdictCounters {
    fn increment(&self, kind: JudgeKind, route: &str, verdict: Verdict) {
        if let Ok(map) = self.0.read()
            && let Some(c) = map.get(route).and_then(|r| r.get(&(kind, verdict)))
        {
            c.increment(1);
            return;
        }
        let counter = metrics::counter!(m::VERDICTS, "kind" => kind.as_str(), "route" => route.to_string(), "verdict" => verdict.as_str());
        counter.increment(1);
        if let Ok(mut map) = self.0.write() {
            map.entry(route.to_string())
                .or_default()
                .insert((kind, verdict), counter);
        }
    }
}
