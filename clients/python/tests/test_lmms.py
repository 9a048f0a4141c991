"""The lmms-eval drop-in (llm_judge_client.lmms) against the real service."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from conftest import ANTHROPIC_MODEL, DEFAULT_MODEL, Server
from llm_judge_client import AsyncClient, BadRequestError
from llm_judge_client import lmms
from llm_judge_client.lmms import (
    AsyncSimplifiedJudge,
    HighThroughputEvaluator,
    JudgeRequest,
    evaluate_with_fallback,
    get_binary_judge_response,
    get_binary_judge_response_async,
    judge_route,
    run_async_evaluation,
)


# ---- which judge is sent ------------------------------------------------------------------


def test_judge_route_from_arguments_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert judge_route() is None
    assert judge_route("anthropic", "claude-3-opus-20240229") == "anthropic:claude-3-opus-20240229"
    assert judge_route("together") == "together"
    assert judge_route(model_name="gpt-4o") == "openai:gpt-4o"
    monkeypatch.setenv("MODEL_VERSION", "gpt-4o-2024-08-06")
    assert judge_route() is None  # a model alone in the environment chooses nothing
    assert judge_route("openai") == "openai:gpt-4o-2024-08-06"
    monkeypatch.setenv("API_TYPE", "openai")
    assert judge_route() == "openai:gpt-4o-2024-08-06"
    assert judge_route("anthropic") == "anthropic"  # MODEL_VERSION belongs to API_TYPE's provider
    assert judge_route(model_name="gpt-4o-mini") == "openai:gpt-4o-mini"
    monkeypatch.setenv("API_TYPE", "azure")
    monkeypatch.setenv("MODEL_VERSION", "my-deployment")
    assert AsyncSimplifiedJudge().judge == "azure:my-deployment"


def test_images_become_urls(tmp_path: Path) -> None:
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG fake")
    url = lmms._image(str(png))
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == b"\x89PNG fake"
    assert lmms._image("https://example.org/a.png") == "https://example.org/a.png"
    assert lmms._image(b"raw").startswith("data:image/png;base64,")


# ---- binary -------------------------------------------------------------------------------


def test_get_binary_judge_response_async(use_server: Server, tag: str) -> None:
    ok = asyncio.run(get_binary_judge_response_async(f"What is 2+2? {tag}", "4", "The answer is 4"))
    assert ok["result"] == 1 and ok["success"] is True
    assert ok["raw_response"] == "Verdict: 1" and ok["model"] == DEFAULT_MODEL
    assert ok["verdict"] == "correct" and ok["provider"] == "openai"
    assert {"reason", "attempts", "usage", "cost_usd", "cached", "template_version"} <= set(ok)
    assert "index" not in ok and "status" not in ok

    bad = asyncio.run(get_binary_judge_response_async(f"2+2? {tag}", "4", "WRONG"))
    assert bad["result"] == 0 and bad["success"] is True

    unsure = asyncio.run(get_binary_judge_response_async(f"2+2? {tag}", "4", "REPLY<I cannot tell.>"))
    assert unsure["result"] is None and unsure["success"] is False
    assert unsure["verdict"] == "unscored" and unsure["unscored_reason"]

    broken = asyncio.run(get_binary_judge_response_async(f"2+2? {tag}", "4", ""))
    assert broken["result"] is None and broken["success"] is False
    assert broken["error"]["field"] == "items[0].prediction"


def test_get_binary_judge_response_blocking(use_server: Server, tag: str) -> None:
    r = get_binary_judge_response(f"Capital of France? {tag}", "Paris", "WRONG: Lyon")
    assert (r["result"], r["success"]) == (0, True)


def test_unknown_judge_raises(use_server: Server) -> None:
    with pytest.raises(BadRequestError) as e:
        asyncio.run(AsyncSimplifiedJudge(judge="no-such-route").evaluate_binary_async("q", "a", "p"))
    assert e.value.code == "unknown_judge"


def test_batch_in_input_order_across_chunks(use_server: Server, tag: str) -> None:
    judge = AsyncSimplifiedJudge(max_concurrent=3, chunk_size=2, temperature=0, max_tokens=64)
    preds = ["1", "WRONG", "1", "1", "WRONG"]
    seen: List[Tuple[int, int]] = []
    results = asyncio.run(
        judge.evaluate_binary_batch_async(
            [f"q{i} {tag}" for i in range(5)], ["1"] * 5, preds, progress_callback=lambda d, t: seen.append((d, t))
        )
    )
    assert [r["result"] for r in results] == [1, 0, 1, 1, 0]
    assert seen[-1] == (5, 5)
    assert asyncio.run(judge.evaluate_binary_batch_async([], [], [])) == []
    with pytest.raises(ValueError):
        asyncio.run(judge.evaluate_binary_batch_async(["a"], ["b", "c"], ["d"]))


def test_binary_with_the_rules_judge_and_a_custom_prompt(use_server: Server, tag: str) -> None:
    judge = AsyncSimplifiedJudge(judge="rules")
    r = asyncio.run(judge.evaluate_binary_async(f"What is 2+2? {tag}", "4", "The answer is 4.0"))
    assert (r["provider"], r["result"]) == ("rules", 1)
    custom = AsyncSimplifiedJudge()
    r2 = asyncio.run(
        custom.evaluate_binary_async(f"q {tag}", "x", "y", custom_prompt="Q {question} A {answer} P {prediction} WRONG")
    )
    assert r2["result"] == 0 and r2["template_version"].startswith("custom-")


# ---- score and comparative ----------------------------------------------------------------


def test_score_methods(use_server: Server, tag: str) -> None:
    judge = AsyncSimplifiedJudge()
    one = asyncio.run(judge.evaluate_score_async(f"Why is the sky blue? {tag}", "Rayleigh", rubric="10: right"))
    assert one["result"] == 8.0 and one["score"] == 8.0 and one["success"]
    many = asyncio.run(
        judge.evaluate_score_batch_async(
            [f"a {tag}", f"b {tag}"], ["good", "WRONG"], answers=["ref", None], rubric=["r1", None], max_score=10
        )
    )
    assert [m["result"] for m in many] == [8.0, 3.0]
    rubric = asyncio.run(judge.evaluate_with_rubric_async(f"c {tag}", "fine", rubric="anything"))
    assert rubric["score"] == 8.0


def test_comparative_methods(use_server: Server, tag: str) -> None:
    judge = AsyncSimplifiedJudge()
    one = asyncio.run(judge.evaluate_comparative_async(f"capital? {tag}", "BEST Paris", "Lyon", context="Paris"))
    assert one["result"] == "a" and one["winner"] == "a" and one["scores"] == [1.0, 0.0]
    many = asyncio.run(
        judge.evaluate_comparative_batch_async([f"x {tag}", f"y {tag}"], ["a", "BEST b"], ["BEST c", "d"], swap=False)
    )
    assert [m["result"] for m in many] == ["b", "a"]


# ---- whole datasets -----------------------------------------------------------------------


def test_high_throughput_evaluator_default_route(use_server: Server, tag: str) -> None:
    dataset = [
        {"id": i, "question": f"What is {i} + {i}? {tag}", "answer": 2 * i, "prediction": "WRONG" if i % 4 == 0 else 2 * i}
        for i in range(10)
    ]
    seen: List[Tuple[int, int]] = []
    ev = HighThroughputEvaluator(max_concurrent=4, use_fallback=True, show_progress=True)
    results = asyncio.run(
        ev.evaluate_dataset_async(dataset, eval_type="binary", batch_size=4, progress_callback=lambda d, t: seen.append((d, t)))
    )
    assert ev.judge is None  # no api_type: the service's default route, with its own fallbacks
    assert [r["result"] for r in results] == [0 if i % 4 == 0 else 1 for i in range(10)]
    assert seen[-1] == (10, 10)

    scored = asyncio.run(
        ev.evaluate_dataset_async([{"question": f"q {tag}", "prediction": "ok", "rubric": "r"}], eval_type="rubric")
    )
    assert scored[0]["result"] == 8.0
    compared = asyncio.run(
        ev.evaluate_dataset_async(
            [{"question": f"q {tag}", "response1": "x", "response2": "BEST y", "context": "y"}], eval_type="comparative"
        )
    )
    assert compared[0]["result"] == "b"
    with pytest.raises(ValueError):
        asyncio.run(ev.evaluate_dataset_async(dataset, eval_type="nonsense"))


def test_fallback_route_is_the_other_enabled_providers(use_server: Server) -> None:
    async def main() -> Tuple[Any, Any, Any]:
        async with AsyncClient() as c:
            return (
                await lmms._route(c, "openai", None, None, True),
                await lmms._route(c, "openai", "gpt-x", ["anthropic:claude-y", "rules"], True),
                await lmms._route(c, "openai", None, None, False),
            )

    auto, given, none = asyncio.run(main())
    steps = auto.split(",")
    assert steps[0] == f"openai:{DEFAULT_MODEL}" or steps[0] == "openai"
    assert {"anthropic", "together", "broken"} <= set(steps[1:]) and "rules" not in steps
    assert given == "openai:gpt-x,anthropic:claude-y,rules"
    assert none == "openai"


def test_run_async_evaluation_inside_a_running_loop() -> None:
    async def value() -> int:
        await asyncio.sleep(0)
        return 42

    async def outer() -> int:
        return run_async_evaluation(value())

    assert run_async_evaluation(value()) == 42
    assert asyncio.run(outer()) == 42


# ---- needing features the service is gaining ---------------------------------------------


def test_api_type_and_model_name_reach_the_provider(use_server: Server, tag: str) -> None:
    assert use_server.provider is not None
    judge = AsyncSimplifiedJudge(api_type="anthropic", model_name="claude-3-opus-20240229")
    results = asyncio.run(judge.evaluate_binary_batch_async([f"q {tag}"], ["1"], ["1"]))
    assert (results[0]["provider"], results[0]["model"]) == ("anthropic", "claude-3-opus-20240229")
    assert any(c[1] == "claude-3-opus-20240229" and tag in c[2] for c in use_server.provider.calls)
    bare = asyncio.run(get_binary_judge_response_async(f"b {tag}", "1", "1", api_type="anthropic"))
    assert bare["model"] == ANTHROPIC_MODEL


def test_model_version_from_the_environment(use_server: Server, monkeypatch: pytest.MonkeyPatch, tag: str) -> None:
    monkeypatch.setenv("MODEL_VERSION", "gpt-from-env")
    r = asyncio.run(get_binary_judge_response_async(f"q {tag}", "1", "1", api_type="openai"))
    assert (r["provider"], r["model"]) == ("openai", "gpt-from-env")


def test_high_throughput_evaluator_falls_back(use_server: Server, tag: str) -> None:
    ev = HighThroughputEvaluator(api_type="broken", fallback_apis=["anthropic"], show_progress=False)
    results = asyncio.run(ev.evaluate_dataset_async([{"question": f"q {tag}", "answer": "1", "prediction": "1"}]))
    assert ev.judge == "broken,anthropic"
    assert results[0]["result"] == 1 and results[0]["fallback"] is True and results[0]["provider"] == "anthropic"


def test_evaluate_with_fallback(use_server: Server, tag: str) -> None:
    request = JudgeRequest(messages=[{"role": "user", "content": f"Evaluate if 2+2=4 is correct {tag}"}])
    response = asyncio.run(evaluate_with_fallback(request, primary_api="broken", fallback_apis=["anthropic"]))
    assert response.content == "Verdict: 1"
    assert response.model_used == ANTHROPIC_MODEL and response.provider == "anthropic"
    assert response.fallback is True and response.attempts
    assert response.usage["total_tokens"] == response.usage["prompt_tokens"] + response.usage["completion_tokens"] > 0
    first = asyncio.run(evaluate_with_fallback(request, primary_api="openai", fallback_apis=["anthropic"]))
    assert first.provider == "openai" and first.fallback is False


def test_evaluate_with_fallback_request_and_response_shapes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The chat request the drop-in sends, and how it reads the answer (a scripted service)."""
    import json

    from standin import Scripted

    answer = {
        "id": "c1", "object": "chat.completion", "model": "claude-y",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes, it is."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
        "x_llm_judge": {"provider": "anthropic", "model": "claude-y", "fallback": True, "cost_usd": 0.001,
                        "cached": False, "attempts": [{"provider": "openai", "outcome": "error"}, {"provider": "anthropic", "outcome": "ok"}]},
    }
    providers = {"providers": [{"name": n, "kind": n, "enabled": n != "cohere", "circuit": "closed", "in_flight": 0,
                                "max_in_flight": 1} for n in ("anthropic", "cohere", "openai", "rules", "together")],
                 "routes": {"default": ["openai:gpt-4o"]}, "default_route": "default"}
    s = Scripted([(200, providers), (200, answer)])
    try:
        monkeypatch.setenv("LLM_JUDGE_URL", s.url)
        img = tmp_path / "a.png"
        img.write_bytes(b"img")
        req = JudgeRequest(messages=[{"role": "system", "content": "Be strict."}, {"role": "user", "content": "2+2=4?"}],
                           images=[str(img)], max_tokens=20)
        r = asyncio.run(evaluate_with_fallback(req, primary_api="openai", model_name="gpt-4o"))
        sent = json.loads(s.requests[1]["body"])
        assert s.requests[0]["path"] == "/v1/providers" and s.requests[1]["path"] == "/v1/chat/completions"
        assert sent["model"] == "openai:gpt-4o,anthropic,together"
        assert sent["max_tokens"] == 20 and sent["temperature"] == 0.0
        parts = sent["messages"][1]["content"]
        assert parts[0] == {"type": "text", "text": "2+2=4?"}
        assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
        assert (r.content, r.model_used, r.provider, r.fallback) == ("Yes, it is.", "claude-y", "anthropic", True)
        assert r.usage == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        assert len(r.attempts) == 2 and r.cost_usd == 0.001
    finally:
        s.close()
