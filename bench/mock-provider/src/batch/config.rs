//! How batches behave: the `--batch-*` settings, and the providers' limits on one batch.

use std::time::Duration;

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

/// Settings for unit tests: this delay and these shares, seed 7, no expiry and no stall.
#[cfg(test)]
pub fn test_config(delay_ms: u64, fail: f64, expire: f64) -> BatchConfig {
    BatchConfig {
        delay: Duration::from_millis(delay_ms),
        fail_pct: fail,
        expire_pct: expire,
        expire_after: None,
        seed: 7,
        create_stall: Duration::ZERO,
    }
}
