"""What ArticleQA hands back: passages, answers and ingest reports, and their one JSON form.

`passage_dict`, `answer_dict` and `article_dict` are the dictionaries of `articleqa ask --json`,
`info --json`, the HTTP API and the Gradio ``/ask`` endpoint alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from qa.backends.base import ArticleRow

PASSAGE_FIELDS = ("rank", "score", "text", "article_id", "title", "source", "start", "end",
                  "url", "published", "answer_span")


@dataclass
class Passage:
    rank: int
    score: float
    text: str
    article_id: str
    title: str
    source: str
    start: int
    end: int
    url: str | None = None
    published: str | None = None
    chunk_id: int = 0
    dense_score: float = 0.0  # cosine of question and passage
    bm25_score: float = 0.0  # 0 when the lexical search did not retrieve it
    answer_span: tuple[int, int] | None = None  # offsets of the answer inside ``text``


@dataclass
class Answer:
    question: str
    text: str | None  # None: no answer (confidence below the reader's threshold)
    confidence: float
    passages: list[Passage]
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage
    candidates: list[tuple[str, float]] = field(default_factory=list)  # spans the reader weighed

    def to_dict(self) -> dict:
        return answer_dict(self)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return asdict(self)


def passage_dict(passage: Passage) -> dict:
    out = {key: getattr(passage, key) for key in PASSAGE_FIELDS}
    out["answer_span"] = list(passage.answer_span) if passage.answer_span else None
    return out


def answer_dict(answer: Answer) -> dict:
    return {"answer": answer.text, "confidence": answer.confidence,
            "passages": [passage_dict(p) for p in answer.passages]}


def article_dict(article: ArticleRow) -> dict:
    return {"id": article.id, "title": article.title, "published": article.published,
            "source": article.source, "url": article.url, "passages": article.chunks}
