"""Evaluation datasets in their native formats, as articles to index and questions to ask.

SQuAD v1.1 / v2.0 JSON (each Wikipedia article, all its paragraphs, becomes one article),
BEIR folders (corpus.jsonl[.gz], queries.jsonl, qrels/test.tsv), JSONL question files with
acceptable answers (``answers: []`` = unanswerable) over a corpus of files, JSONL
conversations (rows with ``turns``: follow-up questions asked in order) over a corpus, and
conversational QA sets in the shared dialogue format (``.jsonl`` or ``.jsonl.gz``, one dialogue
a line: ``{"id", "context", "turns": [{"question", "rewrite", "answer", "all_answers",
"no_answer"}]}``): QuAC (each dialogue's ``context`` passage becomes one article), CANARD and
TREC CAsT (human rewrites, no passages: scored on the resolved question's words alone).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from embeddings.encoder import sha256_of
from qa.articles import Article, Refused, iter_articles


class DatasetError(ValueError):
    """The dataset is malformed or incomplete; the message names the file and the problem."""


@dataclass(frozen=True)
class Query:
    id: str
    question: str
    answers: list[str] = field(default_factory=list)  # empty: unanswerable (or none given)
    relevant: dict[str, int] = field(default_factory=dict)  # article source -> grade
    answerable: bool = True
    resolved_keywords: list[str] = field(default_factory=list)  # words its resolved form must hold
    context: str | None = None  # the paragraph it was written about (SQuAD), for the reader alone
    rewrite: str | None = None  # a person's standalone rewrite (CANARD, CAsT, ``standalone``)
    topic_switch: bool = False  # a follow-up that names its own subject: searched on its own
    answer: str | None = None  # the reference answer a user would have seen (QuAC, CANARD)


@dataclass(frozen=True)
class Dialogue:
    """A conversation: its turns are asked in order, each follow-up resolved against those
    before it (its ``resolved_keywords``: words the resolved question must hold)."""

    id: str
    turns: list[Query]
    title: str = ""  # the page it is about (CANARD: its Wikipedia article), when known


QUESTIONS, CONVERSATIONS, PASSAGE_DIALOGUES, REWRITE_DIALOGUES = (
    "questions", "conversations", "passage-dialogues", "rewrite-dialogues")


@dataclass
class Dataset:
    name: str
    articles: list[Article]
    queries: list[Query] = field(default_factory=list)
    dialogues: list[Dialogue] = field(default_factory=list)
    # questions; conversations (over a corpus, with resolved_keywords); passage-dialogues
    # (QuAC: each dialogue's passage is an article); rewrite-dialogues (CANARD, CAsT: no index)
    kind: str = QUESTIONS
    sha256: str = ""  # of the file, where one file holds it all (a model fitted on it knows)


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read JSON ({exc})") from exc


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = [(n, line) for n, line in enumerate(handle, 1) if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    rows = []
    for number, line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
    return rows


def load_squad(path: Path) -> Dataset:
    data = _json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DatasetError(f"{path}: not SQuAD JSON (expected a top-level 'data' list)")
    articles, queries = [], []
    for entry in data["data"]:
        try:
            source = f"{path.stem}:{entry['title']}"
            paragraphs = entry["paragraphs"]
            articles.append(Article(source=source, title=entry["title"].replace("_", " "),
                                    text="\n\n".join(p["context"] for p in paragraphs)))
            for paragraph in paragraphs:
                for qa in paragraph["qas"]:
                    answers = list(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                    impossible = bool(qa.get("is_impossible")) or not answers
                    queries.append(Query(qa["id"], qa["question"], [] if impossible else answers,
                                         {} if impossible else {source: 1}, not impossible,
                                         context=paragraph["context"]))
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{path}: SQuAD entry is missing {exc}") from exc
    return Dataset(path.stem, articles, queries)


def load_beir(folder: Path, split: str = "test") -> Dataset:
    corpus = next((folder / n for n in ("corpus.jsonl", "corpus.jsonl.gz")
                   if (folder / n).exists()), None)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for needed in (corpus, folder / "queries.jsonl", qrels_path):
        if needed is None or not needed.exists():
            raise DatasetError(f"{folder}: not a BEIR folder (missing {needed or 'corpus.jsonl'})")
    articles = [Article(source=str(d["_id"]), title=d.get("title") or "", text=d["text"])
                for d in _jsonl(corpus) if d.get("text", "").strip()]
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            try:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
            except (KeyError, ValueError, TypeError) as exc:
                raise DatasetError(f"{qrels_path}: bad row {row} ({exc})") from exc
    queries = [Query(str(q["_id"]), q["text"], relevant=qrels[str(q["_id"])])
               for q in _jsonl(folder / "queries.jsonl") if str(q["_id"]) in qrels]
    return Dataset(folder.name, articles, queries)


def _corpus(path: Path, corpus: Sequence[str | Path]
            ) -> tuple[list[Article], dict[str, dict[str, int]]]:
    """The corpus's articles, and each file name, stem or source -> its articles' sources."""
    if not corpus:
        raise DatasetError(f"{path}: a question file needs --corpus PATH (the articles to index)")
    articles, refused = [], []
    for item in iter_articles(corpus):
        (refused if isinstance(item, Refused) else articles).append(item)
    if refused:
        raise DatasetError("corpus inputs failed: " + "; ".join(
            f"{r.source}: {r.reason}" for r in refused))
    by_name: dict[str, dict[str, int]] = {}
    for article in articles:
        origin = Path(article.metadata.get("file", article.source))
        for name in {origin.name, origin.stem, article.source}:
            by_name.setdefault(name, {})[article.source] = 1
    return articles, by_name


def _query(where: str, row: object, default_id: str, by_name: dict[str, dict[str, int]]
           ) -> Query:
    """{"id", "question", "answers", "article", "resolved_keywords", "standalone", "switch"}
    as a Query."""
    if not isinstance(row, dict) or not isinstance(row.get("question"), str) \
            or not isinstance(row.get("answers"), list):
        raise DatasetError(f"{where}: needs 'question' (text) and 'answers' (list)")
    keywords = row.get("resolved_keywords") or []
    if not isinstance(keywords, list) or not all(isinstance(w, str) for w in keywords):
        raise DatasetError(f"{where}: 'resolved_keywords' must be a list of words")
    standalone, switch = row.get("standalone"), row.get("switch", False)
    if not isinstance(standalone, str | None) or not isinstance(switch, bool):
        raise DatasetError(f"{where}: 'standalone' must be text and 'switch' true or false")
    name = row.get("article")
    if name and name not in by_name:
        raise DatasetError(f"{where}: article {name!r} is not in the corpus")
    return Query(str(row.get("id", default_id)), row["question"], row["answers"],
                 by_name[name] if name else {}, bool(row["answers"]), keywords,
                 rewrite=standalone, topic_switch=switch)


def load_jsonl(path: Path, corpus: Sequence[str | Path]) -> Dataset:
    """JSONL over the files in ``corpus``: one question a line ({"id", "question", "answers",
    "article"}), or, when the first row has ``turns``, one conversation a line ({"id",
    "turns": [question rows, each follow-up with its "resolved_keywords", its "standalone"
    form and "switch": true if it changes the subject]})."""
    rows = _jsonl(path)
    articles, by_name = _corpus(path, corpus)
    if not (rows and isinstance(rows[0], dict) and "turns" in rows[0]):
        return Dataset(path.stem, articles, [
            _query(f"{path}:{number}", row, str(number), by_name)
            for number, row in enumerate(rows, 1)])
    dialogues = []
    for number, row in enumerate(rows, 1):
        turns = row.get("turns") if isinstance(row, dict) else None
        if not isinstance(turns, list) or not turns:
            raise DatasetError(f"{path}:{number}: needs 'turns', each a question row")
        name = str(row.get("id", number))
        dialogues.append(Dialogue(name, [
            _query(f"{path}:{number} turn {turn}", item, f"{name}.{turn}", by_name)
            for turn, item in enumerate(turns, 1)]))
    return Dataset(path.stem, articles, dialogues=dialogues, kind=CONVERSATIONS)


def _dialogue_name(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".jsonl")


def _is_dialogue_file(path: Path) -> bool:
    """The shared dialogue format: the first row has ``turns`` and a ``context`` key."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        row = json.loads(first) if first else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # load_jsonl reports it
    return isinstance(row, dict) and "turns" in row and "context" in row


