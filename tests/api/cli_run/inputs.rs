//! What `llm-judge run` reads: gzip and CSV input, a malformed line reported by its number while
//! the rest runs, and `--resume` judging only what an earlier output lacks.

use super::*;

#[tokio::test]
async fn gzip_input_is_read_by_extension_or_magic_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(std::fs::read(SAMPLE).unwrap().as_slice())
        .unwrap();
    let bytes = gz.finish().unwrap();
    let plain = run(&["--input", SAMPLE], &[]).await;
    for name in ["items.jsonl.gz", "items-without-extension"] {
        let input = dir.path().join(name);
        std::fs::write(&input, &bytes).unwrap();
        let r = run(&["--input", path_str(&input)], &[]).await;
        assert!(r.status.success(), "{}", r.stderr);
        assert!(r.stderr.contains("gzip"), "{}", r.stderr);
        assert_eq!(by_index(&lines(&r.stdout)), by_index(&lines(&plain.stdout)));
    }
}

#[tokio::test]
async fn csv_input_maps_columns_to_fields() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.csv");
    std::fs::write(
        &input,
        "question,answer,prediction,prompt\n\
         \"What is 2+2?\nAnswer briefly.\",4,4.0,\n\
         Capital of France?,Paris,London,\n\
         ,x,y,\n\
         \"Which is a fruit?\nA. Carrot\nB. Apple\",B,\"The answer is B.\",\n",
    )
    .unwrap();
    let r = run(&["--input", path_str(&input)], &[]).await;
    assert!(r.status.success(), "{}", r.stderr);
    let entries = lines(&r.stdout);
    let v = by_index(&entries);
    assert_eq!(v[&0], "correct");
    assert_eq!(v[&1], "incorrect");
    assert_eq!(
        v[&2], "error:invalid_item",
        "an empty cell is an absent field"
    );
    assert_eq!(v[&3], "correct");
    let line_of = |i: u64| entries.iter().find(|e| e["index"] == i).unwrap()["line"].clone();
    assert_eq!(line_of(0), 2);
    assert_eq!(line_of(3), 6, "a quoted cell may span lines");
}

#[tokio::test]
async fn a_malformed_line_is_reported_with_its_line_number_and_the_rest_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.jsonl");
    let good =
        |p: &str| json!({"question": "What is 2+2?", "answer": "4", "prediction": p}).to_string();
    std::fs::write(
        &input,
        format!(
            "{}\n{{\"question\": \"cut\n{}\n\n[1, 2]\n{}\n",
            good("4"),
            good("5"),
            good("4.0")
        ),
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let r = run(
        &["--input", path_str(&input), "--output", path_str(&out)],
        &[],
    )
    .await;
    assert!(r.status.success(), "{}", r.stderr);
    let entries = read_lines(&out);
    let v = by_index(&entries);
    let expected: BTreeMap<u64, String> = [
        (0, "correct"),
        (1, "error:invalid_line"),
        (2, "incorrect"),
        (3, "error:invalid_line"),
        (4, "correct"),
    ]
    .into_iter()
    .map(|(i, s)| (i, s.to_string()))
    .collect();
    assert_eq!(v, expected);
    let bad = entries.iter().find(|e| e["index"] == 1).unwrap();
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("line 2"),
        "{bad}"
    );
    assert_eq!(bad["line"], 2);
    let array = entries.iter().find(|e| e["index"] == 3).unwrap();
    assert!(
        array["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 5: expected a JSON object"),
        "{array}"
    );
    assert!(
        r.stderr.contains("line 2:") && r.stderr.contains("line 5:"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("errors     2"), "{}", r.stderr);
}

#[tokio::test]
async fn resume_judges_only_missing_and_error_items_and_keeps_one_ok_line_per_index() {
    let standin = crate::support::openai_standin("1").await;
    let base = format!("{}/v1", standin.uri());
    let env = [
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_API_URL", base.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.jsonl");
    write_items(&input, &binary_items(6));
    let out = dir.path().join("out.jsonl");
    let earlier = |i: usize| json!({"index": i, "status": "ok", "verdict": "correct", "result": 1, "from": "earlier", "usage": {"prompt_tokens": 1, "completion_tokens": 1}, "cost_usd": null});
    std::fs::write(
        &out,
        format!(
            "{}\n{}\n{}\n{}\n{{\"index\": 4, \"stat",
            earlier(0),
            json!({"index": 1, "status": "error", "error": {"code": "all_providers_failed", "message": "boom"}}),
            earlier(2),
            earlier(3),
        ),
    )
    .unwrap();
    let r = run(
        &["--input", path_str(&input), "--output", path_str(&out)],
        &env,
    )
    .await;
    assert!(r.status.success(), "{}", r.stderr);
    let received = standin.received_requests().await.unwrap().len();
    assert_eq!(
        received, 3,
        "items 1 (error), 4 and 5 (missing) are judged; {}",
        r.stderr
    );
    let entries = read_lines(&out);
    assert_eq!(entries.len(), 6, "{entries:?}");
    let v = by_index(&entries);
    assert!(v.values().all(|s| s == "correct"), "{v:?}");
    assert_eq!(
        v.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    for i in [0, 2, 3] {
        let e = entries.iter().find(|e| e["index"] == i).unwrap();
        assert_eq!(e["from"], "earlier", "kept as it was: {e}");
    }
    let fresh = entries.iter().find(|e| e["index"] == 1).unwrap();
    assert_eq!(fresh["provider"], "openai");
    assert_eq!(fresh["raw_response"], "1");
    assert!(
        r.stderr.contains("3 this run, 3 from an earlier run"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("resuming"), "{}", r.stderr);

    // Everything done: a second resume judges nothing.
    let again = run(
        &["--input", path_str(&input), "--output", path_str(&out)],
        &env,
    )
    .await;
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(standin.received_requests().await.unwrap().len(), 3);
    assert_eq!(read_lines(&out).len(), 6);
}
