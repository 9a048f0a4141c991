"""The asyncio client: the same methods as :class:`llm_judge_client.Client`, awaited."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Coroutine,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
    Union,
    overload,
)
from typing import Literal

import httpx

from . import _core as core
from ._core import Call, Item, ProgressCallback
from .types import (
    BatchItem,
    BatchResult,
    BinaryResult,
    CalibrationReport,
    CompareResult,
    Job,
    Kind,
    ProvidersInfo,
    ScoreResult,
    SubmittedJob,
    Summary,
)

__all__ = ["AsyncClient", "AsyncBatchStream"]


class AsyncBatchStream(AsyncIterator[BatchItem]):
    """Results of a streamed batch, in the order they complete: ``async for item in stream``.

    Once exhausted, ``summary`` holds the batch summary. Use ``async with`` (or ``aclose()``)
    to close the connection when stopping early, which cancels the items still in flight.
    """

    def __init__(self, lines: AsyncIterator[str], reader: core.BatchLines) -> None:
        self._lines = lines
        self._reader = reader

    @property
    def summary(self) -> Optional[Summary]:
        return self._reader.summary

    def __aiter__(self) -> "AsyncBatchStream":
        return self

    async def __anext__(self) -> BatchItem:
        async for line in self._lines:
            item = self._reader.read(line)
            if item is not None:
                return item
        raise StopAsyncIteration

    async def collect(self) -> BatchResult:
        """Reads the rest and returns the whole batch, in input order."""
        return self._reader.finish([item async for item in self])

    async def aclose(self) -> None:
        close = getattr(self._lines, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> "AsyncBatchStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncClient:
    """An asyncio client of the llm-judge service; the arguments are those of :class:`Client`.

    Use it as ``async with AsyncClient() as c:`` or call ``await c.aclose()`` when done.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Union[float, httpx.Timeout, None] = None,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self._s = core.settings(base_url, token, timeout, max_retries, backoff, max_backoff)
        self._http = httpx.AsyncClient(
            base_url=self._s.base_url,
            headers=self._s.headers(),
            timeout=self._s.timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )

    @property
    def base_url(self) -> str:
        return self._s.base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    # ---- transport -----------------------------------------------------------------------

    async def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        req = self._http.build_request(
            call.method, call.path, json=call.json, params=call.params, headers=call.headers
        )
        state = core.RetryState(self._s)
        while True:
            try:
                resp = await self._http.send(req, stream=stream)
            except httpx.TransportError as e:
                delay = state.on_error(e)
            else:
                if stream and not resp.is_success:
                    await resp.aread()
                    await resp.aclose()
                retry_in = state.on_response(resp)
                if retry_in is None:
                    return resp
                delay = retry_in
            await asyncio.sleep(delay)

    async def _json(self, call: Call) -> Any:
        return core.parse_json(await self._send(call))

    async def _lines(self, call: Call) -> AsyncGenerator[str, None]:
        resp = await self._send(call, stream=True)
        try:
            async for line in resp.aiter_lines():
                yield line
        except httpx.TransportError as e:
            raise core.stream_broken(e) from e
        finally:
            await resp.aclose()

    # ---- single judgments ----------------------------------------------------------------

    async def binary(
        self,
        question: str,
        answer: str,
        prediction: str,
        *,
        judge: Optional[str] = None,
        images: Optional[Sequence[str]] = None,
        output_format: Optional[str] = None,
        prompt: Optional[str] = None,
        options: Optional[Mapping[str, Any]] = None,
        **extra: Any,
    ) -> BinaryResult:
        """See :meth:`Client.binary`."""
        body = core.item_body(locals())
        return BinaryResult.from_dict(await self._json(Call("POST", "/v1/judge/binary", body)))

    async def score(
        self,
        question: str,
        prediction: str,
        *,
        answer: Optional[str] = None,
        rubric: Optional[str] = None,
        min: Optional[float] = None,
        max: Optional[float] = None,
        pass_score: Optional[float] = None,
        judge: Optional[str] = None,
        images: Optional[Sequence[str]] = None,
        prompt: Optional[str] = None,
        options: Optional[Mapping[str, Any]] = None,
        **extra: Any,
    ) -> ScoreResult:
        """See :meth:`Client.score`."""
        body = core.item_body(locals())
        return ScoreResult.from_dict(await self._json(Call("POST", "/v1/judge/score", body)))

    async def compare(
        self,
        question: str,
        response_a: str,
        response_b: str,
        *,
        answer: Optional[str] = None,
        swap: Optional[bool] = None,
        judge: Optional[str] = None,
        images: Optional[Sequence[str]] = None,
        prompt: Optional[str] = None,
        options: Optional[Mapping[str, Any]] = None,
        **extra: Any,
    ) -> CompareResult:
        """See :meth:`Client.compare`."""
        body = core.item_body(locals())
        return CompareResult.from_dict(await self._json(Call("POST", "/v1/judge/compare", body)))

    # ---- batches -------------------------------------------------------------------------

    @overload
    def batch(
        self,
        items: Optional[Sequence[Item]] = ...,
        *,
        kind: Kind = ...,
        questions: Optional[Sequence[str]] = ...,
        answers: Optional[Sequence[str]] = ...,
        predictions: Optional[Sequence[str]] = ...,
        judge: Optional[str] = ...,
        max_concurrent: Optional[int] = ...,
        stream: Literal[False] = ...,
        on_progress: Optional[ProgressCallback] = ...,
        progress: bool = ...,
        progress_interval_ms: Optional[int] = ...,
        max_cost_usd: Optional[float] = ...,
        max_tokens: Optional[int] = ...,
    ) -> Coroutine[Any, Any, BatchResult]: ...

    @overload
    def batch(
        self,
        items: Optional[Sequence[Item]] = ...,
        *,
        kind: Kind = ...,
        questions: Optional[Sequence[str]] = ...,
        answers: Optional[Sequence[str]] = ...,
        predictions: Optional[Sequence[str]] = ...,
        judge: Optional[str] = ...,
        max_concurrent: Optional[int] = ...,
        stream: Literal[True],
        on_progress: Optional[ProgressCallback] = ...,
        progress: bool = ...,
        progress_interval_ms: Optional[int] = ...,
        max_cost_usd: Optional[float] = ...,
        max_tokens: Optional[int] = ...,
    ) -> AsyncBatchStream: ...

    def batch(
        self,
        items: Optional[Sequence[Item]] = None,
        *,
        kind: Kind = "binary",
        questions: Optional[Sequence[str]] = None,
        answers: Optional[Sequence[str]] = None,
        predictions: Optional[Sequence[str]] = None,
        judge: Optional[str] = None,
        max_concurrent: Optional[int] = None,
        stream: bool = False,
        on_progress: Optional[ProgressCallback] = None,
        progress: bool = False,
        progress_interval_ms: Optional[int] = None,
        max_cost_usd: Optional[float] = None,
        max_tokens: Optional[int] = None,
    ) -> Union[Coroutine[Any, Any, BatchResult], AsyncBatchStream]:
        """See :meth:`Client.batch`: ``await c.batch(...)`` for the whole batch, or
        ``async for item in c.batch(..., stream=True)`` for each result as it completes."""
        body, total = core.batch_body(
            items,
            kind=kind,
            questions=questions,
            answers=answers,
            predictions=predictions,
            judge=judge,
            max_concurrent=max_concurrent,
            progress_interval_ms=progress_interval_ms,
            max_cost_usd=max_cost_usd,
            max_tokens=max_tokens,
        )
        if not stream and on_progress is None and not progress:
            return self._whole_batch(kind, body)
        bar = core.ProgressBar(progress, f"llm-judge {kind}", total)

        def report(done: int, of: int) -> None:
            bar.update_to(done, of)
            if on_progress is not None:
                on_progress(done, of)

        lines = self._lines(Call("POST", "/v1/judge/batch", body, headers=core.NDJSON_HEADERS))
        s = AsyncBatchStream(_closing(lines, bar), core.BatchLines(kind, total, report))
        return s if stream else s.collect()

    async def _whole_batch(self, kind: str, body: Any) -> BatchResult:
        data = await self._json(Call("POST", "/v1/judge/batch", body))
        return BatchResult(
            [BatchItem.from_dict(kind, r) for r in data.get("results", [])],
            Summary.from_dict(data.get("summary")),
        )

    # ---- jobs ----------------------------------------------------------------------------

    async def submit_job(
        self,
        items: Optional[Sequence[Item]] = None,
        *,
        kind: Kind = "binary",
        questions: Optional[Sequence[str]] = None,
        answers: Optional[Sequence[str]] = None,
        predictions: Optional[Sequence[str]] = None,
        judge: Optional[str] = None,
        max_concurrent: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        max_cost_usd: Optional[float] = None,
        max_tokens: Optional[int] = None,
        provider_batch: bool = False,
        provider_batch_deadline_s: Optional[float] = None,
    ) -> SubmittedJob:
        """See :meth:`Client.submit_job`."""
        body, _ = core.batch_body(
            items,
            kind=kind,
            questions=questions,
            answers=answers,
            predictions=predictions,
            judge=judge,
            max_concurrent=max_concurrent,
            idempotency_key=idempotency_key,
            max_cost_usd=max_cost_usd,
            max_tokens=max_tokens,
        )
        body, key = core.job_body(body, provider_batch, provider_batch_deadline_s)
        return SubmittedJob.from_dict(await self._json(Call("POST", "/v1/jobs", body)), key)

    async def job(self, job_id: str) -> Job:
        """See :meth:`Client.job`."""
        return Job.from_dict(await self._json(Call("GET", core.job_path(job_id))))

    async def jobs(self, limit: Optional[int] = None) -> List[Job]:
        """Jobs, newest first."""
        params = {"limit": limit} if limit is not None else None
        data = await self._json(Call("GET", "/v1/jobs", params=params))
        return [Job.from_dict(j) for j in data.get("jobs", [])]

    async def cancel(self, job_id: str) -> Job:
        """Cancels a job; its finished results stay readable."""
        return Job.from_dict(await self._json(Call("DELETE", core.job_path(job_id))))

    async def retry_errors(self, job_id: str) -> Job:
        """Sends a finished job's errored items (and any it never judged) again: the job is
        queued and runs again; its other results stay. Raises ``ConflictError`` (409) while
        the job is still running. Follow it with :meth:`wait`."""
        data = await self._json(Call("POST", core.job_path(job_id, "/retry")))
        return Job.from_dict(data.get("job"))

    async def wait(
        self,
        job_id: str,
        *,
        progress: bool = False,
        on_progress: Optional[ProgressCallback] = None,
        timeout: Optional[float] = None,
    ) -> Job:
        """See :meth:`Client.wait`."""
        watch = core.JobWatch(self._s, job_id, on_progress, progress, timeout)
        try:
            while True:
                lines = self._lines(watch.call)
                try:
                    async for line in lines:
                        job = watch.feed(line)
                        if job is not None:
                            return job
                except core.StreamBroken:
                    pass
                finally:
                    await lines.aclose()
                await asyncio.sleep(watch.broken())
        finally:
            watch.bar.close()

    async def results(
        self, job_id: str, *, after: Optional[int] = None, order: str = "index"
    ) -> AsyncIterator[BatchItem]:
        """See :meth:`Client.results`: ``async for item in c.results(job_id)``."""
        cursor = core.ResultsCursor(self._s, job_id, (await self.job(job_id)).kind, after, order)
        while True:
            try:
                async for line in self._lines(cursor.call()):
                    item = cursor.take(line)
                    if item is not None:
                        yield item
            except core.StreamBroken:
                await asyncio.sleep(cursor.broken())
                continue
            if cursor.finished():
                return

    # ---- the rest ------------------------------------------------------------------------

    async def calibrate(
        self,
        items: Sequence[Item],
        judges: Sequence[str],
        *,
        kind: Kind = "binary",
        **extra: Any,
    ) -> CalibrationReport:
        """See :meth:`Client.calibrate`."""
        body = {"kind": kind, "judges": list(judges), "items": [dict(i) for i in items], **extra}
        report: CalibrationReport = await self._json(Call("POST", "/v1/calibrate", body))
        return report

    async def chat_completions(
        self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> Dict[str, Any]:
        """The service's OpenAI-compatible ``POST /v1/chat/completions``: ``model`` is a route
        name or an ad-hoc route (``"openai:gpt-4o,anthropic"``); ``params`` go in the body
        (``temperature``, ``max_tokens`` ...). Returns the ``chat.completion`` object, with the
        service's ``x_llm_judge`` (provider, model, attempts, fallback, cost_usd, cached)."""
        body = {"model": model, "messages": [dict(m) for m in messages], **params}
        data: Dict[str, Any] = await self._json(Call("POST", "/v1/chat/completions", body))
        return data

    async def providers(self) -> ProvidersInfo:
        """See :meth:`Client.providers`."""
        return ProvidersInfo.from_dict(await self._json(Call("GET", "/v1/providers")))


async def _closing(lines: AsyncIterator[str], bar: core.ProgressBar) -> AsyncIterator[str]:
    try:
        async for line in lines:
            yield line
    finally:
        bar.close()
        close = getattr(lines, "aclose", None)
        if close is not None:
            await close()
