"""The ArticleQA chat: a Gradio 6 Blocks app over one `ArticleQA` index.

Chat tab: a question box, the answer streamed into the chat with citations [1]..[k] (the
answer span in bold once the reader extracts one; otherwise a plain "no answer" with the
closest passages), the question as searched after follow-up resolution, and a sources panel
whose passages open their whole article with the passage highlighted. Library tab: upload
files or paste URLs (per-file results), list and remove articles.

Everything from an article or a user is escaped before display (see `ui.render`). The
named endpoint ``/ask`` returns the `articleqa ask --json` dictionary.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402

from qa.api import MAX_K, ArticleQA  # noqa: E402
from qa.articles import MAX_BYTES  # noqa: E402
from qa.conversation import Conversation, Resolution, cited_ranks  # noqa: E402
from qa.results import Answer, passage_dict  # noqa: E402
from qa.search import SearchContext  # noqa: E402
from ui import library, render  # noqa: E402

log = logging.getLogger("articleqa.chat")

TITLE = "ArticleQA"
DEFAULT_K = 5
STREAM_DELAY = 0.015  # seconds between streamed pieces of an answer
FONT = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Noto Sans", "Helvetica Neue",
        "Arial", "Liberation Sans", "DejaVu Sans", "sans-serif"]
FONT_MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono",
             "DejaVu Sans Mono", "monospace"]
CSS = """
.aq-sources { display: flex; flex-direction: column; gap: 8px; max-height: 560px;
               overflow: auto; padding-right: 4px; }
.aq-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
             padding: 8px 10px; background: var(--block-background-fill); }
.aq-head { font-weight: 600; }
.aq-rank { color: var(--color-accent); margin-right: 4px; }
.aq-meta { color: var(--body-text-color-subdued); font-size: 0.82em; margin: 2px 0 4px;
           overflow-wrap: anywhere; }
.aq-text { white-space: pre-wrap; font-size: 0.92em; line-height: 1.45; }
.aq-article { white-space: pre-wrap; max-height: 520px; overflow: auto; line-height: 1.5;
              border: 1px solid var(--border-color-primary); border-radius: 8px;
              padding: 10px 12px; }
