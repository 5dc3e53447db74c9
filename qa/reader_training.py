"""Training our extractive reader on SQuAD-format data, on a CPU (or a GPU when there is one).

Every question becomes one short window holding its answer (a random one when several do);
negatives teach the no-answer score: with ``own_negative`` probability a window of its own
paragraph without the answer, with ``other_negative`` probability a window of another paragraph
of its article that does not contain the answer text, and with ``cut_negative`` probability its
own paragraph with the answer's sentence cut out, read where the cut was (the passage still
talks about what the question asks, as SQuAD 2.0's unanswerable questions do, but no longer
says it). Windows are bucketed by length and padded
per batch. A checkpoint (weights, optimizer, schedule, RNG, position in the fixed batch order)
is written every ``checkpoint_minutes``, so a run stopped at any moment resumes exactly; after
each one the reader is scored on held-out dev questions and the learning curve (JSON + PNG)
grows by a point, and the best weights so far are exported in the shipped format (``best/``;
the last step's go to ``final/``).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from embeddings.encoder import sha256_of
from qa.metrics import exact_match, f1_score
from qa.reader_config import TrainConfig
from qa.span_model import SpanModel, load_weights, save_weights, score_spans
from qa.spans import truncated_question


@dataclass
class Example:
    id: str
    question: str
    context: str
    answers: list[str]
    answer_start: int  # -1: unanswerable
    article: str
    others: list[int] = field(default_factory=list)  # paragraphs of the same article


def load_squad_examples(path: str | Path) -> tuple[list[Example], list[str]]:
    """Questions of a SQuAD v1/v2 JSON file (optionally .gz) and its paragraphs' texts."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)["data"]
    examples, paragraphs = [], []
    for article in data:
        title = article.get("title", "")
        first = len(paragraphs)
        for paragraph in article["paragraphs"]:
            paragraphs.append(paragraph["context"])
        for offset, paragraph in enumerate(article["paragraphs"]):
            own = first + offset
            others = [p for p in range(first, len(paragraphs)) if p != own]
            for qa in paragraph["qas"]:
                answers = [a["text"] for a in qa.get("answers", [])]
                impossible = qa.get("is_impossible", False) or not answers
                start = -1 if impossible else int(qa["answers"][0]["answer_start"])
                examples.append(Example(str(qa["id"]), qa["question"], paragraph["context"],
                                        answers, start, f"{path}#{title}", others))
    return examples, paragraphs


def split_heldout(examples: list[Example], n_articles: int, seed: int
                  ) -> tuple[list[Example], list[Example]]:
    articles = sorted({e.article for e in examples})
    held = set(random.Random(seed).sample(articles, min(n_articles, len(articles))))
    return ([e for e in examples if e.article not in held],
            [e for e in examples if e.article in held])


