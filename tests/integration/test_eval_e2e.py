"""Evaluation end to end on the tiny model with crafted data: `ftx train` writes base-vs-tuned
metrics, predictions and the summary table; `ftx eval RUN_DIR` reproduces the stored metrics."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import write_jsonl

PHRASES = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
           304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
           413: "Content Too Large", 415: "Unsupported Media Type", 418: "I'm a teapot", 429: "Too Many Requests",
           500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout", 505: "HTTP Version Not Supported"}


def crafted(root: Path) -> list[str]:
    """Domain Q&A with accepted answers, general Q&A, a golden set and an off-domain probe."""
    write_jsonl(root / "domain.jsonl", [
        {"id": f"s{c}", "prompt": f"What is the reason phrase of HTTP status {c}?",
         "response": f"Status {c} is {p}.", "answers": [p]} for c, p in PHRASES.items()])
    facts = ["Paris is the capital of France.", "Water boils at 100 degrees Celsius.", "A week has seven days.",
             "Ice is frozen water.", "The Moon orbits the Earth.", "A triangle has three sides."]
    write_jsonl(root / "general.jsonl", [{"id": f"g{i}", "prompt": f"Tell me fact {i}.", "response": f}
                                         for i, f in enumerate(facts * 3)])
    write_jsonl(root / "golden.jsonl", [{"id": f"gold{c}", "prompt": f"What is the reason phrase of HTTP status {c}?",
                                         "answers": [PHRASES[c]]} for c in (404, 500)])
    write_jsonl(root / "probe.jsonl", [{"prompt": "What is the capital of Italy?", "response": "Rome."},
                                       {"prompt": "How many legs does a spider have?", "response": "Eight."}])
    return [f"data.sources.http.path={root / 'domain.jsonl'}", f"data.sources.general.path={root / 'general.jsonl'}",
            f"eval.golden.path={root / 'golden.jsonl'}", f"eval.offdomain.path={root / 'probe.jsonl'}",
            "data.split.test=0.2", "eval.generation.max_new_tokens=8", "eval.offdomain.generate=true",
            "curation=none"]  # templated records are near-duplicates by design


@pytest.mark.slow
def test_train_then_reevaluate_reproduces(ftx):
    # bf16 training: the in-memory model keeps accelerate's bf16 forward; re-evaluation reloads fp32
    # weights and must still match, because both are measured under the run's own precision.
    r = ftx("train", "experiment=tiny_smoke", "train.precision=bf16", "tracking.mode=offline", *crafted(ftx.cwd),
            "hydra.run.dir=outputs/runs/e/run", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = ftx.cwd / "outputs/runs/e/run"
    m = json.loads((run / "metrics.json").read_text())
    for side in ("base", "tuned"):
        for key in ("val_loss", "val_ppl", "test_loss", "general_eval_loss", "offdomain_loss", "val_exact_match",
                    "val_contains", "val_token_f1", "val_rouge_l", "val_bleu", "test_token_f1", "golden_pass_rate"):
            assert isinstance(m[side][key], float), (side, key)
    assert m["delta"]["val_rouge_l"] == m["tuned"]["val_rouge_l"] - m["base"]["val_rouge_l"]
    ev = m["eval"]
    assert ev["precision"] == "bf16"
    assert ev["golden"]["total"] == 2 and ev["golden"]["passed"] + ev["golden"]["failed"] == 2
    assert ev["offdomain"]["prompts"] == 2 and ev["offdomain"]["confident_nonsense"] in (0, 1, 2)
    f = ev["forgetting"]
    assert f["regression"] is (f["relative_change"] > f["budget"])
    for side in ("base", "tuned"):
        rows = [json.loads(l) for l in (run / f"predictions_{side}.jsonl").read_text().splitlines()]
        sets = {row["set"] for row in rows}
        assert sets == {"val", "test", "golden", "offdomain"}, sets
        golden = [row for row in rows if row["set"] == "golden"]
        assert sum(row["passed"] for row in golden) == ev["golden"]["passed" if side == "tuned" else "base_passed"]
        val = [row for row in rows if row["set"] == "val"]
        assert sum(row["token_f1"] for row in val) / len(val) == pytest.approx(m[side]["val_token_f1"])
        assert all(row["answers"][0].startswith("Status ") and len(row["answers"]) == 2 for row in val)
    for row in ("val_loss", "val_ppl", "val_exact_match", "val_token_f1", "val_rouge_l", "golden set:"):
        assert row in r.stdout, row

    again = ftx("eval", str(run), "--check", "tracking.backend=wandb", timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "reproduced stored metrics: yes" in again.stdout
    m2 = json.loads((run / "metrics.json").read_text())
    assert m2["tuned"] == m["tuned"], "re-evaluation must not overwrite the training-time record"
    assert m2["reeval"]["reproduced"]["ok"] and m2["reeval"]["reproduced"]["compared"] >= 24
    assert m2["reeval"]["tuned"]["val_loss"] == pytest.approx(m["tuned"]["val_loss"], rel=1e-3)
    assert (run / "eval" / "eval.json").is_file() and (run / "eval" / "predictions_tuned.jsonl").is_file()
    # W&B (offline here): the re-evaluation lands in the run's summary under reeval/
    (wandb_dir,) = (run / "wandb").glob("offline-run-*")
    out = subprocess.run(["wandb", "leet", "inspect", "--json", "--summary", str(wandb_dir)],
                         capture_output=True, text=True, timeout=120)
    summary = json.loads(out.stdout)["summary"]
    assert summary["reeval/tuned/val_loss"] == pytest.approx(m2["reeval"]["tuned"]["val_loss"])
    assert summary["reeval/reproduced/ok"] is True


def test_bad_golden_file_fails_before_training(ftx):
    overrides = crafted(ftx.cwd)
    (ftx.cwd / "golden.jsonl").write_text('{"id": "x", "prompt": "p"}\n')
    r = ftx("train", "experiment=tiny_smoke", *overrides, timeout=300)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert "golden.jsonl:1: field 'answers' must be a non-empty list of strings" in last
    assert not list((ftx.cwd / "outputs").rglob("metrics.json"))


def test_eval_of_a_missing_or_unfinished_run_is_one_line(ftx):
    r = ftx("eval", str(ftx.cwd / "nope"))
    assert r.returncode == 2 and r.stderr.strip() == f"ftx: run error: run directory not found: {ftx.cwd / 'nope'}"
    (ftx.cwd / "half").mkdir()
    (ftx.cwd / "half" / "config.yaml").write_text("name: x\n")
    r = ftx("eval", str(ftx.cwd / "half"))
    assert r.returncode == 2 and "no metrics.json (not a finished ftx run" in r.stderr
    r = ftx("eval")
    assert r.returncode == 2 and "usage: ftx eval RUN_DIR" in r.stderr
