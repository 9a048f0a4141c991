//! The HTTP transport under the provider adapters: a lean HTTP/1.1 client with pooled keep-alive
//! connections over TCP or rustls, and reqwest where a proxy or HTTP/2 is asked for.
//!
//! A judge call is one small JSON POST and one small JSON answer, and thousands may wait on a
//! slow provider at once. The direct client drives each call's connection inside the caller's
//! task: no connection task, no channel between a request and its connection, and no read buffer
//! while the provider thinks (the buffer is taken only once the socket is readable). Each call in
//! flight has a connection of its own, as with the official SDKs over HTTP/1.1, so no server-side
//! stream limit queues calls behind one another.
//!
//! With `http2_prior_knowledge` on a plain `http://` URL, calls go over h2c ([`h2c`]): one
//! multiplexed connection per serving thread. reqwest carries the calls of a provider when a
//! proxy variable (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`) applies to its scheme, which
//! reqwest honours together with `NO_PROXY`, and for HTTP/2 prior knowledge over TLS.

mod h2c;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ProviderError;

/// The status, headers and whole body of one answer.
pub type Answer = (u16, HeaderMap, Bytes);

/// The largest response head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The largest response body accepted; a judge's answer is a few kilobytes at most.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Idle connections older than this are closed (servers commonly keep an idle connection for 60
/// to 120 s; reusing one the server is closing costs a failed call, and one it has closed holds a
/// descriptor until closed here).
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// Idle connections younger than this are reused without checking that the peer still has them
/// open.
const FRESH: Duration = Duration::from_secs(1);
/// The most response headers read.
const MAX_HEADERS: usize = 100;
const USER_AGENT: &str = concat!("llm-judge/", env!("CARGO_PKG_VERSION"));

/// How one provider's client is built.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per attempt: connecting, sending and reading the whole answer.
    pub timeout: Duration,
    /// Idle keep-alive connections kept per host (the provider's `max_in_flight`).
    pub max_idle: usize,
    /// Speak HTTP/2 without negotiation, on one multiplexed connection per serving thread.
    pub http2_prior_knowledge: bool,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: super::openai::DEFAULT_TIMEOUT,
            max_idle: 100,
            http2_prior_knowledge: false,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// One provider's HTTP client, built once and shared by its calls.
#[derive(Clone)]
pub struct HttpClient(Arc<Transport>);

enum Transport {
    Direct(Direct),
    H2c(h2c::H2c),
    Reqwest(PerLane),
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::direct(&ClientOptions::default())
    }
}

impl HttpClient {
    /// The client for a provider at `base_url`: reqwest when a proxy variable applies to its
    /// scheme or HTTP/2 prior knowledge is asked for over TLS, h2c for HTTP/2 prior knowledge
    /// over plain TCP, the direct HTTP/1.1 client otherwise.
    pub fn new(base_url: &str, opts: &ClientOptions) -> anyhow::Result<Self> {
        let https = base_url.starts_with("https:");
        if opts.http2_prior_knowledge && !https && !proxy_configured(false) {
            return Ok(Self(Arc::new(Transport::H2c(h2c::H2c::new(opts.timeout)))));
        }
        if opts.http2_prior_knowledge || proxy_configured(https) {
            let first = reqwest_client(opts)?;
            return Ok(Self(Arc::new(Transport::Reqwest(PerLane {
                opts: opts.clone(),
                clients: Mutex::new(vec![first]),
            }))));
        }
        Ok(Self::direct(opts))
    }

    /// The direct HTTP/1.1 client, whatever the environment says about proxies.
    pub fn direct(opts: &ClientOptions) -> Self {
        Self(Arc::new(Transport::Direct(Direct::new(opts, None))))
    }

    /// Which transport carries the calls: `direct`, `h2c` or `reqwest`.
    #[cfg(test)]
    fn transport(&self) -> &'static str {
        match *self.0 {
            Transport::Direct(_) => "direct",
            Transport::H2c(_) => "h2c",
            Transport::Reqwest(_) => "reqwest",
        }
    }

    /// POSTs `body` as JSON and reads the whole answer. Transport failures become
    /// [`ProviderError`]s that name no part of the URL, which may carry a key.
    pub async fn post_json<T: Serialize + ?Sized>(
        &self,
        url: &Url,
        headers: &HeaderMap,
        body: &T,
    ) -> Result<Answer, ProviderError> {
        match &*self.0 {
            Transport::Direct(d) => d.post_json(url, headers, body).await,
            Transport::H2c(h) => h.post(url, headers, encode(body)?).await,
            Transport::Reqwest(lanes) => {
                let c = lanes.client();
                let body = encode(body)?;
                let builder = c
                    .post(url.clone())
                    .headers(headers.clone())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body);
                let mut resp = builder.send().await.map_err(reqwest_error)?;
                let status = resp.status().as_u16();
                let headers = std::mem::take(resp.headers_mut());
                let body = resp.bytes().await.map_err(reqwest_error)?;
                Ok((status, headers, body))
            }
        }
    }
}

