"""The service's agreement statistics against scikit-learn, SciPy and statsmodels, on the same
labels and verdicts.

Each test writes labelled items whose judge answers are scripted in the item text
(``ja=1``: judge ``ja`` says correct; ``ja=U``: it gives no verdict), serves those answers from
a stand-in OpenAI-compatible provider on a loopback port, runs ``llm-judge calibrate`` in
process against it, and compares the report with the reference libraries' figures computed
from the scripted verdicts. Cases include ties in ranks, unscored items, one class only and a
judge that never gives a verdict.

The label-corrected accuracy of a binary run (items with a person's ``label`` on some of them) is
checked against ``ppi_py`` (PyPI ``ppi-python``) the same way.

The binary is ``LLM_JUDGE_BIN``, else cargo's ``target/debug/llm-judge``.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import tempfile
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint
from ppi_py import ppi_mean_ci, ppi_mean_pointestimate

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-5


def binary() -> Path:
    env = os.environ.get("LLM_JUDGE_BIN")
    return Path(env) if env else REPO / "target" / "debug" / "llm-judge"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}")
        model = str(req.get("model", ""))
        text = "\n".join(str(m.get("content", "")) for m in req.get("messages", []) if m.get("role") == "user")
        m = re.search(rf"\b{re.escape(model)}=(\w+)", text)
        vote = m.group(1) if m else "U"
        if vote == "U":
            reply = "I cannot tell."
        elif vote in ("A", "B", "C"):
            reply = f"[[{vote}]]"
        elif text.find("Response to rate:") >= 0:
            reply = f"Score: {vote}"
        else:
            reply = f"Verdict: {vote}"
        body = json.dumps({
            "id": "x", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


JUDGES = ["ja", "jb", "jc", "jd", "mute"]


def write_inputs(d: str, provider: str, items: List[Dict[str, Any]], judge_extra: str = "") -> Tuple[Path, Path]:
    """A configuration with a route per scripted judge (and the panel ``trio``) and the items as
    JSON Lines, in ``d``."""
    config = Path(d, "config.toml")
    routes = "\n".join(f'{j} = ["stand:{j}"]' for j in JUDGES)
    config.write_text(
        f'[judge]\ncache_entries = 0\n{judge_extra}[providers.stand]\nkind = "openai"\nbase_url = "{provider}"\n'
        f'max_attempts = 1\n[routes]\n{routes}\n[panels.trio]\njudges = ["jb", "jc", "jd"]\n'
    )
    inp = Path(d, "items.jsonl")
    inp.write_text("".join(json.dumps(i) + "\n" for i in items))
    return config, inp


def calibrate(provider: str, kind: str, items: List[Dict[str, Any]], judges: List[str]) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        config, inp = write_inputs(d, provider, items)
        out = Path(d, "report.json")
        args = [str(binary()), "calibrate", "--config", str(config), "--input", str(inp), "--kind", kind,
                "--output", str(out)]
        for j in judges:
            args += ["--judge", j]
        env = {"PATH": os.environ.get("PATH", "")}
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        report: Dict[str, Any] = json.loads(out.read_text())
        return report


def judge(report: Dict[str, Any], name: str) -> Dict[str, Any]:
    for j in report["judges"]:
        if j["judge"] == name:
            return dict(j)
    raise KeyError(name)


def close(ours: Optional[float], theirs: float) -> bool:
    if theirs is None or (isinstance(theirs, float) and math.isnan(theirs)):
        return ours is None
    return ours is not None and abs(ours - theirs) < TOL


def sk_kappa(labels: List[int], preds: List[int]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(labels, preds))


def binary_items(rng: random.Random, n: int, unscored: float = 0.1) -> List[Dict[str, Any]]:
    items = []
    for i in range(n):
        label = rng.random() < 0.6
        votes = {}
        for j in ("ja", "jb", "jc", "jd"):
            agree = rng.random() < {"ja": 0.8, "jb": 0.7, "jc": 0.65, "jd": 0.9}[j]
            v = label if agree else not label
            votes[j] = "1" if v else "0"
        if rng.random() < unscored:
            votes["ja"] = "U"
        script = " ".join(f"{j}={v}" for j, v in votes.items())
        items.append({"question": f"item {i}?", "answer": "ref", "prediction": f"answer {i} [{script}]",
                      "label": "correct" if label else "incorrect", "_votes": votes})
    return items


def strip(items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [{k: v for k, v in i.items() if not k.startswith("_")} for i in items]


def test_cohen_kappa_confusion_and_accuracy_match_scikit_learn(provider: str) -> None:
    items = binary_items(random.Random(11), 80)
    report = calibrate(provider, "binary", strip(items), ["ja"])
    ja = judge(report, "ja")
    graded = [(1 if i["label"] == "correct" else 0, int(i["_votes"]["ja"])) for i in items if i["_votes"]["ja"] != "U"]
    labels = [g[0] for g in graded]
    preds = [g[1] for g in graded]
    assert ja["graded"] == len(graded)
    assert ja["unscored"] == len(items) - len(graded)
    assert close(ja["cohen_kappa"], sk_kappa(labels, preds))
    # Rows and columns: correct, then incorrect.
    cm = confusion_matrix(labels, preds, labels=[1, 0]).tolist()
    assert ja["confusion"]["matrix"] == cm
    assert close(ja["accuracy"], float(np.mean(np.array(labels) == np.array(preds))))


@pytest.mark.parametrize("seed,n", [(3, 12), (7, 60), (19, 200)])
def test_accuracy_and_kappa_intervals_match_statsmodels(provider: str, seed: int, n: int) -> None:
    items = binary_items(random.Random(seed), n)
    report = calibrate(provider, "binary", strip(items), ["ja", "jd"])
    for name in ("ja", "jd"):
        j = judge(report, name)
        graded = [(1 if i["label"] == "correct" else 0, int(i["_votes"][name]))
                  for i in items if i["_votes"][name] != "U"]
        agreed = sum(1 for lab, pred in graded if lab == pred)
        lo, hi = proportion_confint(agreed, len(graded), alpha=0.05, method="wilson")
        assert close(j["accuracy_interval"][0], float(lo)) and close(j["accuracy_interval"][1], float(hi)), \
            (name, j["accuracy_interval"], lo, hi)
        # The kappa's interval from its large-sample standard error, cut to -1 to 1.
        table = confusion_matrix([g[0] for g in graded], [g[1] for g in graded], labels=[1, 0])
        res = sm_cohens_kappa(table)
        low, upp = max(-1.0, float(res["kappa_low"])), min(1.0, float(res["kappa_upp"]))
        assert close(j["cohen_kappa_interval"][0], low) and close(j["cohen_kappa_interval"][1], upp), \
            (name, j["cohen_kappa_interval"], low, upp)
        assert j["cohen_kappa_interval"][0] <= j["cohen_kappa"] <= j["cohen_kappa_interval"][1]


def run_summary(provider: str, items: List[Dict[str, Any]], judge_name: str) -> Dict[str, Any]:
    """``llm-judge run`` over binary items with judge ``judge_name``: its summary JSON."""
    with tempfile.TemporaryDirectory() as d:
        config, inp = write_inputs(d, provider, items, "rules_precheck = false\n")
        out, summary = Path(d, "out.jsonl"), Path(d, "summary.json")
        args = [str(binary()), "run", "--config", str(config), "--input", str(inp), "--output", str(out),
                "--judge", judge_name, "--summary-json", str(summary)]
        done = subprocess.run(args, env={"PATH": os.environ.get("PATH", "")}, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        report: Dict[str, Any] = json.loads(summary.read_text())
        return report


@pytest.mark.parametrize("seed,n,labelled", [(2, 60, 0.5), (13, 300, 0.1), (29, 200, 0.3)])
def test_corrected_accuracy_matches_ppi_py(provider: str, seed: int, n: int, labelled: float) -> None:
    rng = random.Random(seed)
    items = binary_items(rng, n)
    for it in items:
        if rng.random() >= labelled:
            del it["label"]
    summary = run_summary(provider, strip(items), "ja")
    s = summary.get("summary", summary)
    c = s["corrected_accuracy"]
    with_verdict = [i for i in items if i["_votes"]["ja"] != "U"]
    lab = [i for i in with_verdict if "label" in i]
    unl = [i for i in with_verdict if "label" not in i]
    y = np.array([1.0 if i["label"] == "correct" else 0.0 for i in lab])
    yhat = np.array([float(i["_votes"]["ja"]) for i in lab])
    yhat_u = np.array([float(i["_votes"]["ja"]) for i in unl])
    assert c["labels"] == len(lab) and c["unlabelled"] == len(unl) and c["method"] == "ppi++"
    assert c["labels_left_out"] == sum(1 for i in items if "label" in i and i["_votes"]["ja"] == "U")
    point = float(np.asarray(ppi_mean_pointestimate(y, yhat, yhat_u)).ravel()[0])
    lo, hi = (float(np.asarray(x).ravel()[0]) for x in ppi_mean_ci(y, yhat, yhat_u, alpha=0.05))
    assert close(c["estimate"], point), (c, point)
    assert close(c["interval"][0], max(0.0, lo)) and close(c["interval"][1], min(1.0, hi)), (c, lo, hi)


def test_fleiss_kappa_matches_statsmodels(provider: str) -> None:
    items = binary_items(random.Random(5), 60, unscored=0.0)
    report = calibrate(provider, "binary", strip(items), ["trio"])
    trio = judge(report, "trio")
    table = []
    for i in items:
        ones = sum(1 for j in ("jb", "jc", "jd") if i["_votes"][j] == "1")
        table.append([ones, 3 - ones])
    theirs = float(sm_fleiss_kappa(np.array(table), method="fleiss"))
    assert close(trio["panel"]["fleiss_kappa"], theirs), (trio["panel"], theirs)
    # Each member against the labels, as scikit-learn sees it.
    labels = [1 if i["label"] == "correct" else 0 for i in items]
    for m in trio["panel"]["members"]:
        preds = [int(i["_votes"][m["judge"]]) for i in items]
        assert close(m["cohen_kappa"], sk_kappa(labels, preds)), m


def test_spearman_pearson_and_mae_match_scipy(provider: str) -> None:
    rng = random.Random(3)
    items = []
    for i in range(50):
        label = rng.randint(1, 10)
        # Scores near the label, clipped to the scale, with many ties.
        score = min(10, max(1, label + rng.choice([-2, -1, 0, 0, 1, 3])))
        items.append({"question": f"rate {i}", "prediction": f"response {i} [ja={score}]", "label": label,
                      "_score": score})
    items[7]["prediction"] = "response 7 [ja=U]"
    report = calibrate(provider, "score", strip(items), ["ja"])
    ja = judge(report, "ja")
    kept = [i for n, i in enumerate(items) if n != 7]
    xs = [float(i["_score"]) for i in kept]
    ys = [float(i["label"]) for i in kept]
    assert ja["graded"] == len(kept) and ja["unscored"] == 1
    assert close(ja["spearman"], float(scipy_stats.spearmanr(xs, ys).statistic))
    assert close(ja["pearson"], float(scipy_stats.pearsonr(xs, ys).statistic))
    assert close(ja["mean_abs_error"], float(np.mean(np.abs(np.array(xs) - np.array(ys)))))


def test_pairwise_kappa_over_three_classes_matches_scikit_learn(provider: str) -> None:
    rng = random.Random(9)
    items, labels, preds = [], [], []
    for i in range(45):
        label = rng.choice("ABC")
        vote = label if rng.random() < 0.7 else rng.choice("ABC")
        items.append({"question": f"which {i}? [ja={vote}]", "response_a": "x", "response_b": "y", "swap": False,
                      "label": {"A": "a", "B": "b", "C": "tie"}[label]})
        labels.append("ABC".index(label))
        preds.append("ABC".index(vote))
    report = calibrate(provider, "compare", items, ["ja"])
    ja = judge(report, "ja")
    assert close(ja["cohen_kappa"], sk_kappa(labels, preds))
    assert ja["confusion"]["labels"] == ["a", "b", "tie"]
    assert ja["confusion"]["matrix"] == confusion_matrix(labels, preds, labels=[0, 1, 2]).tolist()


def test_degenerate_cases_are_null_where_the_libraries_are_undefined(provider: str) -> None:
    # One class only: every label and every verdict correct. scikit-learn gives NaN.
    items = [{"question": f"q{i}", "answer": "r", "prediction": f"p{i} [ja=1]", "label": "correct"} for i in range(6)]
    report = calibrate(provider, "binary", items, ["ja", "mute"])
    ja = judge(report, "ja")
    assert math.isnan(sk_kappa([1] * 6, [1] * 6))
    assert ja["cohen_kappa"] is None
    assert ja["accuracy"] == 1.0
    assert ja["base_rate"] == 1.0
    # A judge that never gives a verdict: nothing to agree on, every figure null.
    mute = judge(report, "mute")
    assert mute["graded"] == 0 and mute["unscored"] == 6 and mute["unscored_rate"] == 1.0
    assert mute["accuracy"] is None and mute["cohen_kappa"] is None
    assert mute["confusion"]["matrix"] == [[0, 0], [0, 0]]
    # Constant scores: SciPy's correlations are undefined (NaN), and so are ours.
    items = [{"question": f"q{i}", "prediction": f"p{i} [ja=5]", "label": i + 1} for i in range(5)]
    report = calibrate(provider, "score", items, ["ja"])
    ja = judge(report, "ja")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(float(scipy_stats.spearmanr([5.0] * 5, [1.0, 2, 3, 4, 5]).statistic))
    assert ja["spearman"] is None and ja["pearson"] is None
    assert close(ja["mean_abs_error"], float(np.mean(np.abs(5.0 - np.arange(1, 6)))))
    # Fleiss' kappa with every vote in one category: statsmodels divides by zero (NaN).
    items = [{"question": f"q{i}", "answer": "r", "prediction": f"p{i} [jb=0 jc=0 jd=0]", "label": "incorrect"}
             for i in range(4)]
    report = calibrate(provider, "binary", items, ["trio"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(float(sm_fleiss_kappa(np.array([[0, 3]] * 4), method="fleiss")))
    assert judge(report, "trio")["panel"]["fleiss_kappa"] is None
