"""Typed results: each mirrors an object of the service's OpenAPI document.

Every object keeps the JSON it was read from in ``raw``, so fields the service adds later are
still reachable (``result.raw["new_field"]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from typing import Literal, TypedDict

__all__ = [
    "Kind",
    "Usage",
    "Attempt",
    "Judgment",
    "BinaryResult",
    "ScoreResult",
    "CompareResult",
    "ErrorInfo",
    "BatchItem",
    "Summary",
    "Wins",
    "BatchResult",
    "Progress",
    "Job",
    "SubmittedJob",
    "ProviderStatus",
    "ProvidersInfo",
    "CalibrationReport",
    "JudgeAgreement",
    "judgment_from_dict",
]

Kind = Literal["binary", "score", "compare"]
"""The three kinds of judgment."""

JSON = Dict[str, Any]


def _opt_float(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _opt_int(v: Any) -> Optional[int]:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


def _opt_str(v: Any) -> Optional[str]:
    return str(v) if v is not None else None


def _obj(v: Any) -> JSON:
    return dict(v) if isinstance(v, Mapping) else {}


@dataclass(frozen=True)
class Usage:
    """Tokens, in one shape for every provider."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_dict(cls, d: Any) -> "Usage":
        d = _obj(d)
        return cls(int(d.get("prompt_tokens") or 0), int(d.get("completion_tokens") or 0))


@dataclass(frozen=True)
class Attempt:
    """One provider call the service made for a judgment."""

    provider: str
    model: str
    outcome: str
    latency_ms: float
    status: Optional[int] = None
    error: Optional[str] = None

    @classmethod
    def from_dict(cls, d: Any) -> "Attempt":
        d = _obj(d)
        return cls(
            provider=str(d.get("provider", "")),
            model=str(d.get("model", "")),
            outcome=str(d.get("outcome", "")),
            latency_ms=float(d.get("latency_ms") or 0.0),
            status=_opt_int(d.get("status")),
            error=_opt_str(d.get("error")),
        )


@dataclass(frozen=True)
class Judgment:
    """Fields every judgment has.

    ``verdict`` is ``correct``, ``incorrect``, ``scored`` or ``unscored``; ``result`` is 1, 0, or
    ``None`` when unscored (an unscored item is never a silent 0).
    """

    verdict: str
    result: Optional[int]
    raw_response: str
    provider: str
    model: str
    reason: Optional[str] = None
    unscored_reason: Optional[str] = None
    attempts: List[Attempt] = field(default_factory=list)
    fallback: bool = False
    usage: Usage = field(default_factory=Usage)
    cost_usd: Optional[float] = None
    latency_ms: float = 0.0
    cached: bool = False
    template_version: str = ""
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @property
    def unscored(self) -> bool:
        """True when the judge's answer could not be graded (see ``reason``)."""
        return self.verdict == "unscored"

    @staticmethod
    def _common(d: Mapping[str, Any]) -> JSON:
        return dict(
            verdict=str(d.get("verdict", "unscored")),
            result=_opt_int(d.get("result")),
            raw_response=str(d.get("raw_response") or ""),
            provider=str(d.get("provider", "")),
            model=str(d.get("model", "")),
            reason=_opt_str(d.get("reason")),
            unscored_reason=_opt_str(d.get("unscored_reason")),
            attempts=[Attempt.from_dict(a) for a in d.get("attempts") or []],
            fallback=bool(d.get("fallback", False)),
            usage=Usage.from_dict(d.get("usage")),
            cost_usd=_opt_float(d.get("cost_usd")),
            latency_ms=float(d.get("latency_ms") or 0.0),
            cached=bool(d.get("cached", False)),
            template_version=str(d.get("template_version", "")),
            raw=dict(d),
        )


@dataclass(frozen=True)
class BinaryResult(Judgment):
    """``POST /v1/judge/binary``: is the prediction correct?"""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BinaryResult":
        return cls(**cls._common(d))


