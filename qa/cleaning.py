"""Turn scraped text into article text: boilerplate lines out, title and date into metadata.

Pages scraped as text keep their menus ("Skip to content"), image captions with a credit line
("Image: Reuters"), share buttons and agency bylines ("bk/msh (AP, Reuters)"). None of that is
part of any answer, so it is removed before chunking; the headline and the dateline become
metadata instead of passage text.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from dateutil import parser as date_parser

_LIST_MARK = r"^\s*(?:\d{1,3}[.)]|[-*•·])?\s*"
_MENU_LINE = re.compile(
    _LIST_MARK
    + r"(?:skip to\b.*|jump to\b.*|(?:main )?menu|search|share(?: this)?(?: article)?|print|"
    r"e-?mail|facebook|twitter|x|linkedin|whatsapp|advertisement|ad|sign in|log in|"
    r"subscribe|newsletter|cookies?(?: settings)?|read more|related(?: topics| stories)?|"
    r"back to top|accept(?: all)?|close)\s*$",
    re.IGNORECASE,
)
_CREDIT_LINE = re.compile(
    r"^\s*(?:image|images|photo|photos|picture|foto|bild|credit|photograph|video)\s*:\s*\S.{0,60}$",
    re.IGNORECASE,
)
_AGENCY_BYLINE = re.compile(r"^\s*[a-z]{1,4}(?:/[a-z]{1,4})+\s*(?:\([^()]{1,60}\))?\s*$")
_COPYRIGHT = re.compile(r"^\s*(?:©|\(c\)|copyright\b).{0,120}$", re.IGNORECASE)
_DATE_PREFIX = re.compile(
    r"^\s*(?:published|updated|posted|date|last updated)\s*(?:on|:)?\s*", re.IGNORECASE
)
_DOTTED_DATE = re.compile(r"\b\d{1,2}\.\d{1,2}\.\d{4}\b")  # 05.01.2014: day first, as in Europe
_SENTENCE_END = re.compile(r"[.!?…:;][\"'”’)\]]*\s*$")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")


@dataclass(frozen=True)
class Cleaned:
    text: str
    title: str | None = None
    published: str | None = None


_MD_RULES = [
    (re.compile(r"^---\n.*?\n---\n", re.DOTALL), ""),  # front matter is read separately
    (re.compile(r"^```.*?^```\s*$", re.DOTALL | re.MULTILINE), ""),
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"^[ \t]{0,3}(?:#{1,6}|>+)[ \t]*", re.MULTILINE), ""),
    (re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$", re.MULTILINE), ""),
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])([*_])(?!\s)(.+?)(?<!\s)\1(?![\w*])"), r"\2"),
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"<[^>\n]+>"), ""),
]
_FRONT_MATTER = re.compile(r"^---\n(.*?)\n---\n", re.DOTALL)


def markdown_to_text(markdown: str) -> tuple[str, dict[str, str]]:
    """Markdown markup out, words kept; returns (text, front-matter fields such as title/date)."""
    fields = {}
    if match := _FRONT_MATTER.match(markdown):
        for line in match.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip().strip("\"'")
    for pattern, replacement in _MD_RULES:
        markdown = pattern.sub(replacement, markdown)
    return markdown, fields


def normalise(text: str) -> str:
    """Decode HTML entities, unify newlines and spaces, drop control characters."""
    text = html.unescape(text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(
        ch for ch in unicodedata.normalize("NFC", text)
        if ch in "\n\t" or unicodedata.category(ch)[0] != "C"
    )
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def parse_date(line: str) -> str | None:
    """ISO date of a line that is a date and nothing else ("January 5, 2014"), else None."""
    candidate = _DATE_PREFIX.sub("", line.strip(" *_")).strip(" *_")
    if not (6 <= len(candidate) <= 40) or not re.search(r"\d{4}", candidate):
        return None
    try:
        parsed = date_parser.parse(candidate, fuzzy=False, default=None,
                                   dayfirst=bool(_DOTTED_DATE.search(candidate)))
    except (ValueError, OverflowError, TypeError):
        return None
    return parsed.date().isoformat() if 1900 < parsed.year <= date.today().year + 1 else None


def is_boilerplate(line: str) -> bool:
    return bool(
        _MENU_LINE.match(line) or _CREDIT_LINE.match(line)
        or _AGENCY_BYLINE.match(line) or _COPYRIGHT.match(line)
    )


def _is_heading(line: str) -> bool:
    return 0 < len(line.split()) <= 14 and not _SENTENCE_END.search(line)


def clean_text(raw: str, find_header: bool = True) -> Cleaned:
    """Clean scraped text; with ``find_header``, lift the headline and dateline out of the body.

    An image caption is the short line right before a credit line ("Image: Reuters"): both go.
    """
    lines = normalise(raw).split("\n")
    kept: list[str] = []
    for line in lines:
        if _CREDIT_LINE.match(line):
            while kept and not kept[-1]:
                kept.pop()
            if kept and _is_heading(kept[-1]):
                kept.pop()
            continue
        if not is_boilerplate(line):
            kept.append(line)

    title = published = None
    if find_header:
        body_start = next((i for i, line in enumerate(kept) if line and not _is_heading(line)), 0)
        header = []
        for line in kept[:body_start]:
            if not line:
                continue
            if published is None and (iso := parse_date(line)):
                published = iso
            elif title is None:
                title = line.lstrip("# ").strip()
            else:
                header.append(line)
        kept = header + kept[body_start:]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return Cleaned(text=text, title=title, published=published)
