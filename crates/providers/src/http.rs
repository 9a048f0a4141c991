//! The HTTP transport under the adapters: one `reqwest::Client` per provider, built once at
//! start-up, and [`HttpAdapter`], the `tower::Service` that sends a wire format's request with it.
//!
//! reqwest and hyper do what real networks need: pooled keep-alive connections with a safe
//! reuse check, HTTP/2 by ALPN on `https://` (or with prior knowledge on `http://`, h2c), gzip,
//! brotli and deflate answers decoded, TLS with the platform's roots plus an optional private CA,
//! proxies from the environment or the provider's settings, happy-eyeballs connects, and TCP
//! keepalive. A request the provider may have received is never resent here: hyper retries only a
//! request that was provably never written (an idle connection found closed before the request
//! went out, an HTTP/2 stream the server refused), and everything else is an error for the pool's
//! retry layer, where it is a counted attempt.

use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};

use crate::answer::{Answer, MAX_ANSWER_BYTES, MAX_ERROR_CHARS};
use crate::outgoing::Outgoing;
use crate::settings::ProviderSettings;
use crate::stream::{first_piece, pieces};
use crate::transport::{chain, transport_error};
use crate::wire::WireFormat;
use llm_judge_chat::{ChatRequest, ChatStream, Completion, ProviderError};

/// The `User-Agent` of every provider call.
pub const USER_AGENT: &str = concat!("llm-judge/", env!("CARGO_PKG_VERSION"));

/// How a provider's client is built.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to set up a connection (TCP and TLS), apart from the attempt timeout.
    pub connect_timeout: Duration,
    /// Idle connections are closed after this: below the idle timeouts servers and load
    /// balancers commonly use, so the client closes first and never reuses a connection the
    /// server is closing.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host.
    pub max_idle: usize,
    /// HTTP/2 without TLS (h2c) for servers that speak it.
    pub http2_prior_knowledge: bool,
    /// HTTP/1.1 only, one connection per call in flight, even where the server offers HTTP/2.
    pub http1_only: bool,
    /// A PEM file of extra trusted roots (a private CA), added to the platform's.
    pub ca_file: Option<PathBuf>,
    /// A proxy for every call of this provider (`http://`, `https://` or `socks5://`); else the
    /// environment's `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` with `NO_PROXY`.
    pub proxy: Option<String>,
    /// The longest silence while an answer is being read (each read restarts it): what ends a
    /// streamed answer whose provider went quiet after its first piece.
    pub read_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(30),
            max_idle: 256,
            http2_prior_knowledge: false,
            http1_only: false,
            ca_file: None,
            proxy: None,
            read_timeout: None,
        }
    }
}

impl ClientOptions {
    pub fn from_settings(p: &ProviderSettings) -> ClientOptions {
        ClientOptions {
            connect_timeout: p.connect_timeout,
            pool_idle_timeout: p.pool_idle_timeout,
            // As many idle connections as calls may be in flight: with fewer, every burst of
            // completions above the cap closes connections the next wave must open again.
            max_idle: p.max_in_flight,
            http2_prior_knowledge: p.http2_prior_knowledge,
            http1_only: p.http1_only,
            ca_file: p.ca_file.clone(),
            proxy: p.proxy.as_ref().map(|s| s.expose().to_string()),
            read_timeout: Some(p.timeout),
        }
    }
}

/// Builds a provider's client. Errors name the setting at fault, never a proxy's credentials.
pub fn client(o: &ClientOptions) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(o.connect_timeout)
        .pool_idle_timeout(o.pool_idle_timeout)
        .pool_max_idle_per_host(o.max_idle)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_keepalive_interval(Duration::from_secs(10))
        .tcp_keepalive_retries(3)
        .gzip(true)
        .brotli(true)
        .deflate(true)
        // Provider APIs answer; they do not redirect. A redirect is reported as the status it is,
        // and no key follows it to another host.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(t) = o.read_timeout {
        b = b.read_timeout(t);
    }
    if o.http2_prior_knowledge {
        // One connection carries every call in flight; PINGs find a peer that went silent.
        // The connection window is large and fixed: with the 64 KiB default, thousands of
        // answers at once are split into small DATA frames.
        b = b
            .http2_prior_knowledge()
            .http2_initial_stream_window_size(Some(1 << 20))
            .http2_initial_connection_window_size(Some(64 << 20))
            .http2_keep_alive_interval(Some(Duration::from_secs(20)))
            .http2_keep_alive_timeout(Duration::from_secs(10))
            .http2_keep_alive_while_idle(true);
    } else if o.http1_only {
        b = b.http1_only();
    } else {
        b = b
            .http2_keep_alive_interval(Some(Duration::from_secs(20)))
            .http2_keep_alive_timeout(Duration::from_secs(10));
    }
    if let Some(path) = &o.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("ca_file {}: cannot be read", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("ca_file {}: not a PEM certificate bundle", path.display()))?;
        if certs.is_empty() {
            anyhow::bail!("ca_file {}: holds no certificate", path.display());
        }
        b = b.tls_certs_merge(certs);
    }
    if let Some(proxy) = &o.proxy {
        let p = reqwest::Proxy::all(proxy.as_str())
            .map_err(|_| anyhow::anyhow!("proxy is not a valid proxy URL"))?
            .no_proxy(reqwest::NoProxy::from_env());
        b = b.proxy(p);
    }
    b.build()
        .map_err(|e| anyhow::anyhow!("the HTTP client cannot be built: {}", chain(&e)))
}

/// A wire format sent over HTTP: the `tower::Service` every HTTP provider is.
pub struct HttpAdapter<W> {
    client: reqwest::Client,
    wire: Arc<W>,
    /// The provider's key, scrubbed from any text that comes back (some providers echo it).
    secret: Option<Arc<str>>,
}

