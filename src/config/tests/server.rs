//! The `[server]` section: its defaults and the checks of its timeouts, cap, threads and origins.

use super::load;

#[test]
fn server_timeouts_and_cap_have_defaults_and_out_of_range_values_name_the_key() {
    let s = load(&[], None).unwrap().server;
    assert_eq!(
        (
            s.header_read_timeout_s,
            s.idle_timeout_s,
            s.body_read_timeout_s
        ),
        (10.0, 75.0, 60.0)
    );
    assert_eq!(s.max_connections, 10_000);
    assert!(s.allowed_origins.is_empty());
    for (var, value, says) in [
        (
            "HEADER_READ_TIMEOUT_S",
            "0",
            "server.header_read_timeout_s = 0 is out of range",
        ),
        (
            "IDLE_TIMEOUT_S",
            "-1",
            "server.idle_timeout_s = -1 is out of range",
        ),
        (
            "BODY_READ_TIMEOUT_S",
            "1e9",
            "server.body_read_timeout_s = 1000000000 is out of range",
        ),
        (
            "SHUTDOWN_GRACE_S",
            "-5",
            "server.shutdown_grace_s = -5 is out of range",
        ),
        (
            "MAX_CONNECTIONS",
            "0",
            "server.max_connections = 0 is out of range",
        ),
    ] {
        let key = format!("LLM_JUDGE__SERVER__{var}");
        let e = load(&[(&key, value)], None).unwrap_err().to_string();
        let (name, _) = says.split_once(" = ").unwrap();
        assert!(
            e.contains(name) && e.contains("is out of range"),
            "{var}={value}: {e}"
        );
    }
    let s = load(
        &[],
        Some("[server]\nallowed_origins = [\"https://a.example\", \"http://127.0.0.1:3000\"]\n"),
    )
    .unwrap();
    assert_eq!(s.server.allowed_origins.len(), 2);
    for bad in [
        "https://a.example/",
        "a.example",
        "https://a.example/path",
        "ftp://a.example",
    ] {
        let toml = format!("[server]\nallowed_origins = [{bad:?}]\n");
        let e = load(&[], Some(&toml)).unwrap_err().to_string();
        assert!(
            e.contains("server.allowed_origins") && e.contains(bad),
            "{bad}: {e}"
        );
    }
}

#[test]
fn serving_threads_default_to_one_per_cpu_and_are_bounded() {
    assert_eq!(load(&[], None).unwrap().server.threads, 0);
    let s = load(&[("LLM_JUDGE__SERVER__THREADS", "3")], None).unwrap();
    assert_eq!(s.server.threads, 3);
    let e = load(&[("LLM_JUDGE__SERVER__THREADS", "5000")], None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("server.threads = 5000 is out of range: it must be from 0 to 1024"),
        "{e}"
    );
}
