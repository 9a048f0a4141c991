"""The asyncio client against the real service (each test runs its own event loop)."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List, Tuple, TypeVar

import pytest

from conftest import DEFAULT_MODEL, Server
from llm_judge_client import AsyncClient, BatchItem, CompareResult, NotFoundError, ScoreResult

T = TypeVar("T")


def run(server: Server, body: Callable[[AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with AsyncClient(server.url) as c:
            return await asyncio.wait_for(body(c), 60)

    return asyncio.run(main())


def test_single_judgments(server: Server, tag: str) -> None:
    async def body(c: AsyncClient) -> Tuple[Any, ...]:
        return await asyncio.gather(
            c.binary(f"2+2? {tag}", "4", "4"),
            c.binary(f"2+2? {tag}", "4", "WRONG"),
            c.score(f"sky? {tag}", "scattering", answer="Rayleigh"),
            c.compare(f"capital? {tag}", "Lyon", "BEST Paris"),
        )

    ok, bad, score, cmp = run(server, body)
    assert (ok.result, ok.model, bad.result) == (1, DEFAULT_MODEL, 0)
    assert isinstance(score, ScoreResult) and score.score == 8.0
    assert isinstance(cmp, CompareResult) and cmp.winner == "b" and cmp.consistent


def test_batch_whole_and_with_progress(server: Server, tag: str) -> None:
    seen: List[Tuple[int, int]] = []

    async def body(c: AsyncClient) -> Tuple[Any, Any]:
        whole = await c.batch(questions=[f"a {tag}", f"b {tag}"], answers=["1", "1"], predictions=["1", "WRONG"])
        tracked = await c.batch(
            [{"question": f"c{i} {tag}", "answer": "1", "prediction": "1"} for i in range(3)],
            on_progress=lambda d, t: seen.append((d, t)),
        )
        return whole, tracked

    whole, tracked = run(server, body)
    assert [r.result for r in whole.results] == [1, 0] and whole.summary.accuracy == 0.5
    assert [r.index for r in tracked.results] == [0, 1, 2] and seen[-1] == (3, 3)


def test_batch_stream_yields_results_before_the_last_item_finishes(server: Server, tag: str) -> None:
    provider = server.provider
    assert provider is not None
    items = [{"question": f"fast{i} {tag}", "answer": "1", "prediction": "1"} for i in range(2)]
    items.append({"question": f"slow {tag}", "answer": "1", "prediction": f"HOLD:{tag}"})

    async def body(c: AsyncClient) -> Tuple[List[BatchItem], Any]:
        got: List[BatchItem] = []
        async with c.batch(items, stream=True) as stream:
            async for item in stream:
                got.append(item)
                if len(got) == 2:
                    assert not provider.released(tag)
                    provider.release(tag)
            return got, stream.summary

    got, summary = run(server, body)
    assert [i.index for i in got][:2] in ([0, 1], [1, 0]) and got[2].index == 2
    assert summary is not None and summary.total == 3 and summary.correct == 3


def test_jobs(server: Server, tag: str) -> None:
    provider = server.provider
    assert provider is not None
    seen: List[Tuple[int, int]] = []

    def on_progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 2:
            provider.release(tag)  # type: ignore[union-attr]

    async def body(c: AsyncClient) -> Tuple[Any, ...]:
        sub = await c.submit_job(
            questions=[f"a {tag}", f"b {tag}", f"c {tag}"], answers=["1"] * 3,
            predictions=["1", f"HOLD:{tag}", "WRONG"],
        )
        job = await c.wait(sub.id, on_progress=on_progress, timeout=60)
        view = await c.job(sub.id)
        listed = [j.id for j in await c.jobs(limit=20)]
        results = [r async for r in c.results(sub.id)]
        after = [r.index async for r in c.results(sub.id, after=0)]
        cancelled = await c.cancel(sub.id)
        return sub, job, view, listed, results, after, cancelled

    sub, job, view, listed, results, after, cancelled = run(server, body)
    assert job.status == "completed" and (2, 3) in seen and seen[-1] == (3, 3)
    assert view.progress.done == 3 and sub.id in listed
    assert [r.result for r in results] == [1, 1, 0]
    assert after == [1, 2]
    assert cancelled.status == "completed"


def test_job_not_found(server: Server) -> None:
    async def body(c: AsyncClient) -> None:
        await c.job("job_does_not_exist")

    with pytest.raises(NotFoundError) as e:
        run(server, body)
    assert (e.value.status, e.value.code) == (404, "job_not_found")


def test_providers(server: Server) -> None:
    async def body(c: AsyncClient) -> Any:
        return await c.providers()

    info = run(server, body)
    assert "openai" in info.enabled() and info.routes["rules"] == ["rules:rules"]


def test_chat_completions(server: Server, tag: str) -> None:
    async def body(c: AsyncClient) -> Any:
        return await c.chat_completions("openai", [{"role": "user", "content": f"2+2=4? {tag}"}])

    out = run(server, body)
    assert out["choices"][0]["message"]["content"] == "Verdict: 1"
    assert out["x_llm_judge"]["provider"] == "openai"


@pytest.mark.needs_server_feature("calibrate")
def test_calibrate(server: Server, tag: str) -> None:
    items = [{"question": f"a {tag}", "answer": "4", "prediction": "4", "label": 1}]

    async def body(c: AsyncClient) -> Any:
        return await c.calibrate(items, ["rules"])

    report = run(server, body)
    assert [j["judge"] for j in report["judges"]] == ["rules"]
    assert report["judges"][0]["accuracy"] == 1.0
