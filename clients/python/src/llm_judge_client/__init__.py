"""A Python client of the llm-judge service.

    from llm_judge_client import Client
    with Client() as c:                      # LLM_JUDGE_URL, LLM_JUDGE_TOKEN
        r = c.binary("What is 2+2?", "4", "The answer is 4.")
        print(r.result, r.verdict, r.reason)

:class:`AsyncClient` has the same methods for asyncio; :mod:`llm_judge_client.lmms` offers the
lmms-eval judge functions (``get_binary_judge_response_async``, ``AsyncSimplifiedJudge`` ...)
backed by the service.
"""

from .async_client import AsyncBatchStream, AsyncClient
from .client import BatchStream, Client
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConnectionFailedError,
    LLMJudgeError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
)
from .types import (
    Attempt,
    BatchItem,
    BatchResult,
    BinaryResult,
    CalibrationReport,
    CompareResult,
    ErrorInfo,
    Job,
    Judgment,
    JudgeAgreement,
    Progress,
    ProvidersInfo,
    ProviderStatus,
    ScoreResult,
    SubmittedJob,
    Summary,
    Usage,
    Wins,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncBatchStream",
    "AsyncClient",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "BatchItem",
    "BatchResult",
    "BatchStream",
    "BinaryResult",
    "CalibrationReport",
    "Client",
    "CompareResult",
    "ConnectionFailedError",
    "ErrorInfo",
    "Job",
    "Judgment",
    "JudgeAgreement",
    "LLMJudgeError",
    "NotFoundError",
    "Progress",
    "ProviderError",
    "ProviderStatus",
    "ProvidersInfo",
    "RateLimitedError",
    "ScoreResult",
    "SubmittedJob",
    "Summary",
    "UnavailableError",
    "Usage",
    "Wins",
]
