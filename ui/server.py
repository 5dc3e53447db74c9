"""The HTTP face of ArticleQA: FastAPI with ``POST /api/ask``, ``GET /healthz``, OpenAPI docs
at ``/docs``, and the Gradio chat mounted at ``/`` in the same process.

Binds 127.0.0.1 unless told otherwise; ``auth=("user", "pass")`` puts HTTP basic auth in
front of everything but ``/healthz``. Never a share link.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qa.api import MAX_K, ArticleQA
from qa.articles import MAX_BYTES
from qa.backends.base import check_day
from qa.conversation import MAX_HISTORY_TURNS, MAX_TURN_CHARS, Conversation
from qa.search import MAX_QUESTION_CHARS, check_question
from ui.app import DEFAULT_K, build_app, launch_kwargs

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_CONVERSATIONS = 1000  # conversations the server keeps; the least recently used goes first
CONVERSATION_TTL = 30 * 60  # seconds a kept conversation lives after its last question
NEW_CONVERSATION = "new"


class Filters(BaseModel):
    """Restrict the search to some articles or a publication period."""

    model_config = ConfigDict(extra="forbid")
    sources: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, description="article ids, or parts of their source path / URL")
    since: str | None = Field(None, description="published on or after (YYYY[-MM[-DD]])",
                              examples=["2024-01-01"])
    until: str | None = Field(None, description="published on or before (YYYY[-MM[-DD]])",
                              examples=["2024-12-31"])

    @field_validator("since", "until")
    @classmethod
    def _day(cls, value: str | None) -> str | None:
        return check_day(value)  # "2026-13-45" -> 422 naming the field


class HistoryTurn(BaseModel):
    """One earlier turn of the conversation, as the client saw it."""

    model_config = ConfigDict(extra="forbid")
    question: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_TURN_CHARS,
                                   examples=["who said it was their fight?"])]
    answer: Annotated[str | None, Field(strict=True, max_length=MAX_TURN_CHARS,
                                        examples=["John Kerry"],
                                        description="the answer given, null if none")] = None

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        return check_question(value)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: Annotated[str, Field(strict=True, examples=["who said it was their fight?"],
                                   description=f"at most {MAX_QUESTION_CHARS:,} characters")]
    k: Annotated[int, Field(strict=True, ge=1, le=MAX_K,
                            description="passages to return")] = DEFAULT_K
    filters: Filters | None = None
    history: Annotated[list[HistoryTurn] | None, Field(
        max_length=MAX_HISTORY_TURNS,
        description=f"the conversation so far (at most {MAX_HISTORY_TURNS} turns, oldest "
                    "first): the question is resolved against it (\"he\" -> \"John Kerry\")")
    ] = None
    conversation_id: Annotated[str | None, Field(
        strict=True, pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=[NEW_CONVERSATION],
        description=f'"{NEW_CONVERSATION}" starts a conversation the server keeps (for '
                    f"{CONVERSATION_TTL // 60} minutes after its last question); the id "
                    "returned continues it")] = None

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        return check_question(value)  # ValueError -> 422 with its message

    @model_validator(mode="after")
    def _one_memory(self) -> AskRequest:
        if self.history is not None and self.conversation_id is not None:
            raise ValueError("send history or conversation_id, not both")
        return self


class PassageOut(BaseModel):
    rank: int
    score: float
    text: str
    article_id: str
    title: str
    source: str
    start: int
    end: int
    url: str | None
    published: str | None
    answer_span: list[int] | None = Field(
        description="[start, end) of the answer inside `text`, or null")


class AskResponse(BaseModel):
    """The `articleqa ask --json` dictionary; with ``history`` or ``conversation_id`` also
    the question as searched, the substitutions made, and the conversation's id."""

    answer: str | None
    confidence: float
    passages: list[PassageOut]
    resolved_question: str | None = Field(
        None, description="the question as searched after follow-up resolution")
    changes: list[str] | None = Field(
        None, description='what resolution changed: "he → John Kerry", "+ Iraq"')
    conversation_id: str | None = Field(None, description="continue with this id")


