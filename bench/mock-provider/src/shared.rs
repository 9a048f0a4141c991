//! Everything the handlers share, made from the command line, and the `/stats` body drawn from
//! it.

use std::time::Duration;

use http::HeaderValue;

use crate::answers::Answers;
use crate::batch::{self, BatchConfig};
use crate::body::Canned;
use crate::cache::PromptCache;
use crate::cli::Cli;
use crate::faults::FaultMix;
use crate::latency::LatencyDist;
use crate::stats::Stats;
use crate::timer::Timer;
use crate::window::WindowLimit;

/// Everything the handlers share.
pub struct Shared {
    pub answers: Answers,
    pub batches: batch::Store,
    pub latency: LatencyDist,
    pub timer: Timer,
    pub faults: FaultMix,
    pub retry_after: HeaderValue,
    pub hang: Duration,
    pub stats: Stats,
    pub window: Option<WindowLimit>,
}

impl Shared {
    /// The `/stats` body: the chat counters with the batch counters added.
    pub fn render_stats(&self) -> String {
        let mut out = self.stats.render();
        out.pop();
        out.push_str(",\"batches\":");
        out.push_str(&self.batches.stats.render());
        if let Some(w) = &self.window {
            out.push_str(",\"window\":");
            out.push_str(&w.render());
        }
        out.push('}');
        out
    }

    pub fn from_cli(cli: &Cli) -> Result<Shared, String> {
        let faults = FaultMix::new(cli)?;
        let latency = match (cli.latency_ms, cli.latency_dist.clone()) {
            (Some(ms), _) => LatencyDist::parse(&format!("fixed:{ms}"))?,
            (None, Some(d)) => d,
            (None, None) => LatencyDist::Fixed(0.0),
        };
        let retry_after = HeaderValue::from_str(cli.retry_after.trim())
            .map_err(|_| "--retry-after is not a valid header value".to_string())?;
        if !cli.hang_s.is_finite() || cli.hang_s < 0.0 {
            return Err("--hang-s must be a non-negative number".into());
        }
        if cli.cached_tokens > cli.prompt_tokens {
            return Err("--cached-tokens cannot be more than --prompt-tokens".into());
        }
        let batch_config = BatchConfig {
            delay: Duration::from_millis(cli.batch_delay_ms),
            fail_pct: cli.batch_fail_pct,
            expire_pct: cli.batch_expire_pct,
            expire_after: cli.batch_expire_after_ms.map(Duration::from_millis),
            seed: cli.batch_seed,
            create_stall: Duration::from_millis(cli.batch_create_stall_ms),
        };
        batch_config.validate()?;
        Ok(Shared {
            answers: Answers {
                canned: Canned::new(
                    &cli.text,
                    cli.prompt_tokens,
                    cli.completion_tokens,
                    cli.cached_tokens,
                ),
                cache: PromptCache::new(cli.cached_tokens),
                prompt_tokens: cli.prompt_tokens,
                completion_tokens: cli.completion_tokens,
            },
            batches: batch::Store::new(batch_config, batch::Limits::default()),
            latency,
            timer: Timer::start().map_err(|e| format!("cannot start the timer thread: {e}"))?,
            faults,
            retry_after,
            hang: Duration::from_secs_f64(cli.hang_s),
            stats: Stats::default(),
            window: cli
                .limit_requests
                .map(|limit| WindowLimit::new(limit, cli.window_ms.max(1) * 1000)),
        })
    }
}