.aq-article-head { margin-bottom: 6px; }
mark.aq-answer, strong.aq-answer { background: #fde68a; color: inherit; font-weight: 700; }
mark.aq-passage { background: #dbeafe; color: inherit; }
.aq-empty { color: var(--body-text-color-subdued); padding: 8px 0; }
footer { display: none !important; }
"""


def theme() -> gr.themes.Base:
    """Default theme on whole system fonts (the bundled semi-bold face lacks most glyphs)."""
    return gr.themes.Default(font=FONT, font_mono=FONT_MONO)


def _day(value: str | None) -> str | None:
    """A date box's value: blank means no limit."""
    return (value or "").strip() or None


class ChatBackend:
    """The app's operations on one index, serialised by a lock (FAISS and SQLite writes are
    not safe to interleave with searches from other sessions)."""

    def __init__(self, kb: ArticleQA, max_bytes: int = MAX_BYTES):
        self.kb = kb
        self.max_bytes = max_bytes
        self.lock = threading.RLock()

    def ask(self, question: str, k: int = DEFAULT_K, sources: Sequence[str] | None = None,
            since: str | None = None, until: str | None = None,
            context: SearchContext | None = None) -> Answer:
        with self.lock:
            return self.kb.ask(question, k=int(k), sources=tuple(sources or ()),
                               since=_day(since), until=_day(until), context=context)

    def ask_dict(self, question: str, k: int = DEFAULT_K, **filters) -> dict:
        return self.ask(question, k, **filters).to_dict()

    def converse(self, question: str, k: int = DEFAULT_K, history=None,
                 chat: Conversation | None = None, **filters) -> dict:
        """`ask_dict` after follow-up resolution against ``chat`` (recorded into it) or the
        client's ``history``; with neither, exactly `ask_dict`."""
        if chat is None and history is None:
            return self.ask_dict(question, k, **filters)
        chat = chat if chat is not None else Conversation.from_history(history)
        resolution, answer = chat.ask(self, question, k, **filters)
        return {**answer.to_dict(), "resolved_question": resolution.resolved,
                "changes": resolution.changes}

    def article(self, article_id: str):
        with self.lock:
            return self.kb.article(article_id)

    def articles(self) -> list[list]:
        with self.lock:
            return library.article_rows(self.kb)

    def source_choices(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(a.title or a.source, a.id) for a in self.kb.articles()]

    def add(self, files, urls, progress=None) -> list[library.Row]:
        with self.lock:
            return library.add_items(self.kb, files, urls, self.max_bytes, progress)

    def remove(self, ids) -> list[str]:
        with self.lock:
            return [i for i in ids or [] if self.kb.remove(i)]


def _stream(text: str, step: int = 4) -> Iterator[str]:
    """Growing prefixes of ``text``, a few words at a time (never inside a tag or entity)."""
    words = text.split(" ")
    for end in range(step, len(words), step):
        yield " ".join(words[:end])
    yield text


def _passage_state(answer: Answer) -> list[dict]:
    return [{**passage_dict(p), "title": render.title_of(p)} for p in answer.passages]


def _source_choices(passages: list[dict]) -> list[tuple[str, int]]:
    return [(f"[{p['rank']}] {p['title']}", p["rank"]) for p in passages]


def build_app(kb: ArticleQA, max_bytes: int = MAX_BYTES) -> gr.Blocks:
    """The Blocks app. Launch it with `launch_kwargs()` or mount it with `ui.server`."""
    backend = ChatBackend(kb, max_bytes)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        app.backend = backend  # for tests and the server
        gr.Markdown(f"## {TITLE}\nAsk questions about your articles. Answers cite their "
                    "sources; everything runs on this machine.")
        turns = gr.State([])  # list[qa.conversation.Turn]
        passages = gr.State([])  # the last answer's passages, for the article viewer
        with gr.Tab("Chat", id="chat"), gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                chatbot = gr.Chatbot(
                    label="Conversation", elem_id="aq-chat", height=520,
                    sanitize_html=True, render_markdown=True, allow_tags=False,
                    latex_delimiters=[], feedback_options=None,
                    group_consecutive_messages=False, buttons=["copy", "copy_all"],
                    placeholder="Ask something about the articles in your library.")
                with gr.Row():
                    question = gr.Textbox(
                        show_label=False, elem_id="aq-question", scale=5, max_lines=4,
                        placeholder="e.g. who said it was their fight?", autofocus=True)
                    ask_button = gr.Button("Ask", variant="primary", scale=1,
                                           elem_id="aq-ask", min_width=80)
                searched = gr.Markdown("", elem_id="aq-searched")
                with gr.Row():
                    clear = gr.Button("New conversation", size="sm", elem_id="aq-clear")
                with gr.Accordion("Settings", open=False, elem_id="aq-settings"):
                    k = gr.Slider(1, min(MAX_K, 20), value=DEFAULT_K, step=1,
                                  label="Passages to retrieve (k)", elem_id="aq-k")
                    source_filter = gr.Dropdown(
                        choices=backend.source_choices(), multiselect=True,
                        label="Only these articles", elem_id="aq-source-filter")
                    with gr.Row():
                        since = gr.Textbox(label="Published on or after (YYYY-MM-DD)",
                                           elem_id="aq-since")
                        until = gr.Textbox(label="Published on or before (YYYY-MM-DD)",
                                           elem_id="aq-until")
            with gr.Column(scale=2, min_width=300):
                gr.Markdown("### Sources")
                sources = gr.HTML(render.sources_html(None), elem_id="aq-sources")
                open_source = gr.Radio(choices=[], label="Open a source's article",
                                       elem_id="aq-open-source", type="value")
                article_view = gr.HTML("", elem_id="aq-article")

        with gr.Tab("Library", id="library"):
            with gr.Row():
                with gr.Column(scale=3):
                    uploads = gr.File(
                        label="Upload articles (.txt .md .html .json .jsonl, "
                              f"up to {max_bytes // 2**20} MiB each)",
                        file_count="multiple", file_types=list(library.ALLOWED_SUFFIXES),
                        elem_id="aq-upload")
                with gr.Column(scale=2):
                    urls = gr.Textbox(label="Article URLs (one per line)", lines=4,
                                      elem_id="aq-urls", placeholder="https://...")
            add_button = gr.Button("Add to library", variant="primary", elem_id="aq-add")
            add_status = gr.Markdown("", elem_id="aq-add-status")
            add_results = gr.Dataframe(headers=library.HEADERS, datatype="str",
                                       interactive=False, label="Results", wrap=True,
                                       elem_id="aq-add-results", visible=False)
            gr.Markdown("### Articles")
            article_table = gr.Dataframe(
                value=backend.articles(), headers=library.ARTICLE_HEADERS, datatype="str",
                interactive=False, wrap=True, elem_id="aq-articles", max_height=420)
            with gr.Row():
                to_remove = gr.Dropdown(choices=backend.source_choices(), multiselect=True,
                                        label="Articles to remove", scale=4,
                                        elem_id="aq-remove-choice")
                remove_button = gr.Button("Remove", variant="stop", scale=1,
                                          elem_id="aq-remove")
            remove_status = gr.Markdown("", elem_id="aq-remove-status")

        # --- chat ----------------------------------------------------------------------

        def respond(text, history, turns_value, k_value, source_value, since_value,
                    until_value):
            """Stream the answer (Ask stays disabled until it is all in: see below)."""
            history = list(history or [])
            text = (text or "").strip()
            unchanged = (gr.skip(),) * 6
            if not text:
                yield history, "", *unchanged, gr.skip()
                return
            history.append({"role": "user", "content": render.md_text(text)})
            history.append({"role": "assistant", "content": "<em>Searching…</em>"})
            yield history, "", *unchanged, gr.Button(interactive=False)
            chat = Conversation(turns_value or [])  # this browser session's turns
            try:
                resolution, answer = chat.ask(backend, text, k_value, sources=source_value,
                                              since=since_value, until=until_value)
            except (ValueError, TypeError) as exc:
                history[-1] = {"role": "assistant",
                               "content": f"<strong>Cannot search:</strong> {render.md_text(exc)}"}
                yield history, "", *unchanged, gr.skip()
                return
            message = render.answer_markdown(
                answer, resolution.resolved if resolution.changed else None,
                cited_ranks(answer))
            state = _passage_state(answer)
            shown = (render.sources_html(answer),
                     gr.Radio(choices=_source_choices(state), value=None), "", chat.turns,
                     state, _searched(resolution))
            for partial in _stream(message):
                history[-1] = {"role": "assistant", "content": partial}
                yield history, "", *shown, gr.skip()
                time.sleep(STREAM_DELAY)

        def _searched(resolution: Resolution) -> str:
            if not resolution.changed:
                return f"Searched for: <em>{render.md_text(resolution.resolved)}</em>"
            return (f"Searched for: <em>{render.md_text(resolution.resolved)}</em> "
                    f"(resolved from the conversation: "
                    f"{render.md_text('; '.join(resolution.changes))})")

        chat_inputs = [question, chatbot, turns, k, source_filter, since, until]
        chat_outputs = [chatbot, question, sources, open_source, article_view, turns, passages,
                        searched]
        for trigger in (question.submit, ask_button.click):
            # `then` runs however `respond` ended, so Ask is never left disabled
            trigger(respond, chat_inputs, [*chat_outputs, ask_button], api_visibility="private",
                    show_progress="hidden").then(
                lambda: gr.Button(interactive=True), None, ask_button,
                api_visibility="private", show_progress="hidden")

        def open_article(rank, passages_value):
            chosen = next((p for p in passages_value or [] if p["rank"] == rank), None)
            if chosen is None:
                return ""
            return render.article_html(backend.article(chosen["article_id"]), chosen)

        open_source.change(open_article, [open_source, passages], article_view,
                           api_visibility="private")

        def new_conversation():
            return ([], "", render.sources_html(None), gr.Radio(choices=[], value=None), "", [],
                    [], "")

        clear.click(new_conversation, None, chat_outputs, api_visibility="private")

        # --- library ---------------------------------------------------------------------

        def add(files, urls_value, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
            def step(done, total, label):
                progress((done, total), desc=f"Indexing {label}", unit="items")

            rows = backend.add(files, urls_value, step)
            if not rows:
                return ("Choose files or paste URLs first.", gr.Dataframe(visible=False),
                        gr.skip(), gr.skip(), gr.skip(), None, gr.skip())
            choices = backend.source_choices()
            return (f"**{library.summary(rows)}**", gr.Dataframe(
                value=[r.as_list() for r in rows], visible=True), backend.articles(),
                gr.Dropdown(choices=choices, value=[]), gr.Dropdown(choices=choices),
                None, "")

        add_button.click(
            add, [uploads, urls],
            [add_status, add_results, article_table, to_remove, source_filter, uploads, urls],
            api_visibility="private", show_progress="full")

        def remove(ids):
            removed = backend.remove(ids)
            choices = backend.source_choices()
            note = (f"Removed {len(removed)} article(s)." if removed
                    else "Choose articles to remove first.")
            return (note, backend.articles(), gr.Dropdown(choices=choices, value=[]),
                    gr.Dropdown(choices=choices))

        remove_button.click(remove, [to_remove],
                            [remove_status, article_table, to_remove, source_filter],
                            api_visibility="private")

        def refresh():
            choices = backend.source_choices()
            return backend.articles(), gr.Dropdown(choices=choices), gr.Dropdown(choices=choices)

        app.load(refresh, None, [article_table, to_remove, source_filter],
                 api_visibility="private")

        # --- API ---------------------------------------------------------------------------

        def ask(question: str, k: int = DEFAULT_K, sources: list[str] | None = None,
                since: str | None = None, until: str | None = None,
                history: list[dict] | None = None) -> dict:
            """Answer a question over the library: the `articleqa ask --json` dictionary
            ({"answer", "confidence", "passages": [{"rank", "score", "text", "article_id",
            "title", "source", "start", "end", "url", "published", "answer_span"}]}).
            With ``history`` (the conversation so far, ``[{"question", "answer"}]``, at most
            20 turns) the question is resolved against it first, and the dictionary adds
            ``resolved_question`` and ``changes`` ("he → John Kerry")."""
            try:
                return backend.converse(question, k, history, sources=sources, since=since,
                                        until=until)
            except (ValueError, TypeError) as exc:
                log.warning("/ask refused: %s", exc)  # one line, not a traceback
                raise gr.Error(str(exc), print_exception=False) from exc

        gr.api(ask, api_name="ask")
    return app


def launch_kwargs() -> dict:
    """What `Blocks.launch` / `gr.mount_gradio_app` need besides the app (Gradio 6 takes the
    theme and CSS there)."""
    return {"theme": theme(), "css": CSS, "ssr_mode": False}


def main() -> None:  # `python -m ui.app [INDEX]`: the bare Gradio app, without the HTTP API
    import sys

    kb = ArticleQA(sys.argv[1] if len(sys.argv) > 1 else None)
    build_app(kb).launch(share=False, server_name="127.0.0.1", **launch_kwargs())


if __name__ == "__main__":
    main()
