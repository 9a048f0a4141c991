//! Building a configured provider's adapter: its one `reqwest::Client`, its wire format behind
//! the online and streaming services, and its batch API where it has one.

use std::sync::Arc;

use tower::util::BoxCloneSyncService;

use crate::http::{self, HttpAdapter, Streamed};
use crate::provider_batch::{self, BatchClient};
use crate::settings::{ProviderKind, ProviderSettings};
use crate::wire::WireFormat;
use crate::{anthropic, azure, cohere, gemini, openai, rules};
use llm_judge_chat::{ChatRequest, ChatStream, Completion, Grader, ProviderError};

/// Every adapter behind one type: a cloneable, shareable `tower::Service`.
pub type AdapterService = BoxCloneSyncService<Arc<ChatRequest>, Completion, ProviderError>;

/// Every adapter's streaming side: its answer is ready when the first piece has arrived.
pub type StreamService = BoxCloneSyncService<Arc<ChatRequest>, ChatStream, ProviderError>;

/// A provider adapter and what the pool needs to know of it.
#[derive(Clone)]
pub struct Adapter {
    /// The wire format (`openai`, `anthropic`, `rules` ...).
    pub kind: &'static str,
    /// Whether the provider can be called (credentials present, or none needed).
    pub has_credentials: bool,
    pub service: AdapterService,
    pub stream: StreamService,
    /// The provider's batch API (OpenAI, Azure OpenAI, Anthropic), on the same client.
    pub batch: Option<provider_batch::BatchClient>,
}

/// Builds the adapter for one configured provider: its `reqwest::Client` (made once, here) and
/// its wire format. `grader` answers for the `rules` kind.
pub fn build(p: &ProviderSettings, grader: Arc<dyn Grader>) -> anyhow::Result<Adapter> {
    let shared = Shared::new(p)?;
    Ok(match p.kind {
        ProviderKind::Rules => rules_adapter(grader),
        ProviderKind::Openai => openai_adapter(p, shared)?,
        ProviderKind::Together => {
            let wire = openai::OpenAi::new("together", &p.base_url, shared.key(), &p.headers)?;
            shared.adapter(Arc::new(wire), None)
        }
        ProviderKind::Azure => azure_adapter(p, shared)?,
        ProviderKind::Anthropic => anthropic_adapter(p, shared)?,
        ProviderKind::Cohere => {
            let wire = cohere::Cohere::new(&p.base_url, shared.key())?;
            shared.adapter(Arc::new(wire), None)
        }
        ProviderKind::Gemini => {
            let wire = gemini::Gemini::new(&p.base_url, shared.key())?;
            shared.adapter(Arc::new(wire), None)
        }
    })
}

/// What every HTTP adapter of one provider is built on: its client, its key, and the same
/// client and key for its batch API.
struct Shared {
    client: reqwest::Client,
    /// The provider's key; an empty one is none.
    key: Option<String>,
    batch_http: provider_batch::Http,
}

impl Shared {
    fn new(p: &ProviderSettings) -> anyhow::Result<Shared> {
        let key = p.api_key.as_ref().map(|k| k.expose().to_string());
        let key = key.filter(|k| !k.is_empty());
        let client = http::client(&http::ClientOptions::from_settings(p))?;
        let batch_http = provider_batch::Http {
            client: client.clone(),
            secret: key.as_deref().map(Into::into),
            polling: provider_batch::Polling {
                first: p.batch_poll,
                max: p.batch_poll_max,
                ..provider_batch::Polling::default()
            },
        };
        Ok(Shared {
            client,
            key,
            batch_http,
        })
    }

    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The adapter sending `wire` over the provider's client, with its batch API if any.
    fn adapter<W: WireFormat>(self, wire: Arc<W>, batch: Option<BatchClient>) -> Adapter {
        let http = HttpAdapter::shared(self.client, wire, self.key);
        Adapter {
            kind: http.wire().kind(),
            has_credentials: http.wire().headers().is_some(),
            stream: BoxCloneSyncService::new(Streamed(http.clone())),
            service: BoxCloneSyncService::new(http),
            batch,
        }
    }
}

/// The deterministic grader: no client, no credentials, its answer streamed whole.
fn rules_adapter(grader: Arc<dyn Grader>) -> Adapter {
    let rules = rules::RulesAdapter::new(grader);
    Adapter {
        kind: "rules",
        has_credentials: true,
        stream: BoxCloneSyncService::new(tower::ServiceExt::map_response(
            rules.clone(),
            ChatStream::whole,
        )),
        service: BoxCloneSyncService::new(rules),
        batch: None,
    }
}

/// OpenAI, with its Batch API beside it.
fn openai_adapter(p: &ProviderSettings, shared: Shared) -> anyhow::Result<Adapter> {
    let wire = Arc::new(openai::OpenAi::new(
        "openai",
        &p.base_url,
        shared.key(),
        &p.headers,
    )?);
    let batches = provider_batch::openai::Batches::openai(
        shared.batch_http.clone(),
        &p.base_url,
        wire.headers().cloned(),
        wire.clone(),
    );
    Ok(shared.adapter(wire, Some(BatchClient::OpenAi(batches))))
}

/// Azure OpenAI, with its global-batch API beside it.
fn azure_adapter(p: &ProviderSettings, shared: Shared) -> anyhow::Result<Adapter> {
    let wire = Arc::new(azure::Azure::new(
        &p.base_url,
        &p.api_version,
        shared.key(),
    )?);
    let batches = provider_batch::openai::Batches::azure(
        shared.batch_http.clone(),
        &p.base_url,
        &p.api_version,
        wire.headers().cloned(),
        wire.clone(),
    );
    Ok(shared.adapter(wire, Some(BatchClient::OpenAi(batches))))
}

/// Anthropic, with its Message Batches beside it.
fn anthropic_adapter(p: &ProviderSettings, shared: Shared) -> anyhow::Result<Adapter> {
    let wire = Arc::new(
        anthropic::Anthropic::new(&p.base_url, shared.key())?.with_prompt_cache(p.prompt_cache),
    );
    let batches = provider_batch::anthropic::Batches::new(shared.batch_http.clone(), wire.clone());
    Ok(shared.adapter(wire, Some(BatchClient::Anthropic(batches))))
}
