"""Small HTTP servers for the tests, on loopback ports.

``Provider`` stands in for a model provider (OpenAI's and Anthropic's wire formats). Its answer
follows what the prompt contains, so a test chooses it through the item's text:

- ``REPLY<text>``: answers ``text`` as it is;
- ``HOLD:key``: does not answer until the test calls ``release("key")`` (at most 20 s);
- a compare prompt: ``[[A]]`` or ``[[B]]`` for the response that contains ``BEST``, else ``[[C]]``;
- a score prompt: ``Score: 3`` when the text contains ``WRONG``, else ``Score: 8``;
- otherwise (binary): ``Verdict: 0`` when the text contains ``WRONG``, else ``Verdict: 1``.

A base path starting with ``/statusNNN`` answers every call with that status.

A request with ``"stream": true`` is answered with server-sent events in the provider's format
(OpenAI's chunks up to ``data: [DONE]``, Anthropic's message events); with ``CUTSTREAM`` in the
prompt the stream stops after its first piece of text, the connection closed, as a provider
failing mid-answer does.

``Scripted`` answers each request with the next of a list of canned answers (or drops the
connection), and records what it was sent.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple, Union

HOLD_LIMIT_S = 20.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    def __init__(self, handler: type) -> None:
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class _ProviderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"ok": True})

    def do_POST(self) -> None:
        owner: Provider = self.server.owner  # type: ignore[attr-defined]
        n = int(self.headers.get("content-length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}")
        m = re.match(r"^/status(\d{3})/", self.path)
        anthropic = self.path.endswith("/messages")
        model = str(req.get("model", ""))
        texts = [_text_of(req.get("system"))]
        for msg in req.get("messages") or []:
            texts.append(_text_of(msg.get("content")))
        text = "\n".join(texts)
        owner.record(self.path, model, text, req)
        if m:
            status = int(m.group(1))
            self._send(status, {"error": {"message": f"stand-in answers {status}", "type": "test", "code": str(status)}})
            return
        refuse = re.search(r"REFUSE:(\w+)", text)
        if refuse and not owner.released(refuse.group(1)):
            self._send(400, {"error": {"message": "stand-in refuses this item until released", "type": "invalid_request_error"}})
            return
        hold = re.search(r"HOLD:(\w+)", text)
        if hold:
            owner.event(hold.group(1)).wait(HOLD_LIMIT_S)
        reply = owner.reply(text)
        if req.get("stream"):
            self._stream(anthropic, model, reply, "CUTSTREAM" in text, bool((req.get("stream_options") or {}).get("include_usage")))
            return
        if anthropic:
            self._send(200, {
                "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 11, "output_tokens": 3},
            })
        else:
            self._send(200, {
                "id": "chatcmpl-standin", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            })


    def _stream(self, anthropic: bool, model: str, reply: str, cut: bool, usage: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        pieces = [reply[i:i + 4] for i in range(0, len(reply), 4)] or [""]
        if cut:
            pieces = pieces[:1]

        def send(data: Dict[str, Any], event: Optional[str] = None) -> None:
            head = f"event: {event}\n" if event else ""
            self.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        if anthropic:
            send({"type": "message_start", "message": {"id": "msg_standin", "type": "message", "role": "assistant",
                  "model": model, "content": [], "usage": {"input_tokens": 11, "output_tokens": 1}}}, "message_start")
            send({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start")
            for p in pieces:
                send({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}, "content_block_delta")
            if cut:
                return
            send({"type": "content_block_stop", "index": 0}, "content_block_stop")
            send({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}, "message_delta")
            send({"type": "message_stop"}, "message_stop")
            return
        chunk = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 0, "model": model}
        send({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        for p in pieces:
            send({**chunk, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
        if cut:
            return
        send({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if usage:
            send({**chunk, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})
        self.wfile.write(b"data: [DONE]\n\n")


class Provider(_Base):
    """The stand-in model provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: Dict[str, threading.Event] = {}
        self.calls: List[Tuple[str, str, str]] = []
        self.bodies: List[Dict[str, Any]] = []
        super().__init__(_ProviderHandler)

    def record(self, path: str, model: str, text: str, body: Optional[Dict[str, Any]] = None) -> None:
        with self._lock:
            self.calls.append((path, model, text))
            self.bodies.append({"path": path, "body": body or {}})

    def event(self, key: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(key, threading.Event())

    def release(self, key: str) -> None:
        self.event(key).set()

    def released(self, key: str) -> bool:
        return self.event(key).is_set()

    def calls_with(self, marker: str) -> List[Tuple[str, str, str]]:
        with self._lock:
            return [c for c in self.calls if marker in c[2]]

    @staticmethod
    def reply(text: str) -> str:
        m = re.search(r"REPLY<(.*?)>", text, re.S)
        if m:
            return m.group(1)
        if "Response A:" in text and "Response B:" in text:
            a, _, b = text.partition("Response A:")[2].partition("Response B:")
            if "BEST" in a:
                return "Response A is better.\n[[A]]"
            if "BEST" in b:
                return "Response B is better.\n[[B]]"
            return "[[C]]"
        if "Response to rate:" in text:
            return "Score: 3" if "WRONG" in text else "Score: 8"
        return "Verdict: 0" if "WRONG" in text else "Verdict: 1"


Answer = Union[str, Tuple[int, Any], Tuple[int, Any, Dict[str, str]]]
DROP = "drop"


class _ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        owner: Scripted = self.server.owner  # type: ignore[attr-defined]
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        answer = owner.take(self.command, self.path, dict(self.headers), body)
        if answer == DROP:
            self.close_connection = True
            return
        assert not isinstance(answer, str)
        status, payload = answer[0], answer[1]
        headers = answer[2] if len(answer) > 2 else {}  # type: ignore[misc]
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer


class Scripted(_Base):
    """Answers requests from a list, in order; the last answer repeats."""

    def __init__(self, answers: List[Answer]) -> None:
        self._lock = threading.Lock()
        self.answers = list(answers)
        self.requests: List[Dict[str, Any]] = []
        super().__init__(_ScriptedHandler)

    def take(self, method: str, path: str, headers: Dict[str, str], body: bytes) -> Answer:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            i = min(len(self.requests), len(self.answers)) - 1
            return self.answers[i]


def judgment(result: Optional[int] = 1) -> Dict[str, Any]:
    """A binary judgment as the service answers it."""
    return {
        "result": result, "verdict": "correct" if result == 1 else "incorrect", "reason": None,
        "raw_response": "Verdict: 1", "provider": "rules", "model": "rules", "attempts": [],
        "fallback": False, "usage": {"prompt_tokens": 0, "completion_tokens": 0}, "cost_usd": 0.0,
        "latency_ms": 0.1, "cached": False, "template_version": "binary-v1-01",
    }


def error(code: str, message: str, field: Optional[str] = None) -> Dict[str, Any]:
    e: Dict[str, Any] = {"code": code, "message": message}
    if field:
        e["field"] = field
    return {"error": e}
