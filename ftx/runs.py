"""Run directories: atomic writes, the manifest (spec hash, data hashes, environment), metrics."""

from __future__ import annotations

import errno
import gzip
import fcntl
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from ftx.errors import ConfigError, DataError, FtxError, RunError
from ftx.secrets import redact_text

TRACKED_PACKAGES = ("ftx", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "deepspeed",
                    "datasets", "hydra-core", "omegaconf", "optuna", "wandb", "datasketch", "scikit-learn")


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

MAX_RECORD_BYTES = 8 * 1024 * 1024  # per JSONL line


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; restored at once (at import, before any thread runs)
    os.umask(mask)
    return mask


UMASK = _umask()
FILE_MODE = 0o666 & ~UMASK
"""The mode `open(path, "w")` gives a new file: atomic writes match it (mkstemp alone gives 0600)."""
DIR_MODE = 0o777 & ~UMASK
"""The mode `mkdir` gives a new folder: temporary output folders get it before they are renamed into place."""


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
        os.fchmod(fd, FILE_MODE)  # teammates read shared runs as they would any file this user writes
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


# ---------------------------------------------------------------- output targets: paths, locks, temp-then-rename

COMPLETE = ".ftx-complete"
"""The completion marker of an output folder: written last, inside the temporary sibling, before the rename."""

INTERRUPTED = "interrupted; rerun the same command (with train.resume=auto for training) to continue"
"""What the CLI prints (after `ftx: `) on Ctrl-C or SIGTERM; exit code 130."""


def _problem(e: OSError) -> str:
    return e.strerror or type(e).__name__


