"""The official ``openai`` package, as the people this service is for already use it, pointed at
the service's OpenAI-compatible endpoint: completions through routes with fallback, streams,
errors as the SDK's own exception types, images, and lmms-eval's judge set-up unchanged."""

from __future__ import annotations

import base64
import os
from typing import Any, Dict, List

import httpx
import openai
import pytest

from conftest import ANTHROPIC_MODEL, AUTH_TOKEN, DEFAULT_MODEL, OPENAI_KEY, Server


def sdk(server: Server, **kw: Any) -> openai.OpenAI:
    # No SDK retries: a test sees each answer as the service gave it.
    kw.setdefault("api_key", "anything")
    return openai.OpenAI(base_url=server.url + "/v1", max_retries=0, timeout=30, **kw)


def meta(obj: Any) -> Dict[str, Any]:
    """llm-judge's own fields, which the SDK keeps as extra fields of its models."""
    extra = obj.model_extra or {}
    return dict(extra["x_llm_judge"])


def test_a_route_whose_first_step_is_down_falls_back(server: Server, tag: str) -> None:
    client = sdk(server)
    raw = client.chat.completions.with_raw_response.create(
        model="fb", messages=[{"role": "user", "content": f"Is 2+2=4? {tag}"}], temperature=0.2, max_tokens=32,
    )
    assert raw.headers["x-llm-judge-provider"] == "openai"
    assert raw.headers["x-llm-judge-fallback"] == "true"
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Verdict: 1"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == DEFAULT_MODEL
    assert completion.usage is not None and completion.usage.total_tokens == 12
    m = meta(completion)
    assert m["provider"] == "openai" and m["fallback"] is True and m["route"] == "fb"
    assert [a["provider"] for a in m["attempts"]][0] == "down"
    assert m["attempts"][0]["status"] == 503 and m["attempts"][-1]["outcome"] == "ok"


def test_models_lists_the_routes(server: Server) -> None:
    ids = [m.id for m in sdk(server).models.list()]
    assert "default" in ids and "fb" in ids and "broken" in ids
    assert "rules" not in ids  # the rules judge writes no free-form answers


def test_a_streamed_completion(server: Server, tag: str) -> None:
    stream = sdk(server).chat.completions.create(
        model=f"anthropic:{ANTHROPIC_MODEL}", messages=[{"role": "user", "content": f"Is 2+2=4? {tag}"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Verdict: 1"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 3
    assert meta(last)["provider"] == "anthropic"


def test_a_stream_that_breaks_mid_answer_raises_instead_of_ending_cleanly(server: Server, tag: str) -> None:
    stream = sdk(server).chat.completions.create(
        model="openai", messages=[{"role": "user", "content": f"REPLY<Verdict: 1> CUTSTREAM {tag}"}], stream=True,
    )
    got: List[str] = []
    with pytest.raises(openai.APIError) as e:
        for c in stream:
            got.append(c.choices[0].delta.content or "")
    assert "".join(got) == "Verd"
    assert "failed in the middle of the answer" in str(e.value)


def test_errors_are_the_sdks_exception_types(server: Server, auth_server: Server) -> None:
    client = sdk(server)
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="no-such-route", messages=msgs)  # type: ignore[arg-type]
    assert nf.value.code == "model_not_found" and nf.value.param == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="default", messages=msgs, temperature=7)  # type: ignore[arg-type]
    assert bad.value.param == "temperature" and bad.value.status_code == 400
    with pytest.raises(openai.BadRequestError) as n:
        client.chat.completions.create(model="default", messages=msgs, n=3)  # type: ignore[arg-type]
    assert n.value.code == "unsupported_parameter"
    with pytest.raises(openai.InternalServerError) as down:
        client.chat.completions.create(model="down", messages=msgs)  # type: ignore[arg-type]
    assert down.value.status_code == 502 and down.value.code == "all_providers_failed"
    with pytest.raises(openai.AuthenticationError):
        sdk(auth_server).chat.completions.create(model="default", messages=msgs)  # type: ignore[arg-type]
    with pytest.raises(openai.AuthenticationError):
        sdk(auth_server).models.list()
    # The right token passes auth (the rules judge alone writes no chat answers: 400, not 401).
    with pytest.raises(openai.BadRequestError) as rules:
        sdk(auth_server, api_key=AUTH_TOKEN).chat.completions.create(model="default", messages=msgs)  # type: ignore[arg-type]
    assert rules.value.code == "not_a_chat_model"


def test_images_and_system_messages_pass_through(server: Server, tag: str) -> None:
    assert server.provider is not None
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG chart").decode()
    completion = sdk(server).chat.completions.create(
        model="openai:gpt-4o-vision-standin",
        messages=[
            {"role": "system", "content": "You grade charts."},
            {"role": "user", "content": [
                {"type": "text", "text": f"Does the chart rise? {tag}"},
                {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
            ]},
        ],
        max_completion_tokens=20, seed=3, stop=["\n\n"],
    )
    assert completion.choices[0].message.content == "Verdict: 1"
    sent = next(b["body"] for b in server.provider.bodies if tag in str(b["body"]))
    assert sent["model"] == "gpt-4o-vision-standin"
    assert sent["messages"][0] == {"role": "system", "content": "You grade charts."}
    assert sent["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": png}}
    assert (sent["max_tokens"], sent["seed"], sent["stop"]) == (20, 3, ["\n\n"])


def test_the_clients_key_never_reaches_a_provider(server: Server, tag: str) -> None:
    assert server.provider is not None
    sdk(server, api_key="client-side-key-not-for-providers").chat.completions.create(
        model="openai", messages=[{"role": "user", "content": f"q {tag}"}],
    )
    assert OPENAI_KEY not in str(server.provider.bodies)
    # The stand-in saw the service's own provider key (conftest's), never the client's.
    assert all("client-side-key-not-for-providers" not in str(b) for b in server.provider.bodies)


def test_lmms_eval_judge_set_up_unchanged(server: Server, tag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """lmms-eval's OpenAI judge: ``OpenAI(api_key=OPENAI_API_KEY, base_url=OPENAI_API_URL)`` and a
    payload of model (``MODEL_VERSION``), messages, temperature, max_tokens and a JSON format; the
    tasks that post with ``requests`` send the same payload to the full URL."""
    monkeypatch.setenv("OPENAI_API_URL", server.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-whatever")
    monkeypatch.setenv("MODEL_VERSION", "fb")
    client = openai.OpenAI(api_key=os.getenv("OPENAI_API_KEY", ""), base_url=os.getenv("OPENAI_API_URL"), max_retries=0)
    payload: Dict[str, Any] = {
        "model": os.environ["MODEL_VERSION"],
        "messages": [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": f"REPLY<{{\"score\": 1}}> {tag}"}],
        "temperature": 0.0,
        "max_tokens": 1024,
        "response_format": {"type": "json_object"},
    }
    response = client.chat.completions.create(**payload)
    assert response.choices[0].message.content == '{"score": 1}'
    assert response.model == DEFAULT_MODEL and response.usage is not None
    r = httpx.post(
        os.environ["OPENAI_API_URL"] + "/chat/completions",
        headers={"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}", "Content-Type": "application/json"},
        json=payload, timeout=30,
    )
    r.raise_for_status()
    body = r.json()
    assert body["choices"][0]["message"]["content"] == '{"score": 1}'
    # The second identical request at temperature 0 came from the verdict cache.
    assert body["x_llm_judge"]["cached"] is True