/// A reqwest client per lane (see [`crate::lanes`]): hyper runs each connection on a task of
/// the runtime that opened it, so a lane sharing another lane's client would send every call
/// through that thread, and one h2c connection would carry every lane's calls.
struct PerLane {
    opts: ClientOptions,
    /// Indexed by [`crate::lanes::slot`]; the first, built at start-up, serves off the lanes.
    clients: Mutex<Vec<reqwest::Client>>,
}

impl PerLane {
    fn client(&self) -> reqwest::Client {
        let slot = lane();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        while clients.len() <= slot {
            // The options were accepted once already; should a later build still fail, the
            // first client serves.
            let next = reqwest_client(&self.opts).unwrap_or_else(|_| clients[0].clone());
            clients.push(next);
        }
        clients[slot].clone()
    }
}

/// The request body as JSON.
fn encode<T: Serialize + ?Sized>(body: &T) -> Result<Vec<u8>, ProviderError> {
    let mut out = Vec::new();
    encode_into(&mut out, body)?;
    Ok(out)
}

/// The request body as JSON, written at the end of `out`.
fn encode_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, body: &T) -> Result<(), ProviderError> {
    serde_json::to_writer(out, body)
        .map_err(|e| ProviderError::Decode(format!("request not encodable: {e}")))
}

/// True when reqwest would send a request of this scheme through a proxy named in the
/// environment. `NO_PROXY` is left to reqwest, which then carries every call.
fn proxy_configured(https: bool) -> bool {
    let names: &[&str] = if https {
        &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    } else {
        &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
    };
    names
        .iter()
        .any(|n| std::env::var_os(n).is_some_and(|v| !v.is_empty()))
}

fn reqwest_client(opts: &ClientOptions) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if opts.http2_prior_knowledge {
        // One connection carries every call in flight. The connection window is large and
        // fixed: with the 64 KiB default, thousands of answers at once are split into small
        // DATA frames, which the client's own flood guard then takes for an attack and closes
        // the connection.
        builder = builder
            .http2_prior_knowledge()
            .http2_initial_stream_window_size(Some(1 << 20))
            .http2_initial_connection_window_size(Some(64 << 20));
    }
    Ok(builder
        .timeout(opts.timeout)
        .connect_timeout(connect_timeout(opts.timeout))
        .tcp_nodelay(true)
        // Provider APIs answer; they do not redirect. A redirect is reported as the status it is
        // (and no key follows it to another host).
        .redirect(reqwest::redirect::Policy::none())
        // Keep as many idle connections as calls may be in flight: with fewer, every burst of
        // completions above the cap closes connections the next wave must open again.
        .pool_max_idle_per_host(opts.max_idle)
        .user_agent(USER_AGENT)
        .build()?)
}

fn connect_timeout(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(10))
}

/// Maps a reqwest transport error to a [`ProviderError`], without the URL.
fn reqwest_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else if e.is_decode() {
        ProviderError::Decode(e.without_url().to_string())
    } else {
        ProviderError::Connect(e.without_url().to_string())
    }
}

/// Where a connection goes: scheme, host and port.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Origin {
    tls: bool,
    host: Box<str>,
    port: u16,
}

/// The direct HTTP/1.1 client with its idle connections.
struct Direct {
    timeout: Duration,
    max_idle: usize,
    idle_timeout: Duration,
    /// Built on the first https call: reading the platform's roots is not free.
    tls: OnceLock<Result<tokio_rustls::TlsConnector, String>>,
    idle: Arc<IdlePool>,
    /// Whether the task that closes expired idle connections has been started.
    reaper: std::sync::atomic::AtomicBool,
    /// Resolved addresses per host and port. A burst that opens hundreds of connections at once
    /// makes one lookup (the others wait for it) instead of one blocking lookup thread each.
    dns: tokio::sync::Mutex<DnsCache>,
    /// Lookups made (for tests).
    lookups: std::sync::atomic::AtomicUsize,
}

/// Addresses per host and port, with when they were looked up.
type DnsCache = HashMap<(Box<str>, u16), (Instant, Arc<[SocketAddr]>)>;

/// How long one address may take to accept a connection while others remain to try (an
/// unreachable IPv6 address must not use up the whole connect timeout).
const PER_ADDRESS: Duration = Duration::from_secs(1);

/// How long a resolved address list is used before the name is looked up again.
const DNS_TTL: Duration = Duration::from_secs(30);

/// Idle connections per lane (see [`crate::lanes::slot`]) and origin, each stack oldest first. A
/// lane reuses only the connections it opened, whose readiness its own runtime watches; threads
/// off the lanes share one stack.
type IdlePool = Mutex<Vec<HashMap<Origin, Vec<Conn>>>>;

/// The service runs one multi-threaded runtime: every caller shares the first slot.
fn lane() -> usize {
    0
}

