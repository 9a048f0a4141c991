//! The `[prices]` section: the defaults of cache and batch prices.

use super::load;

#[test]
fn cache_and_batch_prices_default_so_nothing_is_under_counted() {
    let toml = r#"
        [prices]
        plain = { prompt_per_mtok = 3.0, completion_per_mtok = 15.0 }
        full = { prompt_per_mtok = 3.0, completion_per_mtok = 15.0, cached_prompt_per_mtok = 0.3, cache_write_per_mtok = 3.75, batch_discount = 0.4 }
    "#;
    let s = load(&[], Some(toml)).unwrap();
    let plain = s.price("anthropic", "plain").unwrap();
    assert_eq!(
        (
            plain.cached_prompt(),
            plain.cache_write(),
            plain.batch_discount()
        ),
        (3.0, 3.75, 0.5)
    );
    let full = s.price("anthropic", "full").unwrap();
    assert_eq!(
        (
            full.cached_prompt(),
            full.cache_write(),
            full.batch_discount()
        ),
        (0.3, 3.75, 0.4)
    );
    let e = load(
        &[],
        Some("[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = 1.0, cached = 1 }\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cached"), "{e}");
}
