"""Fixtures: the real llm-judge service, started once per session on a free loopback port with a
temporary data directory, judging through the stand-in provider of ``standin.py``.

The binary is ``LLM_JUDGE_BIN`` when set, else ``<cargo target dir>/debug/llm-judge``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from standin import Provider  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
OPENAI_KEY = "sk-standin-openai-secret-0123456789"
AUTH_TOKEN = "client-token-for-tests-9876"
DEFAULT_MODEL = "gpt-4o-standin"
ANTHROPIC_MODEL = "claude-standin"
START_LIMIT_S = 30.0


def _binary() -> Path:
    env = os.environ.get("LLM_JUDGE_BIN")
    if env:
        return Path(env)
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=120,
    )
    return Path(json.loads(out.stdout)["target_directory"]) / "debug" / "llm-judge"


class Server:
    """A running llm-judge process."""

    def __init__(self, env: Dict[str, str], provider: Optional[Provider]) -> None:
        binary = _binary()
        if not binary.exists():
            pytest.fail(f"{binary} is missing: build the service first (cargo build)", pytrace=False)
        self.provider = provider
        self.data_dir = tempfile.mkdtemp(prefix="llm-judge-pyclient-")
        self.log_path = os.path.join(self.data_dir, "server.log")
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        base = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
        base.update(RUST_LOG="warn", **env)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(self.data_dir, "jobs")],
            env=base, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_LIMIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            self.stop()
            pytest.fail(f"llm-judge did not answer within {START_LIMIT_S:g} s; log:\n{self.log()}", pytrace=False)
        if self.proc.poll() is not None:
            pytest.fail(f"llm-judge exited at start-up; log:\n{self.log()}", pytrace=False)
        self._features: Dict[str, bool] = {}

    def log(self) -> str:
        self._log.flush()
        return Path(self.log_path).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def has(self, feature: str) -> bool:
        """Whether the service has a feature still being added to it."""
        if feature not in self._features:
            self._features[feature] = self._probe(feature)
        return self._features[feature]

    def _probe(self, feature: str) -> bool:
        paths = httpx.get(self.url + "/openapi.json", timeout=10).json().get("paths", {})
        if feature == "calibrate":
            return "/v1/calibrate" in paths
        raise ValueError(f"unknown server feature {feature!r}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def provider_env(p: Provider) -> Dict[str, str]:
    """Providers openai, anthropic, together (all the stand-in), `broken` (always 401) and `down`
    (always 503); routes `broken` and `fb` (down, then openai)."""
    return {
        "OPENAI_API_KEY": OPENAI_KEY,
        "LLM_JUDGE__PROVIDERS__OPENAI__BASE_URL": f"{p.url}/v1",
        "ANTHROPIC_API_KEY": "sk-ant-standin",
        "LLM_JUDGE__PROVIDERS__ANTHROPIC__BASE_URL": p.url,
        "LLM_JUDGE__PROVIDERS__ANTHROPIC__DEFAULT_MODEL": ANTHROPIC_MODEL,
        "TOGETHER_API_KEY": "together-standin",
        "LLM_JUDGE__PROVIDERS__TOGETHER__BASE_URL": f"{p.url}/v1",
        "LLM_JUDGE__PROVIDERS__BROKEN__KIND": "openai",
        "LLM_JUDGE__PROVIDERS__BROKEN__BASE_URL": f"{p.url}/status401/v1",
        "LLM_JUDGE__PROVIDERS__BROKEN__API_KEY": "broken-key",
        "LLM_JUDGE__PROVIDERS__BROKEN__DEFAULT_MODEL": "broken-model",
        "LLM_JUDGE__ROUTES__BROKEN": "broken:broken-model",
        "LLM_JUDGE__PROVIDERS__DOWN__KIND": "openai",
        "LLM_JUDGE__PROVIDERS__DOWN__BASE_URL": f"{p.url}/status503/v1",
        "LLM_JUDGE__PROVIDERS__DOWN__API_KEY": "down-key",
        "LLM_JUDGE__PROVIDERS__DOWN__DEFAULT_MODEL": "down-model",
        "LLM_JUDGE__ROUTES__FB": f"down:down-model,openai:{DEFAULT_MODEL}",
        "LLM_JUDGE__RETRY__BASE_DELAY_MS": "10",
        "API_TYPE": "openai",
        "MODEL_VERSION": DEFAULT_MODEL,
    }


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


@pytest.fixture(scope="session")
def server(provider: Provider) -> Iterator[Server]:
    s = Server(provider_env(provider), provider)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def auth_server() -> Iterator[Server]:
    s = Server({"LLM_JUDGE__AUTH__TOKENS": AUTH_TOKEN}, None)
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' own environment must not choose the judge or the service by accident."""
    for name in ("API_TYPE", "MODEL_VERSION", "LLM_JUDGE_URL", "LLM_JUDGE_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _feature_gate(request: pytest.FixtureRequest) -> None:
    names: List[str] = [m.args[0] for m in request.node.iter_markers("needs_server_feature")]
    if not names:
        return
    srv: Server = request.getfixturevalue("server")
    for name in names:
        if not srv.has(name):
            pytest.skip(f"the service at this commit lacks {name!r} (being added to the service); this test runs once it has it")


@pytest.fixture
def use_server(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """Points LLM_JUDGE_URL at the test service (for code that reads only the environment)."""
    monkeypatch.setenv("LLM_JUDGE_URL", server.url)
    return server


@pytest.fixture
def tag() -> str:
    """A word unique to the test, so its items miss the verdict cache and name its holds."""
    return "t" + uuid.uuid4().hex[:12]


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "needs_server_feature(name): needs a service feature still being added")
