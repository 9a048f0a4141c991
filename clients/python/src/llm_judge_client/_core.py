"""What the blocking and the asyncio clients share: settings, request bodies, the retry policy,
and the reading of answers, NDJSON lines and Server-Sent Events. Nothing here does I/O."""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import httpx

from . import errors
from .types import BatchItem, BatchResult, Job, Progress, Summary

DEFAULT_URL = "http://127.0.0.1:8080"
ProgressCallback = Callable[[int, int], None]
Item = Mapping[str, Any]

# Transport failures worth another try: the request did not get through, or the connection went
# away before an answer (a rolling restart closes kept-alive connections). A read timeout is not
# among them: the service is working, and asking again would only add load.
RETRYABLE_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
# 429 (rate limited) and 503 (shutting down during a rollout, store briefly unavailable). No
# other status is retried: a 4xx would be refused again, and a 502 means the service already
# went through its own retries and fallbacks.
RETRYABLE_STATUSES = (429, 503)


@dataclass(frozen=True)
class Settings:
    """Where the service is and how to talk to it."""

    base_url: str
    token: Optional[str]
    timeout: httpx.Timeout
    max_retries: int
    backoff_s: float
    max_backoff_s: float

    def headers(self) -> Dict[str, str]:
        h = {"user-agent": "llm-judge-client", "accept": "application/json"}
        if self.token:
            h["authorization"] = f"Bearer {self.token}"
        return h


def settings(
    base_url: Optional[str],
    token: Optional[str],
    timeout: Union[float, httpx.Timeout, None],
    max_retries: int,
    backoff_s: float,
    max_backoff_s: float,
) -> Settings:
    """Settings from the arguments, then ``LLM_JUDGE_URL`` / ``LLM_JUDGE_TOKEN``, then defaults."""
    url = base_url or os.environ.get("LLM_JUDGE_URL") or DEFAULT_URL
    if max_retries < 0:
        raise ValueError("max_retries must be 0 or more")
    if isinstance(timeout, httpx.Timeout):
        t = timeout
    else:
        t = httpx.Timeout(600.0 if timeout is None else timeout, connect=10.0)
    return Settings(
        base_url=url.rstrip("/"),
        token=token if token is not None else (os.environ.get("LLM_JUDGE_TOKEN") or None),
        timeout=t,
        max_retries=max_retries,
        backoff_s=backoff_s,
        max_backoff_s=max_backoff_s,
    )


@dataclass
class Call:
    """One request to the service."""

    method: str
    path: str
    json: Any = None
    params: Optional[Dict[str, Any]] = None
    headers: Dict[str, str] = field(default_factory=dict)


def _retry_after(resp: httpx.Response) -> Optional[float]:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        v = resp.headers.get(name)
        if not v:
            continue
        try:
            return max(0.0, float(v) * scale)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(v)
            from datetime import datetime, timezone

            return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            pass
    return None


class RetryState:
    """Decides, for one request, whether to try again and after how long.

    Exponential backoff with full jitter (``random(0, min(max, base * 2^n))``), or the service's
    ``retry-after`` when it gives one (capped), for at most ``max_retries`` retries.
    """

    def __init__(self, s: Settings) -> None:
        self._s = s
        self.retries = 0

    def _next_delay(self, hint: Optional[float]) -> float:
        cap = min(self._s.max_backoff_s, self._s.backoff_s * (2**self.retries))
        self.retries += 1
        if hint is not None:
            return min(hint, max(self._s.max_backoff_s, 1.0) * 4)
        return random.uniform(0, cap)

    def on_error(self, exc: Exception) -> float:
        """The delay before trying again, or raises ConnectionFailedError."""
        if isinstance(exc, RETRYABLE_ERRORS) and self.retries < self._s.max_retries:
            return self._next_delay(None)
        raise errors.ConnectionFailedError(
            f"request to the llm-judge service at {self._s.base_url} failed: {type(exc).__name__}: {exc}"
            + (f" (after {self.retries} retries)" if self.retries else ""),
            code="timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error",
        ) from exc

    def on_response(self, resp: httpx.Response) -> Optional[float]:
        """None for a success; the delay before trying again; or raises the service's error.

        The body of an error answer must have been read.
        """
        if resp.is_success:
            return None
        if resp.status_code in RETRYABLE_STATUSES and self.retries < self._s.max_retries:
            return self._next_delay(_retry_after(resp))
        raise error_of(resp)

    def reset(self) -> None:
        self.retries = 0


def error_of(resp: httpx.Response) -> errors.LLMJudgeError:
    text = resp.text
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    return errors.error_from_response(
        resp.status_code, body, text, request_id=resp.headers.get("x-request-id")
    )


def parse_json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError as e:
        raise errors.LLMJudgeError(
            f"the service answered {resp.status_code} with a body that is not JSON",
            code="invalid_response",
            status=resp.status_code,
        ) from e


# ---- request bodies ------------------------------------------------------------------------


