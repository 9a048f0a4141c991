//! The `[providers.NAME]` sections: URLs, headers, the permit wait and the prompt cache switch.

use std::time::Duration;

use super::load;

#[test]
fn bad_base_urls_and_header_names_fail_at_start_up() {
    let bad_url = r#"
        [providers.local]
        kind = "openai"
        base_url = "http://exa mple.com/v1"
    "#;
    let e = load(&[], Some(bad_url)).unwrap_err().to_string();
    assert!(
        e.contains("providers.local.base_url is not a valid URL"),
        "{e}"
    );
    let bad_header = r#"
        [providers.local]
        kind = "openai"
        base_url = "http://127.0.0.1:9/v1"
        [providers.local.headers]
        "bad header" = "x"
    "#;
    let e = load(&[], Some(bad_header)).unwrap_err().to_string();
    assert!(e.contains("is not a valid HTTP header name"), "{e}");
    let bad_value = r#"
        [providers.local]
        kind = "openai"
        base_url = "http://127.0.0.1:9/v1"
        [providers.local.headers]
        x-team = "a\nb"
    "#;
    let e = load(&[], Some(bad_value)).unwrap_err().to_string();
    assert!(
        e.contains("headers.x-team: the value is not a valid"),
        "{e}"
    );
}

#[test]
fn the_permit_wait_fits_inside_the_attempt_timeout() {
    let s = load(&[("LLM_JUDGE__PROVIDERS__OPENAI__TIMEOUT_S", "5")], None).unwrap();
    assert_eq!(s.providers["openai"].permit_wait, Duration::from_secs(5));
    let e = load(
        &[
            ("LLM_JUDGE__PROVIDERS__OPENAI__TIMEOUT_S", "5"),
            ("LLM_JUDGE__PROVIDERS__OPENAI__PERMIT_WAIT_S", "10"),
        ],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("providers.openai.permit_wait_s") && e.contains("timeout_s"),
        "{e}"
    );
}

#[test]
fn the_prompt_cache_switch_is_on_for_anthropic_and_per_provider() {
    let s = load(&[], None).unwrap();
    assert!(s.providers["anthropic"].prompt_cache);
    assert!(!s.providers["openai"].prompt_cache);
    let s = load(
        &[("LLM_JUDGE__PROVIDERS__ANTHROPIC__PROMPT_CACHE", "false")],
        None,
    )
    .unwrap();
    assert!(!s.providers["anthropic"].prompt_cache);
}
