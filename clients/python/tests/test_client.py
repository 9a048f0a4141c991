"""The blocking Client against the real service."""

from __future__ import annotations

import threading
from typing import List, Tuple

import pytest

from conftest import ANTHROPIC_MODEL, DEFAULT_MODEL, OPENAI_KEY, Server
from llm_judge_client import BatchItem, BinaryResult, Client, CompareResult, ConflictError, LLMJudgeError, ScoreResult


@pytest.fixture
def client(server: Server) -> Client:
    with Client(server.url) as c:
        yield c  # type: ignore[misc]


def test_binary_correct_incorrect_and_unscored(client: Client, tag: str) -> None:
    ok = client.binary(f"What is 2+2? {tag}", "4", "The answer is 4.")
    assert isinstance(ok, BinaryResult)
    assert (ok.result, ok.verdict, ok.unscored) == (1, "correct", False)
    assert (ok.provider, ok.model) == ("openai", DEFAULT_MODEL)
    assert ok.raw_response == "Verdict: 1"
    assert ok.usage.prompt_tokens == 10 and ok.usage.completion_tokens == 2
    assert ok.attempts and ok.attempts[0].outcome == "ok"
    assert ok.template_version.startswith("binary-")

    bad = client.binary(f"What is 2+2? {tag}", "4", "WRONG: 5")
    assert (bad.result, bad.verdict) == (0, "incorrect")

    unsure = client.binary(f"What is 2+2? {tag}", "4", "REPLY<I cannot tell.>")
    assert unsure.result is None and unsure.verdict == "unscored" and unsure.unscored
    assert unsure.unscored_reason and unsure.reason
    assert unsure.raw_response == "I cannot tell."


def test_binary_with_a_route_and_options(client: Client, tag: str) -> None:
    r = client.binary(f"What is 2+2? {tag}", "4", "The answer is 4.0", judge="rules")
    assert (r.provider, r.result) == ("rules", 1)
    r2 = client.binary(f"Capital? {tag}", "Paris", "Paris", output_format="yes/no", options={"cache": False})
    assert r2.result == 1 and r2.template_version.endswith("yn")


def test_score(client: Client, tag: str) -> None:
    r = client.score(f"Explain the sky. {tag}", "Rayleigh scattering.", rubric="10 best")
    assert isinstance(r, ScoreResult)
    assert (r.score, r.verdict, r.result) == (8.0, "scored", None)
    passed = client.score(f"Explain the sky. {tag}", "WRONG", pass_score=5, min=1, max=10)
    assert (passed.score, passed.verdict, passed.result) == (3.0, "incorrect", 0)


def test_compare(client: Client, tag: str) -> None:
    r = client.compare(f"Capital of France? {tag}", "BEST Paris", "Lyon")
    assert isinstance(r, CompareResult)
    assert r.winner == "a" and r.consistent is True and r.scores == [1.0, 0.0]
    r2 = client.compare(f"Capital of France? {tag}", "Lyon", "BEST Paris", swap=False)
    assert r2.winner == "b" and r2.consistent is None


def test_batch_parallel_arrays_in_input_order(client: Client, tag: str) -> None:
    preds = ["4", "WRONG 7", "8", "REPLY<I cannot tell.>"]
    res = client.batch(
        questions=[f"q{i} {tag}" for i in range(4)], answers=["4", "6", "8", "1"], predictions=preds, max_concurrent=2
    )
    assert [r.index for r in res.results] == [0, 1, 2, 3]
    assert [r.result for r in res.results] == [1, 0, 1, None]
    s = res.summary
    assert (s.total, s.correct, s.incorrect, s.unscored, s.errors) == (4, 2, 1, 1, 0)
    assert s.accuracy == pytest.approx(2 / 3)
    assert s.accuracy_interval is not None
    low, high = s.accuracy_interval
    assert low < 2 / 3 < high
    assert s.usage.prompt_tokens == 40


