"""Run directories: atomic writes, the manifest (spec hash, data hashes, environment), metrics."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ftx.errors import DataError, RunError
from ftx.secrets import redact_text

TRACKED_PACKAGES = ("ftx", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "deepspeed",
                    "datasets", "hydra-core", "omegaconf", "optuna", "wandb", "datasketch", "scikit-learn")


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

MAX_RECORD_BYTES = 8 * 1024 * 1024  # per JSONL line


def disk_full(path: Path) -> "Exception":
    return RunError(f"{path}: no space left on device (the previous version, if any, is intact; "
                    "free some space and run again)")


def as_disk_full(e: BaseException, where) -> "Optional[Exception]":
    """The one-line RunError for a full disk hidden in `e` or its causes (torch and safetensors wrap
    ENOSPC in RuntimeError/SafetensorError), else None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            return disk_full(e.filename or where)
        if "No space left on device" in str(e) or "os error 28" in str(e):
            return disk_full(where)
        e = e.__cause__ or e.__context__
    return None



def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: readers never see half a file.

    A full disk becomes a one-line RunError and leaves the previous file untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        if e.errno in DISK_FULL:
            raise disk_full(path) from None
        raise
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(redact_text(text))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise disk_full(path) from None
        raise


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item"):
        return v.item()
    return v


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    """Parse a JSON file; a damaged one is a one-line RunError (still a ValueError for callers that tolerate it)."""
    class DamagedFile(RunError, ValueError):
        pass

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DamagedFile(f"{path}: damaged JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                          "restore it or rerun the step that writes it") from None
    except UnicodeDecodeError as e:
        raise DamagedFile(f"{path}: damaged JSON (not UTF-8 at byte {e.start}); "
                          "restore it or rerun the step that writes it") from None


def flatten(d: Optional[dict], sep: str = ".", prefix: str = "", skip: tuple = (),
            scalars_only: bool = False) -> dict:
    """{'a': {'b': 1}} → {'a.b': 1} (keys joined by `sep`, under `prefix` when given); lists kept as values.
    `skip`: top-level keys left out; `scalars_only`: keep only str/int/float/bool/None leaves."""
    out = {}
    for k, v in (d or {}).items():
        if k in skip and not prefix:
            continue
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, sep, key, scalars_only=scalars_only))
        elif not scalars_only or v is None or isinstance(v, (int, float, str, bool)):
            out[key] = v
    return out


def read_jsonl(path: Path, tolerant: bool = False,
               on_error: "Optional[Callable[[int, Exception], None]]" = None) -> Iterator[tuple[int, dict]]:
    """The one JSONL reader: yields (line number, object) for each non-blank line of `path`.

    Each line must be one JSON object, UTF-8 (a BOM on the first line is allowed), at most
    MAX_RECORD_BYTES; a bad line is a DataError naming file:line, passed to `on_error(lineno, error)`
    when given (the line is skipped), else raised. `tolerant=True` (run-internal logs such as
    metrics.jsonl, whose last line a crash may cut) skips bad lines silently."""
    opener = gzip.open if str(path).endswith(".gz") else open  # .jsonl.gz: the same lines, compressed
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                if len(raw) > MAX_RECORD_BYTES:
                    raise DataError(f"{where}: record is {len(raw) / 2**20:.1f} MiB, over the "
                                    f"{MAX_RECORD_BYTES // 2**20} MiB limit per record")
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # editors on Windows add a BOM
                except UnicodeDecodeError as e:
                    raise DataError(f"{where}: not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8") from None
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{where}: malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            except DataError as e:
                if tolerant:
                    continue
                if on_error is None:
                    raise
                on_error(lineno, e)
                continue
            yield lineno, obj


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def git_sha(cwd: Optional[Path] = None) -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=cwd or Path(__file__).parent, capture_output=True, text=True, timeout=5)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment() -> dict:
    """Package versions, interpreter, platform and git SHA. No environment variables: they hold secrets."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import torch

    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "packages": versions, "git_sha": git_sha(),
            "argv": [redact_text(a) for a in sys.argv]}


def checkpoint_problem(ckpt: Path) -> Optional[str]:
    """Why a checkpoint folder cannot be resumed from (a file cut or garbled by a crash), or None.

    Cheap: safetensors headers and the zip directories of torch's .pt/.pth/.bin files, no tensors read.
    """
    import zipfile

    ckpt = Path(ckpt)
    try:
        json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"trainer_state.json unreadable ({type(e).__name__})"
    for f in sorted(ckpt.iterdir()):
        try:
            if f.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(f), framework="pt") as st:
                    st.keys()
            elif f.suffix in (".pt", ".pth", ".bin") and f.is_file():
                with zipfile.ZipFile(f) as z:
                    z.namelist()
        except Exception as e:  # noqa: BLE001 -- any failure to parse means the file is damaged
            return f"{f.name} is damaged ({' '.join(str(e).split())[:120] or type(e).__name__})"
    return None


class MetricsLog:
    """Append-only metrics.jsonl (one JSON object per event, flushed each time)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, event: dict) -> None:
        event = {"time": round(time.time(), 3), **_jsonable(event)}
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
                f.flush()
        except OSError as e:  # a cut last line is skipped by read()
            if e.errno in DISK_FULL:
                raise disk_full(self.path) from None
            raise

    def rewind(self, step: int) -> int:
        """On resume from a checkpoint at `step`: drop events logged after it by the interrupted run (they
        are logged again), so each step appears once. Returns how many were dropped."""
        events = self.read()
        keep = [e for e in events if not isinstance(e.get("step"), (int, float)) or e["step"] <= step]
        if len(keep) != len(events) or (self.path.exists() and not self.path.read_bytes().endswith(b"\n")):
            atomic_write_text(self.path, "".join(json.dumps(e) + "\n" for e in keep))
        return len(events) - len(keep)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [obj for _, obj in read_jsonl(self.path, tolerant=True)]  # skips a line cut by a crash mid-write
