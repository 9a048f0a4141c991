"""Example evaluator: sends one batch to llm-judge and prints what came back.

The sidecar pattern: an evaluation job runs next to an llm-judge container and talks to it over
the network (docker-compose: http://llm-judge:8080; a Kubernetes pod: http://127.0.0.1:8080).
Standard library only, so it runs on a bare python:3.11-slim image.

Environment:
  JUDGE_URL          base URL of the service (default http://llm-judge:8080)
  JUDGE_ROUTE        route (named judge) to use; unset = the service's default route
  JUDGE_TOKEN        bearer token, when the service has [auth] tokens
  JUDGE_WAIT_S       how long to wait for /readyz before giving up (default 60)
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

BASE = os.environ.get("JUDGE_URL", "http://llm-judge:8080").rstrip("/")
ROUTE = os.environ.get("JUDGE_ROUTE") or None
TOKEN = os.environ.get("JUDGE_TOKEN") or None
WAIT_S = float(os.environ.get("JUDGE_WAIT_S", "60"))

# A toy benchmark: question, reference answer, the evaluated model's prediction.
ITEMS = [
    ("What is 2+2?", "4", "The answer is 4."),
    ("What is the capital of France?", "Paris", "London"),
    ("Which planet is known as the Red Planet? (A) Venus (B) Mars (C) Jupiter", "B", "(B) Mars"),
    ("How many legs does a spider have?", "8", "Spiders have 8 legs, so the answer is 8.0"),
    ("Who wrote 'Hamlet'?", "William Shakespeare", "Christopher Marlowe"),
    ("What is 1,000 + 1?", "1001", "1,001"),
]


def request(method, path, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("accept", "application/json")
    if data is not None:
        req.add_header("content-type", "application/json")
    if TOKEN:
        req.add_header("authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def wait_ready():
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            status, _ = request("GET", "/readyz", timeout=5)
            if status == 200:
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"evaluator: {BASE}/readyz not ready after {WAIT_S:.0f}s")
        time.sleep(1)


def main():
    wait_ready()
    batch = {
        "kind": "binary",
        "max_concurrent": 8,
        "questions": [q for q, _, _ in ITEMS],
        "answers": [a for _, a, _ in ITEMS],
        "predictions": [p for _, _, p in ITEMS],
    }
    if ROUTE:
        batch["judge"] = ROUTE
    try:
        _, body = request("POST", "/v1/judge/batch", batch)
    except urllib.error.HTTPError as e:
        sys.exit(f"evaluator: batch refused: {e.code} {e.read().decode(errors='replace')}")

    for r in body["results"]:
        if r.get("status") == "ok":
            print(
                f"[{r['index']}] {r.get('verdict'):<9} {r.get('provider')}:{r.get('model')} "
                f"{r.get('reason') or ''}"
            )
        else:
            print(f"[{r['index']}] error     {r.get('error', {}).get('message')}")
    print("summary:", json.dumps(body["summary"], indent=2, sort_keys=True))
    return 0 if body["summary"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
