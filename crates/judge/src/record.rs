//! The judge's metrics: verdicts by route, kind and verdict, unscored reasons, batch items,
//! the time spent in the service itself, and confidence fallbacks.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use crate::confidence::Missing;
use crate::judgment::Judgment;
use crate::verdict::{JudgeKind, Verdict};
use llm_judge_metrics as m;

/// The metric handles a judge records into, each made once.
#[derive(Default)]
pub(crate) struct Recorder {
    verdicts: VerdictCounters,
    batch_items: OnceLock<[metrics::Counter; 2]>,
    overhead: OnceLock<metrics::Histogram>,
}

impl Recorder {
    /// Counts one finished batch or job item in `llm_judge_batch_items_total`.
    pub(crate) fn batch_item(&self, ok: bool) {
        let [ok_items, error_items] = self.batch_items.get_or_init(|| {
            [
                metrics::counter!(m::BATCH_ITEMS, "status" => "ok"),
                metrics::counter!(m::BATCH_ITEMS, "status" => "error"),
            ]
        });
        if ok { ok_items } else { error_items }.increment(1);
    }

    /// Records a judgment's time in the service itself in `llm_judge_overhead_seconds`.
    pub(crate) fn overhead(&self, d: Duration) {
        self.overhead
            .get_or_init(|| metrics::histogram!(m::OVERHEAD))
            .record(d.as_secs_f64());
    }

    /// Counts a judgment's verdict under the route's label, its unscored reason, the reader of
    /// its verdict, whether a fallback step gave it, and a panel's agreement on it.
    pub(crate) fn verdict(&self, kind: JudgeKind, label: &str, j: &Judgment) {
        self.verdicts.increment(kind, label, j.verdict);
        if let Some(r) = j.unscored_reason {
            metrics::counter!(m::UNSCORED, "reason" => r).increment(1);
        }
        if let Some(p) = j.parser {
            metrics::counter!(m::VERDICT_PARSERS, "route" => label.to_string(), "parser" => p)
                .increment(1);
        }
        if j.fallback {
            metrics::counter!(m::FALLBACK_VERDICTS, "route" => label.to_string()).increment(1);
        }
        if let Some(a) = j.panel.as_ref().and_then(|p| p.agreement) {
            metrics::histogram!(m::PANEL_AGREEMENT, "panel" => label.to_string()).record(a);
        }
    }

    /// Counts a pairwise item whose two orders chose different winners.
    pub(crate) fn position_flip(&self, label: &str) {
        metrics::counter!(m::POSITION_FLIPS, "route" => label.to_string()).increment(1);
    }

    /// Counts a verdict whose route asks for log probabilities but got none to read, in
    /// `llm_judge_confidence_fallbacks_total`.
    pub(crate) fn confidence_fallback(&self, label: &str, why: Missing) {
        metrics::counter!(m::CONFIDENCE_FALLBACKS, "route" => label.to_string(), "reason" => why.as_str())
            .increment(1);
    }
}

/// The `llm_judge_verdicts_total` handles by route, kind and verdict, each made once: making
/// one means building its label set and looking it up in the registry. Routes are the
/// configured ones, so the map stays small.
#[derive(Default)]
struct VerdictCounters(RwLock<HashMap<String, RouteVerdicts>>);

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