impl<W> Clone for HttpAdapter<W> {
    fn clone(&self) -> Self {
        HttpAdapter {
            client: self.client.clone(),
            wire: self.wire.clone(),
            secret: self.secret.clone(),
        }
    }
}

impl<W: WireFormat> HttpAdapter<W> {
    pub fn new(client: reqwest::Client, wire: W, secret: Option<String>) -> Self {
        Self::shared(client, Arc::new(wire), secret)
    }

    /// An adapter on a wire format shared with another user of it (the provider's batch client).
    pub fn shared(client: reqwest::Client, wire: Arc<W>, secret: Option<String>) -> Self {
        HttpAdapter {
            client,
            wire,
            secret: secret.map(Into::into),
        }
    }

    pub fn wire(&self) -> &W {
        &self.wire
    }
}

impl<W: WireFormat> tower::Service<Arc<ChatRequest>> for HttpAdapter<W> {
    type Response = Completion;
    type Error = ProviderError;
    type Future = BoxFuture<'static, Result<Completion, ProviderError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProviderError>> {
        // The client's pool admits every call; limits sit above, in the pool's layers.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Arc<ChatRequest>) -> Self::Future {
        let client = self.client.clone();
        let wire = self.wire.clone();
        let secret = self.secret.clone();
        async move {
            let headers = wire.headers().ok_or(ProviderError::NoCredentials)?;
            let out = wire.encode(&req)?;
            let answer = post(&client, out, headers).await?;
            wire.decode(answer)
        }
        .map(move |r| r.map_err(|e| e.redacted(secret.as_deref(), MAX_ERROR_CHARS)))
        .boxed()
    }
}

/// The streaming side of an [`HttpAdapter`]: a `tower::Service` whose answer is a
/// [`ChatStream`], ready once the provider's first piece has arrived (so that an error before
/// it is an error of the call, retried or left for the next step like any other). A provider
/// without a streaming format, or one that answers a streamed request with a whole JSON answer,
/// gives a stream of one piece.
pub struct Streamed<W>(pub HttpAdapter<W>);

impl<W> Clone for Streamed<W> {
    fn clone(&self) -> Self {
        Streamed(self.0.clone())
    }
}

impl<W: WireFormat> tower::Service<Arc<ChatRequest>> for Streamed<W> {
    type Response = ChatStream;
    type Error = ProviderError;
    type Future = BoxFuture<'static, Result<ChatStream, ProviderError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProviderError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Arc<ChatRequest>) -> Self::Future {
        let HttpAdapter {
            client,
            wire,
            secret,
        } = self.0.clone();
        let scrub = secret.clone();
        async move {
            let headers = wire.headers().ok_or(ProviderError::NoCredentials)?;
            let Some(format) = wire.streaming() else {
                let answer = post(&client, wire.encode(&req)?, headers).await?;
                return wire.decode(answer).map(ChatStream::whole);
            };
            let resp = send(&client, format.encode_stream(&req)?, headers, true).await?;
            let is_events = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
            if !resp.status().is_success() || !is_events {
                return wire.decode(read_answer(resp).await?).map(ChatStream::whole);
            }
            let pieces = pieces(resp, format.reader());
            first_piece(pieces, secret).await
        }
        .map(move |r| r.map_err(|e| e.redacted(scrub.as_deref(), MAX_ERROR_CHARS)))
        .boxed()
    }
}

/// Sends one JSON `POST` and reads the whole answer.
async fn post(
    client: &reqwest::Client,
    out: Outgoing,
    headers: &reqwest::header::HeaderMap,
) -> Result<Answer, ProviderError> {
    read_answer(send(client, out, headers, false).await?).await
}

/// Sends one JSON `POST` (asking for server-sent events when `events`) and returns the answer's
/// head, its body still to be read.
async fn send(
    client: &reqwest::Client,
    out: Outgoing,
    headers: &reqwest::header::HeaderMap,
    events: bool,
) -> Result<reqwest::Response, ProviderError> {
    let mut b = client
        .post(out.url)
        .headers(headers.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if events {
        b = b.header(ACCEPT, HeaderValue::from_static("text/event-stream"));
    }
    b.body(out.body).send().await.map_err(transport_error)
}

/// A response read whole (at most [`MAX_ANSWER_BYTES`]), with its status and headers.
pub(crate) async fn read_answer(resp: reqwest::Response) -> Result<Answer, ProviderError> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = read_body(resp).await?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Reads an answer's body (decompressed), at most [`MAX_ANSWER_BYTES`].
async fn read_body(mut resp: reqwest::Response) -> Result<Bytes, ProviderError> {
    let mut buf = BytesMut::with_capacity(
        resp.content_length()
            .map_or(4096, |n| n.min(MAX_ANSWER_BYTES as u64) as usize),
    );
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if buf.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ProviderError::Decode(format!(
                "the answer is larger than {} MiB",
                MAX_ANSWER_BYTES >> 20
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_or_proxy_is_refused_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let o = ClientOptions {
            ca_file: Some(missing),
            ..ClientOptions::default()
        };
        assert!(
            client(&o)
                .unwrap_err()
                .to_string()
                .contains("cannot be read")
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let o = ClientOptions {
            ca_file: Some(junk),
            ..ClientOptions::default()
        };
        assert!(
            client(&o)
                .unwrap_err()
                .to_string()
                .contains("holds no certificate")
        );
        let o = ClientOptions {
            proxy: Some("::not a url::secret".into()),
            ..ClientOptions::default()
        };
        let e = client(&o).unwrap_err().to_string();
        assert!(e.contains("proxy") && !e.contains("secret"), "{e}");
    }
}
