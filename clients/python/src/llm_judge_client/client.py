"""The blocking client."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Dict, Generator, Iterator, List, Literal, Mapping, Optional, Sequence, Type, Union, overload

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

__all__ = ["Client", "BatchStream"]


class BatchStream(Iterator[BatchItem]):
    """Results of a streamed batch, in the order they complete.

    Iterate it (or use it in a ``with`` block, which closes the connection early if you stop);
    once it is exhausted, ``summary`` holds the batch summary. Leaving it early cancels the
    items still in flight on the service.
    """

    def __init__(self, lines: Iterator[str], reader: core.BatchLines) -> None:
        self._lines = lines
        self._reader = reader

    @property
    def summary(self) -> Optional[Summary]:
        return self._reader.summary

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> BatchItem:
        for line in self._lines:
            item = self._reader.read(line)
            if item is not None:
                return item
        raise StopIteration

    def collect(self) -> BatchResult:
        """Reads the rest and returns the whole batch, in input order."""
        return self._reader.finish(list(self))

    def close(self) -> None:
        close = getattr(self._lines, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "BatchStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """A blocking client of the llm-judge service.

    Args:
        base_url: the service; default ``LLM_JUDGE_URL``, else ``http://127.0.0.1:8080``.
        token: the client token, sent as ``Authorization: Bearer``; default ``LLM_JUDGE_TOKEN``.
        timeout: seconds (or an ``httpx.Timeout``) for each request; default 600, connect 10.
        max_retries: retries of a request that could not get through or got 429/503 (default 4).
        backoff: the first retry's largest delay in seconds; doubled for each later one.
        max_backoff: the largest delay between two tries.
        transport: an httpx transport (for tests or proxies).
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
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self._s = core.settings(base_url, token, timeout, max_retries, backoff, max_backoff)
        self._http = httpx.Client(
            base_url=self._s.base_url,
            headers=self._s.headers(),
            timeout=self._s.timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return self._s.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # ---- transport -----------------------------------------------------------------------

    def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        req = self._http.build_request(
            call.method, call.path, json=call.json, params=call.params, headers=call.headers
        )
        state = core.RetryState(self._s)
        while True:
            try:
                resp = self._http.send(req, stream=stream)
            except httpx.TransportError as e:
                delay = state.on_error(e)
            else:
                if stream and not resp.is_success:
                    resp.read()
                    resp.close()
                retry_in = state.on_response(resp)
                if retry_in is None:
                    return resp
                delay = retry_in
            time.sleep(delay)

    def _json(self, call: Call) -> Any:
        return core.parse_json(self._send(call))

    def _lines(self, call: Call) -> Generator[str, None, None]:
        resp = self._send(call, stream=True)
        try:
            yield from resp.iter_lines()
        except httpx.TransportError as e:
            raise core.stream_broken(e) from e
        finally:
            resp.close()

    # ---- single judgments ----------------------------------------------------------------

    def binary(
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
        """Is ``prediction`` correct, given ``question`` and the reference ``answer``?

        ``judge`` is a route name (the default route when None); ``output_format`` ``"0/1"`` or
        ``"yes/no"``; ``prompt`` your own template with ``{question}``, ``{answer}``,
        ``{prediction}``; ``options`` ``temperature``, ``max_tokens``, ``cache``.
        """
        body = core.item_body(locals())
        return BinaryResult.from_dict(self._json(Call("POST", "/v1/judge/binary", body)))

    def score(
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
        """A grade from ``min`` (default 1) to ``max`` (default 10); ``pass_score`` makes it pass/fail."""
        body = core.item_body(locals())
        return ScoreResult.from_dict(self._json(Call("POST", "/v1/judge/score", body)))

    def compare(
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
        """Which of two responses is better (``winner`` ``a``, ``b`` or ``tie``); ``swap`` (default
        true on the service) asks in both orders."""
        body = core.item_body(locals())
        return CompareResult.from_dict(self._json(Call("POST", "/v1/judge/compare", body)))

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
    ) -> BatchResult: ...

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
    ) -> BatchStream: ...

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
    ) -> Union[BatchResult, BatchStream]:
        """Judges many items of one ``kind`` in one request.

        Give ``items`` (dicts with the single endpoint's fields; an item may name its own
        ``judge``) or, for binary, the parallel lists ``questions``, ``answers``,
        ``predictions``. An item that cannot be judged is an ``error`` entry, never an exception.

        Returns a :class:`BatchResult` (results in input order and the summary); with
        ``stream=True`` a :class:`BatchStream` that yields each result as it completes.
        ``on_progress(done, total)`` is called as results come in; ``progress=True`` shows a
        tqdm bar. Either makes the request a streamed one.
        """
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
            data = self._json(Call("POST", "/v1/judge/batch", body))
            return BatchResult(
                [BatchItem.from_dict(kind, r) for r in data.get("results", [])],
                Summary.from_dict(data.get("summary")),
            )
        bar = core.ProgressBar(progress, f"llm-judge {kind}", total)

        def report(done: int, of: int) -> None:
            bar.update_to(done, of)
            if on_progress is not None:
                on_progress(done, of)

        lines = self._lines(Call("POST", "/v1/judge/batch", body, headers=core.NDJSON_HEADERS))
        s = BatchStream(_closing(lines, bar), core.BatchLines(kind, total, report))
        return s if stream else s.collect()

    # ---- jobs ----------------------------------------------------------------------------

    def submit_job(
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
        """Stores a batch as a persistent job that runs in the background and survives restarts.

        The same ``idempotency_key`` returns the same job; without one, a key is made for this
        call so that a retried submission cannot create two jobs.
        """
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
        return SubmittedJob.from_dict(self._json(Call("POST", "/v1/jobs", body)), key)

    def job(self, job_id: str) -> Job:
        """A job's status, progress and (once finished) summary."""
        return Job.from_dict(self._json(Call("GET", core.job_path(job_id))))

    def jobs(self, limit: Optional[int] = None) -> List[Job]:
        """Jobs, newest first."""
        params = {"limit": limit} if limit is not None else None
        data = self._json(Call("GET", "/v1/jobs", params=params))
        return [Job.from_dict(j) for j in data.get("jobs", [])]

    def cancel(self, job_id: str) -> Job:
        """Cancels a job; its finished results stay readable."""
        return Job.from_dict(self._json(Call("DELETE", core.job_path(job_id))))

    def retry_errors(self, job_id: str) -> Job:
        """Sends a finished job's errored items (and any it never judged) again: the job is
        queued and runs again; its other results stay. Raises ``ConflictError`` (409) while
        the job is still running. Follow it with :meth:`wait`."""
        data = self._json(Call("POST", core.job_path(job_id, "/retry")))
        return Job.from_dict(data.get("job"))

    def wait(
        self,
        job_id: str,
        *,
        progress: bool = False,
        on_progress: Optional[ProgressCallback] = None,
        timeout: Optional[float] = None,
    ) -> Job:
        """Follows the job's progress events until it finishes and returns the finished job.

        ``progress=True`` shows a tqdm bar; ``on_progress(done, total)`` is called for each
        progress event. When the event stream breaks (the service restarting), it reconnects,
        with the client's retry policy. ``timeout`` (seconds) raises ``TimeoutError``; the job
        keeps running.
        """
        watch = core.JobWatch(self._s, job_id, on_progress, progress, timeout)
        try:
            while True:
                lines = self._lines(watch.call)
                try:
                    for line in lines:
                        job = watch.feed(line)
                        if job is not None:
                            return job
                except core.StreamBroken:
                    pass
                finally:
                    lines.close()
                time.sleep(watch.broken())
        finally:
            watch.bar.close()

    def results(
        self, job_id: str, *, after: Optional[int] = None, order: str = "index"
    ) -> Iterator[BatchItem]:
        """Every finished result of a job, in index order (or ``order="completion"``, each with
        ``seq``), from after ``after``. A broken connection resumes where it stopped."""
        cursor = core.ResultsCursor(self._s, job_id, self.job(job_id).kind, after, order)
        while True:
            try:
                for line in self._lines(cursor.call()):
                    item = cursor.take(line)
                    if item is not None:
                        yield item
            except core.StreamBroken:
                time.sleep(cursor.broken())
                continue
            if cursor.finished():
                return

    # ---- the rest ------------------------------------------------------------------------

    def calibrate(
        self,
        items: Sequence[Item],
        judges: Sequence[str],
        *,
        kind: Kind = "binary",
        **extra: Any,
    ) -> CalibrationReport:
        """How far each judge agrees with your labels: ``POST /v1/calibrate`` with the labelled
        ``items`` and the ``judges`` (route names) to measure; the service's answer as parsed."""
        body = {"kind": kind, "judges": list(judges), "items": [dict(i) for i in items], **extra}
        report: CalibrationReport = self._json(Call("POST", "/v1/calibrate", body))
        return report

    def chat_completions(
        self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> Dict[str, Any]:
        """The service's OpenAI-compatible ``POST /v1/chat/completions``: ``model`` is a route
        name or an ad-hoc route (``"openai:gpt-4o,anthropic"``); ``params`` go in the body
        (``temperature``, ``max_tokens`` ...). Returns the ``chat.completion`` object, with the
        service's ``x_llm_judge`` (provider, model, attempts, fallback, cost_usd, cached)."""
        body = {"model": model, "messages": [dict(m) for m in messages], **params}
        data: Dict[str, Any] = self._json(Call("POST", "/v1/chat/completions", body))
        return data

    def providers(self) -> ProvidersInfo:
        """Every provider (enabled, circuit state, in flight, limits) and the routes."""
        return ProvidersInfo.from_dict(self._json(Call("GET", "/v1/providers")))


def _closing(lines: Iterator[str], bar: core.ProgressBar) -> Iterator[str]:
    try:
        yield from lines
    finally:
        bar.close()
        close = getattr(lines, "close", None)
        if close is not None:
            close()