def build_features(examples: Sequence[Example], paragraphs: Sequence[str], tokenizer,
                   config: TrainConfig) -> list[tuple[np.ndarray, int, int, int]]:
    """(input ids, question length, start token, end token) per training window; start = end
    = 0 (the [CLS] token) for a window without the answer."""
    rng = random.Random(config.seed)
    features = []
    step = 256
    for first in tqdm(range(0, len(examples), step), desc="Windows", unit_scale=step,
                      leave=False):
        batch = examples[first:first + step]
        questions = [truncated_question(tokenizer, e.question) for e in batch]
        contexts, owners, kinds, cuts = [], [], [], {}
        for i, e in enumerate(batch):
            contexts.append(e.context)
            owners.append(i)
            kinds.append("own")
            if e.others and rng.random() < config.other_negative:
                contexts.append(paragraphs[rng.choice(e.others)])
                owners.append(i)
                kinds.append("other")
            if e.answer_start >= 0 and rng.random() < config.cut_negative:
                cut = without_answer_sentence(e)
                if cut is not None:
                    cuts[len(contexts)] = cut[1]
                    contexts.append(cut[0])
                    owners.append(i)
                    kinds.append("cut")
        encoded = tokenizer([questions[i] for i in owners], contexts, truncation="only_second",
                            max_length=config.max_length, stride=config.stride,
                            return_overflowing_tokens=True, return_offsets_mapping=True)
        windows: dict[int, list[int]] = {}
        for w, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            windows.setdefault(sample, []).append(w)
        for sample, ws in windows.items():
            e = batch[owners[sample]]
            if kinds[sample] == "cut":
                at = [w for w in ws if _reads(encoded, w, cuts[sample])]
                features.append(_feature(encoded, at[0] if at else rng.choice(ws), 0, 0))
                continue
            if kinds[sample] == "other":
                w = rng.choice(ws)
                first, last = _context_span(encoded, w)
                window_text = contexts[sample][first:last].lower()
                if not any(a.lower() in window_text for a in e.answers):
                    features.append(_feature(encoded, w, 0, 0))
                continue
            if e.answer_start < 0:
                features.append(_feature(encoded, rng.choice(ws), 0, 0))
                continue
            a_start, a_end = e.answer_start, e.answer_start + len(e.answers[0])
            holding, without = [], []
            for w in ws:
                seq = encoded.sequence_ids(w)
                offsets = encoded["offset_mapping"][w]
                tokens = [t for t, s in enumerate(seq) if s == 1]
                if offsets[tokens[0]][0] <= a_start and offsets[tokens[-1]][1] >= a_end:
                    s_tok = next(t for t in tokens if offsets[t][1] > a_start)
                    e_tok = next(t for t in reversed(tokens) if offsets[t][0] < a_end)
                    holding.append((w, s_tok, e_tok))
                else:
                    without.append(w)
            if holding:
                features.append(_feature(encoded, *rng.choice(holding)))
            if without and rng.random() < config.own_negative:
                features.append(_feature(encoded, rng.choice(without), 0, 0))
    return features


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")


def without_answer_sentence(example: Example) -> tuple[str, int] | None:
    """The example's paragraph without the sentence holding its answer, and where the cut is;
    None when an answer's text would still be in it (or nothing else is left)."""
    a_start = example.answer_start
    a_end = a_start + len(example.answers[0])
    text = example.context
    start = max((m.end() for m in _SENTENCE_END.finditer(text, 0, a_start)), default=0)
    after = _SENTENCE_END.search(text, a_end)
    end = after.end() if after else len(text)
    rest = text[:start] + text[end:]
    if not rest.strip() or any(a.lower() in rest.lower() for a in example.answers if a):
        return None
    return rest, start


def _context_span(encoded, w: int) -> tuple[int, int]:
    """The characters of its text that window ``w`` reads (start, end)."""
    span = [o for o, s in zip(encoded["offset_mapping"][w], encoded.sequence_ids(w),
                              strict=True) if s == 1]
    return (span[0][0], span[-1][1]) if span else (0, 0)


def _reads(encoded, w: int, offset: int) -> bool:
    """Whether window ``w`` reads the text around character ``offset``."""
    first, last = _context_span(encoded, w)
    return first < last and first <= offset <= last


def _feature(encoded, w: int, start: int, end: int) -> tuple[np.ndarray, int, int, int]:
    ids = np.asarray(encoded["input_ids"][w], dtype=np.int32)
    question_length = encoded.sequence_ids(w).index(1)
    return ids, question_length, start, end


def batch_order(features: Sequence[tuple], config: TrainConfig) -> list[list[int]]:
    """A fixed list of ``max_steps`` batches: shuffled each epoch, bucketed by length within
    pools of 50 batches, the batches of a pool in random order."""
    rng = np.random.default_rng(config.seed)
    lengths = np.array([len(f[0]) for f in features])
    pool = config.batch_size * 50
    batches: list[list[int]] = []
    while len(batches) < config.max_steps:
        order = rng.permutation(len(features))
        for first in range(0, len(order), pool):
            chunk = order[first:first + pool]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            group = [chunk[i:i + config.batch_size].tolist()
                     for i in range(0, len(chunk), config.batch_size)]
            rng.shuffle(group)
            batches.extend(group)
    return batches[:config.max_steps]


