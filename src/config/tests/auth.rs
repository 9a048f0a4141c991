//! The `[auth]` section: client tokens and daily budgets.

use super::load;
use crate::config::Secret;

#[test]
fn client_tokens_come_from_a_list_or_a_comma_separated_variable() {
    let s = load(&[("LLM_JUDGE__AUTH__TOKENS", "abc, def")], None).unwrap();
    let t: Vec<&str> = s.auth.tokens.iter().map(Secret::expose).collect();
    assert_eq!(t, ["abc", "def"]);
    let s = load(&[], Some("[auth]\ntokens = [\"x\"]\n")).unwrap();
    assert_eq!(s.auth.tokens.len(), 1);
}

#[test]
fn an_empty_client_token_is_refused_instead_of_turning_auth_off() {
    for toml in [
        "[auth]\ntokens = [\"\"]\n",
        "[auth]\ntokens = [\"abc\", \"  \"]\n",
    ] {
        let e = load(&[], Some(toml)).unwrap_err().to_string();
        assert!(e.contains("auth.tokens[") && e.contains("is empty"), "{e}");
    }
    let e = load(&[("LLM_JUDGE__AUTH__TOKENS", "abc,")], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.tokens[1] is empty"), "{e}");
    // No tokens at all is still the explicit way to turn auth off.
    assert!(
        load(&[], Some("[auth]\ntokens = []\n"))
            .unwrap()
            .auth
            .tokens
            .is_empty()
    );
}

#[test]
fn admin_tokens_turn_auth_on_and_are_never_also_client_tokens() {
    let s = load(&[("LLM_JUDGE__AUTH__ADMIN_TOKENS", "ops-1, ops-2")], None).unwrap();
    let t: Vec<&str> = s.auth.admin_tokens.iter().map(Secret::expose).collect();
    assert_eq!(t, ["ops-1", "ops-2"]);
    assert!(s.auth.tokens.is_empty() && s.auth.enabled());
    assert!(!load(&[], None).unwrap().auth.enabled());
    let e = load(&[], Some("[auth]\nadmin_tokens = [\"\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.admin_tokens[0] is empty"), "{e}");
    let both = "[auth]\ntokens = [\"a\", \"b\"]\nadmin_tokens = [\"b\"]\n";
    let e = load(&[], Some(both)).unwrap_err().to_string();
    assert!(
        e.contains("auth.admin_tokens[0] is also in auth.tokens"),
        "{e}"
    );
    assert!(!e.contains("\"b\""), "the token is not printed: {e}");
}

#[test]
fn a_daily_budget_needs_client_tokens_and_a_sane_amount() {
    let s = load(
        &[],
        Some("[auth]\ntokens = [\"t\"]\ndaily_budget_usd = 5.0\ndaily_budget_tokens = 1000\n"),
    )
    .unwrap();
    assert_eq!(
        (s.auth.daily_budget_usd, s.auth.daily_budget_tokens),
        (Some(5.0), Some(1000))
    );
    let e = load(&[], Some("[auth]\ndaily_budget_usd = 5.0\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.tokens"), "{e}");
    let e = load(
        &[],
        Some("[auth]\ntokens = [\"t\"]\ndaily_budget_usd = -1.0\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("auth.daily_budget_usd = -1") && e.contains("out of range"),
        "{e}"
    );
}