def load_dialogues(path: str | Path) -> Dataset:
    """A file in the shared dialogue format. With passages (QuAC) each dialogue's ``context``
    is one article (source: the dialogue id) and every turn is judged on it; without (CANARD,
    CAsT) there is nothing to index and the turns carry their human ``rewrite``."""
    path = Path(path)
    dialogues, articles = [], []
    for number, row in enumerate(_jsonl(path), 1):
        where = f"{path}:{number}"
        turns = row.get("turns") if isinstance(row, dict) else None
        if not isinstance(turns, list) or not turns or not all(
                isinstance(t, dict) and isinstance(t.get("question"), str) for t in turns):
            raise DatasetError(f"{where}: needs 'turns', each with a 'question'")
        name = str(row.get("id") or number)
        context = row.get("context")
        if context is not None and not (isinstance(context, str) and context.strip()):
            raise DatasetError(f"{where}: 'context' must be the passage text or null")
        if context:
            articles.append(Article(source=name, text=context,
                                    title=str(row.get("title") or "")))
        queries = []
        for turn, item in enumerate(turns, 1):
            spans = item.get("all_answers") or (
                [{"text": item["answer"]}] if item.get("answer") else [])
            try:
                answers = list(dict.fromkeys(a["text"] for a in spans if a["text"]))
            except (KeyError, TypeError) as exc:
                raise DatasetError(f"{where} turn {turn}: bad 'all_answers' ({exc})") from exc
            answerable = bool(answers) and not item.get("no_answer")
            queries.append(Query(
                f"{name}.{turn}", item["question"], answers if answerable else [],
                {name: 1} if context else {}, answerable, context=context or None,
                rewrite=item.get("rewrite") or None,
                answer=item.get("answer") if answerable else None))
        dialogues.append(Dialogue(name, queries, str(row.get("title") or "")))
    if not dialogues:
        raise DatasetError(f"{path}: no dialogues")
    passages = bool(articles)
    if passages and len(articles) != len(dialogues):
        raise DatasetError(f"{path}: some dialogues have a 'context' passage and some do not")
    if not passages and not any(t.rewrite for d in dialogues for t in d.turns[1:]):
        raise DatasetError(f"{path}: dialogues without passages need follow-up 'rewrite's")
    return Dataset(_dialogue_name(path), articles, dialogues=dialogues,
                   kind=PASSAGE_DIALOGUES if passages else REWRITE_DIALOGUES,
                   sha256=sha256_of(path))


def load_dataset(path: str | Path, corpus: Sequence[str | Path] = ()) -> Dataset:
    """Recognise the format: a BEIR folder, SQuAD JSON, JSONL questions / conversations over a
    corpus, or dialogues in the shared format (QuAC, CANARD, CAsT; .jsonl or .jsonl.gz)."""
    path = Path(path)
    if path.is_dir():
        return load_beir(path)
    if path.suffix == ".json":
        return load_squad(path)
    if path.name.endswith((".jsonl", ".jsonl.gz")) and _is_dialogue_file(path):
        return load_dialogues(path)
    if path.suffix == ".jsonl":
        return load_jsonl(path, corpus)
    raise DatasetError(f"{path}: expected a BEIR folder, SQuAD .json, or .jsonl questions or "
                       "conversations")
