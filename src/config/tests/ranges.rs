//! Range checks: every numeric key refuses values out of its range, naming the key.

use std::time::Duration;

use super::load;

/// Every numeric key, with values that used to panic at start-up (`inf`, `1e300`) or were
/// silently accepted (`0`, `nan`, a busy-looping interval): each is refused naming the key.
#[test]
fn every_numeric_key_is_range_checked_naming_it() {
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str, toml: String| cases.push((key.to_string(), toml));
    section_cases(&mut add);
    provider_cases(&mut add);
    price_cases(&mut add);
    for (key, toml) in &cases {
        let e = match load(&[], Some(toml)) {
            Ok(_) => panic!("accepted:\n{toml}"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(&format!("{key} = ")) && e.contains("out of range"),
            "{toml}\n-> {e}"
        );
    }
    // The same keys through environment variables.
    for (var, key) in [
        ("LLM_JUDGE__JOBS__RETENTION_HOURS", "jobs.retention_hours"),
        (
            "LLM_JUDGE__SERVER__SHUTDOWN_GRACE_S",
            "server.shutdown_grace_s",
        ),
        (
            "LLM_JUDGE__PROVIDERS__OPENAI__TIMEOUT_S",
            "providers.openai.timeout_s",
        ),
    ] {
        let e = load(&[(var, "inf")], None).unwrap_err().to_string();
        assert!(e.contains(&format!("{key} = inf")), "{e}");
    }
    // The edges of each range are valid.
    let edges = "[server]\nshutdown_grace_s = 0.0\nmax_body_bytes = 1024\n\
                 [jobs]\njanitor_interval_s = 0.1\nretention_hours = 87600.0\ncommit_interval_ms = 0\n\
                 [retry]\nbudget_ratio = 0.0\n\
                 [providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
                 timeout_s = 86400\nbreaker_cooldown_s = 0\npermit_wait_s = 0\nrate_window_s = 0.001\n";
    let s = load(&[], Some(edges)).unwrap();
    assert_eq!(s.providers["local"].timeout, Duration::from_secs(86_400));
    assert_eq!(s.providers["local"].permit_wait, Duration::ZERO);
}

/// Out-of-range values of the keys of `[server]`, `[judge]`, `[jobs]` and `[retry]`.
fn section_cases(add: &mut impl FnMut(&str, String)) {
    let section = |section: &str, key: &str, v: &str| format!("[{section}]\n{key} = {v}\n");
    for (key, bad) in [
        ("server.max_body_bytes", "0"),
        ("server.max_batch_items", "0"),
        ("server.batch_max_concurrent", "0"),
        ("server.batch_max_concurrent_limit", "0"),
        ("server.shutdown_grace_s", "inf"),
        ("server.shutdown_grace_s", "1e300"),
        ("server.shutdown_grace_s", "-1.0"),
        ("server.shutdown_grace_s", "nan"),
        ("server.threads", "5000"),
        ("judge.temperature", "2.5"),
        ("judge.temperature", "nan"),
        ("judge.max_tokens", "0"),
        ("judge.cache_entries", "1000000000"),
        ("jobs.retention_hours", "inf"),
        ("jobs.retention_hours", "1e300"),
        ("jobs.retention_hours", "0.0"),
        ("jobs.retention_hours", "nan"),
        ("jobs.janitor_interval_s", "inf"),
        ("jobs.janitor_interval_s", "1e300"),
        ("jobs.janitor_interval_s", "1e-9"),
        ("jobs.commit_interval_ms", "3600000"),
        ("jobs.max_items", "0"),
        ("jobs.cache_mb", "0"),
        ("retry.max_attempts", "0"),
        ("retry.base_delay_ms", "100000000"),
        ("retry.max_delay_ms", "100000000"),
        ("retry.max_retry_after_s", "10000000"),
        ("retry.budget_ratio", "nan"),
        ("retry.budget_ratio", "-0.5"),
        ("retry.budget_ratio", "inf"),
        ("retry.budget_min_per_s", "100000000"),
    ] {
        let (sec, k) = key.split_once('.').unwrap();
        add(key, section(sec, k, bad));
    }
}

/// Out-of-range values of a provider's keys.
fn provider_cases(add: &mut impl FnMut(&str, String)) {
    let provider = |key: &str, v: &str| {
        format!(
            "[providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n{key} = {v}\n"
        )
    };
    for (key, bad) in [
        ("timeout_s", "0"),
        ("timeout_s", "inf"),
        ("timeout_s", "1e300"),
        ("timeout_s", "nan"),
        ("deadline_s", "0"),
        ("deadline_s", "1e300"),
        ("permit_wait_s", "-1"),
        ("permit_wait_s", "1e300"),
        ("rate_window_s", "0"),
        ("rate_window_s", "inf"),
        ("breaker_cooldown_s", "1e300"),
        ("breaker_cooldown_s", "-1"),
        ("breaker_failures", "0"),
        ("max_in_flight", "0"),
        ("max_attempts", "0"),
        ("requests_per_minute", "0"),
        ("tokens_per_minute", "0"),
    ] {
        add(&format!("providers.local.{key}"), provider(key, bad));
    }
}

/// Out-of-range values of a price's keys.
fn price_cases(add: &mut impl FnMut(&str, String)) {
    add(
        "prices.\"m\".prompt_per_mtok",
        "[prices]\nm = { prompt_per_mtok = nan, completion_per_mtok = 1.0 }\n".into(),
    );
    add(
        "prices.\"m\".completion_per_mtok",
        "[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = -1.0 }\n".into(),
    );
    add(
        "prices.\"m\".cached_prompt_per_mtok",
        "[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = 1.0, cached_prompt_per_mtok = -0.1 }\n".into(),
    );
    add(
        "prices.\"m\".cache_write_per_mtok",
        "[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = 1.0, cache_write_per_mtok = inf }\n".into(),
    );
    add(
        "prices.\"m\".batch_discount",
        "[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = 1.0, batch_discount = 1.5 }\n".into(),
    );
}