class ConversationStore:
    """Conversations kept by the server, by id: at most ``limit`` (least recently used
    dropped first), each forgotten ``ttl`` seconds after its last use; thread-safe."""

    def __init__(self, limit: int = MAX_CONVERSATIONS, ttl: float = CONVERSATION_TTL,
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.ttl, self.clock = limit, ttl, clock
        self._kept: OrderedDict[str, tuple[float, Conversation]] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._kept:
            key, (used, _) = next(iter(self._kept.items()))
            if now - used < self.ttl:
                break
            del self._kept[key]

    def get(self, key: str) -> Conversation | None:
        """The conversation, now most recently used; None if unknown or expired."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            found = self._kept.pop(key, None)
            if found is None:
                return None
            self._kept[key] = (now, found[1])
            return found[1]

    def put(self, key: str, conversation: Conversation) -> None:
        with self._lock:
            now = self.clock()
            self._expire(now)
            self._kept.pop(key, None)
            self._kept[key] = (now, conversation)
            while len(self._kept) > self.limit:
                self._kept.popitem(last=False)
            del conversation.turns[:-MAX_HISTORY_TURNS]  # a long chat stays small

    def new_id(self) -> str:
        return secrets.token_urlsafe(16)

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._kept)


def _messages(errors) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())
                         if part != "body" and not isinstance(part, int))
        message = error.get("msg", "invalid")
        message = message.removeprefix("Value error, ")
        parts.append(f"{where or 'body'}: {message}")
    return "; ".join(parts)


class BasicAuth:
    """HTTP basic auth for every path but /healthz (pure ASGI: streaming stays intact)."""

    def __init__(self, app, credentials: tuple[str, str], open_paths=("/healthz",)):
        self.app = app
        self.user, self.password = credentials
        self.open_paths = set(open_paths)

    def _allowed(self, headers: dict[bytes, bytes]) -> bool:
        value = headers.get(b"authorization", b"")
        if not value.lower().startswith(b"basic "):
            return False
        try:
            user, _, password = base64.b64decode(value[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (secrets.compare_digest(user, self.user)
                and secrets.compare_digest(password, self.password))

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        if self._allowed(dict(scope.get("headers") or [])):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = JSONResponse({"detail": "authentication required"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="ArticleQA"'})
        await response(scope, receive, send)


def _refusal(message: str, status: int = 422, where: str = "body") -> JSONResponse:
    return JSONResponse({"detail": [{"loc": [where], "msg": message, "type": "value_error"}],
                         "message": message}, status_code=status)


def create_app(kb: ArticleQA, auth: tuple[str, str] | None = None,
               host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
               max_bytes: int = MAX_BYTES,
               conversations: ConversationStore | None = None) -> FastAPI:
    """FastAPI with the JSON API and the chat mounted at ``/``."""
    blocks = build_app(kb, max_bytes=max_bytes)
    backend = blocks.backend
    store = conversations or ConversationStore()

    api = FastAPI(
        title="ArticleQA", version="0.1.0",
        description="Offline question answering over articles. The chat is at `/`.")

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors, "message": _messages(errors)}, status_code=422)

    @api.get("/healthz", tags=["service"])
    def healthz() -> dict:
        """Liveness and a little about the index."""
        return {"status": "ok", "articles": len(kb)}

    @api.post("/api/ask", response_model=AskResponse, response_model_exclude_unset=True,
              tags=["questions"],
              responses={422: {"description": "invalid body; `message` says what is wrong"},
                         404: {"description": "`conversation_id` unknown or expired"}})
    def ask(body: AskRequest):
        """Ranked, cited passages (and the answer, once extracted) for a question; with
        ``history`` or ``conversation_id``, a follow-up resolved against the conversation."""
        filters = body.filters.model_dump(exclude_none=True) if body.filters else {}
        history = ([t.model_dump() for t in body.history] if body.history is not None
                   else None)
        key, chat = body.conversation_id, None
        if key == NEW_CONVERSATION:
            chat = Conversation()
        elif key is not None:
            chat = store.get(key)
            if chat is None:
                return _refusal(f"conversation {key!r} is unknown or has expired; start "
                                f'another with "conversation_id": "{NEW_CONVERSATION}"',
                                404, "conversation_id")
        try:
            result = backend.converse(body.question, body.k, history, chat, **filters)
        except (ValueError, TypeError) as exc:
            return _refusal(str(exc))
        if key is not None:
            key = store.new_id() if key == NEW_CONVERSATION else key
            store.put(key, chat)
            result["conversation_id"] = key
        return result

    app = gr.mount_gradio_app(
        api, blocks, path="/", server_name=host, server_port=port, footer_links=[],
        max_file_size=max_bytes, **launch_kwargs())
    if auth:
        app.add_middleware(BasicAuth, credentials=auth)
    return app


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must be USER:PASSWORD")
    return user, password


def serve(kb: ArticleQA, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          auth: tuple[str, str] | None = None, log_level: str = "warning") -> None:
    import uvicorn

    uvicorn.run(create_app(kb, auth=auth, host=host, port=port), host=host, port=port,
                log_level=log_level)
