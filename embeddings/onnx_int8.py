"""int8 ONNX models built here, once, from verified weights: the encoder's and the reader's.

No int8 model is shipped or downloaded: each is exported from weights that were just checked
(``torch.onnx``, then ONNX Runtime's dynamic quantisation; optimum, the usual route, cannot be
installed beside transformers 5) into a cache folder, with a JSON sidecar saying what built it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

from embeddings.encoder import ModelError, available_cpus, sha256_of

CACHE_ENV = "ARTICLEQA_CACHE"
INSTALL = "pip install onnxruntime onnx (dependencies of ArticleQA)"
# What the int8 file is made with. The file name hashes these, so a change here builds a new
# file instead of reusing one made another way. Eager attention traces to a leaner graph than
# transformers 5's SDPA path (1.9x vs 1.6x torch's speed here); per-channel weights are what
# keeps int8 close to torch (per-tensor: mean 1 - cos 0.059, unusable).
SETTINGS = {
    "format": 1,
    "opset": 17,
    "pre_process": "onnx shape inference + ORT basic optimisation",
    "attn_implementation": "eager",
    "weights": "QInt8 symmetric per-channel",
    "activations": "QUInt8 asymmetric (dynamic)",
    "ops": "onnxruntime IntegerOpsRegistry",
}


def require_runtime():
    """onnxruntime, or a `ModelError` that says how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError(f"This needs ONNX Runtime: {INSTALL}") from exc
    return onnxruntime


def parallel_runs() -> int:
    """Single-threaded runs at once: ``$OMP_NUM_THREADS`` if set (Dask's workers have 1, so
    that processes sharing a machine do not oversubscribe it), else every CPU this process
    has."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return available_cpus()


def single_run_session(path: Path):
    """An ONNX Runtime session whose every run uses one thread: callers run inputs in
    parallel, one per CPU, each alone (dynamic int8 scales activations per run, so an
    input's output then depends on that input only)."""
    ort = require_runtime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cache_folder() -> Path:
    """Where built models are kept: ``$ARTICLEQA_CACHE``, else ``~/.cache/articleqa``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "articleqa") / "onnx"


def int8_model(source: str, source_sha256: str, export: Callable[[str, Path], None],
               label: str) -> Path:
    """The int8 model of the weights in ``source`` (``export`` writes them as fp32 ONNX): the
    cached file if its checksum holds, else built now. A damaged file is rebuilt (with a
    warning), not refused: it is derived from weights that were just verified, so rebuilding
    restores it with nothing to decide. One process builds while others wait on a lock; the
    file appears whole or not at all."""
    cache = cache_folder()
    settings = hashlib.sha256(json.dumps(SETTINGS, sort_keys=True).encode()).hexdigest()
    kind = "int8" if label == "encoder" else f"{label}-int8"
    path = cache / f"{source_sha256[:16]}-{settings[:8]}.{kind}.onnx"
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_suffix(".lock")):
        if path.exists() and _sidecar(path).exists():
            problem = _problem(path, source_sha256)
            if problem is None:
                return path
            warnings.warn(f"{path} {problem}; building it again", stacklevel=2)
        print(f"Building the int8 {label} from {source} into {cache} (once, some seconds)",
              file=sys.stderr, flush=True)
        _build(source, source_sha256, path, export)
    return path


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _problem(path: Path, weights_sha256: str) -> str | None:
    """What is wrong with the cached file and its sidecar, if anything."""
    try:
        record = json.loads(_sidecar(path).read_text())
        expected, source = record["sha256"], record["source_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"has an unreadable sidecar {_sidecar(path).name}"
    if source != weights_sha256:
        return f"was built from other weights (sha256 {source})"
    actual = sha256_of(path)
    if actual != expected:
        return f"has sha256 {actual}, not the {expected} it was built with (damaged)"
    return None


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock`` (POSIX; elsewhere racing builds each rename a
    whole file into place, which wastes work but corrupts nothing)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(folder: str, weights_sha256: str, path: Path,
           export: Callable[[str, Path], None]) -> None:
    """Export, quantise and record, in a temporary folder beside ``path``, then rename."""
    ort = require_runtime()
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.registry import IntegerOpsRegistry
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise ModelError(f"Building the int8 model needs the onnx package: {INSTALL}") from exc
    import torch

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as work:
        fp32, ready, int8 = (Path(work) / f"{name}.onnx" for name in ("fp32", "ready", "int8"))
        export(folder, fp32)
        # ONNX shape inference and graph clean-up first, as quantize_dynamic asks (it logs a
        # warning otherwise); the symbolic pass cannot resolve this graph and is not needed.
        quant_pre_process(fp32, ready, skip_symbolic_shape=True)
        quantize_dynamic(ready, int8, weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=False, op_types_to_quantize=list(IntegerOpsRegistry),
                         extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        record = {"source": folder, "source_sha256": weights_sha256, "settings": SETTINGS,
                  "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__,
                               "torch": torch.__version__,
                               "transformers": version("transformers")},
                  "sha256": sha256_of(int8)}
        sidecar = Path(work) / "sidecar.json"
        sidecar.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(int8, path)  # the model first: a sidecar never describes a missing file
        os.replace(sidecar, _sidecar(path))
