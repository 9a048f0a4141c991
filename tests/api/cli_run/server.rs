//! `llm-judge run --server`: the same verdicts as judging in process; and a run interrupted with
//! SIGINT finishes the items in flight, writes them and exits 130.

use super::*;

#[tokio::test]
async fn server_mode_gives_the_same_verdicts_as_judging_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[auth]\ntokens = [\"cli-secret-token\"]\n").unwrap();
    let (_server, url) = spawn_server(&[], Some(&config)).await;
    let local = run(&["--input", SAMPLE], &[]).await;
    assert!(local.status.success(), "{}", local.stderr);

    let refused = run(&["--input", SAMPLE, "--server", &url], &[]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);

    let token = [("LLM_JUDGE_TOKEN", "cli-secret-token")];
    let out = dir.path().join("out.jsonl");
    let remote = run(
        &[
            "--input",
            SAMPLE,
            "--server",
            &url,
            "--concurrency",
            "5",
            "--output",
            path_str(&out),
        ],
        &token,
    )
    .await;
    assert!(remote.status.success(), "{}", remote.stderr);
    assert!(!remote.stderr.contains("cli-secret-token"));
    let entries = read_lines(&out);
    assert_eq!(by_index(&entries), by_index(&lines(&local.stdout)));
    let line_of = |e: &Value| e["line"].as_u64().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| line_of(e) == e["index"].as_u64().unwrap() + 1)
    );

    let unknown = run(
        &["--input", SAMPLE, "--server", &url, "--judge", "nope"],
        &token,
    )
    .await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        unknown.stderr.contains("unknown judge \"nope\""),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn sigint_finishes_items_in_flight_writes_them_and_exits_130() {
    let standin = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(crate::support::openai_answer("1"))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&standin)
        .await;
    let base = format!("{}/v1", standin.uri());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.jsonl");
    write_items(&input, &binary_items(20));
    let out: PathBuf = dir.path().join("out.jsonl");
    let mut child = llm_judge(&[("OPENAI_API_KEY", "sk-test"), ("OPENAI_API_URL", &base)])
        .args([
            "run",
            "--input",
            path_str(&input),
            "--output",
            path_str(&out),
            "--concurrency",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let a few items finish, then interrupt with some in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while standin.received_requests().await.unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "the run did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after the items in flight")
        .unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    let entries = lines(&text);
    let sent = standin.received_requests().await.unwrap().len();
    assert!(sent < 20, "it stopped taking items ({sent} sent)");
    assert_eq!(
        entries.len(),
        sent,
        "every item sent was finished and written:\n{stderr}"
    );
    assert_eq!(by_index(&entries).len(), sent);
    assert!(entries.iter().all(|e| e["status"] == "ok"));
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains(&format!("done       {sent}")), "{stderr}");
}
