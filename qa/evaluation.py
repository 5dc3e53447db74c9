"""Batch evaluation: a dataset and some configurations in, metrics, plots and reports out.

Every question is asked against the whole index (open-domain), as a user would ask it; a
conversation's follow-ups are resolved against its earlier turns first, as the chat does. The
``gold-paragraph`` configuration measures the reader alone, on each SQuAD question's paragraph.
Indexes are kept in a cache folder and reused: re-adding unchanged articles is a no-op, so a
second run costs only the questions.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embeddings import Encoder
from qa.api import ArticleQA
from qa.backends import is_server
from qa.backends.manifest import TORCH
from qa.chunking import ChunkSettings
from qa.datasets import (
    CONVERSATIONS,
    PASSAGE_DIALOGUES,
    REWRITE_DIALOGUES,
    Dataset,
    Query,
)
from qa.dialogue_evaluation import (
    evaluate_conversations,
    evaluate_passage_dialogues,
    evaluate_rewrite_dialogues,
)
from qa.metrics import (
    contains_answer,
    exact_match,
    f1_score,
    hit_at_k,
    mean_of,
    ndcg_at_k,
    percentiles,
    recall_at_k,
    reciprocal_rank,
)
from qa.optional_models import Reranker
from qa.reader import Reader, load_reader
from qa.results import Answer, Passage
from qa.term_selection import CARD, packaged_selector

GOLD_PARAGRAPH = "gold-paragraph"
CONFIGS: dict[str, dict] = {  # ArticleQA options; configs with equal index options share one
    "hybrid": {"retrieval": "hybrid"},  # the default: dense + BM25, reciprocal rank fusion
    "hybrid-weighted": {"retrieval": "hybrid-weighted"},
    "dense": {"retrieval": "dense"},
    "bm25": {"retrieval": "bm25"},
    "dense-text-only": {"retrieval": "dense", "embed_title": False},
    # MTEB's protocol: one vector per document, title + the text's first 254 word pieces
    "dense-whole-doc": {"retrieval": "dense",
                        "chunking": ChunkSettings(target_tokens=254, overlap_sentences=0,
                                                  max_chunks=1)},
    # The reader alone, on each question's own paragraph (SQuAD data): no retrieval, no abstaining
    GOLD_PARAGRAPH: {},
}
INDEX_OPTIONS = ("embed_title", "chunking")
HIT_KS = (1, 3, 5, 10)
RANK_DEPTH = 100  # documents ranked per question (Recall@100)
PASSAGE_DEPTH = 300  # passages fetched to find RANK_DEPTH distinct documents
ANSWER_K = 10  # passages the answer is looked for in
CONVERSATION_K = 5  # passages per conversation turn, as the chat shows by default
RESOLVER, RULES_ONLY = "resolver", "rules only"  # the two runs of a rewrite-dialogue file


@dataclass
class Run:
    config: str
    build: dict
    metrics: dict
    rows: list[dict] = field(default_factory=list)


def _ask(kb: ArticleQA, query: Query) -> dict:
    started = time.perf_counter()
    if query.answers or not query.answerable:
        answer = kb.ask(query.question, k=ANSWER_K)
    else:  # retrieval-only data (BEIR): nothing for the reader to be scored on
        passages, timings = kb.search(query.question, k=ANSWER_K)
        answer = Answer(query.question, None, 0.0, passages, timings)
    total = 1000 * (time.perf_counter() - started)
    ranked, _ = kb.search(query.question, k=PASSAGE_DEPTH)
    documents = list(dict.fromkeys(p.source for p in ranked))[:RANK_DEPTH]
    return {
        **_answer_row(query, answer.text, answer.confidence, answer.candidates,
                      [p.text for p in answer.passages]),
        "relevant": query.relevant, "ranked_documents": documents[:10],
        "first_relevant_rank": next((i for i, d in enumerate(documents, 1)
                                     if query.relevant.get(d, 0) > 0), None),
        "ndcg@10": ndcg_at_k(documents, query.relevant, 10) if query.relevant else None,
        "recall@100": recall_at_k(documents, query.relevant, 100) if query.relevant else None,
        "mrr@10": reciprocal_rank(documents, query.relevant, 10) if query.relevant else None,
        "article_hits": [query.relevant.get(d, 0) > 0 for d in documents[:10]],
        "passages": [{"rank": p.rank, "score": p.score, "source": p.source,
                      "text": p.text[:300]} for p in answer.passages[:3]],
        "ms": {**{k: round(v, 3) for k, v in answer.timings.items()}, "total": round(total, 3)},
    }


def _read_gold(reader: Reader, query: Query) -> dict:
    """The reader alone on the question's own paragraph, answering every question with its best
    span (abstention is measured in the open setting): what it does when retrieval is right."""
    if query.context is None:
        raise ValueError(f"{GOLD_PARAGRAPH} needs SQuAD data (questions with their paragraph)")
    gold = Passage(1, 1.0, query.context, "gold", "", "gold", 0, len(query.context))
    started = time.perf_counter()
    reading = reader.read(query.question, [gold])
    ms = round(1000 * (time.perf_counter() - started), 3)
    best = reading.text or (reading.candidates[0][0] if reading.candidates else None)
    return {**_answer_row(query, best, reading.confidence, reading.candidates, [query.context]),
            "relevant": {}, "ranked_documents": [], "first_relevant_rank": None,
            "ndcg@10": None, "recall@100": None, "mrr@10": None, "article_hits": [],
            "passages": [], "ms": {"read": ms, "total": ms}}


def _answer_row(query: Query, text: str | None, confidence: float,
                candidates: Sequence[tuple[str, float]], passages: Sequence[str]) -> dict:
    answer_hits = [contains_answer(p, query.answers) for p in passages]
    golds = query.answers if query.answerable else []
    return {
        "id": query.id, "question": query.question, "answers": query.answers,
        "answerable": query.answerable, "prediction": text, "confidence": confidence,
        "em": exact_match(text, golds), "f1": f1_score(text, golds),
        "candidate_rank": next((i for i, (span, _) in enumerate(candidates, 1)
                                if exact_match(span, query.answers)), None),
        "candidates": len(candidates),
        "best_candidate": candidates[0][0] if candidates else None,
        "answer_hit_rank": next((i for i, hit in enumerate(answer_hits, 1) if hit), None),
        "passage_answer_hits": answer_hits,
    }


def threshold_sweep(rows: Sequence[dict], thresholds: Sequence[float] = tuple(
        round(t, 2) for t in np.arange(0.0, 1.0001, 0.05))) -> list[dict]:
    """What each confidence threshold would give: the reader's best span is the answer when
    its confidence reaches the threshold, else "no answer"."""
    sweep = []
    for threshold in thresholds:
        em, answered, kept, abstained_right = [], 0, [], []
        for r in rows:
            prediction = r["best_candidate"] if r["confidence"] >= threshold else None
            answered += prediction is not None
            golds = r["answers"] if r["answerable"] else []
            em.append(exact_match(prediction, golds))
            if r["answerable"]:
                kept.append(exact_match(prediction, golds))
            else:
                abstained_right.append(prediction is None)
        sweep.append({"threshold": threshold, "answered": answered / max(1, len(rows)),
                      "em": mean_of(em), "em_answerable": mean_of(kept),
                      "no_answer_recall": mean_of(abstained_right)})
    return sweep


def summarise(rows: Sequence[dict]) -> dict:
    judged = [r for r in rows if r["relevant"]]
    with_answers = [r for r in rows if r["answerable"] and r["answers"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    scored = [r for r in rows if r["answers"] or not r["answerable"]]  # not retrieval-only
    abstained = [r for r in scored if r["prediction"] is None]
    correct_abstentions = sum(1 for r in abstained if not r["answerable"])
    metrics = {
        "questions": len(rows), "judged": len(judged), "with_answers": len(with_answers),
        "unanswerable": len(unanswerable),
        "ndcg@10": mean_of([r["ndcg@10"] for r in judged]),
        "recall@100": mean_of([r["recall@100"] for r in judged]),
        "mrr@10": mean_of([r["mrr@10"] for r in judged]),
        **{f"article_hit@{k}": mean_of([hit_at_k(r["article_hits"], k) for r in judged])
           for k in HIT_KS},
        **{f"answer_hit@{k}": mean_of([hit_at_k(r["passage_answer_hits"], k) for r in with_answers])
           for k in HIT_KS},
        "candidate_recall": mean_of([r["candidate_rank"] is not None for r in with_answers]),
        "candidate_recall@5": mean_of([(r["candidate_rank"] or 99) <= 5 for r in with_answers]),
        "passages_read": mean_of([r["candidates"] for r in scored]),  # the reader's early stop
        "em": mean_of([r["em"] for r in scored]), "f1": mean_of([r["f1"] for r in scored]),
        "em_answerable": mean_of([r["em"] for r in with_answers]),
        "f1_answerable": mean_of([r["f1"] for r in with_answers]),
        "no_answer_precision": correct_abstentions / len(abstained) if abstained else None,
        "no_answer_recall": correct_abstentions / len(unanswerable) if unanswerable else None,
    }
    metrics["by_threshold"] = threshold_sweep(scored)
    for stage in ("encode", "search", "read", "total"):
        metrics[f"latency_ms_{stage}"] = percentiles([r["ms"].get(stage, 0.0) for r in rows])
    return metrics


def _index_key(options: dict, encoder_backend: str = TORCH) -> str:
    """The cache folder name for the index these options and encoder backend build (equal
    ones share one; torch, the first backend, adds nothing, so older caches stay valid)."""
    def label(value: object) -> str:
        if isinstance(value, ChunkSettings):
            return ",".join(f"{k}{v}" for k, v in value.as_dict().items())
        return str(value)
    parts = [f"{k}={label(options[k])}" for k in INDEX_OPTIONS if k in options]
    if encoder_backend != TORCH:
        parts.append(f"encoder={encoder_backend}")
    return "-".join(parts) or "default"


def open_index(dataset: Dataset, config: str, cache: Path | str, encoder: Encoder,
               progress: bool = True, **answering) -> tuple[ArticleQA, dict]:
    """The dataset's index for this configuration (built, or reused from the cache) and what
    building it cost; ``answering`` (reranker, qa_model) goes to `ArticleQA` as it is.
    A database URL as ``cache`` is the index itself (one dataset and configuration each)."""
    options = dict(CONFIGS[config])
    location = cache if is_server(str(cache)) else (
        Path(cache) / dataset.name / _index_key(options, encoder.backend))
    kb = ArticleQA(location, encoder=encoder, **options, **answering)
    started = time.perf_counter()
    report = kb.add_articles(dataset.articles, progress=progress)
    seconds = time.perf_counter() - started
    chunks = kb.backend.count_chunks()
    build = {
        "seconds": round(seconds, 2), "articles": len(kb), "chunks": chunks,
        "added": len(report.added), "reused": len(report.unchanged),
        "chunks_per_second": round(chunks / seconds, 1) if report.added and seconds else None,
        "encoder_backend": encoder.backend,
    }
    encoder.clear_cache()
    return kb, build


def run_config(dataset: Dataset, config: str, cache: Path | str, encoder: Encoder,
               progress: bool = True, limit: int | None = None, **answering) -> Run:
    kb, build = open_index(dataset, config, cache, encoder, progress, **answering)
    build.update({role: model.name for role, model in answering.items() if model})
    if dataset.kind in (CONVERSATIONS, PASSAGE_DIALOGUES):
        score = (evaluate_conversations if dataset.kind == CONVERSATIONS
                 else evaluate_passage_dialogues)
        result = score(kb, dataset.dialogues[:limit], k=CONVERSATION_K, progress=progress,
                       desc=f"Asking ({config})")
        metrics, rows = result["metrics"], result["rows"]
    else:
        ask = (lambda q: _read_gold(kb.reader, q)) if config == GOLD_PARAGRAPH else (
            lambda q: _ask(kb, q))
        rows = [ask(q) for q in tqdm(dataset.queries[:limit], unit=" question",
                                     desc=f"Asking ({config})", disable=not progress)]
        metrics = summarise(rows)
    kb.close()
    metrics["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return Run(config, build, metrics, rows)


def evaluate(dataset: Dataset, configs: Sequence[str], out: Path, cache: Path | str,
             encoder: Encoder | None = None, model: str | None = None, progress: bool = True,
             limit: int | None = None, reranker: str | None = None,
             qa_model: str | None = None, encoder_backend: str | None = None) -> list[Run]:
    """Run every configuration on the dataset and write the reports into ``out``; an optional
    re-ranker or extractive-QA model (loaded once) joins every configuration. Dialogues with
    rewrites and no passages (CANARD, CAsT) score the resolver alone: no model, no index."""
    if dataset.kind == REWRITE_DIALOGUES:
        runs = []
        for config, selector in ((RESOLVER, "packaged"), (RULES_ONLY, None)):
            result = evaluate_rewrite_dialogues(dataset.dialogues[:limit], progress=progress,
                                                desc=f"Resolving ({config})", selector=selector)
            metrics = {**result["metrics"], "peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
            runs.append(Run(config, {}, metrics, result["rows"]))
        write_reports(dataset, runs, out)
        return runs
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    encoder = encoder or Encoder(model, backend=encoder_backend)
    answering = {"reranker": Reranker(reranker) if reranker else None,
                 "qa_model": load_reader(qa_model) if qa_model else None}
    runs = [run_config(dataset, c, cache, encoder, progress, limit, **answering)
            for c in configs]
    write_reports(dataset, runs, out)
    return runs


# --- reports ------------------------------------------------------------------------------

_TABLE_METRICS = [
    "ndcg@10", "recall@100", "mrr@10", *[f"article_hit@{k}" for k in HIT_KS],
    *[f"answer_hit@{k}" for k in HIT_KS], "candidate_recall", "candidate_recall@5",
    "passages_read", "em", "f1", "em_answerable", "f1_answerable",
    "no_answer_precision", "no_answer_recall",
]
_CONVERSATION_COUNTS = ("conversations", "turns", "follow_ups", "peak_rss_mb")  # not in the table


def _fmt(value: object) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _row(label: str, cells: Iterable[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def write_reports(dataset: Dataset, runs: Sequence[Run], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "python": platform.python_version(),
               "cpus": os.cpu_count()}
    asked = len(runs[0].rows) if runs else 0
    (out / "metrics.json").write_text(json.dumps({
        "dataset": dataset.name, "articles": len(dataset.articles),
        "questions": asked, "machine": machine,
        "configs": {r.config: {"build": r.build, "metrics": r.metrics} for r in runs},
    }, indent=2) + "\n")
    with open(out / "per_question.jsonl", "w") as handle:
        for run in runs:
            for row in run.rows:
                handle.write(json.dumps({"config": run.config, **row}, ensure_ascii=False) + "\n")
    if dataset.kind in (PASSAGE_DIALOGUES, REWRITE_DIALOGUES):
        (out / "report.md").write_text(_dialogue_report(dataset, runs, machine))
        return
    names = [r.config for r in runs]
    if dataset.dialogues:
        follow_ups = sum(len(d.turns) - 1 for d in dataset.dialogues)
        scope = (f"{len(dataset.dialogues)} conversations ({asked} questions, {follow_ups} "
                 "follow-ups) asked in order against the whole index, each follow-up resolved "
                 "against its conversation (`_unresolved`: asked as typed)")
        table = [m for m in runs[0].metrics if m not in _CONVERSATION_COUNTS] if runs else []
    else:
        scope = f"{asked} questions, asked against the whole index"
        table = _TABLE_METRICS
    lines = [f"# Evaluation: {dataset.name}", "",
             f"{len(dataset.articles)} articles, {scope}. Machine: {machine['platform']}, "
             f"{machine['cpus']} CPUs.", "",
             "| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [_row(m, (_fmt(r.metrics[m]) for r in runs))
              for m in table if any(r.metrics[m] is not None for r in runs)]
    if not dataset.dialogues:
        lines += [_row(f"latency {stage} p50 / p95 / p99 ms", (" / ".join(
            f"{v:.1f}" for v in r.metrics[f"latency_ms_{stage}"].values()) for r in runs))
            for stage in ("encode", "search", "read", "total")]
    lines += [
        _row("index build s (chunks, chunks/s)", (
            f"{r.build['seconds']} ({r.build['chunks']}, {_fmt(r.build['chunks_per_second'])})"
            + (" reused" if not r.build["added"] else "") for r in runs)),
        _row("peak RSS MB", (_fmt(r.metrics["peak_rss_mb"]) for r in runs)),
        *[_row(role, (r.build.get(role, "–") for r in runs))
          for role in ("reranker", "qa_model") if any(role in r.build for r in runs)], "",
    ]
    if dataset.dialogues:
        lines += ["Per-turn results (the question as typed and as searched, what was changed, "
                  "the expected article's rank): `per_question.jsonl`.", ""]
    else:
        _plots(runs, out)
        lines += [
            "![hit@k](hit_at_k.png) ![latency](latency.png) ![abstention](abstention.png)", "",
            "Per-question results: `per_question.jsonl`. EM/F1 count \"no answer\" as right "
            "only on unanswerable questions (SQuAD v2 rules).", ""]
    (out / "report.md").write_text("\n".join(lines))


_DIALOGUE_SCOPE = {
    PASSAGE_DIALOGUES: (
        "{articles} passages indexed together (each dialogue's passage is one article); "
        "{dialogues} dialogues ({turns} turns, {follow_ups} follow-ups) asked in order against "
        "the whole index, {k} passages each. Follow-ups four ways: `typed` (the question "
        "alone), `resolved` (follow-up resolution, the earlier turns recorded with the "
        "system's own answers, as a user sees them), `resolved-gold` (the earlier turns "
        "recorded with the reference answers), `resolved+history` (what the chat, the HTTP "
        "API and `kb.conversation()` do: resolved, and searched with the last two turns' "
        "words and a prior for the conversation's articles). `passage_hit@k`: one of the "
        "first k passages is from the dialogue's own passage; `answer_in_*`: a reference "
        "answer is in them (answerable turns); EM / F1: the reader's answer vs all "
        "references, SQuAD v2 rules (a no-answer turn is right only when the reader "
        "abstains)."),
    REWRITE_DIALOGUES: (
        "{dialogues} dialogues ({turns} turns, {follow_ups} follow-ups with a human rewrite), "
        "no passages: each follow-up resolved against the earlier turns, each recorded as the "
        "chat records one: its reference answer (where the data has one) in a passage under "
        "the dialogue's page title (the chat's would be the cited article's headline). "
        "`recall`: of the content words the rewrite "
        "adds to the question, the share the resolved question has; `precision`: of the words "
        "the resolver added, the share in the rewrite (pooled over follow-ups); "
        "`needed_in_history`: the share of needed words that occur in the earlier turns' "
        "questions and answers at all (the title supplies many of the rest); "
        "`recall_of_history_words`: recall over those."),
}


def _dialogue_report(dataset: Dataset, runs: Sequence[Run], machine: dict) -> str:
    """One table per configuration: a row per variant (first turns, follow-ups typed /
    resolved ...), a column per measure."""
    first = runs[0].metrics if runs else {}
    scope = _DIALOGUE_SCOPE[dataset.kind].format(
        articles=len(dataset.articles), k=CONVERSATION_K,
        **{n: first.get(n) for n in ("dialogues", "turns", "follow_ups")})
    lines = [f"# Evaluation: {dataset.name}", "", scope, "",
             f"Machine: {machine['platform']}, {machine['cpus']} CPUs.", ""]
    if dataset.kind == REWRITE_DIALOGUES:
        lines += [_selector_note(dataset), ""]
    for run in runs:
        variants = run.metrics["variants"]
        columns = list(next(iter(variants.values())))
        lines += [f"## {run.config}", "", "| variant | " + " | ".join(columns) + " |",
                  "|---" * (len(columns) + 1) + "|"]
        lines += [_row(name, (_fmt(values[c]) for c in columns))
                  for name, values in variants.items()]
        timing = [f"{run.metrics['seconds']} s in all"]
        if "questions_asked" in run.metrics:
            timing.append(f"{run.metrics['questions_asked']} questions sent to the index "
                          "(a repeat within a dialogue is asked once)")
        if run.metrics.get("resolve_ms_p50") is not None:
            timing.append(f"resolve p50 {run.metrics['resolve_ms_p50']} ms")
        if run.build:
            timing.append(f"index build {run.build['seconds']} s ({run.build['chunks']} "
                          "chunks" + (", reused" if not run.build["added"] else "") + ")")
        timing.append(f"peak RSS {run.metrics['peak_rss_mb']} MB")
        lines += ["", "Timing: " + "; ".join(timing) + ".", ""]
    lines += ["Per-question rows (each variant's searched question, its changes, the passages' "
              "sources, the answer): `per_question.jsonl`.", ""]
    return "\n".join(lines)


def _selector_note(dataset: Dataset) -> str:
    """What `resolver` adds to `rules only`, and whether it was fitted on this very file."""
    card = packaged_selector().card
    note = (f"`{RESOLVER}`: the rules plus the packaged term selector (threshold "
            f"{card['threshold']}); `{RULES_ONLY}`: the rules alone.")
    if dataset.sha256 in {f["sha256"] for f in card["training"]["files"]}:
        held_out = card["metrics"]["out_of_fold"]
        note += (f" **The term selector was fitted on this file**, so `{RESOLVER}` is "
                 f"in-sample here; on folds held out by dialogue it scored recall "
                 f"{held_out['recall']}, precision {held_out['precision']} "
                 f"(qa/models/term-selector/{CARD}).")
    return note


def _plots(runs: Sequence[Run], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, ax, name: str, **labels) -> None:
        ax.set(**labels)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        for kind, style in (("article_hit", "-o"), ("answer_hit", "--s")):
            values = [run.metrics[f"{kind}@{k}"] for k in HIT_KS]
            if all(v is not None for v in values):
                ax.plot(HIT_KS, values, style, label=f"{run.config}: {kind.replace('_', ' ')}")
    ax.grid(alpha=0.3)
    save(fig, ax, "hit_at_k.png", xlabel="k", ylabel="fraction of questions", title="hit@k",
         ylim=(0, 1.02), xticks=HIT_KS)

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        ax.hist([r["ms"]["total"] for r in run.rows], bins=40, alpha=0.6, label=run.config)
    save(fig, ax, "latency.png", xlabel="ask latency (ms)", ylabel="questions",
         title="latency per question")

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        sweep = run.metrics["by_threshold"]
        thresholds = [point["threshold"] for point in sweep]
        ax.plot(thresholds, [p["answered"] for p in sweep], label=f"{run.config}: answered")
        ax.plot(thresholds, [np.nan if p["em"] is None else p["em"] for p in sweep], "--",
                label=f"{run.config}: EM (all)")
        if any(p["no_answer_recall"] is not None for p in sweep):
            ax.plot(thresholds, [p["no_answer_recall"] for p in sweep], ":",
                    label=f"{run.config}: unanswerable abstained")
    save(fig, ax, "abstention.png", xlabel="confidence threshold",
         ylabel="fraction of questions", ylim=(-0.02, 1.02),
         title="answered vs abstained by confidence threshold")
