"""Hooks that let schemathesis reach the judge, not only the validator in front of it.

`scripts/test` loads this module (SCHEMATHESIS_HOOKS) for its schemathesis run against a service
whose routes `default` and `mock` go to the stand-in provider (`rules` is the rules judge). Left alone, almost every generated batch, job, calibrate
and chat body is refused with a 422 (an item of no kind, an unknown judge), and every job id is
unknown (404), so the run would mostly test the validators. Here, three generated cases in four
of those operations are made valid (keeping generated text where the schema allows any text):
the fourth stays as generated, so the validators are still fuzzed. Job ids are those of real jobs
the run creates first (LLM_JUDGE_SCHEMATHESIS_JOBS, ids separated by commas), except for DELETE,
which keeps generated ids (deleting the jobs would turn the other operations back into 404s).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import schemathesis

JOBS = [j for j in os.environ.get("LLM_JUDGE_SCHEMATHESIS_JOBS", "").split(",") if j]
FIXED = {
    ("POST", "/v1/judge/batch"),
    ("POST", "/v1/jobs"),
    ("POST", "/v1/calibrate"),
    ("POST", "/v1/chat/completions"),
}


def _pick(value: Any, salt: str, n: int) -> int:
    """A deterministic choice in range(n) from a generated value."""
    digest = hashlib.sha256((salt + json.dumps(value, sort_keys=True, default=str)).encode())
    return digest.digest()[0] % n


def _text(value: Any, default: str) -> str:
    """Generated text where it is usable text, else `default`."""
    if isinstance(value, str) and value.strip() and "\x00" not in value:
        return value[:200]
    return default


def _texts(body: dict) -> list[str]:
    """Strings found in a generated body, to keep fuzzing the judge's reading of text."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            found.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(body)
    return found


def _item(texts: list[str], i: int) -> dict:
    t = texts[i % len(texts)] if texts else ""
    return {
        "question": _text(t, f"What is {i} + {i}?"),
        "answer": str(2 * i),
        "prediction": _text(t, str(2 * i)) if i % 2 else str(2 * i),
    }


def _valid(method: str, path: str, body: dict) -> dict:
    texts = _texts(body)
    n = 1 + _pick(body, "n", 3)
    if path == "/v1/chat/completions":
        return {
            "model": "mock",
            "messages": [{"role": "user", "content": _text(texts[0] if texts else None, "Is 2 + 2 = 4?")}],
        }
    if path == "/v1/calibrate":
        items = [dict(_item(texts, i), label="correct" if i % 2 == 0 else "incorrect") for i in range(n + 1)]
        return {"judges": ["default"], "items": items, "store": _pick(body, "store", 2) == 0}
    fixed: dict = {"kind": "binary", "items": [_item(texts, i) for i in range(n)]}
    if isinstance(body.get("max_concurrent"), int) and 1 <= body["max_concurrent"] <= 64:
        fixed["max_concurrent"] = body["max_concurrent"]
    return fixed


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    op = ctx.operation
    key = (op.method.upper(), op.path)
    if key not in FIXED or not isinstance(body, dict) or _pick(body, "keep", 4) == 0:
        return body
    return _valid(*key, body)


@schemathesis.hook
def map_query(ctx: Any, query: Any) -> Any:
    op = ctx.operation
    # A job's JSON body carries its options; the query parameters are an NDJSON upload's.
    if (op.method.upper(), op.path) == ("POST", "/v1/jobs") and query and _pick(query, "q", 4):
        return {}
    return query


@schemathesis.hook
def map_path_parameters(ctx: Any, params: Any) -> Any:
    op = ctx.operation
    if JOBS and op.method.upper() != "DELETE" and isinstance(params, dict) and "id" in params:
        if _pick(params, "id", 4):
            params = dict(params, id=JOBS[_pick(params, "which", len(JOBS))])
    return params