struct Conn {
    io: Io,
    /// When it was last put back idle.
    since: Instant,
    /// Whether it has carried a call before this one.
    reused: bool,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// How one exchange on one connection failed.
enum Failure {
    /// Nothing came back on a reused connection: the server had closed it while idle, and the
    /// request can go again on a fresh one.
    Stale(ProviderError),
    Failed(ProviderError),
}

impl Direct {
    fn new(opts: &ClientOptions, tls: Option<rustls::ClientConfig>) -> Self {
        let cell = OnceLock::new();
        if let Some(cfg) = tls {
            let _ = cell.set(Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg))));
        }
        Self {
            timeout: opts.timeout,
            max_idle: opts.max_idle,
            idle_timeout: opts.idle_timeout,
            tls: cell,
            idle: Arc::new(Mutex::new(Vec::new())),
            reaper: std::sync::atomic::AtomicBool::new(false),
            dns: tokio::sync::Mutex::new(HashMap::new()),
            lookups: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    async fn post_json<T: Serialize + ?Sized>(
        &self,
        url: &Url,
        headers: &HeaderMap,
        body: &T,
    ) -> Result<Answer, ProviderError> {
        let origin = origin(url)?;
        let exchange = async {
            if let Some(conn) = self.checkout(&origin) {
                match self
                    .exchange(&origin, conn, request(url, headers, body)?)
                    .await
                {
                    Ok(answer) => return Ok(answer),
                    Err(Failure::Stale(_)) => {}
                    Err(Failure::Failed(e)) => return Err(e),
                }
            }
            let conn = self.connect(&origin).await?;
            match self
                .exchange(&origin, conn, request(url, headers, body)?)
                .await
            {
                Ok(answer) => Ok(answer),
                Err(Failure::Stale(e) | Failure::Failed(e)) => Err(e),
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ProviderError::Timeout)?
    }

    /// The most recently used live idle connection to `origin`, if any.
    fn checkout(&self, origin: &Origin) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let stack = idle.get_mut(lane())?.get_mut(origin)?;
        while let Some(conn) = stack.pop() {
            let idle_for = conn.since.elapsed();
            if idle_for >= self.idle_timeout {
                // The rest of the stack is older still.
                stack.clear();
                return None;
            }
            // A connection idle for a moment is taken as it is: the check costs a system call
            // per call, and the one retry on a fresh connection covers a close in that moment.
            if idle_for < FRESH || conn.io.is_open() {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, origin: &Origin, mut conn: Conn) {
        conn.since = Instant::now();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let lane = lane();
            if idle.len() <= lane {
                idle.resize_with(lane + 1, HashMap::new);
            }
            let stack = idle[lane].entry(origin.clone()).or_default();
            if stack.len() < self.max_idle {
                stack.push(conn);
            }
        }
        if !self.reaper.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tokio::spawn(reap(Arc::downgrade(&self.idle), self.idle_timeout));
        }
    }

    async fn connect(&self, origin: &Origin) -> Result<Conn, ProviderError> {
        let limit = connect_timeout(self.timeout);
        let host = origin.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::time::timeout(limit, self.connect_tcp(host, origin.port))
            .await
            .map_err(|_| ProviderError::Timeout)??;
        let _ = tcp.set_nodelay(true);
        let io = if origin.tls {
            let connector = self
                .tls
                .get_or_init(tls_connector)
                .as_ref()
                .map_err(|e| ProviderError::Connect(e.clone()))?;
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| ProviderError::Connect(format!("invalid TLS server name: {e}")))?;
            let tls = tokio::time::timeout(limit, connector.connect(name, tcp))
                .await
                .map_err(|_| ProviderError::Timeout)?
                .map_err(|e| ProviderError::Connect(format!("TLS handshake failed: {e}")))?;
            Io::Tls(Box::new(tls))
        } else {
            Io::Plain(tcp)
        };
        Ok(Conn {
            io,
            since: Instant::now(),
            reused: false,
        })
    }

    /// A TCP connection to the first address of `host` that accepts one.
    async fn connect_tcp(&self, host: &str, port: u16) -> Result<TcpStream, ProviderError> {
        let failed = |e: io::Error| ProviderError::Connect(e.to_string());
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return TcpStream::connect((ip, port)).await.map_err(failed);
        }
        let addrs = self.resolve(host, port).await.map_err(failed)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no addresses");
        for (i, addr) in addrs.iter().enumerate() {
            let attempt = TcpStream::connect(addr);
            let result = if i + 1 < addrs.len() {
                tokio::time::timeout(PER_ADDRESS, attempt)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            } else {
                attempt.await
            };
            match result {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last = e,
            }
        }
        // Nothing answered: the next connection looks the name up again.
        self.dns.lock().await.remove(&(host.into(), port));
        Err(failed(last))
    }

    async fn resolve(&self, host: &str, port: u16) -> io::Result<Arc<[SocketAddr]>> {
        let key: (Box<str>, u16) = (host.into(), port);
        let mut cache = self.dns.lock().await;
        if let Some((at, addrs)) = cache.get(&key)
            && at.elapsed() < DNS_TTL
        {
            return Ok(addrs.clone());
        }
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let addrs: Arc<[SocketAddr]> = tokio::net::lookup_host((host, port)).await?.collect();
        cache.insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }

    /// Sends one request on `conn` and reads its answer; a connection that may carry another
    /// call goes back to the idle stack.
    async fn exchange(
        &self,
        origin: &Origin,
        mut conn: Conn,
        msg: Vec<u8>,
    ) -> Result<Answer, Failure> {
        // A connection that has already carried a call may have been closed by the server
        // while idle; a fresh one failing is a real failure.
        let reused = conn.reused;
        let stale = |e: io::Error| {
            let e = ProviderError::Connect(e.to_string());
            if reused {
                Failure::Stale(e)
            } else {
                Failure::Failed(e)
            }
        };
        conn.io.write_all(&msg).await.map_err(stale)?;
        drop(msg);
        let mut buf = BytesMut::new();
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(head)) if head.informational() => {
                    buf.advance(head.len);
                    continue;
                }
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() > MAX_HEAD => {
                    return Err(Failure::Failed(ProviderError::Decode(
                        "response headers too large".into(),
                    )));
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Failed(e)),
            }
            let nothing_yet = buf.is_empty();
            match conn.io.read_more(&mut buf).await {
                Ok(0) if nothing_yet => return Err(stale(io::ErrorKind::UnexpectedEof.into())),
                Ok(0) => return Err(Failure::Failed(truncated())),
                Ok(_) => {}
                Err(e) if nothing_yet => return Err(stale(e)),
                Err(e) => return Err(Failure::Failed(ProviderError::Connect(e.to_string()))),
            }
        };
        buf.advance(head.len);
        let (body, reusable) = read_body(&mut conn.io, &mut buf, &head)
            .await
            .map_err(Failure::Failed)?;
        if reusable && head.keep_alive && buf.is_empty() {
            conn.reused = true;
            self.checkin(origin, conn);
        }
        Ok((head.status, head.headers, body))
    }
}

