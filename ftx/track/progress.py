"""Progress bars for long work (curation stages, tokenisation, training) that stay readable in CI logs.

    from ftx.track.progress import progress
    for rec in progress(records, desc="dedup", unit="rec"):
        ...

On a terminal: ordinary tqdm bars. Otherwise: one plain line per interval plus the final line. The mode
(tracking.progress: auto | bar | log | off) is set once per run by the tracker and reaches child processes
through FTX_PROGRESS / FTX_PROGRESS_INTERVAL.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

_PROGRESS = {"mode": os.environ.get("FTX_PROGRESS", "auto"),
             "interval": float(os.environ.get("FTX_PROGRESS_INTERVAL", "30"))}


def configure_progress(mode: str = "auto", interval: float = 30.0) -> None:
    """Set how `progress()` displays, for this process and (through FTX_PROGRESS*) its children.
    In log/off mode the libraries' own \\r-redrawn bars (weights loading, datasets) are turned off."""
    _PROGRESS.update(mode=mode, interval=float(interval))
    os.environ["FTX_PROGRESS"], os.environ["FTX_PROGRESS_INTERVAL"] = mode, str(interval)
    if progress_mode() != "bar":
        # Libraries imported later read these; those already imported are switched off directly.
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        for module, fn in (("transformers.utils.logging", "disable_progress_bar"),
                           ("datasets.utils.logging", "disable_progress_bar"),
                           ("huggingface_hub.utils", "disable_progress_bars")):
            if module in sys.modules:
                try:
                    getattr(sys.modules[module], fn)()
                except Exception:
                    pass


def progress_mode(stream=None) -> str:
    """bar | log | off: `auto` means a bar on a terminal, log lines otherwise."""
    mode = _PROGRESS["mode"]
    if mode != "auto":
        return mode
    stream = stream or sys.stderr
    return "bar" if hasattr(stream, "isatty") and stream.isatty() else "log"


class _LineWriter:
    """What tqdm writes (\\r-redrawn status) turned into whole lines, each distinct status once."""

    def __init__(self, stream):
        self.stream, self.last = stream, None

    def write(self, s: str) -> None:
        for line in s.replace("\r", "\n").split("\n"):
            line = line.rstrip()
            if line and line != self.last:
                self.stream.write(line + "\n")
                self.last = line

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable=None, *, desc: Optional[str] = None, total: Optional[float] = None, unit: str = "it",
             stream=None, **kwargs):
    """A tqdm bar for long work (curation stages, tokenisation, training) that stays readable in CI logs.

    On a terminal it is an ordinary tqdm bar. Otherwise it prints one plain line per `progress_interval`
    seconds ("tokenise: 300/1200 (25%) [00:30<01:30, 10.0 ex/s]") plus the final line. `off` shows nothing.
    """
    from tqdm.auto import tqdm

    stream = stream or sys.stderr
    mode = progress_mode(stream)
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if mode == "bar":
        return tqdm(iterable, desc=desc, total=total, unit=unit, file=stream, dynamic_ncols=True, **kwargs)
    if mode == "off":
        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=True, **kwargs)
    interval = _PROGRESS["interval"]
    fmt = ("{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) [{elapsed}<{remaining}, {rate_fmt}]{postfix}"
           if total else "{desc}: {n_fmt} [{elapsed}, {rate_fmt}]{postfix}")
    from tqdm.std import tqdm as std_tqdm  # tqdm.auto may pick the notebook widget; logs want text

    return std_tqdm(iterable, desc=desc or "progress", total=total, unit=unit, file=_LineWriter(stream),
                    mininterval=interval, maxinterval=max(interval, 10.0), miniters=1, bar_format=fmt,
                    dynamic_ncols=False, ascii=True, **kwargs)


def progress_callback():
    """transformers' ProgressCallback with our bar: plain lines, no nested eval bars, when not a terminal."""
    from transformers.trainer_callback import ProgressCallback

    class _Progress(ProgressCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.training_bar = progress(total=state.max_steps, desc="train", unit="step")
            self.current_step = 0

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            if progress_mode() == "bar":
                super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)

    return _Progress()


def close_bars() -> None:
    """Close every open tqdm bar now (an interrupted command's last line must be its own, not a bar's
    final redraw at exit)."""
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", None) or ()):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 -- a bar that cannot close is not worth a traceback while exiting
            pass