def test_batch_items_with_a_bad_item_is_an_error_entry(client: Client, tag: str) -> None:
    items = [
        {"question": f"a {tag}", "answer": "4", "prediction": "4"},
        {"question": f"b {tag}", "answer": "4"},
        {"question": f"c {tag}", "answer": "4", "prediction": "4", "judge": "rules"},
    ]
    res = client.batch(items)
    bad = res.results[1]
    assert not bad.ok and bad.status == "error" and bad.error is not None
    assert bad.error.field == "items[1].prediction" and bad.result is None
    assert res.results[2].judgment is not None and res.results[2].judgment.provider == "rules"
    assert res.summary.errors == 1


def test_labels_give_a_corrected_accuracy_and_verdicts_name_their_judge(client: Client, tag: str) -> None:
    items = [
        {"question": f"q{i} {tag}", "answer": "4", "prediction": "4" if i % 2 else "WRONG 5", "judge": "rules"}
        for i in range(6)
    ]
    for it in items[:4]:
        it["label"] = "correct" if it["prediction"] == "4" else "incorrect"
    res = client.batch(items)
    c = res.summary.corrected_accuracy
    assert c is not None and c["labels"] == 4 and c["unlabelled"] == 2 and c["method"] == "ppi++"
    assert c["estimate"] == pytest.approx(0.5)
    assert res.summary.by_judge["rules:rules"]["correct"] == 3


def test_batch_score_and_compare_kinds(client: Client, tag: str) -> None:
    s = client.batch([{"question": f"q {tag}", "prediction": "fine"}], kind="score")
    assert isinstance(s.results[0].judgment, ScoreResult) and s.summary.mean_score == 8.0
    c = client.batch([{"question": f"q {tag}", "response_a": "x", "response_b": "BEST y"}], kind="compare")
    j = c.results[0].judgment
    assert isinstance(j, CompareResult) and j.winner == "b"
    assert c.summary.wins is not None and c.summary.wins.b == 1


def test_batch_on_progress(client: Client, tag: str) -> None:
    seen: List[Tuple[int, int]] = []
    res = client.batch(
        questions=[f"q{i} {tag}" for i in range(5)], answers=["1"] * 5, predictions=["1"] * 5,
        on_progress=lambda d, t: seen.append((d, t)),
    )
    assert [r.index for r in res.results] == list(range(5))
    assert seen and seen[-1] == (5, 5)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert res.summary.total == 5


def test_batch_stream_yields_results_before_the_last_item_finishes(server: Server, client: Client, tag: str) -> None:
    assert server.provider is not None
    items = [{"question": f"slow {tag}", "answer": "1", "prediction": f"HOLD:{tag}"}] + [
        {"question": f"fast{i} {tag}", "answer": "1", "prediction": "1"} for i in range(3)
    ]
    got: List[BatchItem] = []
    with client.batch(items, stream=True, progress_interval_ms=50) as stream:
        for item in stream:
            got.append(item)
            if len(got) == 3:
                # three results arrived while the held item was still waiting on the provider
                assert not server.provider.released(tag)
                assert {i.index for i in got} == {1, 2, 3}
                server.provider.release(tag)
        assert stream.summary is not None and stream.summary.total == 4
    assert [i.index for i in got][-1] == 0
    assert len(got) == 4 and all(i.result == 1 for i in got)


