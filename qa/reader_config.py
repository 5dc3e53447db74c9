"""What a `train-reader` run is told: its configuration, recorded beside the weights it writes.

Apart from the training code (qa/reader_training.py) so that reading it, as the CLI does to build
its options, does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    train: list[str]
    dev: list[str] = field(default_factory=list)  # scored after every checkpoint
    out: str = "artifacts/reader-run"
    base: str | None = None  # None: the packaged all-MiniLM-L6-v2
    init: str | None = None  # a reader folder to continue from (it brings its own base)
    seed: int = 13
    device: str = "cpu"
    max_length: int = 128
    stride: int = 48
    batch_size: int = 32
    lr: float = 1.5e-4
    weight_decay: float = 0.01
    warmup: float = 0.05
    max_steps: int = 2400
    stop_at: int = 0  # stop (resumably) after this step; 0: run to max_steps
    own_negative: float = 0.15
    other_negative: float = 0.15
    cut_negative: float = 0.0  # the own paragraph with the answer's sentence cut out
    heldout_articles: int = 12  # SQuAD-train articles kept out of training for the curve
    dev_questions: int = 400  # of those, how many the curve scores (plus every --dev question)
    checkpoint_minutes: float = 10.0
    bf16: bool = True
    threads: int = 0  # 0: torch's default
