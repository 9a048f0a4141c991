"""lmms-eval's judge API, backed by the llm-judge service.

Code written against ``lmms_eval.api.judge_utils_async``, ``lmms_eval.api.judge_async`` and
``lmms_eval.api.judge_example_integration`` runs with its imports changed to this module::

    from llm_judge_client.lmms import AsyncSimplifiedJudge, get_binary_judge_response_async

The service does the work (concurrency, rate limits, retries, fallback, verdict parsing); this
module only turns the familiar calls into service requests. The service is found through
``LLM_JUDGE_URL`` (default ``http://127.0.0.1:8080``) and ``LLM_JUDGE_TOKEN``; every class and
function also takes ``base_url=`` and ``token=``.

**Which judge.** ``api_type`` and ``model_name`` become the service's ``judge`` as an ad-hoc
route step ``"<api_type>:<model_name>"``; ``api_type`` alone sends the bare provider (its
configured default model). They default to the environment variables ``API_TYPE`` and
``MODEL_VERSION``, as in lmms-eval (``MODEL_VERSION`` is used for ``api_type`` only when
``API_TYPE`` is unset or names the same provider). ``model_name`` without any provider means
OpenAI, lmms-eval's default. With neither, no judge is sent: the service's default route judges.

**Results** are dicts. Binary: ``result`` is 1, 0, or ``None`` when the judge's answer could
not be graded (never a silent 0); ``success`` is True when the item got a grade; plus
``raw_response``, ``model`` and every field of the service's judgment (``verdict``,
``reason``, ``unscored_reason``, ``provider``, ``attempts``, ``fallback``, ``usage``,
``cost_usd``, ``cached``, ``template_version``). An item the service could not judge at all has
``success`` False, ``result`` None and ``error`` ``{"code", "message", "field"}``. Score
results have ``result`` = ``score`` (a number, or None); comparative results have ``result`` =
``winner`` (``"a"``, ``"b"``, ``"tie"``, or None) and ``scores``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import mimetypes
import os
from dataclasses import dataclass, field
from typing import (
    Any,
    Awaitable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from . import _core as core
from ._core import ProgressCallback
from .async_client import AsyncClient
from .errors import LLMJudgeError
from .types import BatchItem, Kind

__all__ = [
    "get_binary_judge_response_async",
    "get_binary_judge_response",
    "AsyncSimplifiedJudge",
    "JudgeRequest",
    "JudgeResponse",
    "evaluate_with_fallback",
    "HighThroughputEvaluator",
    "run_async_evaluation",
    "judge_route",
]

T = TypeVar("T")
Result = Dict[str, Any]
Image = Union[str, bytes]

# The service takes at most server.max_batch_items (default 10,000) items per batch.
DEFAULT_CHUNK = 1000


def _env(name: str) -> Optional[str]:
    v = os.environ.get(name, "").strip()
    return v or None


def judge_route(api_type: Optional[str] = None, model_name: Optional[str] = None) -> Optional[str]:
    """The ``judge`` sent for ``api_type`` / ``model_name`` (see the module's documentation).

    >>> judge_route("anthropic", "claude-3-opus-20240229")
    'anthropic:claude-3-opus-20240229'
    """
    env_type, env_model = _env("API_TYPE"), _env("MODEL_VERSION")
    provider = api_type or env_type
    model = model_name
    if model is None and provider is not None and (env_type is None or env_type == provider):
        model = env_model
    if provider is None:
        if model_name is None:
            return None
        provider = "openai"
    return f"{provider}:{model}" if model else provider


def _image(x: Image) -> str:
    """A ``data:`` or ``https:`` URL for an image given as a URL, a file path, or bytes."""
    if isinstance(x, bytes):
        return "data:image/png;base64," + base64.b64encode(x).decode("ascii")
    if x.startswith(("data:", "https://", "http://")):
        return x
    if os.path.isfile(x):
        mime = mimetypes.guess_type(x)[0] or "image/png"
        with open(x, "rb") as f:
            return f"data:{mime};base64," + base64.b64encode(f.read()).decode("ascii")
    # bare base64, as lmms-eval passes encoded images
    return "data:image/png;base64," + x


def _images(images: Optional[Sequence[Image]]) -> Optional[List[str]]:
    return [_image(i) for i in images] if images else None


def _to_dict(kind: str, item: BatchItem) -> Result:
    """One lmms-eval style result dict from a batch entry."""
    if item.judgment is None:
        err = item.error
        return {
            "result": None,
            "success": False,
            "raw_response": "",
            "model": None,
            "verdict": None,
            "error": {
                "code": err.code if err else "error",
                "message": err.message if err else "",
                "field": err.field if err else None,
            },
            "reason": err.message if err else None,
        }
    d = {k: v for k, v in item.raw.items() if k not in ("index", "status")}
    j = item.judgment
    d["success"] = not j.unscored
    d.setdefault("raw_response", j.raw_response)
    d.setdefault("model", j.model)
    if kind == "score":
        d["result"] = d.get("score")
    elif kind == "compare":
        d["result"] = d.get("winner")
    else:
        d["result"] = j.result
    return d


class _Progress:
    """Progress over several chunks: one callback and one (optional) bar for the whole run."""

    def __init__(self, total: int, callback: Optional[ProgressCallback], bar: bool) -> None:
        self.total = total
        self.callback = callback
        self.chunks: Dict[int, int] = {}
        self.bar = core.ProgressBar(bar and total > 0, "llm-judge", total, required=False)

    def for_chunk(self, n: int) -> ProgressCallback:
        def update(done: int, _of: int) -> None:
            self.chunks[n] = done
            total_done = sum(self.chunks.values())
            self.bar.update_to(total_done, self.total)
            if self.callback is not None:
                self.callback(total_done, self.total)

        return update


async def _judge_items(
    kind: Kind,
    items: List[Dict[str, Any]],
    *,
    judge: Optional[str],
    max_concurrent: Optional[int],
    chunk_size: int,
    base_url: Optional[str],
    token: Optional[str],
    progress_callback: Optional[ProgressCallback] = None,
    show_progress: bool = False,
    in_flight: int = 1,
) -> List[Result]:
    """Judges items through the batch endpoint, ``chunk_size`` per request, ``in_flight``
    requests at once, and returns lmms-eval style dicts in input order."""
    if not items:
        return []
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    in_flight = max(1, min(in_flight, len(chunks)))
    per_batch = max_concurrent
    if per_batch is not None and in_flight > 1:
        per_batch = max(1, per_batch // in_flight)
    progress = _Progress(len(items), progress_callback, show_progress)
    slots = asyncio.Semaphore(in_flight)
    out: List[Optional[Result]] = [None] * len(items)
    try:
        async with AsyncClient(base_url, token) as client:

            async def run(n: int, chunk: List[Dict[str, Any]]) -> None:
                async with slots:
                    res = await client.batch(
                        chunk,
                        kind=kind,
                        judge=judge,
                        max_concurrent=per_batch,
                        on_progress=progress.for_chunk(n),
                    )
                for r in res.results:
                    out[n * chunk_size + r.index] = _to_dict(kind, r)

            await asyncio.gather(*(run(n, c) for n, c in enumerate(chunks)))
    finally:
        progress.bar.close()
    missing = [i for i, r in enumerate(out) if r is None]
    if missing:
        raise LLMJudgeError(
            f"the service returned no result for {len(missing)} items (first: {missing[0]})",
            code="incomplete_batch",
        )
    return [r for r in out if r is not None]


def _rows(options: Optional[Dict[str, Any]], **columns: Sequence[Any]) -> List[Dict[str, Any]]:
    """Service items from columns of equal length (``images`` turned into URLs, unset fields
    left out), each with the judge's model ``options``."""
    n = _same_length(**columns)
    rows = []
    for i in range(n):
        row = {k: col[i] for k, col in columns.items()}
        row["images"] = _images(row.get("images"))
        row["options"] = options
        rows.append(core.item_body(row))
    return rows


def _per_item(value: Any, n: int, name: str) -> List[Any]:
    """A value given once for all items (a string, a number, None), or a sequence of one per item."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries for {n} items")
        return list(value)
    return [value] * n


def _same_length(**lists: Sequence[Any]) -> int:
    lengths = {k: len(v) for k, v in lists.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"lists differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def _options(temperature: Optional[float], max_tokens: Optional[int]) -> Optional[Dict[str, Any]]:
    o = core.item_body(dict(temperature=temperature, max_tokens=max_tokens))
    return o or None


async def get_binary_judge_response_async(
    question: str,
    answer: str,
    prediction: str,
    api_type: Optional[str] = None,
    model_name: Optional[str] = None,
    output_format: str = "0/1",
    custom_prompt: Optional[str] = None,
    images: Optional[Sequence[Image]] = None,
    *,
    temperature: Optional[float] = None,
    max_tokens: Optional[int] = None,
    base_url: Optional[str] = None,
    token: Optional[str] = None,
    **_ignored: Any,
) -> Result:
    """Is ``prediction`` correct for ``question``, given the reference ``answer``?

    Returns a dict with ``result`` 1, 0 or None (unscored), ``success``, ``raw_response``,
    ``model`` and the service's judgment fields. An item the service could not judge (every
    provider failed, an invalid field) comes back with ``success`` False and ``error``; a wrong
    token, an unknown judge or an unreachable service raise :class:`LLMJudgeError`.
    """
    items = _rows(
        _options(temperature, max_tokens),
        question=[question],
        answer=[answer],
        prediction=[prediction],
        output_format=[output_format],
        prompt=[custom_prompt],
        images=[images],
    )
    res = await _judge_items(
        "binary",
        items,
        judge=judge_route(api_type, model_name),
        max_concurrent=None,
        chunk_size=DEFAULT_CHUNK,
        base_url=base_url,
        token=token,
    )
    return res[0]


def get_binary_judge_response(
    question: str,
    answer: str,
    prediction: str,
    api_type: Optional[str] = None,
    model_name: Optional[str] = None,
    output_format: str = "0/1",
    custom_prompt: Optional[str] = None,
    images: Optional[Sequence[Image]] = None,
    **kwargs: Any,
) -> Result:
    """The blocking form of :func:`get_binary_judge_response_async` (same arguments and result)."""
    return run_async_evaluation(
        get_binary_judge_response_async(
            question, answer, prediction, api_type, model_name, output_format, custom_prompt, images, **kwargs
        )
    )


class AsyncSimplifiedJudge:
    """lmms-eval's ``AsyncSimplifiedJudge``: one judge, many items at once.

    Args:
        api_type: the provider (``openai``, ``azure``, ``anthropic``, ``cohere``, ``together``,
            ``gemini`` or any provider the service configures); default ``API_TYPE``.
        model_name: its model; default ``MODEL_VERSION``.
        max_concurrent: items the service judges at once for each batch call.
        judge: a route name or ad-hoc route to use instead of ``api_type``/``model_name``.
        temperature, max_tokens: model options for every item (the service's defaults otherwise).
        chunk_size: items per service request (the service takes 10,000 at most by default).
        base_url, token: the service (default ``LLM_JUDGE_URL``, ``LLM_JUDGE_TOKEN``).

    Methods (all ``async``): ``evaluate_binary_async`` / ``evaluate_binary_batch_async``
    (correct or not), ``evaluate_score_async`` / ``evaluate_score_batch_async`` (a grade on a
    scale, with an optional rubric; ``evaluate_with_rubric_async`` is the same),
    ``evaluate_comparative_async`` / ``evaluate_comparative_batch_async`` (which of two
    responses is better). Batch methods return one dict per item, in input order, and take a
    ``progress_callback(done, total)``.
    """

    def __init__(
        self,
        api_type: Optional[str] = None,
        model_name: Optional[str] = None,
        max_concurrent: int = 10,
        *,
        judge: Optional[str] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        chunk_size: int = DEFAULT_CHUNK,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        **_ignored: Any,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.api_type = api_type or _env("API_TYPE")
        self.model_name = model_name
        self.max_concurrent = max_concurrent
        self.judge = judge if judge is not None else judge_route(api_type, model_name)
        self.options = _options(temperature, max_tokens)
        self.chunk_size = chunk_size
        self.base_url = base_url
        self.token = token

    def __repr__(self) -> str:
        return f"AsyncSimplifiedJudge(judge={self.judge!r}, max_concurrent={self.max_concurrent})"

    async def _run(
        self, kind: Kind, items: List[Dict[str, Any]], progress_callback: Optional[ProgressCallback] = None
    ) -> List[Result]:
        return await _judge_items(
            kind,
            items,
            judge=self.judge,
            max_concurrent=self.max_concurrent,
            chunk_size=self.chunk_size,
            base_url=self.base_url,
            token=self.token,
            progress_callback=progress_callback,
        )

    # ---- binary --------------------------------------------------------------------------

    async def evaluate_binary_async(
        self,
        question: str,
        answer: str,
        prediction: str,
        output_format: str = "0/1",
        custom_prompt: Optional[str] = None,
        images: Optional[Sequence[Image]] = None,
    ) -> Result:
        """One binary judgment (see the module's documentation for the dict)."""
        return (
            await self.evaluate_binary_batch_async(
                [question], [answer], [prediction], output_format, custom_prompt, [images] if images else None
            )
        )[0]

    async def evaluate_binary_batch_async(
        self,
        questions: Sequence[str],
        answers: Sequence[str],
        predictions: Sequence[str],
        output_format: str = "0/1",
        custom_prompt: Optional[str] = None,
        images: Optional[Sequence[Optional[Sequence[Image]]]] = None,
        progress_callback: Optional[ProgressCallback] = None,
    ) -> List[Result]:
        """Binary judgments of parallel lists, in input order; ``images`` has one list per item."""
        n = len(questions)
        items = _rows(
            self.options,
            question=questions,
            answer=answers,
            prediction=predictions,
            output_format=[output_format] * n,
            prompt=[custom_prompt] * n,
            images=_per_item(images, n, "images"),
        )
        return await self._run("binary", items, progress_callback)

    # ---- score ---------------------------------------------------------------------------

    async def evaluate_score_async(
        self,
        question: str,
        prediction: str,
        answer: Optional[str] = None,
        rubric: Optional[str] = None,
        min_score: float = 1,
        max_score: float = 10,
        images: Optional[Sequence[Image]] = None,
    ) -> Result:
        """One grade from ``min_score`` to ``max_score``: ``result`` (= ``score``) is the grade, or None."""
        return (
            await self.evaluate_score_batch_async(
                [question], [prediction], [answer], rubric, min_score, max_score, [images] if images else None
            )
        )[0]

    evaluate_with_rubric_async = evaluate_score_async

    async def evaluate_score_batch_async(
        self,
        questions: Sequence[str],
        predictions: Sequence[str],
        answers: Optional[Sequence[Optional[str]]] = None,
        rubric: Union[str, Sequence[Optional[str]], None] = None,
        min_score: float = 1,
        max_score: float = 10,
        images: Optional[Sequence[Optional[Sequence[Image]]]] = None,
        progress_callback: Optional[ProgressCallback] = None,
    ) -> List[Result]:
        """Grades of parallel lists, in input order; ``rubric`` is one for all items or one per item."""
        n = len(questions)
        items = _rows(
            self.options,
            question=questions,
            prediction=predictions,
            answer=_per_item(answers, n, "answers"),
            rubric=_per_item(rubric, n, "rubric"),
            min=[min_score] * n,
            max=[max_score] * n,
            images=_per_item(images, n, "images"),
        )
        return await self._run("score", items, progress_callback)

    # ---- comparative ---------------------------------------------------------------------

    async def evaluate_comparative_async(
        self,
        question: str,
        response1: str,
        response2: str,
        context: Optional[str] = None,
        swap: bool = True,
        images: Optional[Sequence[Image]] = None,
    ) -> Result:
        """Which response is better: ``result`` (= ``winner``) is ``"a"``, ``"b"``, ``"tie"`` or None.

        ``context`` is a reference answer; ``swap`` asks in both orders to cancel position bias.
        """
        return (
            await self.evaluate_comparative_batch_async(
                [question], [response1], [response2], [context], swap, [images] if images else None
            )
        )[0]

    async def evaluate_comparative_batch_async(
        self,
        questions: Sequence[str],
        responses1: Sequence[str],
        responses2: Sequence[str],
        contexts: Optional[Sequence[Optional[str]]] = None,
        swap: bool = True,
        images: Optional[Sequence[Optional[Sequence[Image]]]] = None,
        progress_callback: Optional[ProgressCallback] = None,
    ) -> List[Result]:
        """Pairwise judgments of parallel lists, in input order."""
        n = len(questions)
        items = _rows(
            self.options,
            question=questions,
            response_a=responses1,
            response_b=responses2,
            answer=_per_item(contexts, n, "contexts"),
            swap=[swap] * n,
            images=_per_item(images, n, "images"),
        )
        return await self._run("compare", items, progress_callback)


# ---- chat completions with fallback ------------------------------------------------------


@dataclass
class JudgeRequest:
    """A raw chat request to a judge model (lmms-eval's ``JudgeRequest``).

    ``images`` (URLs, file paths, bytes or base64) are added to the last user message.
    ``num_retries`` and ``retry_delay`` are accepted for compatibility: the service's retry
    policy applies.
    """

    messages: List[Dict[str, Any]]
    images: Optional[List[Image]] = None
    temperature: float = 0.0
    max_tokens: Optional[int] = None
    top_p: Optional[float] = None
    response_format: Optional[Dict[str, Any]] = None
    num_retries: Optional[int] = None
    retry_delay: Optional[float] = None


@dataclass
class JudgeResponse:
    """What the judge answered: ``content``; ``model_used`` (the model that answered);
    ``provider``; ``usage`` (``prompt_tokens``, ``completion_tokens``, ``total_tokens``); and
    from the service, ``attempts``, ``fallback`` (a later step answered), ``cost_usd``,
    ``cached``; ``raw_response`` is the whole answer."""

    content: str
    model_used: str
    usage: Dict[str, int] = field(default_factory=dict)
    raw_response: Dict[str, Any] = field(default_factory=dict)
    success: bool = True
    provider: Optional[str] = None
    attempts: List[Dict[str, Any]] = field(default_factory=list)
    fallback: bool = False
    cost_usd: Optional[float] = None
    cached: bool = False


def _messages(request: JudgeRequest) -> List[Dict[str, Any]]:
    msgs = [dict(m) for m in request.messages]
    imgs = _images(request.images)
    if not imgs:
        return msgs
    users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
    if not users:
        msgs.append({"role": "user", "content": []})
        users = [len(msgs) - 1]
    last = msgs[users[-1]]
    content = last.get("content")
    parts: List[Dict[str, Any]] = (
        list(content) if isinstance(content, list) else ([{"type": "text", "text": content}] if content else [])
    )
    parts.extend({"type": "image_url", "image_url": {"url": u}} for u in imgs)
    last["content"] = parts
    return msgs


async def _fallback_steps(client: AsyncClient, primary: str, fallback_apis: Optional[Sequence[str]]) -> List[str]:
    """The route's later steps: those given, or every other enabled provider of the service
    (not the rules judge: name ``"rules"`` to end with it)."""
    if fallback_apis is not None:
        return list(fallback_apis)
    primary_provider = primary.split(":", 1)[0]
    enabled = (await client.providers()).enabled()
    return [p for p in enabled if p not in (primary_provider, "rules")]


async def _route(
    client: AsyncClient,
    api_type: Optional[str],
    model_name: Optional[str],
    fallback_apis: Optional[Sequence[str]],
    use_fallback: bool,
) -> Optional[str]:
    primary = judge_route(api_type, model_name)
    if primary is None:
        return None
    steps = [primary]
    if use_fallback:
        steps += await _fallback_steps(client, primary, fallback_apis)
    return core.adhoc_route(steps)


async def evaluate_with_fallback(
    request: JudgeRequest,
    primary_api: Optional[str] = None,
    fallback_apis: Optional[Sequence[str]] = None,
    *,
    model_name: Optional[str] = None,
    base_url: Optional[str] = None,
    token: Optional[str] = None,
) -> JudgeResponse:
    """Sends ``request`` to ``primary_api`` and, when it fails, to each of ``fallback_apis`` in
    turn (each a provider, or ``provider:model``), through the service's OpenAI-compatible
    ``POST /v1/chat/completions`` with the route as ``model``.

    ``fallback_apis=None`` falls back to every other provider the service has enabled. With no
    ``primary_api`` (and no ``API_TYPE``), the service's default route answers. Raises
    :class:`~llm_judge_client.ProviderError` when no step answered.
    """
    async with AsyncClient(base_url, token) as client:
        route = await _route(client, primary_api, model_name, fallback_apis, True)
        if route is None:
            route = (await client.providers()).default_route
        body = core.item_body(
            dict(
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                top_p=request.top_p,
                response_format=request.response_format,
            )
        )
        data = await client.chat_completions(route, _messages(request), **body)
    return _chat_response(data)


def _chat_response(data: Mapping[str, Any]) -> JudgeResponse:
    choices = data.get("choices") or [{}]
    message = choices[0].get("message") or {}
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    meta = data.get("x_llm_judge") or {}
    usage = dict(data.get("usage") or {})
    usage.setdefault("prompt_tokens", 0)
    usage.setdefault("completion_tokens", 0)
    usage.setdefault("total_tokens", int(usage["prompt_tokens"]) + int(usage["completion_tokens"]))
    return JudgeResponse(
        content=str(content),
        model_used=str(meta.get("model") or data.get("model") or ""),
        usage={k: int(v) for k, v in usage.items() if isinstance(v, int)},
        raw_response=dict(data),
        success=True,
        provider=meta.get("provider"),
        attempts=list(meta.get("attempts") or []),
        fallback=bool(meta.get("fallback", False)),
        cost_usd=meta.get("cost_usd"),
        cached=bool(meta.get("cached", False)),
    )


# ---- whole datasets ----------------------------------------------------------------------

_EVAL_TYPES: Dict[str, Kind] = {
    "binary": "binary",
    "score": "score",
    "rubric": "score",
    "comparative": "compare",
    "compare": "compare",
    "pairwise": "compare",
}
_FIELDS: Dict[str, Tuple[Tuple[str, Tuple[str, ...]], ...]] = {
    # service field <- dataset keys, first present wins
    "binary": (
        ("question", ("question",)),
        ("answer", ("answer", "target", "ground_truth")),
        ("prediction", ("prediction", "response", "pred")),
        ("images", ("images",)),
        ("output_format", ("output_format",)),
        ("prompt", ("prompt", "custom_prompt")),
    ),
    "score": (
        ("question", ("question",)),
        ("prediction", ("prediction", "response", "pred")),
        ("answer", ("answer", "target", "ground_truth")),
        ("rubric", ("rubric",)),
        ("min", ("min", "min_score")),
        ("max", ("max", "max_score")),
        ("pass_score", ("pass_score",)),
        ("images", ("images",)),
        ("prompt", ("prompt", "custom_prompt")),
    ),
    "compare": (
        ("question", ("question",)),
        ("response_a", ("response_a", "response1")),
        ("response_b", ("response_b", "response2")),
        ("answer", ("answer", "context", "target")),
        ("swap", ("swap",)),
        ("images", ("images",)),
        ("prompt", ("prompt", "custom_prompt")),
    ),
}


_NUMBERS = ("min", "max", "pass_score")


def _dataset_item(kind: str, row: Mapping[str, Any]) -> Dict[str, Any]:
    """A service item from a dataset row: known keys only (a row may carry ids and the like)."""
    item: Dict[str, Any] = {}
    for name, keys in _FIELDS[kind]:
        v = next((row[k] for k in keys if row.get(k) is not None), None)
        if v is None:
            continue
        if name == "images":
            v = _images(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and name not in _NUMBERS:
            v = str(v)  # a numeric answer in a dataset is still text to the judge
        item[name] = v
    return item


class HighThroughputEvaluator:
    """lmms-eval's ``HighThroughputEvaluator``: a whole dataset through the service.

    Args:
        api_type, model_name: the primary judge (see the module's documentation).
        max_concurrent: items judged at once, over all the requests in flight.
        use_fallback: when the primary provider fails, fall back to ``fallback_apis`` (default:
            every other provider the service has enabled). Without ``api_type`` (and
            ``API_TYPE``) the service's default route is used, with its own fallbacks.
        show_progress: a tqdm bar while it runs (when tqdm is installed).
    """

    def __init__(
        self,
        api_type: Optional[str] = None,
        model_name: Optional[str] = None,
        max_concurrent: int = 50,
        use_fallback: bool = True,
        fallback_apis: Optional[Sequence[str]] = None,
        *,
        show_progress: bool = True,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        **_ignored: Any,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.api_type = api_type
        self.model_name = model_name
        self.max_concurrent = max_concurrent
        self.use_fallback = use_fallback
        self.fallback_apis = list(fallback_apis) if fallback_apis is not None else None
        self.show_progress = show_progress
        self.base_url = base_url
        self.token = token
        self.judge: Optional[str] = None  # set on the first run

    async def evaluate_dataset_async(
        self,
        dataset: Sequence[Mapping[str, Any]],
        eval_type: str = "binary",
        batch_size: int = 100,
        progress_callback: Optional[ProgressCallback] = None,
    ) -> List[Result]:
        """Judges every row of ``dataset`` and returns one result dict per row, in order.

        ``eval_type``: ``binary`` (rows with ``question``, ``answer``, ``prediction``),
        ``score`` / ``rubric`` (``question``, ``prediction``, optional ``answer``, ``rubric``,
        ``min_score``, ``max_score``) or ``comparative`` (``question``, ``response1`` /
        ``response_a``, ``response2`` / ``response_b``, optional ``context``). Rows go to the
        service ``batch_size`` per request, two requests in flight so one's slow tail does not
        idle the judge; ``progress_callback(done, total)`` follows every result.
        """
        kind = _EVAL_TYPES.get(eval_type)
        if kind is None:
            raise ValueError(f"eval_type must be one of {sorted(_EVAL_TYPES)}, not {eval_type!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.judge is None:
            async with AsyncClient(self.base_url, self.token) as client:
                self.judge = await _route(
                    client, self.api_type, self.model_name, self.fallback_apis, self.use_fallback
                )
        items = [_dataset_item(kind, row) for row in dataset]
        return await _judge_items(
            kind,
            items,
            judge=self.judge,
            max_concurrent=self.max_concurrent,
            chunk_size=batch_size,
            base_url=self.base_url,
            token=self.token,
            progress_callback=progress_callback,
            show_progress=self.show_progress,
            in_flight=2,
        )


def run_async_evaluation(coro: Awaitable[T]) -> T:
    """Runs a coroutine to its end from blocking code and returns its result.

    Works both from plain scripts and from inside a running event loop (a notebook), where the
    coroutine runs on a loop of its own in a helper thread.
    """

    async def main() -> T:
        return await coro

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()

