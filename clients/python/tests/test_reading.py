"""Reading streamed answers: NDJSON batch lines and Server-Sent Events."""

from __future__ import annotations

import json
from typing import List, Tuple

from llm_judge_client import _core as core


def item(i: int) -> str:
    return json.dumps({"index": i, "status": "ok", "result": 1, "verdict": "correct", "raw_response": "1",
                       "provider": "p", "model": "m"})


def progress(done: int, total: int) -> str:
    return json.dumps({"progress": {"done": done, "total": total, "correct": done, "incorrect": 0, "unscored": 0,
                                    "errors": 0, "items_per_second": 1.0}})


def test_progress_never_goes_back() -> None:
    seen: List[Tuple[int, int]] = []
    r = core.BatchLines("binary", None, lambda d, t: seen.append((d, t)))
    for line in [progress(0, 3), item(2), item(0), progress(1, 3), "", item(1), progress(3, 3)]:
        r.read(line)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert r.summary is None
    r.read(json.dumps({"summary": {"total": 3, "correct": 3}}))
    assert r.summary is not None and r.summary.total == 3


def test_sse_events_with_comments_and_multiline_data() -> None:
    lines = [": keep-alive", "", "event: progress", "data: {\"done\": 1,", "data:  \"total\": 2}", "",
             "event: summary", "data: {}", ""]
    evs = list(core.sse_events(lines))
    assert [e.event for e in evs] == ["progress", "summary"]
    assert json.loads(evs[0].data) == {"done": 1, "total": 2}
