//! A job as shown to clients: its record, and its progress as this process knows it (counted
//! by its runner here, by a fleet's store, or as stored when it finished).

use serde_json::Value;

use super::manager::Jobs;
use super::record::{BatchRecord, Counts, JobRecord, JobStatus, now_ms};
use crate::batch::Progress;
use llm_judge_judge::JudgeKind;

/// A job as shown to clients.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    pub kind: JudgeKind,
    pub judge: String,
    pub total: u64,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub progress: Progress,
    /// The final summary, once finished.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    pub error: Option<String>,
}

impl Jobs {
    pub(super) fn view(&self, r: &JobRecord) -> JobView {
        let live = self.live.lock().unwrap();
        let mut progress = match (&r.counts, live.get(&r.id)) {
            _ if r.status.is_finished() => finished_progress(r),
            (Some(c), _) => fleet_progress(r, c),
            (None, Some(l)) => match &*l.summary.lock().unwrap() {
                Some((s, before)) => s.progress(l.started.elapsed(), *before),
                None => finished_progress(r),
            },
            (None, None) => finished_progress(r),
        };
        // The batches as this runner last polled them, else as stored.
        progress.provider_batches = match live
            .get(&r.id)
            .and_then(|l| l.batches.lock().unwrap().clone())
        {
            Some(b) => b.progress(),
            None => r
                .provider_batches
                .iter()
                .map(BatchRecord::progress)
                .collect(),
        };
        if !r.status.is_finished() {
            progress.waiting = live
                .get(&r.id)
                .and_then(|l| l.waiting.lock().unwrap().clone());
        }
        JobView {
            id: r.id.clone(),
            status: if live.contains_key(&r.id) && r.status == JobStatus::Queued {
                JobStatus::Running
            } else {
                r.status
            },
            kind: r.kind,
            judge: r.route.clone(),
            total: r.total,
            created_at_ms: r.created_at_ms,
            finished_at_ms: r.finished_at_ms,
            progress,
            summary: r.summary.clone(),
            error: r.error.clone(),
        }
    }
}

/// The progress of a job a fleet runs, from the counts its store keeps.
fn fleet_progress(r: &JobRecord, c: &Counts) -> Progress {
    let done = r.committed as usize;
    let secs = c
        .started_at_ms
        .map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0);
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let left = (r.total as usize).saturating_sub(done) as f64;
    Progress {
        done,
        total: r.total as usize,
        correct: c.correct as usize,
        incorrect: c.incorrect as usize,
        unscored: c.unscored as usize,
        errors: c.errors as usize,
        items_per_second: (rate * 10.0).round() / 10.0,
        eta_s: (rate > 0.0).then(|| (left / rate * 10.0).round() / 10.0),
        provider_batches: Vec::new(),
        waiting: None,
    }
}

/// The progress of a job not running here (finished, or not yet resumed).
fn finished_progress(r: &JobRecord) -> Progress {
    let s = r.summary.as_ref();
    let n = |k: &str| s.and_then(|s| s[k].as_u64()).unwrap_or(0) as usize;
    Progress {
        done: r.committed as usize,
        total: r.total as usize,
        correct: n("correct"),
        incorrect: n("incorrect"),
        unscored: n("unscored"),
        errors: n("errors"),
        items_per_second: s
            .and_then(|s| s["items_per_second"].as_f64())
            .unwrap_or(0.0),
        eta_s: None,
        provider_batches: Vec::new(),
        waiting: None,
    }
}
