//! The judge service and its construction: the pool it sends along, its settings, the verdict
//! cache, the panels and route options, and what it knows of a route before asking it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::VerdictCache;
use crate::confidence::Missing;
use crate::error::JudgeError;
use crate::judgment::Judgment;
use crate::prompts::Shape;
use crate::record::Recorder;
use crate::settings::{ConfidenceMode, JudgeSettings, PanelSettings, RouteOptions};
use crate::verdict::JudgeKind;
use llm_judge_pool::Pool;

/// The judge service, shared by every request.
pub struct Judge {
    pub(crate) pool: Arc<Pool>,
    pub(crate) cfg: JudgeSettings,
    pub(crate) cache: VerdictCache,
    recorder: Recorder,
    /// Panels of judges by name (checked before routes).
    pub(crate) panels: BTreeMap<String, PanelSettings>,
    /// Options of configured routes; other routes use the defaults.
    route_options: BTreeMap<String, RouteOptions>,
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
            recorder: Recorder::default(),
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
    /// `Ok` while the verdict cache's tiers can store answers; otherwise why not.
    pub fn cache_health(&self) -> Result<(), String> {
        self.cache.health()
    }

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

    /// The sampling seed a route's calls are sent with.
    pub(crate) fn seed(&self, route: &str) -> i64 {
        self.options(route).seed.unwrap_or(self.cfg.seed)
    }

    fn options(&self, route: &str) -> RouteOptions {
        self.route_options.get(route).copied().unwrap_or_default()
    }

    pub(crate) fn shape(&self, route: &str) -> Shape {
        if self.options(route).structured {
            Shape::Json
        } else {
            Shape::Text
        }
    }

    pub(crate) fn wants_logprobs(&self, route: &str) -> bool {
        self.options(route).confidence == ConfidenceMode::Logprobs
    }

    pub(crate) fn route_is_rules(&self, route: &str) -> bool {
        self.pool.route_is_rules(route)
    }

    /// The label a route or panel gets in metrics: its configured name, or `adhoc`.
    fn route_label<'a>(&self, route: &'a str) -> &'a str {
        if self.panels.contains_key(route) {
            route
        } else {
            self.pool.route_label(route)
        }
    }

    /// Counts one finished batch or job item in `llm_judge_batch_items_total`.
    pub fn count_batch_item(&self, ok: bool) {
        self.recorder.batch_item(ok);
    }

    /// Records a judgment's time in the service itself in `llm_judge_overhead_seconds`.
    pub(crate) fn record_overhead(&self, d: Duration) {
        self.recorder.overhead(d);
    }

    pub(crate) fn record_verdict(&self, kind: JudgeKind, route: &str, j: &Judgment) {
        self.recorder.verdict(kind, self.route_label(route), j);
    }

    /// Counts a pairwise item whose two orders chose different winners, in
    /// `llm_judge_position_flips_total`.
    pub(crate) fn record_position_flip(&self, route: &str) {
        self.recorder.position_flip(self.route_label(route));
    }

    /// Counts a verdict whose route asks for log probabilities but got none to read, in
    /// `llm_judge_confidence_fallbacks_total`.
    pub(crate) fn confidence_fallback(&self, route: &str, why: Missing) {
        self.recorder
            .confidence_fallback(self.route_label(route), why);
    }
}