def test_job_submit_wait_with_progress_results(server: Server, client: Client, tag: str) -> None:
    assert server.provider is not None
    items = [{"question": f"j{i} {tag}", "answer": "1", "prediction": "WRONG" if i == 2 else "1"} for i in range(4)]
    items.append({"question": f"held {tag}", "answer": "1", "prediction": f"HOLD:{tag}"})
    sub = client.submit_job(items, idempotency_key=f"key-{tag}")
    assert sub.created and sub.id and sub.idempotency_key == f"key-{tag}"
    again = client.submit_job(items, idempotency_key=f"key-{tag}")
    assert again.id == sub.id and not again.created

    events: List[Tuple[int, int]] = []

    def on_progress(done: int, total: int) -> None:
        events.append((done, total))
        if done == 4:  # every item but the held one is in: let it finish
            server.provider.release(tag)  # type: ignore[union-attr]

    job = client.wait(sub.id, on_progress=on_progress, timeout=60)
    assert job.status == "completed" and job.finished
    assert (4, 5) in events and events[-1] == (5, 5)
    assert job.summary is not None and (job.summary.correct, job.summary.incorrect) == (4, 1)

    view = client.job(sub.id)
    assert view.status == "completed" and view.total == 5 and view.progress.done == 5
    assert sub.id in [j.id for j in client.jobs(limit=50)]

    results = list(client.results(sub.id))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.result for r in results] == [1, 1, 0, 1, 1]
    assert [r.index for r in client.results(sub.id, after=2)] == [3, 4]
    by_completion = list(client.results(sub.id, order="completion"))
    assert sorted(r.index for r in by_completion) == [0, 1, 2, 3, 4]
    assert all(r.seq is not None for r in by_completion)
    assert by_completion[-1].index == 4  # the held item finished last
    # cancelling a finished job leaves it as it is
    assert client.cancel(sub.id).status == "completed"


