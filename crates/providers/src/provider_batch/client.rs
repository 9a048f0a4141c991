//! A provider's batch API behind one type: submitting, finding, polling, reading and cancelling
//! batches, whichever API runs them.

use super::batch::{
    Api, Handle, ItemFailure, Limits, Outcome, Phase, Queued, Status, Submission, SubmitError,
};
use super::calls::Http;
use super::custom_id::CustomId;
use super::polling::Polling;
use super::{anthropic, openai};
use llm_judge_chat::ProviderError;

/// A provider's batch API.
#[derive(Clone)]
pub enum BatchClient {
    OpenAi(openai::Batches),
    Anthropic(anthropic::Batches),
}

impl BatchClient {
    pub fn api(&self) -> Api {
        match self {
            BatchClient::OpenAi(_) => Api::OpenAi,
            BatchClient::Anthropic(_) => Api::Anthropic,
        }
    }

    pub fn limits(&self) -> Limits {
        match self {
            BatchClient::OpenAi(b) => b.limits,
            BatchClient::Anthropic(b) => b.limits,
        }
    }

    /// Smaller limits than the provider's (never larger: a batch over them is refused).
    pub fn with_limits(self, limits: Limits) -> BatchClient {
        let cap = |l: Limits, p: Limits| Limits {
            max_requests: l.max_requests.clamp(1, p.max_requests),
            max_bytes: l.max_bytes.clamp(1, p.max_bytes),
        };
        match self {
            BatchClient::OpenAi(mut b) => {
                b.limits = cap(limits, openai::LIMITS);
                BatchClient::OpenAi(b)
            }
            BatchClient::Anthropic(mut b) => {
                b.limits = cap(limits, anthropic::LIMITS);
                BatchClient::Anthropic(b)
            }
        }
    }

    pub fn with_polling(self, polling: Polling) -> BatchClient {
        match self {
            BatchClient::OpenAi(mut b) => {
                b.http.polling = polling;
                BatchClient::OpenAi(b)
            }
            BatchClient::Anthropic(mut b) => {
                b.http.polling = polling;
                BatchClient::Anthropic(b)
            }
        }
    }

    /// Puts `requests` in as few batches as the provider's limits allow (OpenAI: one model per
    /// batch) and creates them. `label` goes into the batches' metadata where the API has it.
    /// A failure to create a batch ends the submission with that error; batches created
    /// before it are in the error's `created` list, so that they can be cancelled or used.
    pub async fn submit(
        &self,
        requests: &[Queued],
        label: Option<&str>,
    ) -> Result<Submission, SubmitError> {
        match self {
            BatchClient::OpenAi(b) => b.submit(requests, label).await,
            BatchClient::Anthropic(b) => b.submit(requests).await,
        }
    }

    /// The batches made since `since` (unix seconds) with `label` in their metadata, with
    /// their requests, for finding batches made by a service that stopped before it stored
    /// their ids. Anthropic's batches carry no metadata: none are found there.
    pub async fn labelled(&self, label: &str, since: u64) -> Result<Vec<Handle>, ProviderError> {
        match self {
            BatchClient::OpenAi(b) => b.labelled(label, since).await,
            BatchClient::Anthropic(_) => Ok(Vec::new()),
        }
    }

    /// Polls a batch once.
    pub async fn status(&self, h: &Handle) -> Result<Status, ProviderError> {
        match self {
            BatchClient::OpenAi(b) => b.status(h).await,
            BatchClient::Anthropic(b) => b.status(h).await,
        }
    }

    /// Polls until the batch is over, backing off between polls; `seen` is told each status.
    /// It waits as long as the batch runs (up to the provider's 24 hours): wrap it in a
    /// timeout for a deadline of one's own.
    pub async fn wait(
        &self,
        h: &Handle,
        mut seen: impl FnMut(&Status),
    ) -> Result<Status, ProviderError> {
        let mut delays = self.http().polling.poll_delays();
        loop {
            let status = self.status(h).await?;
            seen(&status);
            if status.phase.is_over() {
                return Ok(status);
            }
            let wait = delays.next().unwrap_or(self.http().polling.max);
            tokio::time::sleep(wait).await;
        }
    }

    /// Every request's outcome once the batch is over, in the order of `h.requests`: read
    /// from the provider's results and matched by custom id; a request with no result is
    /// [`ItemFailure::Missing`] (or the batch's own fate, when it failed, expired or was
    /// cancelled).
    pub async fn results(
        &self,
        h: &Handle,
        status: &Status,
    ) -> Result<Vec<(CustomId, Outcome)>, ProviderError> {
        let mut found = std::collections::HashMap::with_capacity(h.requests.len());
        if let Phase::Failed(why) = &status.phase {
            return Ok(h
                .requests
                .iter()
                .map(|id| (*id, Err(ItemFailure::BatchFailed(why.clone()))))
                .collect());
        }
        for source in &status.results {
            let lines = match self {
                BatchClient::OpenAi(b) => b.results(source).await?,
                BatchClient::Anthropic(b) => b.results(source).await?,
            };
            for (id, outcome) in lines {
                found.insert(id, outcome);
            }
        }
        let unrun = match status.phase {
            Phase::Expired => ItemFailure::Expired,
            Phase::Cancelled => ItemFailure::Cancelled,
            _ => ItemFailure::Missing,
        };
        Ok(h.requests
            .iter()
            .map(|id| (*id, found.remove(id).unwrap_or_else(|| Err(unrun.clone()))))
            .collect())
    }

    /// Asks the provider to cancel the batch; it says where the batch is then (cancelling,
    /// or over already).
    pub async fn cancel(&self, h: &Handle) -> Result<Status, ProviderError> {
        match self {
            BatchClient::OpenAi(b) => b.cancel(h).await,
            BatchClient::Anthropic(b) => b.cancel(h).await,
        }
    }

    /// How this client polls and retries.
    pub fn polling(&self) -> Polling {
        self.http().polling
    }

    fn http(&self) -> &Http {
        match self {
            BatchClient::OpenAi(b) => &b.http,
            BatchClient::Anthropic(b) => &b.http,
        }
    }
}