def _compact(d: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def item_body(args: Mapping[str, Any]) -> Dict[str, Any]:
    """An item's JSON from a method's arguments (``locals()``): ``self`` and unset ones left out,
    ``extra`` (fields this client does not know yet) merged in."""
    out: Dict[str, Any] = {}
    for k, v in args.items():
        if k in ("self", "extra") or v is None:
            continue
        if k == "images":
            v = list(v)
        elif k == "options":
            v = dict(v)
        out[k] = v
    extra = args.get("extra")
    if extra:
        out.update(extra)
    return out


def batch_body(
    items: Optional[Iterable[Item]],
    *,
    kind: str,
    questions: Optional[Sequence[str]],
    answers: Optional[Sequence[str]],
    predictions: Optional[Sequence[str]],
    judge: Optional[str],
    max_concurrent: Optional[int],
    progress_interval_ms: Optional[int] = None,
    idempotency_key: Optional[str] = None,
    max_cost_usd: Optional[float] = None,
    max_tokens: Optional[int] = None,
) -> Tuple[Dict[str, Any], int]:
    """The batch (or job) body and its number of items."""
    arrays = (questions, answers, predictions)
    if items is not None and any(a is not None for a in arrays):
        raise ValueError("give either items or questions=/answers=/predictions=, not both")
    body: Dict[str, Any] = {"kind": kind}
    if items is not None:
        body["items"] = [dict(i) for i in items]
        total = len(body["items"])
    elif all(a is not None for a in arrays):
        q, a, p = (list(x or ()) for x in arrays)
        if not len(q) == len(a) == len(p):
            raise ValueError(
                f"questions, answers and predictions differ in length ({len(q)}, {len(a)}, {len(p)})"
            )
        body.update(questions=q, answers=a, predictions=p)
        total = len(q)
    else:
        raise ValueError("give items, or all three of questions=, answers= and predictions=")
    body.update(
        _compact(
            dict(
                judge=judge,
                max_concurrent=max_concurrent,
                progress_interval_ms=progress_interval_ms,
                idempotency_key=idempotency_key,
                max_cost_usd=max_cost_usd,
                max_tokens=max_tokens,
            )
        )
    )
    return body, total


def job_body(
    body: Dict[str, Any],
    provider_batch: bool = False,
    provider_batch_deadline_s: Optional[float] = None,
) -> Tuple[Dict[str, Any], str]:
    """A job body always carries an idempotency key, so that a retried submission is one job."""
    if provider_batch:
        body["provider_batch"] = True
    if provider_batch_deadline_s is not None:
        body["provider_batch_deadline_s"] = provider_batch_deadline_s
    key = body.get("idempotency_key") or f"llm-judge-client-{uuid.uuid4()}"
    body["idempotency_key"] = key
    return body, str(key)


NDJSON_HEADERS = {"accept": "application/x-ndjson"}
SSE_HEADERS = {"accept": "text/event-stream"}


def job_path(job_id: str, rest: str = "") -> str:
    if not job_id or "/" in job_id:
        raise ValueError(f"not a job id: {job_id!r}")
    return f"/v1/jobs/{job_id}{rest}"


def results_params(after: Optional[int], order: str) -> Dict[str, Any]:
    if order not in ("index", "completion"):
        raise ValueError("order must be 'index' or 'completion'")
    p: Dict[str, Any] = {"order": order}
    if after is not None:
        p["after"] = after
    return p


# ---- streamed answers ----------------------------------------------------------------------


class BatchLines:
    """Reads the lines of a streamed batch: items are returned; progress lines go to the callback;
    the summary line is kept."""

    def __init__(self, kind: str, total: Optional[int], on_progress: Optional[ProgressCallback]):
        self.kind = kind
        self.total = total
        self.on_progress = on_progress
        self.summary: Optional[Summary] = None
        self.progress: Optional[Progress] = None
        self.done = 0
        self.reported = 0

    def read(self, line: str) -> Optional[BatchItem]:
        line = line.strip()
        if not line:
            return None
        obj = json.loads(line)
        if not isinstance(obj, dict):
            return None
        if "progress" in obj and "index" not in obj:
            self.progress = Progress.from_dict(obj["progress"])
            if self.total is None:
                self.total = self.progress.total
            self._report(self.progress.done)
            return None
        if "summary" in obj and "index" not in obj:
            self.summary = Summary.from_dict(obj["summary"])
            return None
        item = BatchItem.from_dict(self.kind, obj)
        self.done += 1
        self._report(self.done)
        return item

    def _report(self, done: int) -> None:
        # Items and progress lines both count; a progress line may lag the items already read,
        # so the callback only ever sees the count grow.
        if done <= self.reported:
            return
        self.reported = done
        if self.on_progress is not None:
            self.on_progress(done, self.total if self.total is not None else done)

    def finish(self, items: List[BatchItem]) -> BatchResult:
        if self.summary is None:
            raise errors.LLMJudgeError(
                "the batch stream ended before its summary line", code="incomplete_stream"
            )
        return BatchResult(sorted(items, key=lambda i: i.index), self.summary)


class StreamBroken(errors.ConnectionFailedError):
    """The connection broke in the middle of a streamed answer."""


def stream_broken(exc: Exception) -> StreamBroken:
    return StreamBroken(
        f"the connection to the service broke while reading a streamed answer: {type(exc).__name__}: {exc}",
        code="connection_error",
    )


def stream_ended() -> Exception:
    return httpx.RemoteProtocolError("the stream ended before the job finished")


@dataclass
class SseEvent:
    event: str
    data: str


def sse_events(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Server-Sent Events from the lines of an event stream (comments and keep-alives skipped)."""
    parser = SseParser()
    for line in lines:
        ev = parser.feed(line)
        if ev is not None:
            yield ev


class SseParser:
    def __init__(self) -> None:
        self.event = ""
        self.data: List[str] = []

    def feed(self, line: str) -> Optional[SseEvent]:
        line = line.rstrip("\r\n")
        if line == "":
            if not self.data and not self.event:
                return None
            ev = SseEvent(self.event or "message", "\n".join(self.data))
            self.event, self.data = "", []
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None


class ProgressBar:
    """A tqdm bar when asked for (``progress=True``), else nothing."""

    def __init__(
        self, enabled: bool, desc: str, total: Optional[int] = None, *, required: bool = True
    ) -> None:
        self._bar: Any = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError as e:  # pragma: no cover - depends on the environment
                if not required:
                    return
                raise ImportError(
                    "progress=True needs tqdm: pip install 'llm-judge-client[progress]'"
                ) from e
            self._bar = tqdm(total=total, desc=desc, unit="item")

    def update_to(self, done: int, total: int) -> None:
        if self._bar is None:
            return
        if self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class JobWatch:
    """Follows a job's event stream: progress goes to the callback and the bar, the summary
    ends it, a broken or ended stream is reconnected (with the retry policy), and the deadline
    is kept."""

    def __init__(
        self,
        s: Settings,
        job_id: str,
        on_progress: Optional[ProgressCallback],
        progress: bool,
        timeout: Optional[float],
    ) -> None:
        self.job_id = job_id
        self.call = Call("GET", job_path(job_id, "/events"), headers=SSE_HEADERS)
        self.on_progress = on_progress
        self.bar = ProgressBar(progress, f"job {job_id}")
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.reconnect = RetryState(s)
        self.parser = SseParser()
        self.last: Optional[Progress] = None

    def feed(self, line: str) -> Optional[Job]:
        """One line of the stream; the finished job once its summary came."""
        ev = self.parser.feed(line)
        if ev is None:
            return None
        self.reconnect.reset()
        job = self.handle(ev)
        if job is None and self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError(
                f"job {self.job_id} did not finish within {self.timeout:g} s (it keeps running)"
            )
        return job

    def broken(self) -> float:
        """The delay before reconnecting, or raises once the retries are spent."""
        self.parser = SseParser()
        return self.reconnect.on_error(stream_ended())

    def handle(self, ev: SseEvent) -> Optional[Job]:
        if ev.event == "progress":
            try:
                p = Progress.from_dict(json.loads(ev.data))
            except ValueError:
                return None
            self.last = p
            self._report(p.done, p.total)
            return None
        if ev.event == "summary":
            job = Job.from_dict(json.loads(ev.data))
            if self.last is None or self.last.done != job.progress.done:
                self._report(job.progress.done, job.progress.total)
            return job
        return None

    def _report(self, done: int, total: int) -> None:
        self.bar.update_to(done, total)
        if self.on_progress is not None:
            self.on_progress(done, total)


class ResultsCursor:
    """Reads a job's results, and knows where to resume when the connection breaks or the
    service answered one page."""

    def __init__(self, s: Settings, job_id: str, kind: str, after: Optional[int], order: str) -> None:
        results_params(after, order)  # checks order
        self.job_id, self.kind, self.after, self.order = job_id, kind, after, order
        self.reconnect = RetryState(s)
        self.got = 0

    def call(self) -> Call:
        self.got = 0
        return Call("GET", job_path(self.job_id, "/results"), params=results_params(self.after, self.order))

    def take(self, line: str) -> Optional[BatchItem]:
        if not line.strip():
            return None
        item = BatchItem.from_dict(self.kind, json.loads(line))
        self.after = item.seq if self.order == "completion" else item.index
        self.got += 1
        self.reconnect.reset()
        return item

    def broken(self) -> float:
        return self.reconnect.on_error(stream_ended())

    def finished(self) -> bool:
        """True when the last read brought nothing new: every result has been read."""
        return self.got == 0


def adhoc_route(steps: Sequence[str]) -> str:
    """A route string of steps (``provider:model`` or a bare provider), comma-separated."""
    clean = [s.strip() for s in steps if s and s.strip()]
    return ",".join(clean)
