"""Memory: peak resident memory per stage of a run, the activation plan, and the fit check.

- `Meter` samples the process's resident set (psutil) in a daemon thread and keeps the peak of each
  stage (`with meter.stage("train"):`); CUDA's own peak (`torch.cuda.max_memory_allocated`) is read
  per stage where a GPU is present. metrics.json `memory` holds the result (MB).
- `estimate` is the planned memory of a training step from the model's shape (layers × hidden ×
  intermediate × vocabulary) and the batch (batch × length): activations with and without gradient
  checkpointing, and the loss' logits (chunked or full). The coefficients are bytes per token per
  layer measured on SmolLM2 (benchmarks/memory.py prints the estimate next to the measured peak).
- `plan` resolves `train.gradient_checkpointing=auto` and refuses, in one line before training, a
  plan that cannot fit in the memory available.

Layer 0: no ftx imports but errors; torch is imported only where a GPU is asked about.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import threading
from dataclasses import dataclass
from typing import Optional

from ftx.errors import ConfigError

MB = 1024 ** 2
AUTO_SHARE = 0.2
"""train.gradient_checkpointing=auto turns checkpointing on when the planned activations exceed this share of
the memory available (what is free now, shared by the processes of this machine)."""
FIT_MARGIN = 0.9
"""The fit check refuses a plan above this share of the memory available (the rest: allocator slack)."""


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def cgroup_free() -> Optional[int]:
    """What the container's memory limit leaves (cgroup v2 memory.max − memory.current; v1 alike), or None."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            raw = open(limit).read().strip()
            if raw == "max" or int(raw) >= 1 << 60:
                return None
            return max(int(raw) - int(open(usage).read().strip()), 0)
        except (OSError, ValueError):
            continue
    return None


def available(limit_mb: int = 0) -> int:
    """Bytes this process may still use: `limit_mb` (train.memory_limit_mb) when set; else free GPU memory on
    CUDA; else the machine's available memory (or the container's limit, if lower), divided among the local ranks
    of a distributed run (they share one machine)."""
    import psutil

    if limit_mb > 0:
        return limit_mb * MB
    ranks = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    if cuda_present():
        import torch

        return int(torch.cuda.mem_get_info()[0])
    free = int(psutil.virtual_memory().available)
    box = cgroup_free()
    return (min(free, box) if box is not None else free) // ranks


def cuda_present() -> bool:
    import sys

    torch = sys.modules.get("torch")  # never import torch just to ask
    return bool(torch is not None and torch.cuda.is_available())


M_MMAP_THRESHOLD = -3
"""glibc's mallopt parameter: blocks at least this large are mmapped, and unmapped when freed."""


@functools.lru_cache(maxsize=1)
def _glibc():
    """The C library when it is glibc (mallopt, malloc_trim), else None."""
    try:
        lib = ctypes.CDLL("libc.so.6")
        return lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else None
    except OSError:
        return None


def return_freed_blocks(threshold_kb: int) -> bool:
    """Blocks of at least `threshold_kb` KiB go back to the OS as soon as they are freed (glibc mallopt
    M_MMAP_THRESHOLD; train.malloc_mmap_threshold_kb, 0: leave the C library's default). By default glibc raises
    its threshold to the largest block freed so far (up to 32 MiB), so a step's activations (a few MiB each) are
    then carved from the heap, and the heap's freed space stays resident: RSS climbs far above what is in use
    (SmolLM2 LoRA 4×1024, checkpointed: run peak 7.5 GB against 1.8 GB with 1 MiB, benchmarks/memory.py). A
    threshold set by mallopt is fixed: glibc stops raising it. Process-wide. Returns False where the C library
    is not glibc (nothing changes there)."""
    lib = _glibc()
    return bool(threshold_kb > 0 and lib is not None and lib.mallopt(M_MMAP_THRESHOLD, int(threshold_kb) * 1024) == 1)


def release(model=None) -> None:
    """Drop what training left behind before generation and evaluation: gradients (set to None), Python
    garbage (the last step's graph, if anything still held it), the CUDA cache, and freed heap pages the C
    allocator keeps (glibc `malloc_trim`), so the resident set falls back to what is in use."""
    if model is not None:
        model.zero_grad(set_to_none=True)
    gc.collect()
    if cuda_present():
        import torch

        torch.cuda.empty_cache()
    if _glibc() is not None:
        _glibc().malloc_trim(0)


