//! The two provider batch APIs: OpenAI's Files + Batch API ([`openai`]) and Anthropic's Message
//! Batches ([`anthropic`]).
//!
//! Not on the hot path: bodies are parsed and written with serde_json, and the state sits behind
//! one mutex per API. State lives in memory only: a restart of the stand-in loses every file and
//! batch.
//!
//! Nothing runs in the background. A batch is planned when it is created: each request's fate
//! (succeed, fail, expire: exactly the configured shares of the batch, which requests drawn from
//! the seed), the order the requests are processed in and the order results are listed in (both
//! drawn from the seed). What a poll sees is worked out from the time elapsed since creation:
//! requests are processed one after another, evenly over the batch's delay, so the counts that
//! the API shows grow from poll to poll, and the batch ends when the delay has passed.

pub mod anthropic;
pub mod openai;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::Reply;

/// The largest request body read on a batch endpoint: OpenAI takes files up to 512 MB, and a
/// multipart upload carries a little more.
pub const MAX_BODY: usize = 600_000_000;

/// How batches behave (command-line flags).
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// From creation to the end of a batch (`--batch-delay-ms`).
    pub delay: Duration,
    /// Percent of requests that fail (`--batch-fail-pct`).
    pub fail_pct: f64,
    /// Percent of requests that expire (`--batch-expire-pct`).
    pub expire_pct: f64,
    /// The whole batch expires this long after creation (`--batch-expire-after-ms`).
    pub expire_after: Option<Duration>,
    /// Seeds every batch's fates, processing order and result order (`--batch-seed`).
    pub seed: u64,
    /// A batch's creation is answered this long after the batch is made
    /// (`--batch-create-stall-ms`): longer than the client waits, the answer is lost.
    pub create_stall: Duration,
}

impl BatchConfig {
    /// Checks the percentages.
    pub fn validate(&self) -> Result<(), String> {
        for (p, flag) in [
            (self.fail_pct, "--batch-fail-pct"),
            (self.expire_pct, "--batch-expire-pct"),
        ] {
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("{flag} must be a percentage from 0 to 100"));
            }
        }
        if self.fail_pct + self.expire_pct > 100.0 + 1e-9 {
            return Err("--batch-fail-pct and --batch-expire-pct add up to over 100".into());
        }
        Ok(())
    }
}

/// The providers' limits per batch, in bytes and requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// OpenAI: the largest file uploaded (512 MB).
    pub openai_file_bytes: usize,
    /// OpenAI: the largest batch input file (200 MB).
    pub openai_batch_bytes: usize,
    /// OpenAI: the most requests in a batch (50,000).
    pub openai_requests: usize,
    /// Anthropic: the largest batch creation body (256 MB).
    pub anthropic_bytes: usize,
    /// Anthropic: the most requests in a batch (100,000).
    pub anthropic_requests: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            openai_file_bytes: 512_000_000,
            openai_batch_bytes: 200_000_000,
            openai_requests: 50_000,
            anthropic_bytes: 256_000_000,
            anthropic_requests: 100_000,
        }
    }
}

/// A request to a batch endpoint, whole.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub content_type: Option<String>,
    /// Where the client reached the stand-in (`host:port`), for the URLs it hands out.
    pub host: String,
    pub body: Bytes,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The value of query parameter `name`, if given (values are ids and numbers: no decoding).
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// True for the paths the batch APIs answer (OpenAI's with or without `/v1`, as for chat).
pub fn serves(path: &str) -> bool {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under("/v1/files")
        || under("/files")
        || under("/v1/batches")
        || under("/batches")
        || under("/v1/messages/batches")
}

/// Everything the batch endpoints keep.
pub struct Store {
    config: BatchConfig,
    limits: Limits,
    openai: std::sync::Mutex<openai::State>,
    anthropic: std::sync::Mutex<anthropic::State>,
    pub stats: BatchStats,
}

impl Store {
    pub fn new(config: BatchConfig, limits: Limits) -> Store {
        Store {
            config,
            limits,
            openai: Default::default(),
            anthropic: Default::default(),
            stats: BatchStats::default(),
        }
    }
}

/// Answers a request to a batch endpoint.
pub async fn handle(shared: &crate::Shared, req: Request) -> Reply {
    let creating = req.method == "POST"
        && matches!(
            req.path().trim_end_matches('/'),
            "/v1/batches" | "/batches" | "/v1/messages/batches"
        );
    let reply = if req.path().starts_with("/v1/messages/batches") {
        anthropic::handle(shared, &req)
    } else {
        openai::handle(shared, &req).await
    };
    let stall = shared.batches.config.create_stall;
    if creating && !stall.is_zero() {
        // The batch is made; its answer comes late (or, to a client that gave up, never).
        tokio::time::sleep(stall).await;
    }
    reply
}