@dataclass(frozen=True)
class ScoreResult(Judgment):
    """``POST /v1/judge/score``: a grade on a scale (``score`` is None when unscored)."""

    score: Optional[float] = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ScoreResult":
        return cls(score=_opt_float(d.get("score")), **cls._common(d))


@dataclass(frozen=True)
class CompareResult(Judgment):
    """``POST /v1/judge/compare``: ``winner`` is ``a``, ``b``, ``tie``, or None when unscored."""

    winner: Optional[str] = None
    scores: List[Optional[float]] = field(default_factory=list)
    consistent: Optional[bool] = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CompareResult":
        consistent = d.get("consistent")
        return cls(
            winner=_opt_str(d.get("winner")),
            scores=[_opt_float(s) for s in d.get("scores") or []],
            consistent=bool(consistent) if consistent is not None else None,
            **cls._common(d),
        )


AnyJudgment = Union[BinaryResult, ScoreResult, CompareResult]


def judgment_from_dict(kind: str, d: Mapping[str, Any]) -> AnyJudgment:
    """Reads a judgment of ``kind`` from the service's JSON."""
    if kind == "score":
        return ScoreResult.from_dict(d)
    if kind == "compare":
        return CompareResult.from_dict(d)
    return BinaryResult.from_dict(d)