def test_job_cancel_and_progress_bar(server: Server, client: Client, tag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert server.provider is not None
    # one item at a time, the first held: the others cannot have started when the cancel comes
    sub = client.submit_job(
        questions=[f"c{i} {tag}" for i in range(6)], answers=["1"] * 6,
        predictions=[f"HOLD:{tag}"] + ["1"] * 5, max_concurrent=1,
    )
    try:
        assert client.cancel(sub.id).id == sub.id
    finally:
        server.provider.release(tag)
    job = client.wait(sub.id, progress=True, timeout=60)
    assert job.status == "cancelled" and job.finished
    assert job.progress.done < 6
    assert f"job {sub.id}" in capsys.readouterr().err


def test_retry_errors_sends_a_finished_jobs_errors_again(server: Server, client: Client, tag: str) -> None:
    assert server.provider is not None
    refused = f"{tag}r"
    items = [{"question": f"r{i} {tag}", "answer": "1", "prediction": f"REFUSE:{refused}" if i == 0 else "1"} for i in range(3)]
    items.append({"question": f"held {tag}", "answer": "1", "prediction": f"HOLD:{tag}"})
    sub = client.submit_job(items, idempotency_key=f"retry-{tag}")
    try:
        # Still running (one item is held): a retry is refused.
        with pytest.raises(ConflictError) as e:
            client.retry_errors(sub.id)
        assert e.value.code == "job_not_finished"
    finally:
        server.provider.release(tag)
    job = client.wait(sub.id, timeout=60)
    assert job.summary is not None and job.summary.errors == 1

    server.provider.release(refused)  # the provider takes the item now
    again = client.retry_errors(sub.id)
    assert again.id == sub.id and again.status in ("queued", "running")
    job = client.wait(sub.id, timeout=60)
    assert job.status == "completed"
    assert job.summary is not None and (job.summary.errors, job.summary.correct) == (0, 4)
    assert [r.result for r in client.results(sub.id)] == [1, 1, 1, 1]


def test_wait_times_out_while_the_job_runs(server: Server, client: Client, tag: str) -> None:
    assert server.provider is not None
    sub = client.submit_job([{"question": f"t {tag}", "answer": "1", "prediction": f"HOLD:{tag}"}])
    try:
        with pytest.raises(TimeoutError):
            client.wait(sub.id, timeout=0.2)
        assert client.job(sub.id).status in ("queued", "running")
    finally:
        server.provider.release(tag)
    assert client.wait(sub.id, timeout=60).status == "completed"


def test_providers(client: Client) -> None:
    info = client.providers()
    assert {"openai", "anthropic", "rules", "broken"} <= set(info.enabled())
    assert info.default_route in info.routes
    assert info.routes[info.default_route] == [f"openai:{DEFAULT_MODEL}"]
    openai = next(p for p in info.providers if p.name == "openai")
    assert openai.kind == "openai" and openai.circuit


def test_no_provider_key_in_any_answer(server: Server, client: Client, tag: str) -> None:
    r = client.binary(f"q {tag}", "1", "1")
    texts = [str(r.raw), str(client.providers())]
    try:
        client.binary(f"q {tag}", "1", "1", judge="broken")
    except Exception as e:  # the route's provider refused: its error is reported
        texts.append(str(e) + repr(getattr(e, "attempts", "")))
    assert all(OPENAI_KEY not in t and "broken-key" not in t for t in texts)


def test_adhoc_route_steps_in_judge(server: Server, client: Client, tag: str) -> None:
    r = client.binary(f"q {tag}", "1", "1", judge=f"anthropic:{ANTHROPIC_MODEL}-x")
    assert (r.provider, r.model) == ("anthropic", f"{ANTHROPIC_MODEL}-x")
    bare = client.binary(f"q2 {tag}", "1", "1", judge="anthropic")
    assert (bare.provider, bare.model) == ("anthropic", ANTHROPIC_MODEL)
    fell = client.binary(f"q3 {tag}", "1", "1", judge="broken,openai")
    assert fell.fallback and fell.provider == "openai"
    assert [a.provider for a in fell.attempts][:1] == ["broken"]


def test_chat_completions(client: Client, tag: str) -> None:
    out = client.chat_completions("broken,anthropic", [{"role": "user", "content": f"Is 2+2=4? {tag}"}], temperature=0)
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["content"] == "Verdict: 1"
    meta = out["x_llm_judge"]
    assert meta["provider"] == "anthropic" and meta["fallback"] is True
    assert {"model", "attempts", "cost_usd", "cached"} <= set(meta)


@pytest.mark.needs_server_feature("calibrate")
def test_calibrate(client: Client, tag: str) -> None:
    items = [
        {"question": f"a {tag}", "answer": "4", "prediction": "4", "label": 1},
        {"question": f"b {tag}", "answer": "4", "prediction": "5", "label": 0},
    ]
    report = client.calibrate(items, ["rules", "default"])
    assert report["kind"] == "binary" and report["items"] == 2
    by_judge = {j["judge"]: j for j in report["judges"]}
    assert set(by_judge) == {"rules", "default"}
    rules = by_judge["rules"]
    assert rules["graded"] == 2 and rules["accuracy"] == 1.0 and rules["cohen_kappa"] == 1.0
    assert rules["confusion"]["matrix"] == [[1, 0], [0, 1]]
    # The stand-in says correct to both: right once, wrong once, no better than chance.
    assert by_judge["default"]["accuracy"] == 0.5 and by_judge["default"]["cohen_kappa"] == 0.0


def test_concurrent_use_of_one_client(client: Client, tag: str) -> None:
    out: List[int] = []

    def one(i: int) -> None:
        r = client.binary(f"c{i} {tag}", "1", "1")
        out.append(r.result or 0)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert out == [1, 1, 1, 1]


def test_budgets_and_provider_batch_reach_the_service(server: Server, client: Client, tag: str) -> None:
    assert server.provider is not None
    items = [{"question": f"b{i} {tag}", "answer": "1", "prediction": "1"} for i in range(3)]
    # One token cannot hold any item's estimate: nothing is sent, every item is kept back.
    kept = client.batch(items, max_tokens=1)
    assert [r.status for r in kept.results] == ["error"] * 3
    assert {r.error.code for r in kept.results if r.error is not None} == {"budget_exhausted"}
    assert kept.summary.raw["budget"]["exhausted"] is True
    assert kept.summary.raw["budget"]["not_sent"] == 3

    # The rules judge has no batch API: a provider-batch job judges it online and says so.
    sub = client.submit_job(items, judge="rules", provider_batch=True, provider_batch_deadline_s=600, max_tokens=10_000)
    job = client.wait(sub.id, timeout=60)
    assert job.status == "completed" and job.summary is not None
    assert job.summary.correct == 3
    assert job.summary.raw["delivery"] == {"provider_batch": 0, "online": 3}
    with pytest.raises(LLMJudgeError) as e:
        client.submit_job(items, judge="rules", provider_batch_deadline_s=600)
    assert e.value.status == 422 and e.value.field == "provider_batch_deadline_s"
