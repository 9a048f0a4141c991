//! How a job's provider batches are stored with its record: each batch it made (what a
//! restarted service polls again instead of making it anew), the lease of the replica that
//! drives them in a fleet, and the marks of batches being made.

use serde::{Deserialize, Serialize};

use crate::batch::ProviderBatchProgress;
use llm_judge_providers::provider_batch::{Api, CustomId, Handle, Phase, Status};

/// The attempt every request of a job's provider batch is sent with (`custom_id` `i<index>-a0`).
pub(crate) const ATTEMPT: u32 = 0;

/// A provider batch as stored with its job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// The configured provider it went to.
    pub provider: String,
    pub api: Api,
    /// The provider's batch id.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_file_id: Option<String>,
    /// The items it holds: ranges of indices, first and last included.
    pub items: Vec<[u64; 2]>,
    /// `submitted`, `in_progress` or `ended`, as last polled.
    pub phase: String,
    pub done: u64,
    pub failed: u64,
    pub total: u64,
    /// Unix milliseconds.
    pub submitted_at_ms: u64,
}

impl BatchRecord {
    pub(crate) fn new(provider: &str, h: &Handle) -> BatchRecord {
        let mut indices: Vec<u64> = h.requests.iter().map(|c| c.index).collect();
        indices.sort_unstable();
        let mut items: Vec<[u64; 2]> = Vec::new();
        for i in indices {
            match items.last_mut() {
                Some(r) if r[1] + 1 == i => r[1] = i,
                _ => items.push([i, i]),
            }
        }
        BatchRecord {
            provider: provider.to_string(),
            api: h.api,
            id: h.id.clone(),
            input_file_id: h.input_file_id.clone(),
            items,
            phase: "submitted".into(),
            done: 0,
            failed: 0,
            total: h.requests.len() as u64,
            submitted_at_ms: super::now_ms(),
        }
    }

    pub(crate) fn indices(&self) -> impl Iterator<Item = u64> + '_ {
        self.items.iter().flat_map(|r| r[0]..=r[1])
    }

    /// What the batch client needs to poll, read and cancel it.
    pub(crate) fn handle(&self) -> Handle {
        Handle {
            api: self.api,
            id: self.id.clone(),
            input_file_id: self.input_file_id.clone(),
            requests: self.indices().map(|i| CustomId::new(i, ATTEMPT)).collect(),
        }
    }

    pub fn is_ended(&self) -> bool {
        self.phase == "ended"
    }

    /// Takes what a poll saw; true when something shown changed.
    pub(crate) fn saw(&mut self, s: &Status) -> bool {
        let phase = match s.phase {
            _ if s.phase.is_over() => "ended",
            Phase::Validating => "submitted",
            _ => "in_progress",
        };
        let failed = s.counts.errored + s.counts.expired + s.counts.cancelled;
        let total = if s.counts.total > 0 {
            s.counts.total
        } else {
            self.total
        };
        let before = (self.phase.clone(), self.done, self.failed, self.total);
        self.phase = phase.into();
        self.done = s.counts.done();
        self.failed = failed;
        self.total = total;
        before != (self.phase.clone(), self.done, self.failed, self.total)
    }

    pub fn progress(&self) -> ProviderBatchProgress {
        ProviderBatchProgress {
            id: self.id.clone(),
            provider: self.provider.clone(),
            phase: self.phase.clone(),
            done: self.done,
            failed: self.failed,
            total: self.total,
        }
    }
}

/// Which replica of a fleet drives a job's provider batches, and until when (Unix ms): it
/// renews the lease while it runs; another replica takes over once it has run out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until_ms: u64,
}

/// A provider batch being made for a job, stored before the call that makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitMark {
    /// The configured provider.
    pub provider: String,
    /// Unix milliseconds, just before the batch was asked for.
    pub since_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_stored_as_ranges_of_items_and_read_back_as_the_same_requests() {
        let ids = [7u64, 3, 4, 5, 9, 10, 0];
        let h = Handle {
            api: Api::Anthropic,
            id: "msgbatch_1".into(),
            input_file_id: None,
            requests: ids.iter().map(|&i| CustomId::new(i, ATTEMPT)).collect(),
        };
        let r = BatchRecord::new("p", &h);
        assert_eq!(r.items, vec![[0, 0], [3, 5], [7, 7], [9, 10]]);
        assert_eq!(r.total, 7);
        let mut want: Vec<CustomId> = h.requests.clone();
        want.sort();
        assert_eq!(r.handle().requests, want);
        let stored: BatchRecord =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(stored, r);
    }

    #[test]
    fn polls_become_the_phases_shown() {
        let h = Handle {
            api: Api::OpenAi,
            id: "batch_1".into(),
            input_file_id: Some("file-1".into()),
            requests: (0..4).map(|i| CustomId::new(i, ATTEMPT)).collect(),
        };
        let mut r = BatchRecord::new("p", &h);
        let status = |phase, succeeded, errored| Status {
            phase,
            counts: llm_judge_providers::provider_batch::Counts {
                total: 4,
                succeeded,
                errored,
                ..Default::default()
            },
            results: Vec::new(),
        };
        assert!(!r.saw(&status(Phase::Validating, 0, 0)));
        assert_eq!(r.phase, "submitted");
        assert!(r.saw(&status(Phase::InProgress, 1, 1)));
        assert_eq!((r.phase.as_str(), r.done, r.failed), ("in_progress", 2, 1));
        assert!(r.saw(&status(Phase::Ended, 3, 1)));
        assert!(r.is_ended());
        assert_eq!(r.progress().done, 4);
    }
}