@dataclass(frozen=True)
class ErrorInfo:
    """Why one batch item could not be judged."""

    code: str
    message: str
    field: Optional[str] = None

    @classmethod
    def from_dict(cls, d: Any) -> "ErrorInfo":
        d = _obj(d)
        return cls(str(d.get("code", "error")), str(d.get("message", "")), _opt_str(d.get("field")))


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch or job: ``judgment`` when ``status`` is ``ok``, else ``error``.

    ``seq`` is set for job results read in completion order.
    """

    index: int
    status: str
    judgment: Optional[AnyJudgment] = None
    error: Optional[ErrorInfo] = None
    seq: Optional[int] = None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.judgment is not None

    @property
    def result(self) -> Optional[int]:
        """1, 0, or None (unscored, not pass/fail, or an error)."""
        return self.judgment.result if self.judgment is not None else None

    @property
    def verdict(self) -> Optional[str]:
        return self.judgment.verdict if self.judgment is not None else None

    @classmethod
    def from_dict(cls, kind: str, d: Mapping[str, Any]) -> "BatchItem":
        status = str(d.get("status", "error"))
        ok = status == "ok"
        return cls(
            index=int(d.get("index", -1)),
            status=status,
            judgment=judgment_from_dict(kind, d) if ok else None,
            error=None if ok else ErrorInfo.from_dict(d.get("error")),
            seq=_opt_int(d.get("seq")),
            raw=dict(d),
        )


@dataclass(frozen=True)
class Wins:
    a: int = 0
    b: int = 0
    tie: int = 0


def _interval(v: Any) -> Optional[Tuple[float, float]]:
    """An interval ``[low, high]`` as sent, or None."""
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return (float(v[0]), float(v[1]))
    return None


@dataclass(frozen=True)
class Summary:
    """Totals over a batch or job. ``accuracy`` is correct / (correct + incorrect), and
    ``accuracy_interval`` its 95% Wilson interval ``(low, high)``. With a person's ``label`` on
    some binary items, ``corrected_accuracy`` has the accuracy corrected by the labels
    (``estimate``, ``interval``, ``labels``, ...); ``by_judge`` splits the verdicts by the
    ``provider:model`` that gave them."""

    total: int
    correct: int
    incorrect: int
    unscored: int
    errors: int
    accuracy: Optional[float]
    usage: Usage
    cost_usd: Optional[float]
    cached: int
    duration_ms: float
    items_per_second: float
    mean_score: Optional[float] = None
    wins: Optional[Wins] = None
    accuracy_interval: Optional[Tuple[float, float]] = None
    corrected_accuracy: Optional[Dict[str, Any]] = None
    by_judge: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Any) -> "Summary":
        d = _obj(d)
        w = d.get("wins")
        return cls(
            total=int(d.get("total") or 0),
            correct=int(d.get("correct") or 0),
            incorrect=int(d.get("incorrect") or 0),
            unscored=int(d.get("unscored") or 0),
            errors=int(d.get("errors") or 0),
            accuracy=_opt_float(d.get("accuracy")),
            usage=Usage.from_dict(d.get("usage")),
            cost_usd=_opt_float(d.get("cost_usd")),
            cached=int(d.get("cached") or 0),
            duration_ms=float(d.get("duration_ms") or 0.0),
            items_per_second=float(d.get("items_per_second") or 0.0),
            mean_score=_opt_float(d.get("mean_score")),
            wins=Wins(int(w.get("a", 0)), int(w.get("b", 0)), int(w.get("tie", 0)))
            if isinstance(w, Mapping)
            else None,
            accuracy_interval=_interval(d.get("accuracy_interval")),
            corrected_accuracy=dict(d["corrected_accuracy"]) if isinstance(d.get("corrected_accuracy"), Mapping) else None,
            by_judge={str(k): dict(v) for k, v in _obj(d.get("by_judge")).items() if isinstance(v, Mapping)},
            raw=d,
        )


@dataclass(frozen=True)
class BatchResult:
    """A whole batch: one item per input, in input order, and the summary."""

    results: List[BatchItem]
    summary: Summary

    def __len__(self) -> int:
        return len(self.results)


@dataclass(frozen=True)
class Progress:
    """Progress of a running batch or job."""

    done: int
    total: int
    correct: int = 0
    incorrect: int = 0
    unscored: int = 0
    errors: int = 0
    items_per_second: float = 0.0
    eta_s: Optional[float] = None
    #: Jobs: while the job waits for its route's providers to answer again, why and until
    #: when (``reason``, ``providers``, ``since_ms``, ``next_try_ms``, ``items``); else None.
    waiting: Optional[JSON] = None

    @classmethod
    def from_dict(cls, d: Any) -> "Progress":
        d = _obj(d)
        w = d.get("waiting")
        return cls(
            done=int(d.get("done") or 0),
            total=int(d.get("total") or 0),
            correct=int(d.get("correct") or 0),
            incorrect=int(d.get("incorrect") or 0),
            unscored=int(d.get("unscored") or 0),
            errors=int(d.get("errors") or 0),
            items_per_second=float(d.get("items_per_second") or 0.0),
            eta_s=_opt_float(d.get("eta_s")),
            waiting=dict(w) if isinstance(w, Mapping) else None,
        )


FINISHED_STATES = ("completed", "cancelled", "failed")


@dataclass(frozen=True)
class Job:
    """A persistent job as the service shows it (``GET /v1/jobs/{id}``)."""

    id: str
    status: str
    kind: str
    judge: str
    total: int
    created_at_ms: int
    progress: Progress
    finished_at_ms: Optional[int] = None
    summary: Optional[Summary] = None
    error: Optional[str] = None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the job is completed, cancelled or failed."""
        return self.status in FINISHED_STATES

    @classmethod
    def from_dict(cls, d: Any) -> "Job":
        d = _obj(d)
        s = d.get("summary")
        return cls(
            id=str(d.get("id", "")),
            status=str(d.get("status", "")),
            kind=str(d.get("kind", "binary")),
            judge=str(d.get("judge", "")),
            total=int(d.get("total") or 0),
            created_at_ms=int(d.get("created_at_ms") or 0),
            progress=Progress.from_dict(d.get("progress")),
            finished_at_ms=_opt_int(d.get("finished_at_ms")),
            summary=Summary.from_dict(s) if isinstance(s, Mapping) else None,
            error=_opt_str(d.get("error")),
            raw=d,
        )