/// Closes idle connections once they expire, until the client is dropped; without it, a burst's
/// connections would stay open (or half-closed by the server) while no call takes them.
async fn reap(idle: std::sync::Weak<IdlePool>, idle_timeout: Duration) {
    let every = (idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(10));
    loop {
        tokio::time::sleep(every).await;
        let Some(idle) = idle.upgrade() else { return };
        let mut expired = Vec::new();
        {
            let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
            for stacks in idle.iter_mut() {
                for stack in stacks.values_mut() {
                    let n = stack.partition_point(|c| c.since.elapsed() >= idle_timeout);
                    expired.extend(stack.drain(..n));
                }
                stacks.retain(|_, stack| !stack.is_empty());
            }
        }
        // Closed here, outside the lock.
        drop(expired);
    }
}

fn truncated() -> ProviderError {
    ProviderError::Connect("connection closed before the response was complete".into())
}

fn origin(url: &Url) -> Result<Origin, ProviderError> {
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(ProviderError::Connect(format!(
                "unsupported URL scheme {other:?}"
            )));
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| ProviderError::Connect("the provider URL has no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ProviderError::Connect("the provider URL has no port".into()))?;
    Ok(Origin {
        tls,
        host: host.into(),
        port,
    })
}

/// The whole request: head and JSON body in one buffer, so that it leaves in one write.
fn request<T: Serialize + ?Sized>(
    url: &Url,
    headers: &HeaderMap,
    body: &T,
) -> Result<Vec<u8>, ProviderError> {
    thread_local! {
        /// Scratch space for request bodies, kept between calls so a body is written without
        /// growing its buffer step by step, then copied once into the message.
        static BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BODY.with_borrow_mut(|scratch| {
        scratch.clear();
        encode_into(scratch, body)?;
        let msg = message(url, headers, scratch);
        if scratch.capacity() > 1 << 20 {
            // One huge request does not keep a huge buffer alive on this thread.
            *scratch = Vec::new();
        }
        Ok(msg)
    })
}

/// The request head and `body`, ready to write.
fn message(url: &Url, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(320 + body.len());
    msg.extend_from_slice(b"POST ");
    msg.extend_from_slice(url.path().as_bytes());
    if let Some(q) = url.query() {
        msg.push(b'?');
        msg.extend_from_slice(q.as_bytes());
    }
    msg.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    msg.extend_from_slice(url.host_str().unwrap_or_default().as_bytes());
    if let Some(port) = url.port() {
        msg.push(b':');
        msg.extend_from_slice(itoa::Buffer::new().format(port).as_bytes());
    }
    msg.extend_from_slice(b"\r\n");
    let defaults: [(HeaderName, &str); 3] = [
        (header::USER_AGENT, USER_AGENT),
        (header::ACCEPT, "application/json"),
        (header::CONTENT_TYPE, "application/json"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            push_header(&mut msg, name.as_str(), value.as_bytes());
        }
    }
    if !headers.contains_key(header::AUTHORIZATION)
        && let Some(basic) = basic_auth(url)
    {
        push_header(&mut msg, "authorization", basic.as_bytes());
    }
    for (name, value) in headers {
        // The framing headers are this client's to write.
        if matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        push_header(&mut msg, name.as_str(), value.as_bytes());
    }
    let mut len = itoa::Buffer::new();
    push_header(
        &mut msg,
        "content-length",
        len.format(body.len()).as_bytes(),
    );
    msg.extend_from_slice(b"\r\n");
    msg.extend_from_slice(body);
    msg
}

/// `Basic ...` from the user info of `url`, if it has any.
fn basic_auth(url: &Url) -> Option<String> {
    use base64::Engine;
    if url.username().is_empty() {
        return None;
    }
    let user = percent_encoding::percent_decode_str(url.username()).collect::<Vec<u8>>();
    let pass = percent_encoding::percent_decode_str(url.password().unwrap_or_default())
        .collect::<Vec<u8>>();
    let basic = base64::engine::general_purpose::STANDARD.encode([&user[..], b":", &pass].concat());
    Some(format!("Basic {basic}"))
}

fn push_header(msg: &mut Vec<u8>, name: &str, value: &[u8]) {
    msg.extend_from_slice(name.as_bytes());
    msg.extend_from_slice(b": ");
    msg.extend_from_slice(value);
    msg.extend_from_slice(b"\r\n");
}

/// A parsed response head.
struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    status: u16,
    headers: HeaderMap,
    body: Framing,
    keep_alive: bool,
}

impl Head {
    fn informational(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Parses a response head from the start of `buf`; `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ProviderError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(ProviderError::Decode(format!(
                "malformed HTTP response: {e}"
            )));
        }
    };
    let status = resp.code.unwrap_or(0);
    if status == 101 {
        return Err(ProviderError::Decode("unexpected protocol switch".into()));
    }
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = resp.version != Some(1);
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| ProviderError::Decode("invalid content-length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(ProviderError::Decode("conflicting content-length".into()));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                close = true;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && resp.version == Some(0) {
                    close = false;
                }
            }
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            headers.append(n, v);
        }
    }
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        close = true;
        Framing::UntilClose
    };
    Ok(Some(Head {
        len,
        status,
        headers,
        body,
        keep_alive: !close,
    }))
}

/// Reads the body that `head` announces; also says whether the connection can carry another call.
async fn read_body(
    io: &mut Io,
    buf: &mut BytesMut,
    head: &Head,
) -> Result<(Bytes, bool), ProviderError> {
    match head.body {
        Framing::Empty => Ok((Bytes::new(), true)),
        Framing::Length(n) => {
            if n > MAX_BODY {
                return Err(too_large());
            }
            while buf.len() < n {
                if read(io, buf).await? == 0 {
                    return Err(truncated());
                }
            }
            Ok((buf.split_to(n).freeze(), true))
        }
        Framing::UntilClose => {
            while read(io, buf).await? > 0 {
                if buf.len() > MAX_BODY {
                    return Err(too_large());
                }
            }
            Ok((buf.split().freeze(), false))
        }
        Framing::Chunked => {
            let mut body = BytesMut::new();
            loop {
                let (used, size) = loop {
                    match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, size))) => break (used, size),
                        Ok(httparse::Status::Partial) => {}
                        Err(_) => return Err(ProviderError::Decode("malformed chunk size".into())),
                    }
                    if read(io, buf).await? == 0 {
                        return Err(truncated());
                    }
                };
                let size = usize::try_from(size).map_err(|_| too_large())?;
                if body.len().saturating_add(size) > MAX_BODY {
                    return Err(too_large());
                }
                buf.advance(used);
                if size == 0 {
                    // Trailer lines, then an empty line.
                    loop {
                        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                            buf.advance(end + 2);
                            if end == 0 {
                                return Ok((body.freeze(), true));
                            }
                            continue;
                        }
                        if buf.len() > MAX_HEAD {
                            return Err(too_large());
                        }
                        if read(io, buf).await? == 0 {
                            return Err(truncated());
                        }
                    }
                }
                while buf.len() < size + 2 {
                    if read(io, buf).await? == 0 {
                        return Err(truncated());
                    }
                }
                body.extend_from_slice(&buf[..size]);
                if &buf[size..size + 2] != b"\r\n" {
                    return Err(ProviderError::Decode("malformed chunk".into()));
                }
                buf.advance(size + 2);
            }
        }
    }
}

async fn read(io: &mut Io, buf: &mut BytesMut) -> Result<usize, ProviderError> {
    io.read_more(buf)
        .await
        .map_err(|e| ProviderError::Connect(e.to_string()))
}

fn too_large() -> ProviderError {
    ProviderError::Decode("response too large".into())
}

impl Io {
    async fn write_all(&mut self, msg: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(msg).await,
            Io::Tls(s) => {
                s.write_all(msg).await?;
                s.flush().await
            }
        }
    }

    /// Reads what has arrived into `buf`; 0 at the end of the stream. Over plain TCP the buffer
    /// grows only once the socket is readable, so a call waiting on its provider holds none.
    async fn read_more(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Io::Plain(s) => loop {
                s.readable().await?;
                reserve(buf);
                match read_draining(s, buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return r,
                }
            },
            Io::Tls(s) => {
                reserve(buf);
                s.read_buf(buf).await
            }
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
        }
    }

    /// False when the peer has closed the connection (or sent bytes nobody asked for).
    fn is_open(&self) -> bool {
        let waker = futures::task::noop_waker_ref();
        let mut cx = Context::from_waker(waker);
        let mut byte = [0u8; 1];
        let mut peek = tokio::io::ReadBuf::new(&mut byte);
        match self.tcp().poll_peek(&mut cx, &mut peek) {
            Poll::Pending => true,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => false,
            // A TLS peer may send records between answers (session tickets, or a close_notify,
            // which the next read reports as a stale connection); plain HTTP has no such thing.
            Poll::Ready(Ok(_)) => matches!(self, Io::Tls(_)),
        }
    }
}

/// One non-blocking read into `buf`. A read that returns less than the space it was given has
/// emptied the socket, so the readiness tokio keeps for it is cleared (as tokio's own `poll_read`
/// does): the next read then waits for the next event, instead of first making a system call
/// that can only say `WouldBlock`. That call was one extra `recvfrom` per provider call.
fn read_draining(s: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.capacity() - buf.len();
    let mut drained = None;
    // `try_io` clears the readiness it saw when its closure says `WouldBlock`; readiness from an
    // event that arrived meanwhile is kept.
    let r = s.try_io(tokio::io::Interest::READABLE, || {
        match s.try_read_buf(buf) {
            Ok(n) if n > 0 && n < spare => {
                drained = Some(n);
                Err(io::ErrorKind::WouldBlock.into())
            }
            r => r,
        }
    });
    drained.map_or(r, Ok)
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
}

/// rustls with the platform's certificate verifier (the system's roots), as reqwest uses, and
/// HTTP/1.1 as the only protocol offered.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio::net::TcpListener;

    use super::*;

    /// What a scripted server does with one request.
    #[derive(Clone)]
    enum Reply {
        /// Writes these bytes and keeps the connection for the next request.
        Keep(&'static [u8]),
        /// Writes these bytes and closes the connection.
        Close(&'static [u8]),
        /// Writes nothing and waits.
        Hang,
    }

    struct Server {
        url: Url,
        connections: Arc<AtomicUsize>,
        /// Connections the client closed.
        closed: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    /// A loopback HTTP/1.1 server that answers the n-th request (over all connections) with
    /// `script[n]`, and records every request and connection.
    async fn scripted(script: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!(
            "http://{}/v1/x?k=1",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (conns, gone, reqs) = (connections.clone(), closed.clone(), requests.clone());
        let script = Arc::new(script);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_conn(tcp, script.clone(), reqs.clone(), gone.clone()));
            }
        });
        Server {
            url,
            connections,
            closed,
            requests,
        }
    }

    async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(
        mut io: S,
        script: Arc<Vec<Reply>>,
        requests: Arc<Mutex<Vec<Vec<u8>>>>,
        closed: Arc<AtomicUsize>,
    ) {
        let mut buf = Vec::new();
        loop {
            // One request: the head, then content-length bytes of body.
            let (head_end, len) = loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    break (end + 4, len);
                }
                let mut chunk = [0u8; 4096];
                match io.read(&mut chunk).await {
                    Ok(0) | Err(_) => {
                        closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            while buf.len() < head_end + len {
                let mut chunk = [0u8; 4096];
                match io.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let request: Vec<u8> = buf.drain(..head_end + len).collect();
            let n = {
                let mut all = requests.lock().unwrap();
                all.push(request);
                all.len() - 1
            };
            match script.get(n).cloned().unwrap_or(Reply::Hang) {
                Reply::Keep(bytes) => {
                    io.write_all(bytes).await.unwrap();
                    io.flush().await.unwrap();
                }
                Reply::Close(bytes) => {
                    io.write_all(bytes).await.unwrap();
                    let _ = io.shutdown().await;
                    return;
                }
                Reply::Hang => std::future::pending::<()>().await,
            }
        }
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

    fn client() -> HttpClient {
        HttpClient::direct(&ClientOptions::default())
    }

    async fn post(client: &HttpClient, url: &Url) -> Result<Answer, ProviderError> {
        client
            .post_json(url, &HeaderMap::new(), &json!({"q": 1}))
            .await
    }

    #[tokio::test]
    async fn keep_alive_connections_carry_one_call_after_another() {
        let server = scripted(vec![Reply::Keep(OK); 3]).await;
        let client = client();
        for _ in 0..3 {
            let (status, headers, body) = post(&client, &server.url).await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(&body[..], b"{\"ok\":true}");
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_request_has_its_framing_defaults_and_configured_headers_once() {
        let server = scripted(vec![Reply::Keep(OK)]).await;
        let mut headers =
            crate::providers::fixed_headers(&[("authorization", "Bearer sk-test")]).unwrap();
        headers.insert("content-length", HeaderValue::from_static("999"));
        headers.insert("user-agent", HeaderValue::from_static("custom/1"));
        client()
            .post_json(&server.url, &headers, &json!({"q": "é"}))
            .await
            .unwrap();
        let raw = server.requests.lock().unwrap()[0].clone();
        let text = String::from_utf8(raw).unwrap();
        let port = server.url.port().unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        assert_eq!(lines.next(), Some("POST /v1/x?k=1 HTTP/1.1"));
        let mut lines: Vec<&str> = lines.collect();
        lines.sort();
        let host = format!("host: 127.0.0.1:{port}");
        let mut want = vec![
            "accept: application/json",
            "authorization: Bearer sk-test",
            "content-length: 10",
            "content-type: application/json",
            &host,
            "user-agent: custom/1",
        ];
        want.sort();
        assert_eq!(lines, want);
        assert_eq!(body, "{\"q\":\"é\"}");
    }

    #[tokio::test]
    async fn userinfo_in_the_url_becomes_basic_auth() {
        let server = scripted(vec![Reply::Keep(OK)]).await;
        let mut url = server.url.clone();
        url.set_username("judge").unwrap();
        url.set_password(Some("p%40ss")).unwrap();
        post(&client(), &url).await.unwrap();
        let text = String::from_utf8(server.requests.lock().unwrap()[0].clone()).unwrap();
        // base64("judge:p@ss")
        assert!(
            text.contains("authorization: Basic anVkZ2U6cEBzcw==\r\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn chunked_bodies_are_joined_and_the_connection_is_kept() {
        const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n6;ext=1\r\n:true}\r\n0\r\nx-trailer: 1\r\n\r\n";
        let server = scripted(vec![Reply::Keep(CHUNKED), Reply::Keep(OK)]).await;
        let client = client();
        let (_, _, body) = post(&client, &server.url).await.unwrap();
        assert_eq!(&body[..], b"{\"a\":true}");
        post(&client, &server.url).await.unwrap();
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn interim_100_answers_are_skipped() {
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\ncontent-length: 2\r\n\r\n{}";
        let server = scripted(vec![Reply::Keep(CONTINUE)]).await;
        let (status, headers, body) = post(&client(), &server.url).await.unwrap();
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "2");
        assert_eq!(&body[..], b"{}");
    }

    #[tokio::test]
    async fn a_body_until_close_is_read_and_the_connection_is_not_reused() {
        const UNTIL_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n{\"b\":1}";
        let server = scripted(vec![Reply::Close(UNTIL_CLOSE), Reply::Keep(OK)]).await;
        let client = client();
        let (_, _, body) = post(&client, &server.url).await.unwrap();
        assert_eq!(&body[..], b"{\"b\":1}");
        post(&client, &server.url).await.unwrap();
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connection_close_and_http_1_0_answers_are_not_reused() {
        const CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
        const OLD: &[u8] = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        // The server keeps both connections open; the client must still not reuse them.
        let server = scripted(vec![Reply::Keep(CLOSE), Reply::Keep(OLD), Reply::Keep(OK)]).await;
        let client = client();
        for _ in 0..3 {
            post(&client, &server.url).await.unwrap();
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced_without_an_error() {
        // The server answers as if it would keep the connection, then closes it.
        let server = scripted(vec![Reply::Close(OK), Reply::Keep(OK)]).await;
        let client = client();
        post(&client, &server.url).await.unwrap();
        // Past FRESH, the idle check finds the close before the request is sent.
        tokio::time::sleep(FRESH + Duration::from_millis(50)).await;
        let (status, _, _) = post(&client, &server.url).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
        assert_eq!(server.requests.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_reused_connection_closed_before_any_answer_is_retried_once_on_a_fresh_one() {
        let server = scripted(vec![Reply::Keep(OK), Reply::Close(b""), Reply::Keep(OK)]).await;
        let client = client();
        post(&client, &server.url).await.unwrap();
        let (status, _, _) = post(&client, &server.url).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
        assert_eq!(server.requests.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_fresh_connection_closed_before_any_answer_fails_without_a_retry() {
        let server = scripted(vec![Reply::Close(b"")]).await;
        let err = post(&client(), &server.url).await.unwrap_err();
        assert!(matches!(err, ProviderError::Connect(_)), "{err:?}");
        assert_eq!(server.requests.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn truncated_and_malformed_answers_are_errors() {
        const SHORT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{\"cut";
        const GARBAGE: &[u8] = b"SSH-2.0-OpenSSH_9.6\r\n\r\n";
        const BAD_LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: lots\r\n\r\n{}";
        const HUGE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 999999999999\r\n\r\n{}";
        let server = scripted(vec![
            Reply::Close(SHORT),
            Reply::Close(GARBAGE),
            Reply::Close(BAD_LENGTH),
            Reply::Close(HUGE),
        ])
        .await;
        let client = client();
        let short = post(&client, &server.url).await.unwrap_err();
        assert!(
            short
                .to_string()
                .contains("before the response was complete"),
            "{short}"
        );
        for want in [
            "malformed HTTP response",
            "invalid content-length",
            "too large",
        ] {
            let err = post(&client, &server.url).await.unwrap_err();
            assert!(matches!(err, ProviderError::Decode(_)), "{err:?}");
            assert!(err.to_string().contains(want), "{err} lacks {want}");
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_a_closed_port_is_a_connect_error() {
        let server = scripted(vec![Reply::Hang]).await;
        let client = HttpClient::direct(&ClientOptions {
            timeout: Duration::from_millis(100),
            ..ClientOptions::default()
        });
        assert_eq!(
            post(&client, &server.url).await.unwrap_err(),
            ProviderError::Timeout
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let closed = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let err = post(&client, &closed).await.unwrap_err();
        assert!(matches!(err, ProviderError::Connect(_)), "{err:?}");
    }

    #[tokio::test]
    async fn idle_connections_beyond_the_cap_are_closed() {
        let server = scripted(vec![Reply::Keep(OK); 8]).await;
        let client = HttpClient::direct(&ClientOptions {
            max_idle: 2,
            ..ClientOptions::default()
        });
        // Four calls at once need four connections; only two stay for the next four.
        let four = || futures::future::join_all((0..4).map(|_| post(&client, &server.url)));
        assert!(four().await.iter().all(Result::is_ok));
        assert_eq!(server.connections.load(Ordering::SeqCst), 4);
        assert!(four().await.iter().all(Result::is_ok));
        assert_eq!(server.connections.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn idle_connections_are_closed_when_they_expire_even_with_no_calls() {
        let server = scripted(vec![Reply::Keep(OK); 4]).await;
        let client = HttpClient::direct(&ClientOptions {
            idle_timeout: Duration::from_millis(100),
            ..ClientOptions::default()
        });
        let two = futures::future::join(post(&client, &server.url), post(&client, &server.url));
        let (a, b) = two.await;
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
        assert_eq!(server.closed.load(Ordering::SeqCst), 0);
        // No call takes them; the client closes both once they expire.
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.closed.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(server.closed.load(Ordering::SeqCst), 2);
        // The next call opens a fresh connection.
        post(&client, &server.url).await.unwrap();
        assert_eq!(server.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_burst_of_new_connections_looks_the_name_up_once() {
        let server = scripted(vec![Reply::Keep(OK); 20]).await;
        let mut url = server.url.clone();
        url.set_host(Some("localhost")).unwrap();
        let client = client();
        let calls = futures::future::join_all((0..20).map(|_| post(&client, &url))).await;
        assert!(calls.iter().all(Result::is_ok), "{calls:?}");
        assert_eq!(server.connections.load(Ordering::SeqCst), 20);
        let Transport::Direct(direct) = &*client.0 else {
            unreachable!("a direct client")
        };
        assert_eq!(direct.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn https_is_verified_against_the_roots_and_connections_are_reused() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = cert.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (conns, reqs) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                if let Ok(tls) = acceptor.accept(tcp).await {
                    tokio::spawn(serve_conn(
                        tls,
                        Arc::new(vec![Reply::Keep(OK); 4]),
                        reqs.clone(),
                        Arc::new(AtomicUsize::new(0)),
                    ));
                }
            }
        });
        let url = Url::parse(&format!("https://localhost:{port}/v1/x")).unwrap();

        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let trusting = HttpClient(Arc::new(Transport::Direct(Direct::new(
            &ClientOptions::default(),
            Some(client_cfg),
        ))));
        for _ in 0..2 {
            let (status, _, body) = post(&trusting, &url).await.unwrap();
            assert_eq!((status, &body[..]), (200, &b"{\"ok\":true}"[..]));
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);

        // The platform's roots do not include a certificate made a moment ago.
        let err = post(&client(), &url).await.unwrap_err();
        assert!(err.to_string().contains("TLS handshake failed"), "{err}");
        assert_eq!(requests.lock().unwrap().len(), 2);
    }

    #[test]
    fn http2_prior_knowledge_is_h2c_over_tcp_and_reqwest_over_tls() {
        let opts = ClientOptions {
            http2_prior_knowledge: true,
            ..ClientOptions::default()
        };
        let over = |url| HttpClient::new(url, &opts).unwrap().transport();
        assert_eq!(over("http://127.0.0.1:1/v1"), "h2c");
        assert_eq!(over("https://127.0.0.1:1/v1"), "reqwest");
        assert_eq!(
            HttpClient::direct(&ClientOptions::default()).transport(),
            "direct"
        );
    }
}
