//! Prints the cost table of BENCHMARKS.md: what 1,000 verdicts of one realistic judge item cost
//! online, with prompt caching, through a provider batch, and both, computed by the service's
//! own cost code (`pool::cost::usd` over the usage each provider reports) at list prices.
//!
//! `cargo run --release --example cost_table` (bench/bench.py runs it for its report).

use llm_judge::config::Price;
use llm_judge_chat::Usage;
use llm_judge_pool::cost::{Channel, usd};

/// The judge item: a score judgment with a shared rubric.
const PROMPT_TOKENS: u64 = 2_000;
/// Of those, the fixed prefix (instructions, rubric, output format) every item repeats.
const PREFIX_TOKENS: u64 = 1_600;
/// The judge's answer: a short justification and `Score: N`.
const COMPLETION_TOKENS: u64 = 150;
const VERDICTS: u64 = 1_000;

struct Model {
    name: &'static str,
    price: Price,
    /// Anthropic caches exactly the marked prefix, and bills its first call as a cache write;
    /// OpenAI caches the longest multiple of 128 tokens from 1,024 up, writing at no premium.
    writes_cache: bool,
    cached_per_call: u64,
}

fn models() -> Vec<Model> {
    let price = |p, c, cached, write| Price {
        cached_prompt_per_mtok: Some(cached),
        cache_write_per_mtok: write,
        ..Price::new(p, c)
    };
    vec![
        Model {
            name: "anthropic claude-sonnet-4-5 ($3 / $15, cache read $0.30, write $3.75)",
            price: price(3.0, 15.0, 0.30, Some(3.75)),
            writes_cache: true,
            cached_per_call: PREFIX_TOKENS,
        },
        Model {
            name: "openai gpt-4.1 ($2 / $8, cached $0.50)",
            price: price(2.0, 8.0, 0.50, None),
            writes_cache: false,
            cached_per_call: (PREFIX_TOKENS / 128) * 128,
        },
        Model {
            name: "openai gpt-4o-2024-08-06 ($2.50 / $10, cached $1.25)",
            price: price(2.5, 10.0, 1.25, None),
            writes_cache: false,
            cached_per_call: (PREFIX_TOKENS / 128) * 128,
        },
    ]
}

/// The dollars of 1,000 verdicts: the first call fills the cache (a write at Anthropic, an
/// uncached call at OpenAI) and the other 999 read it, when `cached`.
fn thousand(m: &Model, cached: bool, channel: Channel) -> f64 {
    let plain = Usage::new(PROMPT_TOKENS, COMPLETION_TOKENS);
    if !cached {
        return usd(&m.price, &plain, channel) * VERDICTS as f64;
    }
    let first = if m.writes_cache {
        Usage {
            cache_write_tokens: PREFIX_TOKENS,
            ..plain
        }
    } else {
        plain
    };
    let later = Usage {
        cached_prompt_tokens: m.cached_per_call,
        ..plain
    };
    usd(&m.price, &first, channel) + usd(&m.price, &later, channel) * (VERDICTS - 1) as f64
}

/// `1234` as `1,234`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    println!(
        "A score judgment with a shared rubric: {} prompt tokens per call, of which {} are the \
         fixed prefix (instructions, rubric, output format) and the rest the item, and {} \
         completion tokens. Dollars per {} verdicts from the service's own cost code \
         (`pool::cost::usd`, `examples/cost_table.rs`) at each model's list price; caching \
         assumes the first call fills the cache and the other {} read it (Anthropic caches the \
         marked prefix, OpenAI the longest multiple of 128 tokens in it); the provider batch is \
         the default `batch_discount` of 0.5, applied to cached input too.",
        grouped(PROMPT_TOKENS),
        grouped(PREFIX_TOKENS),
        grouped(COMPLETION_TOKENS),
        grouped(VERDICTS),
        grouped(VERDICTS - 1)
    );
    println!();
    println!(
        "| model | online | with prompt caching | provider batch | provider batch + caching |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for m in models() {
        let online = thousand(&m, false, Channel::Online);
        let cell = |v: f64| format!("${v:.2} ({:.0}%)", v / online * 100.0);
        println!(
            "| {} | ${online:.2} | {} | {} | {} |",
            m.name,
            cell(thousand(&m, true, Channel::Online)),
            cell(thousand(&m, false, Channel::ProviderBatch)),
            cell(thousand(&m, true, Channel::ProviderBatch)),
        );
    }
}