@dataclass(frozen=True)
class SubmittedJob:
    """The answer to a job submission; ``created`` is False when the idempotency key matched an earlier job."""

    id: str
    status: str
    created: bool
    idempotency_key: Optional[str] = None

    @classmethod
    def from_dict(cls, d: Any, idempotency_key: Optional[str] = None) -> "SubmittedJob":
        d = _obj(d)
        return cls(str(d.get("id", "")), str(d.get("status", "")), bool(d.get("created", True)), idempotency_key)


@dataclass(frozen=True)
class ProviderStatus:
    """One provider as ``GET /v1/providers`` shows it."""

    name: str
    kind: str
    enabled: bool
    circuit: str
    in_flight: int
    max_in_flight: int
    requests_per_minute: Optional[int] = None
    tokens_per_minute: Optional[int] = None
    recent_error_rate: Optional[float] = None

    @classmethod
    def from_dict(cls, d: Any) -> "ProviderStatus":
        d = _obj(d)
        return cls(
            name=str(d.get("name", "")),
            kind=str(d.get("kind", "")),
            enabled=bool(d.get("enabled", False)),
            circuit=str(d.get("circuit", "")),
            in_flight=int(d.get("in_flight") or 0),
            max_in_flight=int(d.get("max_in_flight") or 0),
            requests_per_minute=_opt_int(d.get("requests_per_minute")),
            tokens_per_minute=_opt_int(d.get("tokens_per_minute")),
            recent_error_rate=_opt_float(d.get("recent_error_rate")),
        )


@dataclass(frozen=True)
class ProvidersInfo:
    """Every provider, the routes (name -> ``provider:model`` steps) and the default route's name."""

    providers: List[ProviderStatus]
    routes: Dict[str, List[str]]
    default_route: str

    def enabled(self) -> List[str]:
        """Names of the providers that can be called (they have a key, or need none)."""
        return [p.name for p in self.providers if p.enabled]

    @classmethod
    def from_dict(cls, d: Any) -> "ProvidersInfo":
        d = _obj(d)
        routes = _obj(d.get("routes"))
        return cls(
            providers=[ProviderStatus.from_dict(p) for p in d.get("providers") or []],
            routes={str(k): [str(s) for s in v] for k, v in routes.items() if isinstance(v, list)},
            default_route=str(d.get("default_route", "")),
        )


class JudgeAgreement(TypedDict, total=False):
    """One judge's agreement with the labels of a calibration set (as the service reports it).

    Unscored items and errors are counted apart and never as agreement; a figure that is
    undefined (one class only, a constant series, nothing graded) is ``None``.
    """

    judge: str
    items: int
    graded: int
    unscored: int
    errors: int
    unscored_rate: Optional[float]
    accuracy: Optional[float]
    accuracy_interval: Optional[List[float]]
    cohen_kappa: Optional[float]
    cohen_kappa_interval: Optional[List[float]]
    base_rate: Optional[float]
    predicted_rate: Optional[float]
    precision: Optional[float]
    recall: Optional[float]
    f1: Optional[float]
    confusion: Dict[str, Any]
    spearman: Optional[float]
    pearson: Optional[float]
    mean_abs_error: Optional[float]
    within_one: Optional[float]
    position_bias: Dict[str, Optional[float]]
    groups: Dict[str, Dict[str, Any]]
    panel: Dict[str, Any]
    usage: Dict[str, int]
    cost_usd: Optional[float]


class CalibrationReport(TypedDict, total=False):
    """The answer of ``POST /v1/calibrate``: per-judge agreement figures, as parsed JSON.

    Only the keys the service sends are present; see the service's OpenAPI document for which.
    """

    run_id: str
    created_at_ms: int
    name: str
    kind: str
    dataset: str
    items: int
    invalid_items: List[Dict[str, Any]]
    base_rate: Optional[float]
    label_counts: Dict[str, int]
    judges: List[JudgeAgreement]
    results: List[Dict[str, Any]]
    duration_ms: float
    stored: bool