def collate(features: Sequence[tuple], indices: Sequence[int], pad_id: int
            ) -> dict[str, torch.Tensor]:
    chosen = [features[i] for i in indices]
    width = max(len(f[0]) for f in chosen)
    ids = torch.full((len(chosen), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chosen), width), dtype=torch.long)
    types = torch.zeros((len(chosen), width), dtype=torch.long)
    for row, (tokens, question_length, _, _) in enumerate(chosen):
        ids[row, :len(tokens)] = torch.from_numpy(tokens.astype(np.int64))
        mask[row, :len(tokens)] = 1
        types[row, question_length:len(tokens)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
            "start": torch.tensor([f[2] for f in chosen]),
            "end": torch.tensor([f[3] for f in chosen])}


def evaluate_reader(model: SpanModel, tokenizer, examples: Sequence[Example],
                    max_length: int = 192, stride: int = 64) -> dict[str, float]:
    """EM / F1 of the best span on each answerable question's own paragraph."""
    model.eval()
    em, f1 = [], []
    for e in examples:
        if e.answer_start < 0:
            continue
        [span] = score_spans(model, tokenizer, e.question, [e.context], max_length, stride)
        prediction = e.context[span.start:span.end] if span else ""
        em.append(exact_match(prediction, e.answers))
        f1.append(f1_score(prediction, e.answers))
    return {"em": float(np.mean(em)), "f1": float(np.mean(f1)), "questions": len(em)}


