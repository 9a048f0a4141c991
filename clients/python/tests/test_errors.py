"""Error answers become exceptions; what is retried and what is not."""

from __future__ import annotations

import asyncio
import socket
from typing import Iterator

import pytest

from conftest import AUTH_TOKEN, Server
from llm_judge_client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConnectionFailedError,
    LLMJudgeError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
)
from standin import DROP, Scripted, error, judgment

FAST = dict(backoff=0.001, max_backoff=0.01)


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    s = Scripted([])
    yield s
    s.close()


# ---- against the real service ------------------------------------------------------------


def test_401_with_a_token_configured(auth_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    with Client(auth_server.url, token="wrong-token-value") as c:
        with pytest.raises(AuthenticationError) as e:
            c.binary("q", "1", "1")
    err = e.value
    assert isinstance(err, LLMJudgeError)
    assert (err.status, err.code) == (401, "unauthorized") and err.message
    assert "wrong-token-value" not in str(err) + repr(err)
    with Client(auth_server.url) as anonymous:
        with pytest.raises(AuthenticationError):
            anonymous.providers()
    monkeypatch.setenv("LLM_JUDGE_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("LLM_JUDGE_URL", auth_server.url)
    with Client() as c:
        assert c.binary("What is 2+2?", "4", "4").result == 1


def test_404_job(server: Server) -> None:
    with Client(server.url) as c:
        with pytest.raises(NotFoundError) as e:
            c.job("job_0000000000000000")
        assert (e.value.status, e.value.code, e.value.field) == (404, "job_not_found", "id")
        with pytest.raises(NotFoundError):
            list(c.results("job_0000000000000000"))
        with pytest.raises(NotFoundError):
            c.wait("job_0000000000000000", timeout=5)


def test_bad_item_names_its_field(server: Server) -> None:
    with Client(server.url) as c:
        with pytest.raises(BadRequestError) as e:
            c.binary("q", "1", "")
        assert (e.value.status, e.value.code, e.value.field) == (422, "invalid_field", "prediction")
        with pytest.raises(BadRequestError) as e2:
            c.binary("q", "1", "1", judge="no-such-judge")
        assert (e2.value.code, e2.value.field) == ("unknown_judge", "judge")
        with pytest.raises(BadRequestError) as e3:
            c.binary("q", "1", "1", unknown_field=True)
        assert e3.value.field is not None and "unknown_field" in e3.value.field + e3.value.message


def test_502_when_every_provider_failed(server: Server, tag: str) -> None:
    with Client(server.url) as c:
        with pytest.raises(ProviderError) as e:
            c.binary(f"q {tag}", "1", "1", judge="broken")
    assert e.value.status == 502 and e.value.code in ("all_providers_failed", "provider_rejected_request")
    assert e.value.attempts and e.value.attempts[0]["provider"] == "broken"


# ---- a scripted stand-in for the service -------------------------------------------------


def test_503_then_200_is_retried(scripted: Scripted) -> None:
    scripted.answers = [(503, error("shutting_down", "draining")), (200, judgment(1))]
    with Client(scripted.url, **FAST) as c:  # type: ignore[arg-type]
        assert c.binary("q", "a", "p").result == 1
    assert len(scripted.requests) == 2
    assert scripted.requests[0]["body"] == scripted.requests[1]["body"]


def test_503_retries_are_bounded(scripted: Scripted) -> None:
    scripted.answers = [(503, error("shutting_down", "draining"))]
    with Client(scripted.url, max_retries=3, **FAST) as c:  # type: ignore[arg-type]
        with pytest.raises(UnavailableError) as e:
            c.binary("q", "a", "p")
    assert (e.value.status, e.value.code) == (503, "shutting_down")
    assert len(scripted.requests) == 4


def test_429_is_retried_after_retry_after(scripted: Scripted) -> None:
    scripted.answers = [(429, error("rate_limited", "slow down"), {"retry-after": "0"}), (200, judgment(0))]
    with Client(scripted.url, **FAST) as c:  # type: ignore[arg-type]
        assert c.binary("q", "a", "p").result == 0
    assert len(scripted.requests) == 2
    scripted.answers = [(429, error("rate_limited", "slow down"), {"retry-after": "0"})]
    scripted.requests.clear()
    with Client(scripted.url, max_retries=1, **FAST) as c:  # type: ignore[arg-type]
        with pytest.raises(RateLimitedError):
            c.binary("q", "a", "p")
    assert len(scripted.requests) == 2


@pytest.mark.parametrize(
    "status,cls",
    [(400, BadRequestError), (401, AuthenticationError), (404, NotFoundError), (422, BadRequestError), (502, ProviderError)],
)
def test_other_errors_are_not_retried(scripted: Scripted, status: int, cls: type) -> None:
    scripted.answers = [(status, error("malformed_json" if status == 400 else "x", "refused", "body")), (200, judgment())]
    with Client(scripted.url, **FAST) as c:  # type: ignore[arg-type]
        with pytest.raises(cls) as e:
            c.binary("q", "a", "p")
    assert e.value.status == status and e.value.field == "body"
    assert len(scripted.requests) == 1


def test_dropped_connection_is_retried(scripted: Scripted) -> None:
    scripted.answers = [DROP, (200, judgment(1))]
    with Client(scripted.url, **FAST) as c:  # type: ignore[arg-type]
        assert c.binary("q", "a", "p").result == 1
    assert len(scripted.requests) == 2


def test_unreachable_service_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("LLM_JUDGE_URL", f"http://127.0.0.1:{port}")
    with Client(max_retries=2, **FAST) as c:  # type: ignore[arg-type]
        assert c.base_url == f"http://127.0.0.1:{port}"
        with pytest.raises(ConnectionFailedError) as e:
            c.providers()
    assert e.value.code == "connection_error" and e.value.status is None
    assert "2 retries" in str(e.value)


def test_env_url_and_token_are_used(scripted: Scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted.answers = [(200, judgment(1))]
    monkeypatch.setenv("LLM_JUDGE_URL", scripted.url + "/")
    monkeypatch.setenv("LLM_JUDGE_TOKEN", "tok-123")
    with Client() as c:
        c.binary("q", "a", "p", judge="j")
    req = scripted.requests[0]
    assert req["path"] == "/v1/judge/binary"
    assert req["headers"].get("authorization") == "Bearer tok-123"


def test_non_json_error_body(scripted: Scripted) -> None:
    scripted.answers = [(500, "<html>proxy error</html>")]
    with Client(scripted.url, **FAST) as c:  # type: ignore[arg-type]
        with pytest.raises(UnavailableError) as e:
            c.providers()
    assert e.value.code == "http_500" and "proxy error" in e.value.message
    assert len(scripted.requests) == 1


def test_async_client_retries_503_then_200(scripted: Scripted) -> None:
    scripted.answers = [(503, error("store_unavailable", "busy")), DROP, (200, judgment(1))]

    async def main() -> int:
        async with AsyncClient(scripted.url, **FAST) as c:  # type: ignore[arg-type]
            r = await c.binary("q", "a", "p")
            return r.result or 0

    assert asyncio.run(main()) == 1
    assert len(scripted.requests) == 3


def test_async_client_does_not_retry_a_4xx(scripted: Scripted) -> None:
    scripted.answers = [(422, error("invalid_field", "bad", "items[0].question"))]

    async def main() -> None:
        async with AsyncClient(scripted.url, **FAST) as c:  # type: ignore[arg-type]
            await c.batch([{"question": ""}])

    with pytest.raises(BadRequestError) as e:
        asyncio.run(main())
    assert e.value.field == "items[0].question" and len(scripted.requests) == 1


def test_streamed_batch_retries_its_start(scripted: Scripted) -> None:
    lines = "\n".join(
        [
            '{"index":0,"status":"ok","result":1,"verdict":"correct","raw_response":"1","provider":"p","model":"m"}',
            '{"progress":{"done":1,"total":1,"correct":1,"incorrect":0,"unscored":0,"errors":0,"items_per_second":1}}',
            '{"summary":{"total":1,"correct":1,"incorrect":0,"unscored":0,"errors":0,"usage":{"prompt_tokens":0,"completion_tokens":0},"cached":0,"duration_ms":1,"items_per_second":1}}',
        ]
    )
    scripted.answers = [(503, error("shutting_down", "draining")), (200, lines + "\n")]
    with Client(scripted.url, **FAST) as c:  # type: ignore[arg-type]
        items = list(c.batch(questions=["q"], answers=["a"], predictions=["p"], stream=True))
    assert [i.result for i in items] == [1]
    assert scripted.requests[1]["headers"].get("accept") == "application/x-ndjson"
