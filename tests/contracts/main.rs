//! Contract suites: what a trait with more than one implementation promises, written once as
//! generic cases and run against each implementation, so that a fleet (Redis) and a single
//! node (in process, on disk) keep the same promises.
//!
//! One module per trait: the job store ([`job_store`]), the rate limiter ([`rate_limit`]), the
//! verdict cache's tiers ([`cache_tier`]) and the daily spend ledger ([`spend_ledger`]). The
//! Redis implementations run against a `redis-server` of their own on a loopback port
//! ([`support::RedisServer`]); without one (and with `LLM_JUDGE_SKIP_REDIS=1`) their cases
//! pass without running, as the service's fleet tests do.

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use llm_judge_fleet::Redis;
use support::RedisServer;

/// For each implementation, a module with one test per case: the test opens the
/// implementation with its opener (`None`: no Redis to run on, see [`RedisServer::start`]) and
/// runs the case, a generic function of the suite, on it.
macro_rules! contract {
    (cases: $cases:tt, implementations: { $($imp:ident: $open:ident),+ $(,)? }) => {
        $( contract!(@one $cases $imp $open); )+
    };
    (@one [$($case:ident),+ $(,)?] $imp:ident $open:ident) => {
        mod $imp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(subject) = super::$open().await else {
                        return;
                    };
                    super::$case(&subject).await;
                }
            )+
        }
    };
}

mod cache_tier;
mod job_items;
mod job_retry;
mod job_store;
mod rate_limit;
mod spend_ledger;

/// A handle on `server` as a replica opens one, from the `[redis]` settings (a generous timeout
/// for a loaded machine, and `extra` besides), with the probe that notices when Redis answers
/// again after an outage.
fn redis_handle(server: &RedisServer, extra: &str) -> Arc<Redis> {
    let toml = format!(
        "[redis]\nurl = \"{}\"\ntimeout_ms = 2000\n{extra}\n",
        server.url()
    );
    let settings = support::settings(&toml, &[]);
    let redis = Redis::connect(&settings.redis)
        .expect("the redis settings are usable")
        .expect("a redis url is set");
    redis.start_probe();
    redis
}

/// Polls `f` every 10 ms until it gives a value, for at most `limit`; panics naming `what`.
async fn within<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
