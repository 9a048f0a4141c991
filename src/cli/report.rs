//! The end of `llm-judge run`: totals over the whole results file (this run and earlier ones),
//! a table a person can read in a CI log, and the same as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use llm_judge_chat::Usage;
use llm_judge_judge::JudgeKind;
use llm_judge_work::batch::{BudgetReport, Summary};

/// Running totals, fed with every result entry as it is kept or written.
pub struct Tally {
    summary: Summary,
    unscored_reasons: BTreeMap<String, usize>,
    error_codes: BTreeMap<String, usize>,
    /// Verdict `scored`: a score or a winner with no pass mark.
    scored: usize,
    /// Entries from this run.
    pub judged: usize,
    /// Entries kept from an earlier run.
    pub earlier: usize,
}

impl Tally {
    pub fn new(kind: JudgeKind) -> Tally {
        Tally {
            summary: Summary::new(kind, 0),
            unscored_reasons: BTreeMap::new(),
            error_codes: BTreeMap::new(),
            scored: 0,
            judged: 0,
            earlier: 0,
        }
    }

    /// Counts one entry; `earlier` when it was already in the results file.
    pub fn add(&mut self, entry: &Value, earlier: bool) {
        self.summary.add(entry);
        if earlier {
            self.earlier += 1;
        } else {
            self.judged += 1;
        }
        if entry["status"] != "ok" {
            let code = entry["error"]["code"].as_str().unwrap_or("unknown");
            *self.error_codes.entry(code.to_string()).or_default() += 1;
        } else if entry["verdict"] == "scored" {
            self.scored += 1;
        } else if entry["verdict"] == "unscored" {
            let reason = entry["unscored_reason"].as_str().unwrap_or("unknown");
            *self.unscored_reasons.entry(reason.to_string()).or_default() += 1;
        }
    }

    /// correct / (correct + incorrect) so far.
    pub fn accuracy(&self) -> Option<f64> {
        let scored = self.summary.correct + self.summary.incorrect;
        (scored > 0).then(|| self.summary.correct as f64 / scored as f64)
    }

    /// The final figures. `total` is the number of input items (`exact` false when the input
    /// was not read to its end and this is only how many were seen).
    pub fn finish(
        self,
        total: usize,
        exact: bool,
        elapsed: Duration,
        stop: Option<&str>,
    ) -> RunSummary {
        let mut summary = self.summary;
        summary.total = total;
        summary.finish(elapsed);
        let secs = elapsed.as_secs_f64();
        summary.items_per_second = if secs > 0.0 {
            (self.judged as f64 / secs * 10.0).round() / 10.0
        } else {
            0.0
        };
        RunSummary {
            done: self.judged + self.earlier,
            judged_this_run: self.judged,
            from_earlier_run: self.earlier,
            total_exact: exact,
            scored: self.scored,
            unscored_reasons: self.unscored_reasons,
            error_codes: self.error_codes,
            stopped: stop.map(str::to_string),
            summary,
        }
    }
}

/// The summary of a run, as written by `--summary-json`.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Totals over every entry in the results (total = input items, accuracy, usage, cost...);
    /// `items_per_second` counts the items judged in this run.
    #[serde(flatten)]
    pub summary: Summary,
    /// Items with a result entry (this run and earlier ones).
    pub done: usize,
    pub judged_this_run: usize,
    pub from_earlier_run: usize,
    /// False when the run stopped before the end of an input whose size was not known up front.
    pub total_exact: bool,
    /// Items with verdict `scored` (a score or a winner without a pass mark): neither correct nor
    /// incorrect.
    pub scored: usize,
    /// Unscored items per `unscored_reason`.
    pub unscored_reasons: BTreeMap<String, usize>,
    /// Error entries per `error.code`.
    pub error_codes: BTreeMap<String, usize>,
    /// Why the run stopped early (`interrupted`, `terminated`, or an error), if it did.
    pub stopped: Option<String>,
}

fn breakdown(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("  ({})", parts.join(", "))
}