// ---------------------------------------------------------------------------------------------
// Planning and progress, the same for both APIs.

/// How one request of a batch turns out once processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Succeed,
    Fail,
    Expire,
}

/// What is drawn for a batch when it is created.
#[derive(Debug)]
pub struct Plan {
    /// By input position.
    pub fates: Vec<Fate>,
    /// Input positions in the order they are processed.
    pub processing: Vec<usize>,
    /// Input positions in the order results are listed.
    pub listing: Vec<usize>,
}

/// `pct` percent of `n`, rounded to the nearest whole request.
fn share(n: usize, pct: f64) -> usize {
    ((n as f64) * pct / 100.0).round() as usize
}

impl Plan {
    /// The plan of the `ordinal`-th batch (from 1) of an API, for `n` requests.
    pub fn draw(n: usize, config: &BatchConfig, ordinal: u64) -> Plan {
        let mut rng = StdRng::seed_from_u64(
            config
                .seed
                .wrapping_add(ordinal.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        let fail = share(n, config.fail_pct).min(n);
        let expire = share(n, config.expire_pct).min(n - fail);
        let mut picks: Vec<usize> = (0..n).collect();
        picks.shuffle(&mut rng);
        let mut fates = vec![Fate::Succeed; n];
        for &i in &picks[..fail] {
            fates[i] = Fate::Fail;
        }
        for &i in &picks[fail..fail + expire] {
            fates[i] = Fate::Expire;
        }
        let mut processing: Vec<usize> = (0..n).collect();
        processing.shuffle(&mut rng);
        let mut listing: Vec<usize> = (0..n).collect();
        listing.shuffle(&mut rng);
        Plan {
            fates,
            processing,
            listing,
        }
    }
}

/// When things happen in a batch, from its creation.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// Processing starts (OpenAI: validation ends).
    pub start: Duration,
    /// The last request is processed.
    pub processed: Duration,
    /// The batch is done (OpenAI: finalizing ends).
    pub done: Duration,
    /// The whole batch expires then (when before `done`).
    pub expire: Option<Duration>,
    /// A cancel takes this long to finish.
    pub cancel_lag: Duration,
}

/// Where a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Processing has not started (OpenAI's `validating`).
    Waiting,
    Processing,
    /// Every request processed, the batch not done yet (OpenAI's `finalizing`).
    Finishing,
    /// Cancelled at `since`, not finished cancelling yet.
    Cancelling {
        since: Duration,
    },
    /// Over, at `at`.
    Ended {
        at: Duration,
        how: Ending,
    },
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Completed,
    /// The whole batch ran out of time.
    Expired,
    /// Cancelled at `since`.
    Cancelled {
        since: Duration,
    },
}

/// A batch's stage, and how many of its requests have been processed (the first ones of the
/// processing order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub stage: Stage,
    pub processed: usize,
}

impl Progress {
    pub fn ended(&self) -> bool {
        matches!(self.stage, Stage::Ended { .. })
    }
}

impl Timeline {
    /// A batch that ends `delay` after creation, with `--batch-expire-after-ms`; processing
    /// runs over the part of the delay between `start` and `processed` (fractions of it).
    pub fn new(config: &BatchConfig, start: f64, processed: f64) -> Timeline {
        let delay = config.delay;
        Timeline {
            start: delay.mul_f64(start),
            processed: delay.mul_f64(processed),
            done: delay,
            expire: config.expire_after,
            cancel_lag: delay / 10,
        }
    }

    /// The time the batch expires at, from creation (24 hours unless configured).
    pub fn expires(&self) -> Duration {
        self.expire.unwrap_or(Duration::from_secs(24 * 3600))
    }

    /// How many of `n` requests are processed by `t`.
    pub fn processed_by(&self, n: usize, t: Duration) -> usize {
        if t >= self.processed {
            n
        } else if t < self.start {
            0
        } else {
            let span = (self.processed - self.start).as_nanos();
            let part = (t - self.start).as_nanos();
            (n as u128 * part / span).min(n as u128) as usize
        }
    }