def usable_dir(path, what: str, create: bool = True) -> Path:
    """`path` as a folder ftx can write into, created (with parents) when `create`; else a one-line
    ConfigError naming `what` (the key or flag it came from): a file in the way, a parent that is a
    file, no permission. Call it before any work starts."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what}: {path} is a file, not a folder (give a folder path)")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{what}: cannot create {path}: {blocker} is a file, not a folder")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if e.errno in DISK_FULL:
                raise disk_full(path) from None
            raise ConfigError(f"{what}: cannot create {path} ({_problem(e)})") from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{what}: cannot write into {path} (permission denied)")
    return path


def check_not_input(target, inputs: Iterable, what: str) -> None:
    """Refuse an output `target` that is one of the command's own inputs, or a folder holding one:
    writing it would replace the data the command reads."""
    t = Path(target).expanduser().resolve()
    for src in inputs:
        if src is None:
            continue
        s = Path(src).expanduser().resolve()
        if s == t:
            raise ConfigError(f"{what}: {target} is one of this command's inputs (writing it would replace "
                              "them); choose another output path")
        if t in s.parents:
            raise ConfigError(f"{what}: {target} holds {src}, one of this command's inputs (writing it would "
                              "replace them); choose another output path")


def _holder(lock: Path) -> str:
    for _ in range(20):  # the holder writes its pid right after taking the lock
        try:
            pid = lock.read_text().strip()
        except OSError:
            pid = ""
        if pid:
            return pid
        time.sleep(0.05)
    return "unknown"


@contextmanager
def hold_lock(target, what: str) -> Iterator[Path]:
    """An exclusive lock on `target` for this process: the file `.<name>.lock` beside it holds our pid
    and is removed on exit. A second process gets one line naming the holder's pid. The OS drops the
    lock of a killed process, so a crash never leaves `target` locked."""
    target = Path(target).expanduser()
    where = target.resolve()  # `.` has no name: lock the folder by its real one
    lock = where.parent / f".{where.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as e:
            raise ConfigError(f"{what}: cannot create {target} ({_problem(e)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(f"{what}: {target} is being written by another ftx process (pid {_holder(lock)}); "
                           "wait for it to finish or choose another path") from None
        try:  # the previous holder may have removed the file between our open and our lock: lock the new one
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        try:
            os.unlink(lock)  # before unlocking: a waiter that opened it sees the inode change and retries
        except OSError:
            pass
        os.close(fd)


def _nonempty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _rename_paths(e: BaseException, tmp: Path, target: Path) -> BaseException:
    """An FtxError raised while writing names the temporary folder; the user asked for `target`."""
    if isinstance(e, FtxError) and str(tmp) in str(e):
        new = type(e)(str(e).replace(str(tmp), str(target)))
        return new
    return e


@contextmanager
def output_dir(target, what: str = "--out", overwrite: bool = False, inputs: Iterable = (),
               command: str = "") -> Iterator[Path]:
    """The one way ftx writes an output folder:

        with output_dir(out, "--out", overwrite=ns.overwrite, inputs=[...]) as tmp:
            write everything into tmp

    Before any work: `target` must not be one of `inputs` (or hold one), must be creatable (a one-line
    ConfigError otherwise), and not be a non-empty folder unless `overwrite`; the lock beside it keeps a
    second process out. Everything is written into the temporary sibling `.<name>.partial`, which gets
    the completion marker and is renamed into place only when the block ends without an error; so
    `target` is either absent, its previous self, or complete. On an error or an interrupt the temporary
    folder is removed; one left by a killed process is replaced by the next run of the command."""
    target = Path(target).expanduser()
    check_not_input(target, inputs, what)
    usable_dir(target, what, create=False)  # not a file, nor under one
    parent = usable_dir(target.parent, what)
    with hold_lock(target, what):
        if _nonempty(target) and not overwrite:
            raise ConfigError(f"{what} {target}: directory exists and is not empty "
                              "(choose a new one, or pass --overwrite to replace it)")
        tmp, old = parent / f".{target.name}.partial", parent / f".{target.name}.old"
        for leftover in (tmp, old):  # a killed earlier run's: incomplete by construction
            if leftover.exists():
                shutil.rmtree(leftover)
        try:
            tmp.mkdir()
            os.chmod(tmp, DIR_MODE)
            yield tmp
            atomic_write_text(tmp / COMPLETE, json.dumps({"command": command, "pid": os.getpid(),
                                                          "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
            if target.exists():
                target.rename(old)  # a crash between the two renames leaves no target: the rerun writes it
            tmp.rename(target)
            _fsync_dir(parent)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            new = _rename_paths(e, tmp, target)
            if new is not e:
                raise new from None
            raise


@contextmanager
def output_file(target, what: str = "--out", overwrite: bool = False, inputs: Iterable = (),
                also: Iterable = ()) -> Iterator[Path]:
    """An output file (and the files `also` written beside it), checked and locked before any work:
    not one of `inputs`, creatable, not an existing file unless `overwrite`. Write each with
    atomic_write_text inside the block."""
    target = Path(target).expanduser()
    for path in (target, *also):
        check_not_input(path, inputs, what)
        if path.is_dir():
            raise ConfigError(f"{what}: {path} is a folder, not a file (give a file path)")
    blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{what}: cannot create {target}: {blocker} is a file, not a folder")
    usable_dir(target.parent, what)
    with hold_lock(target, what):
        existing = [p for p in (target, *map(Path, also)) if p.exists()]
        if existing and not overwrite:
            raise ConfigError(f"{what}: {existing[0]} exists (choose a new path, or pass --overwrite to replace it)")
        yield target


RUN_FILES = ("config.yaml", "manifest.json", "metrics.jsonl", "metrics.json", "adapter", "checkpoints")
"""What a run writes into its run dir; any of them there means the dir holds an earlier run."""


def earlier_run(run_dir) -> Optional[str]:
    """Why `run_dir` cannot take a new run (it holds an earlier one), or None when it is new or empty of runs.
    An earlier run with metrics.json finished; one without it was interrupted (resumable)."""
    run_dir = Path(run_dir)
    found = [n for n in RUN_FILES if (run_dir / n).exists()]
    if not found:
        return None
    state = "a finished run" if (run_dir / "metrics.json").exists() else "an interrupted run (no metrics.json)"
    return (f"{run_dir} holds {state} ({', '.join(found)}); a run dir takes one run: continue an interrupted "
            "one with train.resume=auto, or choose a new hydra.run.dir")


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
    first = True  # the first non-blank line: where a file that is not JSON Lines at all shows it
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(_lines(fh, path), start=1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                if first and opener is open and raw.startswith(b"\x1f\x8b"):
                    raise DataError(f"{path}: is gzip-compressed but not named .gz (name it .jsonl.gz, or gunzip it)")
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
                    raise DataError(_not_jsonl(path, where, line, first) or
                                    f"{where}: malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    hint = (" (a JSON array file? JSON Lines holds one object per line: name it .json, or set the "
                            "source's format: json)") if first and isinstance(obj, list) else ""
                    raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}{hint}")
            except DataError as e:
                first = False
                if tolerant:
                    continue
                if on_error is None:
                    raise
                on_error(lineno, e)
                continue
            first = False
            yield lineno, obj


def _lines(fh, path: Path) -> Iterator[bytes]:
    """A file's lines; a .gz that is not gzip, or whose compressed stream is cut or damaged, is a DataError
    naming the file and how far it read (what follows would otherwise be lost, or end in a traceback)."""
    n = 0
    try:
        for n, raw in enumerate(fh, start=1):
            yield raw
    except (OSError, EOFError, zlib.error) as e:
        if not isinstance(fh, gzip.GzipFile):
            raise
        what = "is not gzip-compressed (name it without .gz)" if n == 0 and isinstance(e, gzip.BadGzipFile) else \
            f"compressed stream is damaged or cut after line {n} ({e or type(e).__name__}); re-create the .gz file"
        raise DataError(f"{path}: {what}") from None


def _not_jsonl(path: Path, where: str, line: str, first: bool) -> Optional[str]:
    """What a file that fails on its first line really is, when it is not JSON Lines at all: a JSON array
    over several lines, or pretty-printed JSON (one object over several lines)."""
    if not first:
        return None
    head = line.strip()
    if head.startswith("["):
        return (f"{path}: holds a JSON array, not JSON Lines (one object per line): name it .json, or set the "
                "source's format: json")
    if head.startswith("{") and Path(path).stat().st_size <= 64 * 2**20:
        try:  # the first object parses once the lines after it are read too: it was spread over several lines
            text = Path(path).read_text(encoding="utf-8-sig")
            obj, end = json.JSONDecoder().raw_decode(text.lstrip())
        except (ValueError, OSError):
            return None  # a record really cut or garbled: the plain malformed-JSON message says where
        if isinstance(obj, dict) and "\n" in text.lstrip()[:end]:
            return (f"{where}: holds pretty-printed JSON (an object spread over several lines); JSON Lines needs "
                    "one object per line: write one record per line, or use a .json file (an array of objects)")
    return None


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


def input_paths(resolved: dict) -> list[Path]:
    """Every existing file or folder a resolved spec names (data sources, seeds, dev and golden sets,
    prompt files, caches…): what an output path must not be, nor hold. Found by walking every string
    value, so a key added later is covered without a list to keep up to date."""
    out = []

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v and ("/" in v or "." in v.strip(".")) and "\n" not in v and len(v) < 4096:
            try:
                p = Path(v).expanduser()
                if p.exists():
                    out.append(p)
            except (OSError, ValueError):
                pass

    walk(resolved)
    return out
