"""Helpers shared by the tests (import them from here; tests/conftest.py holds only fixtures):
run the ftx CLI in a subprocess, tiny data files, offline everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ftx.spec.model import ModelConfig

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

TINY = ModelConfig(source="tiny", dtype="fp32")  # the randomly initialised tiny llama, for in-process tests


def ftx_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FTX_CONF", None)  # the checkout's own ftx/conf, found beside the package as when installed
    # W&B off unless a test asks for it (tracking.mode=offline, or WANDB_MODE in `extra`): starting its
    # service costs ~10 s a run, and only the tracking tests look at what it writes.
    env["WANDB_MODE"] = "disabled"
    env.update(extra)
    return env


def run_ftx(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m ftx ARGS` from this checkout, in `cwd`."""
    return subprocess.run([sys.executable, "-m", "ftx", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env or ftx_env())


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def only_run_dir(root: Path) -> Path:
    """The single run directory under outputs/runs (fails if there are none or several)."""
    dirs = [p.parent for p in (root / "outputs" / "runs").glob("*/*/manifest.json")]
    assert len(dirs) == 1, f"expected one run dir, found {dirs}"
    return dirs[0]


def run_main(args: list[str], capsys) -> tuple[int, str]:
    """`ftx ARGS` in-process: (exit code, stderr)."""
    from ftx.cli import main as cli

    try:
        cli.main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def predicted_run(root: Path, name: str = "run", n: int = 8, sets: tuple[str, ...] = ("val", "test")) -> Path:
    """A run directory as `ftx review` reads it — config.yaml, manifest.json, metrics.json and the generation
    eval's predictions_base/tuned.jsonl — with no model: answers whose text does not say which model wrote it
    (base answers are "…: short", tuned ones "…: detailed")."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"name: {name}\nmodel: {{name: tiny}}\n")
    (run / "manifest.json").write_text('{"spec_hash": "0"}')
    (run / "metrics.json").write_text('{"base": {"val_loss": 2.0}, "tuned": {"val_loss": 1.0}}')
    for side, word in (("base", "short"), ("tuned", "detailed")):
        write_jsonl(run / f"predictions_{side}.jsonl",
                    [{"set": s, "id": f"{s}{i}", "prompt": f"Question {s} {i}?", "prediction": f"Answer {i}: {word}",
                      "answers": [f"Reference {i}"]} for s in sets for i in range(n)]
                    + [{"set": "offdomain", "id": "o0", "prompt": "Off?", "prediction": word, "answers": ["x"]}])
    return run


def answer_all(items_jsonl: Path, out: Path, rater: str, pick) -> Path:
    """An answers file as the review page downloads it: `pick(item) -> choice` for every exported item."""
    items = [json.loads(line) for line in items_jsonl.read_text().splitlines()]
    return write_jsonl(out, [{"run": it["run"], "review_set": it["review_set"], "review_id": it["review_id"],
                              "rater": rater, "choice": pick(it), "comment": ""} for it in items])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A throw-away PostgreSQL server (Debian's `postgresql` package, installed by `make setup`): its own
    data directory in /tmp, a free local port, password authentication (scram-sha-256) for user `ftx`,
    a unix socket in the data directory. PostgreSQL refuses to run as root, so under root the server runs
    as `nobody` (via runuser). `url(db)` is the SQLAlchemy URL; `stop()` stops it and removes the data."""

    USER, PASSWORD = "ftx", "s3cret-pg-pw"

    def __init__(self):
        import glob
        import shutil
        import tempfile

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        assert bins, "PostgreSQL is not installed: `make setup` installs Debian's postgresql package"
        self.bin = Path(bins[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="ftx-pg-"))  # not under pytest's tmp: nobody must reach it
        self.data, self.port = self.dir / "data", free_port()
        self.as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        (self.dir / "pw").write_text(self.PASSWORD + "\n")
        if self.as_user:
            shutil.chown(self.dir, "nobody")
            shutil.chown(self.dir / "pw", "nobody")
        self._run("initdb", "-D", str(self.data), "-U", self.USER, "--auth=scram-sha-256",
                  f"--pwfile={self.dir / 'pw'}", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.dir / "log"), "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        self.running = True
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, "optuna",
                  env={"PGPASSWORD": self.PASSWORD})

    def _run(self, tool: str, *args: str, env: dict | None = None) -> None:
        r = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True,
                           timeout=120, env={**os.environ, **(env or {})}, cwd=self.dir)
        assert r.returncode == 0, f"{tool} failed: {r.stdout[-2000:]}{r.stderr[-2000:]}"

    def url(self, db: str = "optuna", password: str | None = None) -> str:
        return (f"postgresql+psycopg2://{self.USER}:{password or self.PASSWORD}@127.0.0.1:{self.port}/{db}")

    def stop(self) -> None:
        import shutil

        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)


def write_yesno_task(folder: Path, n: int) -> Path:
    """A user's lm-eval task folder: `my_yesno`, n yes/no questions read from a local JSONL beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder.parent / "yesno.jsonl"
    data.write_text("".join(json.dumps({"q": f"Is {i} even?", "a": i % 2}) + "\n" for i in range(n)))
    (folder / "my_yesno.yaml").write_text(
        f"task: my_yesno\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "output_type: multiple_choice\ntest_split: test\ndoc_to_text: '{{q}}'\ndoc_to_choice: ['yes', 'no']\n"
        "doc_to_target: '{{a}}'\nmetric_list:\n  - metric: acc\n")
    return folder