    /// Where a batch of `n` requests is at `t`, cancelled at `cancel` if it was.
    pub fn progress(&self, n: usize, t: Duration, cancel: Option<Duration>) -> Progress {
        if let Some(c) = cancel {
            let processed = self.processed_by(n, c);
            let end = c + self.cancel_lag;
            let stage = if t < end {
                Stage::Cancelling { since: c }
            } else {
                Stage::Ended {
                    at: end,
                    how: Ending::Cancelled { since: c },
                }
            };
            return Progress { stage, processed };
        }
        if let Some(e) = self.expire.filter(|e| *e < self.done)
            && t >= e
        {
            return Progress {
                stage: Stage::Ended {
                    at: e,
                    how: Ending::Expired,
                },
                processed: self.processed_by(n, e),
            };
        }
        let stage = if t >= self.done {
            Stage::Ended {
                at: self.done,
                how: Ending::Completed,
            }
        } else if t >= self.processed {
            Stage::Finishing
        } else if t >= self.start {
            Stage::Processing
        } else {
            Stage::Waiting
        };
        Progress {
            stage,
            processed: self.processed_by(n, t),
        }
    }
}

/// When a batch was created: the clock its timeline runs on, and the wall time of it.
#[derive(Debug, Clone, Copy)]
pub struct Created {
    pub at: std::time::Instant,
    pub wall: SystemTime,
}

