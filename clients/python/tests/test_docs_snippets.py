"""Every Python and curl snippet of the README and docs/ runs as written against a running
service (its address put in for 127.0.0.1:8080), and `llm-judge` commands with the built binary
on the PATH. A snippet that cannot run here (it needs a model server, or is the test command
itself) says so in a comment on the line before it: ``<!-- snippet: not run (why) -->``."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Tuple

import pytest

from conftest import REPO, Server, _binary

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(python|sh)\n(.*?)^```", re.S | re.M)
SKIP = "<!-- snippet: not run"


def snippets() -> List[Tuple[str, str, str]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for m in FENCE.finditer(text):
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            if before.startswith(SKIP):
                continue
            line = text[: m.start()].count("\n") + 1
            found.append((f"{path.relative_to(REPO)}:{line}", m.group(1), m.group(2)))
    return found


def test_there_are_snippets_to_run() -> None:
    langs = {lang for _, lang, _ in snippets()}
    assert langs == {"python", "sh"}, langs


@pytest.mark.parametrize("where,lang,code", snippets(), ids=[w for w, _, _ in snippets()])
def test_snippet_runs_as_written(server: Server, where: str, lang: str, code: str) -> None:
    host = server.url.removeprefix("http://")
    for written in ("127.0.0.1:8080", "localhost:8080"):
        code = code.replace(written, host)
    bin_dir = str(_binary().parent)
    env = {
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    with tempfile.TemporaryDirectory() as cwd:
        # Commands that read the shipped examples find them where the README says.
        os.symlink(REPO / "examples", Path(cwd) / "examples")
        if lang == "python":
            cmd = [sys.executable, "-c", code]
        else:
            cmd = ["bash", "-euo", "pipefail", "-c", code]
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{where} failed:\n{code}\n--- stdout\n{done.stdout[-2000:]}\n--- stderr\n{done.stderr[-2000:]}"
