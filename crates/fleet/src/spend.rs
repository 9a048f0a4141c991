//! The fleet's ledger of what each client token spent per day (`[auth] daily_budget_usd`,
//! `daily_budget_tokens`): a hash `PREFIX:spend:CLIENT:DAY` with the dollars (`usd`, added with
//! HINCRBYFLOAT) and the tokens (`tokens`, HINCRBY), kept two days. `CLIENT` is the token's
//! `api::budget::client_name`, a digest, never the token.
//!
//! A replica that cannot reach Redis keeps counting its own spend, and what it heard last of
//! the others'; it tells Redis what it spent meanwhile once Redis answers again.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::Redis;
use llm_judge_work::budget::Amount;
use llm_judge_work::budget::daily::SpendLedger;

/// How long a day's figures are kept: past its end, for the replicas whose clocks lag.
const KEEP_S: i64 = 2 * 86_400;

pub struct RedisSpend {
    redis: Arc<Redis>,
}

impl RedisSpend {
    pub fn new(redis: Arc<Redis>) -> RedisSpend {
        RedisSpend { redis }
    }
}

impl SpendLedger for RedisSpend {
    fn add(&self, client: &str, day: u64, delta: Amount) -> BoxFuture<'_, Option<Amount>> {
        let key = self.redis.key(&format!("spend:{client}:{day}"));
        async move {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("HINCRBYFLOAT")
                .arg(&key)
                .arg("usd")
                .arg(delta.cost_usd)
                .cmd("HINCRBY")
                .arg(&key)
                .arg("tokens")
                .arg(delta.tokens)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(KEEP_S)
                .ignore();
            let (usd, tokens): (f64, u64) = self
                .redis
                .call(
                    "spend",
                    |mut c| async move { pipe.query_async(&mut c).await },
                )
                .await
                .ok()?;
            Some(Amount {
                cost_usd: usd.max(0.0),
                tokens,
            })
        }
        .boxed()
    }
}
