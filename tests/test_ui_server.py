"""The HTTP API: POST /api/ask good and bad bodies, /healthz, /docs, basic auth, the CLI
entry point, and the Gradio `/ask` endpoint through gradio_client on a live server."""

from __future__ import annotations

import base64

import pytest

from qa.conversation import Conversation
from qa.results import PASSAGE_FIELDS
from tests.conftest import SAMPLES
from tests.live_server import start_server

QUESTION = "who said it was their fight?"


@pytest.fixture(scope="module")
def live(encoder, seed_article):
    return start_server(encoder, [SAMPLES, seed_article])


@pytest.fixture(scope="module")
def client(live):
    from fastapi.testclient import TestClient

    from ui.server import create_app

    with TestClient(create_app(live.kb)) as test_client:
        yield test_client


def test_ask_returns_the_cli_json_contract(client, live):
    response = client.post("/api/ask", json={"question": QUESTION, "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"answer", "confidence", "passages"}
    assert body == live.kb.ask(QUESTION, k=3).to_dict()
    assert 1 <= len(body["passages"]) <= 3
    assert "John Kerry" in body["passages"][0]["text"]
    top = body["passages"][0]
    assert set(top) == set(PASSAGE_FIELDS)  # the one serializer, through the response schema
    start, end = top["answer_span"]
    assert top["text"][start:end] == body["answer"] == "John Kerry"


def test_ask_default_k_and_filters(client, live):
    body = client.post("/api/ask", json={"question": QUESTION}).json()
    assert len(body["passages"]) == 5
    filtered = client.post("/api/ask", json={"question": QUESTION, "filters": {
        "sources": ["rail-strike.md"]}})
    assert filtered.status_code == 200
    passages = filtered.json()["passages"]
    assert passages and all("rail-strike.md" in p["source"] for p in passages)
    dated = client.post("/api/ask", json={"question": QUESTION, "filters": {
        "until": "2014-12-31"}}).json()["passages"]
    assert dated and all(p["source"].endswith("dw-iraq-their-fight.txt") for p in dated)


@pytest.mark.parametrize("body, where", [
    ({"question": ""}, "question is empty"),
    ({"question": "   "}, "question is empty"),
    ({"question": QUESTION, "k": 0}, "greater than or equal to 1"),
    ({"question": QUESTION, "k": 10_000}, "less than or equal to 100"),
    ({"question": QUESTION, "k": "five"}, "k: Input should be a valid integer"),
    ({"question": QUESTION, "k": 2.5}, "k: Input should be a valid integer"),
    ({"question": QUESTION, "k": True}, "k: Input should be a valid integer"),
    ({"question": 42}, "question: Input should be a valid string"),
    ({"question": ["a"]}, "question: Input should be a valid string"),
    ({"k": 3}, "question: Field required"),
    ({}, "question: Field required"),
    ({"question": QUESTION, "filters": {"since": "last week"}}, "filters.since"),
    ({"question": QUESTION, "filters": "rail"}, "filters"),
    ({"question": QUESTION, "colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"question": QUESTION, "filters": {"since": "2026-13-45"}},
     "filters.since: '2026-13-45' is not a date"),
    ({"question": QUESTION, "filters": {"until": "2026-02-30"}}, "filters.until"),
    ({"question": "x" * 3000}, "the limit is 2,000"),  # one limit, one message, any length
    ({"question": "x" * 10_000}, "the limit is 2,000"),
])
def test_bad_bodies_are_422_with_a_message(client, body, where):
    response = client.post("/api/ask", json=body)
    assert response.status_code == 422, response.text
    assert where in response.json()["message"]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"", b'"who?"'])
def test_malformed_json_is_422(client, raw):
    response = client.post("/api/ask", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["message"]


def test_healthz_docs_and_ui(client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["articles"] >= 7
    schema = client.get("/openapi.json").json()
    assert {"/api/ask", "/healthz"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_basic_auth_guards_everything_but_healthz(live):
    from fastapi.testclient import TestClient

    from ui.server import create_app

    with TestClient(create_app(live.kb, auth=("reader", "s3cret"))) as guarded:
        assert guarded.get("/healthz").status_code == 200
        assert guarded.get("/").status_code == 401
        denied = guarded.post("/api/ask", json={"question": QUESTION})
        assert denied.status_code == 401 and "Basic" in denied.headers["www-authenticate"]
        wrong = base64.b64encode(b"reader:nope").decode()
        assert guarded.get("/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        right = base64.b64encode(b"reader:s3cret").decode()
        ok = guarded.post("/api/ask", json={"question": QUESTION},
                          headers={"Authorization": f"Basic {right}"})
        assert ok.status_code == 200


def test_parse_auth():
    from ui.server import parse_auth

    assert parse_auth("u:p:q") == ("u", "p:q")
    assert parse_auth(None) is None
    for bad in ("nopassword", ":p", "u:"):
        with pytest.raises(ValueError, match="USER:PASSWORD"):
            parse_auth(bad)


def test_chat_command_is_registered_through_the_entry_point():
    from qa.cli import build_parser

    args = build_parser().parse_args(["chat", "--index", "x", "--port", "8123"])
    assert (args.host, args.port, args.auth, args.samples) == ("127.0.0.1", 8123, None, False)
    from ui.cli import cmd_chat

    assert args.run is cmd_chat


def _gradio_ask(live, question: str) -> dict:
    from gradio_client import Client

    client = Client(live.url + "/", verbose=False, download_files=False)
    try:
        return client.predict(question=question, k=5, api_name="/ask")
    finally:
        client.close()


def test_gradio_client_ask_gets_the_kerry_passage(live):
    result = _gradio_ask(live, QUESTION)
    assert result == live.kb.ask(QUESTION, k=5).to_dict()
    first = result["passages"][0]
    assert "John Kerry" in first["text"] and "their fight" in first["text"]
    assert first["source"].endswith("dw-iraq-their-fight.txt")


def test_gradio_client_ask_gets_the_answer_john_kerry(live):
    assert _gradio_ask(live, QUESTION)["answer"] == "John Kerry"


def test_gradio_endpoint_reports_bad_input_in_one_log_line(live, capfd, caplog):
    from gradio_client import Client

    client = Client(live.url + "/", verbose=False, download_files=False)
    capfd.readouterr()
    try:
        with pytest.raises(Exception, match="question is empty"):
            client.predict(question="   ", k=5, api_name="/ask")
        with pytest.raises(Exception, match="since: '2026-13-45' is not a date"):
            client.predict(question=QUESTION, k=5, since="2026-13-45", api_name="/ask")
    finally:
        client.close()
    assert "Traceback" not in capfd.readouterr().err  # was ~35 lines per bad call
    refused = [r.getMessage() for r in caplog.records if r.name == "articleqa.chat"]
    assert refused == ["/ask refused: question is empty",
                       "/ask refused: since: '2026-13-45' is not a date (YYYY, YYYY-MM or "
                       "YYYY-MM-DD)"]


# --- follow-ups: history, conversation_id, the Gradio endpoint ----------------------------

FOLLOW_UP = "where was he speaking?"
KERRY_HISTORY = [{"question": QUESTION, "answer": "John Kerry"}]


def test_history_resolves_a_follow_up(client, live):
    response = client.post("/api/ask", json={"question": FOLLOW_UP, "k": 3,
                                             "history": KERRY_HISTORY})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resolved_question"] == "where was John Kerry speaking?"
    assert body["changes"] == ["he → John Kerry"]
    assert "conversation_id" not in body
    context = Conversation.from_history(KERRY_HISTORY).search_context(FOLLOW_UP)
    expected = live.kb.ask("where was John Kerry speaking?", k=3, context=context).to_dict()
    assert {k: body[k] for k in expected} == expected  # searched with the history, too
    # without a history the contract is exactly `articleqa ask --json`, as before
    plain = client.post("/api/ask", json={"question": FOLLOW_UP, "k": 3}).json()
    assert set(plain) == {"answer", "confidence", "passages"}
    # an answerless turn (null) is accepted; the empty history resolves nothing
    unanswered = client.post("/api/ask", json={"question": "what did he offer?", "history": [
        {"question": "who offered Iraq support?", "answer": None}]})
    assert unanswered.status_code == 200, unanswered.text
    empty = client.post("/api/ask", json={"question": FOLLOW_UP, "history": []}).json()
    assert empty["resolved_question"] == FOLLOW_UP and empty["changes"] == []


def test_conversation_id_keeps_the_thread(client):
    first = client.post("/api/ask", json={"question": QUESTION, "conversation_id": "new"})
    assert first.status_code == 200, first.text
    body = first.json()
    key = body["conversation_id"]
    assert key and key != "new" and body["resolved_question"] == QUESTION
    assert body["answer"] == "John Kerry"
    second = client.post("/api/ask", json={"question": FOLLOW_UP, "conversation_id": key})
    assert second.status_code == 200, second.text
    # the rules name "he", the term selector adds the cited headline's name
    assert second.json()["resolved_question"] == "where was John Kerry speaking? (Iraq)"
    assert second.json()["conversation_id"] == key
    third = client.post("/api/ask", json={"question": "what did his team say?",
                                          "conversation_id": key}).json()
    assert "John Kerry's" in third["resolved_question"]
    # another conversation does not see this one
    other = client.post("/api/ask", json={"question": FOLLOW_UP,
                                          "conversation_id": "new"}).json()
    assert other["conversation_id"] != key and other["resolved_question"] == FOLLOW_UP


@pytest.mark.parametrize("body, where", [
    ({"question": FOLLOW_UP, "history": "who said it?"}, "history: Input should be a valid list"),
    ({"question": FOLLOW_UP, "history": {"question": QUESTION}}, "history"),
    ({"question": FOLLOW_UP, "history": [QUESTION]}, "history"),
    ({"question": FOLLOW_UP, "history": [{"answer": "John Kerry"}]},
     "history.question: Field required"),
    ({"question": FOLLOW_UP, "history": [{"question": ""}]}, "history.question"),
    ({"question": FOLLOW_UP, "history": [{"question": "   "}]}, "question is empty"),
    ({"question": FOLLOW_UP, "history": [{"question": QUESTION, "answer": 7}]},
     "history.answer: Input should be a valid string"),
    ({"question": FOLLOW_UP, "history": [{"question": QUESTION, "said": "x"}]},
     "history.said: Extra inputs are not permitted"),
    ({"question": FOLLOW_UP, "history": KERRY_HISTORY * 21}, "at most 20 items"),
    ({"question": FOLLOW_UP, "history": [{"question": "x" * 2001}]}, "at most 2000 char"),
    ({"question": FOLLOW_UP, "history": [{"question": QUESTION, "answer": "x" * 10_000}]},
     "at most 2000 char"),
    ({"question": FOLLOW_UP, "history": KERRY_HISTORY, "conversation_id": "new"},
     "not both"),
    ({"question": FOLLOW_UP, "conversation_id": 5}, "conversation_id"),
    ({"question": FOLLOW_UP, "conversation_id": ""}, "conversation_id"),
    ({"question": FOLLOW_UP, "conversation_id": "../../etc"}, "conversation_id"),
    ({"question": FOLLOW_UP, "conversation_id": "x" * 65}, "conversation_id"),
])
def test_bad_history_or_conversation_id_is_422(client, body, where):
    response = client.post("/api/ask", json=body)
    assert response.status_code == 422, response.text
    assert where in response.json()["message"]


def test_unknown_conversation_is_404(client):
    response = client.post("/api/ask", json={"question": FOLLOW_UP,
                                             "conversation_id": "no-such-id"})
    assert response.status_code == 404
    assert "unknown or has expired" in response.json()["message"]
    assert response.json()["detail"][0]["loc"] == ["conversation_id"]


def test_conversation_store_is_bounded_and_expires():
    from qa.conversation import Conversation, Turn
    from ui.server import ConversationStore

    now = [0.0]
    store = ConversationStore(limit=2, ttl=60, clock=lambda: now[0])
    a, b, c = Conversation(), Conversation(), Conversation()
    store.put("a", a)
    store.put("b", b)
    assert store.get("a") is a  # "a" is now the most recently used
    store.put("c", c)  # over the limit: "b", the least recently used, goes
    assert store.get("b") is None and len(store) == 2
    now[0] = 59.0
    assert store.get("c") is c  # used at 59: lives until 119
    now[0] = 61.0
    assert store.get("a") is None and store.get("c") is c
    now[0] = 200.0
    assert store.get("c") is None and len(store) == 0
    long = Conversation([Turn(f"q{n}", f"q{n}") for n in range(50)])
    store.put("long", long)
    assert len(long.turns) == 20 and long.turns[-1].question == "q49"
    assert store.new_id() != store.new_id()


def test_gradio_client_ask_with_history_resolves(live):
    from gradio_client import Client

    client = Client(live.url + "/", verbose=False, download_files=False)
    try:
        result = client.predict(question=FOLLOW_UP, k=3, history=KERRY_HISTORY,
                                api_name="/ask")
        with pytest.raises(Exception, match=r"history\[0\]\.question must be a string"):
            client.predict(question=FOLLOW_UP, k=3, history=[{"question": 5}], api_name="/ask")
    finally:
        client.close()
    assert result["resolved_question"] == "where was John Kerry speaking?"
    assert result["changes"] == ["he → John Kerry"]