impl Created {
    pub fn now() -> Created {
        Created {
            at: std::time::Instant::now(),
            wall: SystemTime::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.at.elapsed()
    }

    /// Unix seconds of the moment `d` after creation.
    pub fn unix(&self, d: Duration) -> u64 {
        (self.wall + d)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// RFC 3339 (UTC, microseconds) of the moment `d` after creation.
    pub fn rfc3339(&self, d: Duration) -> String {
        humantime::format_rfc3339_micros(self.wall + d).to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Small shared pieces.

/// A random id: `prefix` and `len` characters of `[0-9A-Za-z]` (`hex`: of `[0-9a-f]`).
pub fn random_id(prefix: &str, len: usize, hex: bool) -> String {
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const HEX: &[u8] = b"0123456789abcdef";
    let alphabet = if hex { HEX } else { ALNUM };
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    for _ in 0..len {
        id.push(alphabet[rand::random_range(0..alphabet.len())] as char);
    }
    id
}

/// True when `json` opens an object (serde would also read a struct from an array).
pub fn is_object(json: &[u8]) -> bool {
    json.trim_ascii_start().starts_with(b"{")
}

/// A JSON answer.
pub fn json(status: u16, value: &serde_json::Value) -> Reply {
    Reply::Answer {
        status,
        body: Bytes::from(value.to_string()),
        content_type: "application/json",
        retry_after: false,
    }
}

/// What the batch endpoints count, per API, for `/stats`.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    FilesUploaded,
    BatchesCreated,
    Polls,
    Lists,
    Cancels,
    ResultsFetched,
    Refused,
}

const OPS: [(Op, &str); 7] = [
    (Op::FilesUploaded, "files_uploaded"),
    (Op::BatchesCreated, "batches_created"),
    (Op::Polls, "polls"),
    (Op::Lists, "lists"),
    (Op::Cancels, "cancels"),
    (Op::ResultsFetched, "results_fetched"),
    (Op::Refused, "refused"),
];

/// Counters of batch operations, per API.
#[derive(Default)]
pub struct BatchStats {
    openai: [AtomicU64; OPS.len()],
    anthropic: [AtomicU64; OPS.len()],
}

/// Which API a counter belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    OpenAi,
    Anthropic,
}

impl BatchStats {
    pub fn count(&self, side: Side, op: Op) {
        let counters = match side {
            Side::OpenAi => &self.openai,
            Side::Anthropic => &self.anthropic,
        };
        counters[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `{"openai":{...},"anthropic":{...}}`.
    pub fn render(&self) -> String {
        let side = |counters: &[AtomicU64; OPS.len()], skip_files: bool| {
            let fields: Vec<String> = OPS
                .iter()
                .filter(|(op, _)| !(skip_files && matches!(op, Op::FilesUploaded)))
                .map(|(op, name)| {
                    format!(
                        "\"{name}\":{}",
                        counters[*op as usize].load(Ordering::Relaxed)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        format!(
            "{{\"openai\":{},\"anthropic\":{}}}",
            side(&self.openai, false),
            side(&self.anthropic, true)
        )
    }

    pub fn reset(&self) {
        for c in self.openai.iter().chain(&self.anthropic) {
            c.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(delay_ms: u64, fail: f64, expire: f64) -> BatchConfig {
        BatchConfig {
            delay: Duration::from_millis(delay_ms),
            fail_pct: fail,
            expire_pct: expire,
            expire_after: None,
            seed: 7,
            create_stall: Duration::ZERO,
        }
    }

    #[test]
    fn plans_have_exact_shares_and_follow_the_seed() {
        let c = config(100, 10.0, 4.0);
        let p = Plan::draw(250, &c, 1);
        let count = |f| p.fates.iter().filter(|x| **x == f).count();
        assert_eq!((count(Fate::Fail), count(Fate::Expire)), (25, 10));
        assert_eq!(count(Fate::Succeed), 215);
        for order in [&p.processing, &p.listing] {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..250).collect::<Vec<_>>(), "a permutation");
            assert_ne!(*order, (0..250).collect::<Vec<_>>(), "not the input order");
        }
        let again = Plan::draw(250, &c, 1);
        assert_eq!((&p.fates, &p.listing), (&again.fates, &again.listing));
        let next = Plan::draw(250, &c, 2);
        assert_ne!(p.listing, next.listing, "each batch draws its own");
        let other_seed = Plan::draw(250, &BatchConfig { seed: 8, ..c }, 1);
        assert_ne!(p.listing, other_seed.listing);
        // Rounded to the nearest request, never more than the batch.
        let half = Plan::draw(1, &config(0, 50.0, 50.0), 1);
        assert_eq!(half.fates, vec![Fate::Fail]);
        assert!(Plan::draw(0, &c, 1).fates.is_empty());
    }

    #[test]
    fn progress_follows_the_timeline() {
        let t = Timeline::new(&config(1000, 0.0, 0.0), 0.1, 0.9);
        let ms = Duration::from_millis;
        let at = |m| t.progress(100, ms(m), None);
        assert_eq!(at(0).stage, Stage::Waiting);
        assert_eq!(at(99).processed, 0);
        assert_eq!((at(100).stage, at(100).processed), (Stage::Processing, 0));
        assert_eq!(at(500).processed, 50);
        assert_eq!(at(899).processed, 99);
        assert_eq!((at(900).stage, at(900).processed), (Stage::Finishing, 100));
        let end = Stage::Ended {
            at: ms(1000),
            how: Ending::Completed,
        };
        assert_eq!(at(1000).stage, end);
        assert_eq!(at(5000).stage, end);
        // Cancelled at 300 ms: what was processed by then, over a tenth of the delay later.
        let c = t.progress(100, ms(350), Some(ms(300)));
        assert_eq!(c.stage, Stage::Cancelling { since: ms(300) });
        assert_eq!(c.processed, 25);
        let c = t.progress(100, ms(400), Some(ms(300)));
        assert_eq!(
            c.stage,
            Stage::Ended {
                at: ms(400),
                how: Ending::Cancelled { since: ms(300) }
            }
        );
        assert_eq!(c.processed, 25);
        // Expiring before the end.
        let e = Timeline {
            expire: Some(ms(700)),
            ..t
        };
        assert_eq!(e.progress(100, ms(600), None).stage, Stage::Processing);
        let p = e.progress(100, ms(701), None);
        assert_eq!(
            p.stage,
            Stage::Ended {
                at: ms(700),
                how: Ending::Expired
            }
        );
        assert_eq!(p.processed, 75);
        // An expiry after the end changes nothing.
        let late = Timeline {
            expire: Some(ms(2000)),
            ..t
        };
        assert_eq!(late.progress(100, ms(3000), None).stage, end);
        // No delay: done at once.
        let now = Timeline::new(&config(0, 0.0, 0.0), 0.1, 0.9);
        assert!(now.progress(5, Duration::ZERO, None).ended());
        assert_eq!(now.progress(5, Duration::ZERO, None).processed, 5);
    }

    #[test]
    fn paths_and_queries() {
        for p in [
            "/v1/files",
            "/files/file-1/content",
            "/v1/batches",
            "/batches/b/cancel",
            "/v1/messages/batches/x/results",
        ] {
            assert!(serves(p), "{p}");
        }
        for p in [
            "/v1/filesx",
            "/v1/messages",
            "/v1/chat/completions",
            "/batch",
        ] {
            assert!(!serves(p), "{p}");
        }
        let r = Request {
            method: "GET".into(),
            target: "/v1/batches?limit=2&after=batch_1".into(),
            content_type: None,
            host: "h".into(),
            body: Bytes::new(),
        };
        assert_eq!(r.path(), "/v1/batches");
        assert_eq!(
            (r.query("limit"), r.query("after")),
            (Some("2"), Some("batch_1"))
        );
        assert_eq!(r.query("before"), None);
    }

    #[test]
    fn ids_look_like_the_providers() {
        let f = random_id("file-", 22, false);
        assert_eq!(f.len(), 27);
        assert!(f[5..].chars().all(|c| c.is_ascii_alphanumeric()));
        let b = random_id("batch_", 32, true);
        assert!(
            b[6..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{b}"
        );
        assert_ne!(random_id("x", 16, false), random_id("x", 16, false));
    }
}
