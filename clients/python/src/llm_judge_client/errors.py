"""Exceptions raised for the service's error answers and for an unreachable service.

Every error the service answers has the body ``{"error": {"code", "message", "field"?}}``; the
exception carries those fields plus the HTTP ``status``. One base class, :class:`LLMJudgeError`,
catches them all.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Type

__all__ = [
    "LLMJudgeError",
    "AuthenticationError",
    "NotFoundError",
    "BadRequestError",
    "RateLimitedError",
    "UnavailableError",
    "ProviderError",
    "ConnectionFailedError",
    "error_from_response",
]


class LLMJudgeError(Exception):
    """An error from the llm-judge service (or from reaching it).

    Attributes:
        code: the service's stable machine-readable code (``invalid_field``, ``unauthorized`` ...).
        message: what is wrong and how to fix it, as the service says it.
        field: the request field at fault (``prediction``, ``items[3].question``), when there is one.
        status: the HTTP status, or ``None`` when no answer came back.
        attempts: for provider failures, every attempt the service made (dicts as the service sent them).
        request_id: the service's ``x-request-id`` for this request, to find it in the service's logs.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        field: Optional[str] = None,
        status: Optional[int] = None,
        attempts: Optional[List[Dict[str, Any]]] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = status
        self.attempts: List[Dict[str, Any]] = list(attempts or [])
        self.request_id = request_id

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"field={self.field!r}, status={self.status!r})"
        )


class AuthenticationError(LLMJudgeError):
    """401/403: the client token is missing or wrong (set ``LLM_JUDGE_TOKEN`` or ``token=``)."""


class NotFoundError(LLMJudgeError):
    """404: no such job (it may have expired) or no such endpoint."""


class BadRequestError(LLMJudgeError):
    """400, 413, 422: the request was refused as it is; ``field`` names the part at fault."""


class ConflictError(BadRequestError):
    """409: an idempotency key taken by another request, or a job not finished yet (retry)."""


class RateLimitedError(LLMJudgeError):
    """429: too many requests, still refused after the client's retries."""


class UnavailableError(LLMJudgeError):
    """503 (shutting down, store unavailable) or another 5xx, still so after the client's retries."""


class ProviderError(LLMJudgeError):
    """502: no step of the judge's route produced an answer; ``attempts`` lists what each did."""


class ConnectionFailedError(LLMJudgeError):
    """The service could not be reached (refused, reset, timed out), after the client's retries."""


_BY_STATUS: Dict[int, Type[LLMJudgeError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    405: BadRequestError,
    409: ConflictError,
    413: BadRequestError,
    415: BadRequestError,
    422: BadRequestError,
    429: RateLimitedError,
    502: ProviderError,
}


def error_class(status: int) -> Type[LLMJudgeError]:
    """The exception class for an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return UnavailableError
    if status >= 400:
        return BadRequestError
    return LLMJudgeError


def error_from_response(
    status: int,
    body: Any,
    text: str = "",
    request_id: Optional[str] = None,
) -> LLMJudgeError:
    """Builds the exception for an error answer: ``body`` is its parsed JSON (or None)."""
    cls = error_class(status)
    detail: Mapping[str, Any] = {}
    attempts: List[Dict[str, Any]] = []
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            detail = err
        elif isinstance(err, str):
            detail = {"message": err}
        raw_attempts = body.get("attempts")
        if isinstance(raw_attempts, list):
            attempts = [a for a in raw_attempts if isinstance(a, dict)]
    code = str(detail.get("code") or f"http_{status}")
    message = str(detail.get("message") or text.strip()[:500] or f"HTTP {status}")
    field = detail.get("field")
    return cls(
        message,
        code=code,
        field=str(field) if field is not None else None,
        status=status,
        attempts=attempts,
        request_id=request_id,
    )