def _plot_curve(curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    seen = [p["examples"] for p in curve]
    for name in curve[0]["dev"]:
        ax.plot(seen, [p["dev"][name]["em"] for p in curve], marker="o", label=f"{name} EM")
        ax.plot(seen, [p["dev"][name]["f1"] for p in curve], marker=".", ls="--",
                label=f"{name} F1")
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("score on held-out questions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Reader learning curve")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _starting_model(config: TrainConfig) -> tuple[SpanModel, str, dict]:
    """The model training starts from, its base folder and where both came from: a fresh span
    head on the base model, or (``init``) a trained reader, which keeps its base."""
    from embeddings.encoder import resolve_model

    if config.init:
        model, base, card = load_weights(Path(config.init))
        return model, base, {"base": card["base"], "base_sha256": card["base_sha256"],
                             "init_shards": card["shards"]}
    base, base_sha = resolve_model(config.base)
    name = "all-MiniLM-L6-v2" if config.base is None else config.base
    return SpanModel.from_base(base), base, {"base": name, "base_sha256": base_sha}


def train(config: TrainConfig) -> Path:
    """Train (or resume) into ``config.out``; returns the folder of the best weights."""
    from transformers import AutoTokenizer

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    model, base, origin = _starting_model(config)
    tokenizer = AutoTokenizer.from_pretrained(base)

    train_examples, paragraphs = [], []
    for path in config.train:
        examples, texts = load_squad_examples(path)
        for e in examples:
            e.others = [p + len(paragraphs) for p in e.others]
        train_examples += examples
        paragraphs += texts
    train_examples, heldout = split_heldout(train_examples, config.heldout_articles, config.seed)
    dev = {"heldout-train": random.Random(config.seed).sample(
        heldout, min(config.dev_questions, len(heldout)))} if heldout else {}
    for path in config.dev:
        dev[Path(path).name.split(".")[0]] = load_squad_examples(path)[0]

    features_path = out / "features.pt"
    if features_path.exists():
        features = torch.load(features_path, weights_only=False)
    else:
        features = build_features(train_examples, paragraphs, tokenizer, config)
        _atomic_save(features, features_path)
    batches = batch_order(features, config)

    model = model.to(config.device).train()
    model.freeze_word_embeddings()
    decay = [p for n, p in model.named_parameters()
             if p.requires_grad and not any(k in n for k in ("bias", "LayerNorm"))]
    no_decay = [p for n, p in model.named_parameters()
                if p.requires_grad and any(k in n for k in ("bias", "LayerNorm"))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    warmup = max(1, int(config.warmup * config.max_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(
        (s + 1) / warmup, max(0.0, (config.max_steps - s) / (config.max_steps - warmup))))

    state_path, curve_path = out / "checkpoint.pt", out / "curve.json"
    step, curve, best_f1 = 0, [], -1.0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        step, best_f1 = state["step"], state["best_f1"]
        curve = json.loads(curve_path.read_text()) if curve_path.exists() else []
        print(f"Resuming at step {step} of {config.max_steps}")

    data_hashes = {Path(p).name: sha256_of(p) for p in [*config.train, *config.dev]}
    record = {"config": asdict(config), **origin, "data_sha256": data_hashes,
              "features": len(features),
              "negatives": sum(1 for f in features if f[2] == 0)}
    (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")

    losses: list[float] = []  # since the last checkpoint

    def checkpoint(elapsed: float) -> None:
        nonlocal best_f1
        _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "schedule": schedule.state_dict(), "rng": torch.get_rng_state(),
                      "step": step, "best_f1": best_f1}, state_path)
        scores = {name: evaluate_reader(model, tokenizer, qs) for name, qs in dev.items()}
        model.train()
        curve.append({"step": step, "examples": step * config.batch_size,
                      "train_seconds": round(elapsed, 1),
                      "train_loss": round(float(np.mean(losses)), 4) if losses else None,
                      "dev": scores})
        losses.clear()
        curve_path.write_text(json.dumps(curve, indent=2) + "\n")
        _plot_curve(curve, out / "curve.png")
        mean_f1 = float(np.mean([s["f1"] for s in scores.values()]))
        tqdm.write(f"step {step}: " + ", ".join(
            f"{n} EM {s['em']:.3f} F1 {s['f1']:.3f}" for n, s in scores.items()))
        card = {"base": origin["base"], "base_sha256": origin["base_sha256"], "step": step,
                "examples": step * config.batch_size, "dev": scores,
                "max_length": config.max_length, "training": record, "curve": curve}
        if mean_f1 > best_f1:
            best_f1 = mean_f1
            save_weights(model, out / "best", card)
        if step == config.max_steps:  # the end of the learning-rate decay
            save_weights(model, out / "final", card)

    model.train()
    elapsed = curve[-1]["train_seconds"] if curve else 0.0
    first_step, session_started = step, time.monotonic()
    last = time.monotonic()
    since_checkpoint = time.monotonic()
    pad_id = tokenizer.pad_token_id
    progress = tqdm(total=config.max_steps, initial=step, desc="Training", unit="step")
    loss_avg = None
    end_step = min(config.stop_at or config.max_steps, config.max_steps)
    while step < end_step:
        batch = collate(features, batches[step], pad_id)
        batch = {k: v.to(config.device) for k, v in batch.items()}
        with torch.autocast(device_type=config.device.split(":")[0], dtype=torch.bfloat16,
                            enabled=config.bf16):
            start, end = model(batch["input_ids"], batch["attention_mask"],
                               batch["token_type_ids"])
        loss = (torch.nn.functional.cross_entropy(start, batch["start"])
                + torch.nn.functional.cross_entropy(end, batch["end"])) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        now = time.monotonic()
        elapsed += now - last
        last = now
        value = loss.item()
        losses.append(value)
        loss_avg = value if loss_avg is None else 0.98 * loss_avg + 0.02 * value
        progress.update(1)
        rate = (step - first_step) * config.batch_size / (now - session_started)
        progress.set_postfix(loss=f"{loss_avg:.3f}", ex_s=f"{rate:.1f}")
        if now - since_checkpoint > 60 * config.checkpoint_minutes or step == end_step:
            checkpoint(elapsed)
            last = since_checkpoint = time.monotonic()
    progress.close()
    return out / "best"


def examples_per_second(config: TrainConfig, steps: int = 20) -> float:
    """Training throughput on random windows of ``config.max_length`` tokens (benchmarks)."""
    from embeddings.encoder import resolve_model

    base, _ = resolve_model(config.base)
    model = SpanModel.from_base(base).to(config.device)
    model.freeze_word_embeddings()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    shape = (config.batch_size, config.max_length)
    ids = torch.randint(1000, 20000, shape)
    ones = torch.ones(shape, dtype=torch.long)
    target = torch.randint(0, config.max_length, (config.batch_size,))
    started = None
    for i in range(steps + 2):
        if i == 2:
            started = time.perf_counter()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=config.bf16):
            start, end = model(ids, ones, ones)
        loss = (torch.nn.functional.cross_entropy(start, target)
                + torch.nn.functional.cross_entropy(end, target))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return steps * config.batch_size / (time.perf_counter() - started)


__all__ = ["TrainConfig", "train", "load_squad_examples", "build_features", "batch_order",
           "collate", "evaluate_reader", "examples_per_second"]