impl RunSummary {
    /// The table printed on standard error at the end.
    pub fn table(&self) -> String {
        let s = &self.summary;
        let mut t = String::new();
        let mut row = |label: &str, value: String| {
            let _ = writeln!(t, "  {label:<11}{value}");
        };
        let total = if self.total_exact {
            s.total.to_string()
        } else {
            format!("{}+ (the input was not read to its end)", s.total)
        };
        row("total", total);
        row(
            "done",
            format!(
                "{}  ({} this run, {} from an earlier run)",
                self.done, self.judged_this_run, self.from_earlier_run
            ),
        );
        row("correct", s.correct.to_string());
        row("incorrect", s.incorrect.to_string());
        if self.scored > 0 {
            row(
                "scored",
                format!("{}  (a score or winner, no pass mark)", self.scored),
            );
        }
        row(
            "unscored",
            format!("{}{}", s.unscored, breakdown(&self.unscored_reasons)),
        );
        row(
            "errors",
            format!("{}{}", s.errors, breakdown(&self.error_codes)),
        );
        let graded = s.correct + s.incorrect;
        row(
            "accuracy",
            match s.accuracy {
                Some(a) => {
                    let within = s.accuracy_interval.map_or(String::new(), |[lo, hi]| {
                        format!("; 95% interval {lo:.4} to {hi:.4}")
                    });
                    format!("{a:.4}  ({} of {graded} graded{within})", s.correct)
                }
                None => "n/a  (nothing graded correct or incorrect)".to_string(),
            },
        );
        if let Some(c) = &s.corrected_accuracy {
            row("corrected", corrected_row(c));
        }
        if let Some(m) = s.mean_score {
            row("mean score", format!("{m:.3}"));
        }
        if let Some(w) = &s.wins {
            row("wins", format!("a {}, b {}, tie {}", w.a, w.b, w.tie));
        }
        row("tokens", tokens_row(&s.usage));
        row(
            "cost",
            match s.cost_usd {
                Some(c) => format!("${c:.4}"),
                None => "n/a  (some models have no price in [prices])".to_string(),
            },
        );
        if s.cached > 0 {
            row("cached", s.cached.to_string());
        }
        if let Some(b) = &s.budget {
            row("budget", budget_row(b));
        }
        row("duration", format!("{:.2}s", s.duration_ms / 1000.0));
        row("items/s", format!("{:.1}", s.items_per_second));
        if let Some(why) = &self.stopped {
            row("stopped", why.clone());
        }
        format!("summary:\n{t}")
    }
}

/// The tokens row: prompt and completion, and the provider's prompt cache when it was used.
fn tokens_row(usage: &Usage) -> String {
    let mut tokens = format!(
        "{} prompt, {} completion",
        usage.prompt_tokens, usage.completion_tokens
    );
    if usage.cached_prompt_tokens + usage.cache_write_tokens > 0 {
        let _ = write!(
            tokens,
            "  (prompt: {} read from the provider's cache, {} written to it)",
            usage.cached_prompt_tokens, usage.cache_write_tokens
        );
    }
    tokens
}

/// The budget row: its limits, what was spent, and whether it ran out.
fn budget_row(b: &BudgetReport) -> String {
    let mut limits = Vec::new();
    if let Some(c) = b.max_cost_usd {
        limits.push(format!("${c}"));
    }
    if let Some(t) = b.max_tokens {
        limits.push(format!("{t} tokens"));
    }
    let spent = match b.spent_cost_usd {
        Some(c) => format!("${c:.4} and {} tokens", b.spent_tokens),
        None => format!("{} tokens", b.spent_tokens),
    };
    if b.exhausted {
        format!(
            "{}: {spent} spent; exhausted, {} items not sent",
            limits.join(", "),
            b.not_sent
        )
    } else {
        format!("{}: {spent} spent", limits.join(", "))
    }
}

/// The label-corrected accuracy, as one line of the table.
fn corrected_row(c: &llm_judge_work::batch::CorrectedAccuracy) -> String {
    let used = format!("{} labels, {} unlabelled, ppi++", c.labels, c.unlabelled);
    match (c.estimate, c.interval) {
        (Some(e), Some([lo, hi])) => {
            let more = c.labels_for_half_width.map_or(String::new(), |n| {
                format!("; about {n} labels for plus or minus 2 points")
            });
            format!("{e:.4}  (95% interval {lo:.4} to {hi:.4}; {used}{more})")
        }
        _ => format!("n/a  ({used}: two labelled items with a verdict are needed)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tally_counts_reasons_codes_and_runs() {
        let mut t = Tally::new(JudgeKind::Binary);
        let ok = |v: &str| json!({"status": "ok", "verdict": v, "usage": {"prompt_tokens": 10, "completion_tokens": 2}, "cost_usd": null});
        t.add(&ok("correct"), true);
        t.add(&ok("correct"), false);
        t.add(&ok("incorrect"), false);
        let mut u = ok("unscored");
        u["unscored_reason"] = json!("refusal");
        t.add(&u, false);
        t.add(
            &json!({"status": "error", "error": {"code": "invalid_line"}}),
            false,
        );
        assert_eq!(t.accuracy(), Some(2.0 / 3.0));
        let r = t.finish(6, true, Duration::from_secs(2), None);
        assert_eq!((r.done, r.judged_this_run, r.from_earlier_run), (5, 4, 1));
        assert_eq!(r.summary.items_per_second, 2.0);
        let table = r.table();
        assert!(table.contains("unscored   1  (refusal 1)"), "{table}");
        assert!(table.contains("errors     1  (invalid_line 1)"), "{table}");
        assert!(
            table.contains("0.6667  (2 of 3 graded; 95% interval 0.2077 to 0.9385)"),
            "{table}"
        );
        assert!(table.contains("cost       n/a"), "{table}");
        assert!(
            table.contains("tokens     40 prompt, 8 completion"),
            "{table}"
        );
    }
}