class Meter:
    """Peak RSS per stage, sampled every `interval` seconds in a daemon thread (and at each stage boundary)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peaks: dict[str, dict] = {}
        self.current: Optional[str] = None
        self.window = 0
        """The highest sample since `take_window` last read it (metrics.jsonl: the peak of each logged step)."""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Meter":
        """Start sampling with no peaks recorded (a run in a multirun process starts afresh)."""
        with self._lock:
            self.peaks, self.current, self.window = {}, None, 0
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ftx-memory", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        value = rss()
        with self._lock:
            self.window = max(self.window, value)
            if self.current is not None:
                entry = self.peaks[self.current]
                entry["rss"] = max(entry["rss"], value)

    def take_window(self) -> Optional[float]:
        """The peak RSS in MB since the last call (None before the meter sampled anything), and a new window."""
        self.sample()
        with self._lock:
            peak, self.window = self.window, 0
        return round(peak / MB, 1) if peak else None

    @contextlib.contextmanager
    def stage(self, name: str):
        """Attribute the samples taken inside to `name` (a stage entered twice keeps its highest peak); stages
        nest: the outer stage resumes when the inner one ends."""
        outer = self.current
        with self._lock:
            self.peaks.setdefault(name, {"rss": 0, "cuda": None})
            self.current = name
        cuda = cuda_present()
        if cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self.sample()
        try:
            yield
        finally:
            self.sample()
            if cuda:
                import torch

                peak = int(torch.cuda.max_memory_allocated())
                self.peaks[name]["cuda"] = max(self.peaks[name]["cuda"] or 0, peak)
            with self._lock:
                self.current = outer

    def summary(self) -> dict:
        """metrics.json `memory`: stage → {rss_mb, cuda_mb (GPU only)}, and the run's peak stage."""
        out: dict = {}
        for name, p in self.peaks.items():
            entry = {"rss_mb": round(p["rss"] / MB, 1)}
            if p["cuda"] is not None:
                entry["cuda_mb"] = round(p["cuda"] / MB, 1)
            out[name] = entry
        if out:
            top = max(out, key=lambda k: out[k]["rss_mb"])
            out["peak"] = {"stage": top, "rss_mb": out[top]["rss_mb"]}
        return out


METER = Meter()
"""The process's meter: the pipeline starts it; the trainer and evaluator mark their stages on it."""


def stage(name: str):
    return METER.stage(name)


# ---------------------------------------------------------------------------------------------- the plan

# Bytes saved for the backward pass, per token and per decoder layer, as multiples of hidden_size and
# intermediate_size (bf16 autocast over fp32 weights, LoRA on every linear; fitted on SmolLM2 at 4×256 and
# 4×1024 with benchmarks/memory.py). With checkpointing, only each layer's fp32 input is kept, plus one layer
# recomputed at a time.
PER_HIDDEN, PER_INTERMEDIATE = 34, 16
CKPT_PER_HIDDEN = 4
LOGIT_BYTES_FULL = 4 * 4
"""Full loss: fp32 logits, log-softmax saved for backward, its gradient and the bf16 copies: ~4 fp32 copies."""


@dataclass
class Plan:
    tokens: int
    activations: int
    """Bytes saved for backward without checkpointing."""
    checkpointed: int
    """Bytes with checkpointing."""
    logits: int
    """Bytes of the loss' vocabulary-wide tensors (one chunk when chunked)."""
    trainable: int
    """Gradients and AdamW state of the trainable parameters (fp32 master, grad, two moments)."""

    def need(self, checkpointing: bool) -> int:
        return (self.checkpointed if checkpointing else self.activations) + self.logits + self.trainable


def vocab_size(config) -> int:
    """The vocabulary of a model `config` (a multimodal model's text config), 0 when it has none."""
    cfg = getattr(config, "text_config", None) or config
    return int(getattr(cfg, "vocab_size", 0) or 0)


def estimate(config, batch: int, length: int, trainable_params: int, loss_chunk: int) -> Plan:
    """The planned memory of one training step for a model `config` (a transformers PretrainedConfig)."""
    cfg = getattr(config, "text_config", None) or config
    layers = int(getattr(cfg, "num_hidden_layers", 0) or 0)
    hidden = int(getattr(cfg, "hidden_size", 0) or 0)
    inter = int(getattr(cfg, "intermediate_size", 0) or 4 * hidden)
    vocab = vocab_size(config)
    tokens = batch * length
    acts = tokens * layers * (PER_HIDDEN * hidden + PER_INTERMEDIATE * inter)
    ckpt = tokens * layers * CKPT_PER_HIDDEN * hidden + tokens * (PER_HIDDEN * hidden + PER_INTERMEDIATE * inter)
    rows = min(tokens, loss_chunk) if loss_chunk > 0 else tokens
    logits = rows * vocab * LOGIT_BYTES_FULL
    return Plan(tokens=tokens, activations=acts, checkpointed=ckpt, logits=logits, trainable=16 * trainable_params)


def decide(setting, plan: Plan, free: int, share: float = AUTO_SHARE) -> tuple[bool, str]:
    """train.gradient_checkpointing (true | false | auto) → (on, why)."""
    if setting is True or setting is False:
        return setting, "train.gradient_checkpointing"
    on = plan.activations > share * free
    cmp = ">" if on else "<="
    return on, (f"auto: planned activations {plan.activations / MB:.0f} MB {cmp} {share:.0%} of "
                f"{free / MB:.0f} MB available")


def check_fit(plan: Plan, checkpointing: bool, free: int, batch: int, length: int, grad_accum: int,
              max_length: int) -> None:
    """One line before training when the step cannot fit, naming the keys that shrink it."""
    need = plan.need(checkpointing)
    if need <= FIT_MARGIN * free:
        return
    hint = "" if checkpointing or plan.need(True) > FIT_MARGIN * free else \
        "set train.gradient_checkpointing=true (or auto), or "
    raise ConfigError(
        f"train.batch_size: a step of {batch}×{length} tokens needs ~{need / MB:.0f} MB "
        f"(activations {(plan.checkpointed if checkpointing else plan.activations) / MB:.0f} MB, loss "
        f"{plan.logits / MB:.0f} MB, optimizer {plan.trainable / MB:.0f} MB) but {free / MB:.0f} MB is available; "
        f"{hint}lower train.batch_size={batch} (raising train.grad_accum={grad_accum} keeps the effective batch) "
        f"or data.format.max_length={max_length}")
