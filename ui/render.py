"""Answers and articles as safe HTML / Markdown: every piece of article text, title or
question is escaped before it is placed, so a page holding <script>, onerror= or javascript:
links shows those characters and nothing runs.

Markdown (the chat) also gets its syntax characters as numeric entities: an article's
``[x](javascript:...)`` or ``**`` stays literal text instead of becoming a link or bold.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

# Characters that mean something to HTML, Markdown (CommonMark + GFM), LaTeX delimiters or
# the templates of gr.HTML: each becomes a numeric character reference.
_SPECIAL = set("&<>\"'`\\*_{}[]()#!|~$")
SNIPPET_CHARS = 280


def md_text(text: str) -> str:
    """``text`` as Markdown that renders exactly as the characters given, on one line."""
    text = re.sub(r"\s+", " ", str(text))
    return "".join(f"&#{ord(c)};" if c in _SPECIAL else c for c in text)


def html_text(text: str) -> str:
    """``text`` as HTML text (newlines kept; `$` and backticks too, for gr.HTML templates)."""
    return html.escape(str(text), quote=True).replace("$", "&#36;").replace("`", "&#96;")


def title_of(passage) -> str:
    return passage.title or Path(str(passage.source)).name or passage.article_id


def _clip(text: str, start: int, end: int, limit: int = SNIPPET_CHARS) -> tuple[int, int]:
    """A window of about ``limit`` characters of ``text`` around [start, end)."""
    if len(text) <= limit:
        return 0, len(text)
    middle = (start + end) // 2
    lo = max(0, min(middle - limit // 2, len(text) - limit))
    hi = min(len(text), lo + limit)
    while lo > 0 and not text[lo - 1].isspace() and lo > middle - limit:
        lo -= 1
    while hi < len(text) and not text[hi].isspace() and hi < middle + limit:
        hi += 1
    return lo, hi


def highlighted(text: str, span: tuple[int, int] | None, escape, open_tag: str,
                close_tag: str) -> str:
    """``text`` escaped with ``escape``, the ``span`` (offsets into ``text``) wrapped in tags."""
    if not span or not 0 <= span[0] < span[1] <= len(text):
        return escape(text)
    a, b = span
    return escape(text[:a]) + open_tag + escape(text[a:b]) + close_tag + escape(text[b:])


def snippet_md(passage, limit: int = SNIPPET_CHARS) -> str:
    """A one-line excerpt of a passage for the chat, the answer span in bold if there is one."""
    text = passage.text
    span = passage.answer_span
    lo, hi = _clip(text, *(span or (0, 0)), limit=limit) if span else (0, min(len(text), limit))
    if not span and hi < len(text):
        while hi < len(text) and not text[hi].isspace() and hi < limit + 40:
            hi += 1
    part = text[lo:hi]
    local = (span[0] - lo, span[1] - lo) if span and lo <= span[0] and span[1] <= hi else None
    body = highlighted(part, local, md_text, "<strong>", "</strong>")
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


def cite(rank: int) -> str:
    return f"&#91;{int(rank)}&#93;"


def answer_markdown(answer, resolved: str | None = None, cited: Sequence[int] = (),
                    shown: int = 3) -> str:
    """The assistant's chat message: the answer in bold with citations, or a plain "no
    answer" with the closest passages; the searched question first when it was rewritten."""
    parts = []
    if resolved:
        parts.append(f"<em>Searched for: {md_text(resolved)}</em>")
    if not answer.passages:
        parts.append("No answer: the library has no passages to search yet. Add articles in "
                     "the Library tab.")
        return "\n\n".join(parts)
    if answer.text:
        ranks = list(cited) or [answer.passages[0].rank]
        confidence = f" · confidence {answer.confidence:.0%}" if answer.confidence else ""
        parts.append(f"<strong>{md_text(answer.text)}</strong> "
                     + " ".join(cite(r) for r in ranks) + confidence)
        best = next((p for p in answer.passages if p.rank == ranks[0]), answer.passages[0])
        parts.append(f"“{snippet_md(best)}” — <em>{md_text(title_of(best))}</em> {cite(best.rank)}")
    else:
        parts.append("<strong>No answer found</strong> in the articles. The closest passages:")
        for passage in answer.passages[:shown]:
            parts.append(f"{cite(passage.rank)} <em>{md_text(title_of(passage))}</em>: "
                         f"{snippet_md(passage)}")
    return "\n\n".join(parts)


def sources_html(answer) -> str:
    """The sources panel: every passage with title, source, date, score; the answer marked."""
    if answer is None or not answer.passages:
        return '<div class="aq-empty">Sources appear here after a question.</div>'
    cards = []
    for p in answer.passages:
        date = p.published or "no date"
        body = highlighted(p.text, p.answer_span, html_text, '<mark class="aq-answer">',
                           "</mark>")
        cards.append(
            f'<div class="aq-source" data-rank="{int(p.rank)}">'
            f'<div class="aq-head"><span class="aq-rank">[{int(p.rank)}]</span> '
            f'<span class="aq-title">{html_text(title_of(p))}</span></div>'
            f'<div class="aq-meta">{html_text(p.source)} · {html_text(date)} · '
            f"score {float(p.score):.3f}</div>"
            f'<div class="aq-text">{body}</div></div>')
    return '<div class="aq-sources">' + "".join(cards) + "</div>"


def article_html(article, passage: dict | None) -> str:
    """A whole article, the cited passage marked and the answer inside it in bold."""
    if article is None:
        return '<div class="aq-empty">That article is no longer in the library.</div>'
    text = article.text
    head = (f'<div class="aq-article-head"><span class="aq-title">{html_text(article.title)}'
            f'</span><div class="aq-meta">{html_text(article.source)} · '
            f'{html_text(article.published or "no date")}</div></div>')
    if not passage or not 0 <= passage["start"] < passage["end"] <= len(text):
        return head + f'<div class="aq-article">{html_text(text)}</div>'
    start, end = passage["start"], passage["end"]
    inner = text[start:end]
    span = passage.get("answer_span")
    body = highlighted(inner, tuple(span) if span else None, html_text,
                       '<strong class="aq-answer">', "</strong>")
    return (head + '<div class="aq-article">' + html_text(text[:start])
            + f'<mark class="aq-passage" id="aq-passage">{body}</mark>'
            + html_text(text[end:]) + "</div>")
