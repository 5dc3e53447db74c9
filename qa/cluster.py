"""Ingest on a Dask cluster: `articleqa index PATH... --cluster local|tcp://HOST:PORT`.

The client expands the inputs into source units (files and URLs, in `iter_articles` order)
and hands out consecutive runs of them. For each run one task loads, cleans, skips what is
stored unchanged and chunks (`Ingester.plan`), and a second embeds and writes the batches
(`Ingester.store`), each batch one transaction, straight into the PostgreSQL index. Every
worker process opens the index once, with the model, chunking, passage format and encoder
backend its manifest records, and keeps it: a model is loaded once per worker, not per
task, and workers cut and embed exactly as a single-process ingest does.

Where embedding runs: on a plain cluster, on the worker that chunked the run (Dask keeps the
chunks in place). When some workers advertise the ``encoder`` resource (`dask worker ADDRESS
--resources encoder=1`, one per GPU), they form the encoder pool: every embed-and-write task
goes to them, one at a time each, and the other workers do the reading and chunking. An
encoder worker with a GPU embeds on it when the index's encoder backend is torch (the int8
ONNX encoder is a CPU model; build a GPU cluster's index with ``--encoder-backend torch``).

Writes are idempotent: an article is keyed by its source and stored whole, with its content
hash, or not at all. A killed job's rerun skips what was stored and never duplicates an
article; a task Dask retries after a lost worker rewrites the same rows.

Dask rather than Ray (measured here, see docs/BENCHMARKS.md): 5 MB of wheels against 160 MB,
a local cluster and its first task in 1.8 s against 6.6 s, and a `LocalCluster` binds
127.0.0.1 only, where Ray listened on every interface whatever address it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from embeddings.encoder import available_cpus
from qa.articles import MAX_BYTES, Refused, source_units
from qa.backends import is_server
from qa.ingest import Batch, read_articles
from qa.results import IngestReport

if TYPE_CHECKING:
    from distributed import Client

    from qa.api import ArticleQA

LOCAL = "local"
LOOPBACK = "127.0.0.1"
MAX_RUN = 64  # source units per task, at most: small runs balance the load and lose less
RUNS_PER_WORKER = 4  # ...but enough of them to keep every worker busy till the end
ENCODER = "encoder"  # the worker resource that marks the encoder pool (e.g. one per GPU)

Unit = str | Path  # a URL or a file


def _distributed():
    try:
        import distributed
    except ImportError:
        raise RuntimeError("--cluster needs Dask: pip install 'articleqa[cluster]'") from None
    return distributed


@contextmanager
def connect(address: str, workers: int | None = None) -> Iterator[Client]:
    """A client of the scheduler at ``address``, or of a new local cluster for ``"local"``:
    ``workers`` processes (default: one per CPU) of one thread each, every socket on
    127.0.0.1, the dashboard off (Dask's would listen on all interfaces)."""
    distributed = _distributed()
    if address != LOCAL:
        with distributed.Client(address) as client:
            yield client
        return
    with distributed.LocalCluster(host=LOOPBACK, n_workers=workers or available_cpus(),
                                  threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@lru_cache(maxsize=4)
def _index(url: str, batch_chunks: int, manifest: str) -> ArticleQA:
    """This worker's handle on the index, opened without options so that it uses the
    model, chunking, passage format and encoder backend the index was built with. Keyed by
    the client's ``manifest`` too, so an index rebuilt at the same URL is opened afresh."""
    from embeddings import Encoder
    from qa.api import ArticleQA
    from qa.backends.manifest import TORCH, Manifest

    wanted = Manifest.from_json(manifest, where=url)
    encoder = None  # the index's own, on the CPU
    if wanted.encoder_backend == TORCH:
        import torch

        if torch.cuda.is_available():  # an encoder-pool worker with a GPU
            encoder = Encoder(wanted.model, backend=TORCH, device="cuda")
    return ArticleQA(url, encoder=encoder, batch_chunks=batch_chunks)


def _plan(index: tuple[str, int, str], units: list[Unit], max_bytes: int
          ) -> tuple[IngestReport, list[Batch]]:
    """Task: load, clean and chunk a run of units, skipping articles stored unchanged."""
    ingester = _index(*index).ingester
    report = IngestReport()
    batches = list(ingester.plan(read_articles(units, report, max_bytes), report))
    return report, batches


def _store(index: tuple[str, int, str], planned: tuple[IngestReport, list[Batch]]
           ) -> tuple[IngestReport, int]:
    """Task: embed and write a run's batches, one transaction each; returns its chunks."""
    ingester = _index(*index).ingester
    report, batches = planned
    return report, sum(ingester.store(batch) for batch in batches)


def _placement(client: Client) -> tuple[dict, dict]:
    """Submit options for the chunking and the embedding tasks: with an encoder pool, the
    embedding goes to it (one task per worker at a time) and chunking to the other workers,
    if there are any; without one, anywhere."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    pool = {a for a, w in workers.items() if w.get("resources", {}).get(ENCODER)}
    if not pool:
        return {}, {}
    others = [a for a in workers if a not in pool]
    return ({"workers": others} if others else {}), {"resources": {ENCODER: 1}}


def _runs(units: list[Unit], threads: int) -> list[list[Unit]]:
    size = max(1, min(MAX_RUN, -(-len(units) // (RUNS_PER_WORKER * max(1, threads)))))
    return [units[i:i + size] for i in range(0, len(units), size)]


def _merge(reports: list[IngestReport]) -> IngestReport:
    """One report, one line per source, from the runs' reports in input order. A source
    several runs saw (the same URL in two JSONL files) ends as its last copy did, but was
    added or updated if any copy was written, as a single-process ingest reports it."""
    outcomes: dict[str, list[tuple[str, str]]] = {}
    merged = IngestReport()
    for report in reports:
        merged.notes.extend(report.notes)
        for result in ("added", "updated", "unchanged"):
            for source in getattr(report, result):
                outcomes.setdefault(source, []).append((result, ""))
        for source, reason in report.failed:
            outcomes.setdefault(source, []).append(("failed", reason))
    for source, seen in outcomes.items():
        results = {result for result, _ in seen}
        last, reason = seen[-1]
        if last == "failed":
            merged.failed.append((source, reason))
        else:
            getattr(merged, next(r for r in ("added", "updated", "unchanged") if r in results)
                    ).append(source)
    return merged


def add(kb: ArticleQA, inputs: Iterable[str | Path], address: str,
        workers: int | None = None, progress: bool = True,
        max_bytes: int = MAX_BYTES) -> IngestReport:
    """Ingest ``inputs`` into ``kb`` (a PostgreSQL index) on the cluster at ``address``.

    The workers read the files themselves: on a remote cluster, give paths they can all
    read (a shared filesystem). The report is the one `ArticleQA.add` gives.
    """
    if not is_server(kb.location):
        raise ValueError(
            "--cluster needs a PostgreSQL index (--index postgresql://..., `articleqa db "
            "start` runs one here): its workers write to the database side by side, and a "
            "folder index has a single writer")
    index = (kb.backend.url, kb.ingester.batch_chunks, kb.manifest.to_json())
    refused, units = IngestReport(), []
    for unit in source_units(inputs):
        if isinstance(unit, Refused):
            refused.failed.append((unit.source, unit.reason))
        else:
            units.append(unit)
    distributed = _distributed()
    with connect(address, workers) as client:
        runs = _runs(units, sum(client.nthreads().values()))
        chunking, embedding = _placement(client)

        def submit(run: list[Unit]):
            planned = client.submit(_plan, index, run, max_bytes, pure=False, **chunking)
            return client.submit(_store, index, planned, pure=False, **embedding)

        futures = {submit(run): n for n, run in enumerate(runs)}  # planned, stored by pairs
        reports: list[IngestReport | None] = [None] * len(runs)
        with tqdm(total=len(units), desc="Indexing", unit=" file", disable=not progress) as bar:
            chunks = 0
            for future in distributed.as_completed(futures):
                n = futures[future]
                try:
                    reports[n], stored = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost run fails its own units only
                    reason = f"cluster task failed: {type(exc).__name__}: {exc}"
                    reports[n], stored = IngestReport(
                        failed=[(str(unit), reason) for unit in runs[n]]), 0
                chunks += stored
                bar.set_postfix(chunks=chunks, refresh=False)
                bar.update(len(runs[n]))
        for n in _reruns(reports):
            submit(runs[n]).result()
    return _merge([refused, *reports])


def _reruns(reports: list[IngestReport]) -> list[int]:
    """Runs to store again, one after another in input order, so that a source several
    runs held (written by whichever finished last) ends as the copy of the last of them."""
    last: dict[str, int] = {}
    runs: dict[str, set[int]] = {}
    for n, report in enumerate(reports):
        for source in [*report.added, *report.updated, *report.unchanged]:
            last[source] = n
            runs.setdefault(source, set()).add(n)
    return sorted({last[source] for source, held in runs.items() if len(held) > 1})
