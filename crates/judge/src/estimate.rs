//! What judging an item along a route may cost at most, before anything is sent.

use crate::items::{BinaryItem, CompareItem, Options, ScoreItem};
use crate::judge::Judge;
use crate::prompts::Rendered;
use crate::render::{render_binary, render_compare, render_score};
use llm_judge_chat::ChatRequest;
use llm_judge_pool::cost::Estimate;

impl Judge {
    /// The most judging a binary item along `route` may cost, before anything is sent.
    pub fn estimate_binary(&self, route: &str, item: &BinaryItem) -> Estimate {
        self.estimate(
            route,
            &render_binary(item, self.shape(route)),
            item.images.len(),
            &item.options,
            1,
        )
    }

    /// The most judging a score item along `route` may cost, before anything is sent.
    pub fn estimate_score(&self, route: &str, item: &ScoreItem) -> Estimate {
        self.estimate(
            route,
            &render_score(item, self.shape(route)),
            item.images.len(),
            &item.options,
            1,
        )
    }

    /// The most judging a pairwise item along `route` may cost (both orders with `swap`).
    pub fn estimate_compare(&self, route: &str, item: &CompareItem) -> Estimate {
        let rendered = render_compare(item, &item.response_a, &item.response_b, self.shape(route));
        let calls = if item.swap { 2 } else { 1 };
        self.estimate(route, &rendered, item.images.len(), &item.options, calls)
    }

    /// `calls` calls of a rendered prompt: its prompt estimate and whole completion budget
    /// each, at the dearest step of the route. The rules pre-check and the verdict cache may
    /// make the item free; the estimate does not count on it.
    fn estimate(
        &self,
        route: &str,
        rendered: &Rendered,
        images: usize,
        options: &Options,
        calls: u32,
    ) -> Estimate {
        let max_tokens = options.max_tokens.unwrap_or(self.cfg.max_tokens);
        let text = rendered.system.as_deref().map_or(0, str::len) + rendered.user.len();
        let one = self.pool.estimate(
            route,
            ChatRequest::prompt_tokens_of(text, images),
            max_tokens,
        );
        Estimate {
            cost_usd: one.cost_usd.map(|c| c * f64::from(calls)),
            tokens: one.tokens * u64::from(calls),
        }
    }
}
