"""From adapter to production on the tiny model: operational metrics in metrics.json, the summary, the card
and `ftx compare`; lm-evaluation-harness tasks on base and tuned, in training and in `ftx eval` of the finished
run; `ftx chat` answering with tuned and base; GGUF export refusing what it cannot convert."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ftx_env, run_ftx, write_yesno_task

OPS = ("ops_latency_p50_s", "ops_latency_p90_s", "ops_latency_p99_s", "ops_ttft_p50_s", "ops_ttft_p90_s",
       "ops_output_tokens_mean", "ops_output_tokens_p90", "ops_hit_max_new_tokens_rate", "ops_prompt_tokens_mean",
       "ops_tokens_per_s")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("prod")
    r = run_ftx(["train", "experiment=tiny_smoke", "curation=none", "eval.latency.prompts=6",
                 "eval.generation.max_new_tokens=8", "eval.harness.tasks=[ftx_general_qa]", "eval.harness.limit=16",
                 "hydra.run.dir=outputs/runs/p"], root)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, root / "outputs/runs/p", r.stdout


def test_operational_metrics_for_base_and_tuned_everywhere(run):
    root, run_dir, stdout = run
    m = json.loads((run_dir / "metrics.json").read_text())
    for side in ("base", "tuned"):
        assert all(isinstance(m[side][k], float) for k in OPS), side
        assert 0 < m[side]["ops_ttft_p50_s"] <= m[side]["ops_latency_p50_s"] <= m[side]["ops_latency_p99_s"]
        assert m[side]["ops_output_tokens_mean"] <= 8
    o = m["eval"]["ops"]
    assert o["answers"] == 6 and o["set"] == "val" and o["batch_size"] == 1 and o["warmup"] == 2
    assert o["latency_p99_ratio"] == pytest.approx(m["tuned"]["ops_latency_p99_s"] / m["base"]["ops_latency_p99_s"])
    slower_by = m["tuned"]["ops_latency_p99_s"] - m["base"]["ops_latency_p99_s"]  # the budget's floor: 0.05 s
    assert o["latency_regression"] is (o["latency_p99_ratio"] > 1.2 and slower_by > 0.05)
    assert any(f.startswith("latency:") for f in m["flags"]) is o["latency_regression"]
    assert "ops_latency_p99_s" in stdout and "operational: 6 answers from val" in stdout
    card = (run_dir / "adapter" / "README.md").read_text()
    assert "ops_latency_p99_s" in card and "Operational metrics (`ops_*`): 6 answers from val" in card
    cmp = run_ftx(["compare", str(run_dir)], root)
    assert cmp.returncode == 0 and "tuned/ops_latency_p99_s" in cmp.stdout and "eval/ops/latency_p99_ratio" in cmp.stdout


def test_harness_task_on_base_and_tuned_then_on_the_finished_run(run, tmp_path):
    root, run_dir, stdout = run
    m = json.loads((run_dir / "metrics.json").read_text())
    for side in ("base", "tuned"):  # 16 questions of 4 choices: a multiple of 1/16
        assert {k for k in m[side] if k.startswith("harness_")} == {"harness_ftx_general_qa_acc",
                                                                   "harness_ftx_general_qa_acc_norm"}
        assert (m[side]["harness_ftx_general_qa_acc"] * 16).is_integer()
        assert m["eval"]["seconds"][side]["harness"] > 0
    h = m["eval"]["harness"]
    row = h["tasks"]["ftx_general_qa"]
    assert (h["limit"], row["examples"], row["metric"]) == (16, 16, "acc")
    assert row["delta"] == pytest.approx(m["tuned"]["harness_ftx_general_qa_acc"] - m["base"]["harness_ftx_general_qa_acc"])
    assert m["delta"]["harness_ftx_general_qa_acc"] == pytest.approx(row["delta"])
    assert m["eval"]["forgetting"]["harness"]["ftx_general_qa"]["regression"] is False  # no budget: reported only
    assert "lm-eval ftx_general_qa: acc " in stdout and "on 16 examples" in stdout
    assert "harness_ftx_general_qa_acc" in (run_dir / "adapter" / "README.md").read_text()
    cmp = run_ftx(["compare", str(run_dir), "--out", str(tmp_path / "cmp")], root)
    assert cmp.returncode == 0 and "delta/harness_ftx_general_qa_acc" in cmp.stdout, cmp.stderr[-2000:]
    # `ftx eval` of the finished run: the stored harness metrics reproduce (log-likelihoods, deterministic), and
    # an override adds a task from a folder of the user's own
    write_yesno_task(tmp_path / "tasks", 8)
    ev = run_ftx(["eval", str(run_dir), "--check", "eval.harness.tasks=[ftx_general_qa,my_yesno]", "eval.latency.prompts=0",
                  "eval.generation.enabled=false",
                  f"eval.harness.include_path={tmp_path / 'tasks'}"], root)
    assert ev.returncode == 0, ev.stderr[-3000:]
    re_ = json.loads((run_dir / "eval" / "eval.json").read_text())
    for side in ("base", "tuned"):
        assert re_[side]["harness_ftx_general_qa_acc"] == m[side]["harness_ftx_general_qa_acc"]
        assert (re_[side]["harness_my_yesno_acc"] * 8).is_integer()
    assert re_["reproduced"]["ok"] and "base/harness_ftx_general_qa_acc" not in str(re_["reproduced"]["failed"])
    assert set(re_["eval"]["harness"]["tasks"]) == {"ftx_general_qa", "my_yesno"}
    assert "lm-eval my_yesno: acc " in ev.stdout


def test_chat_answers_with_tuned_and_base_side_by_side(run):
    root, run_dir, _ = run
    p = subprocess.run([sys.executable, "-m", "ftx", "chat", str(run_dir), "--base", "eval.generation.max_new_tokens=4"],
                       input="What is a header?\n/reset\nAnd a body?\n", capture_output=True, text=True, timeout=600,
                       cwd=root, env=ftx_env())
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout.splitlines()
    assert out[0].startswith(f"ftx chat: {run_dir} (tuned and base; greedy, max_new_tokens 4)")
    assert [line.split(">")[0] for line in out if line.startswith(("you>", "tuned>", "base>"))] == \
        ["you", "tuned", "base", "you", "tuned", "base"]
    assert "(new conversation)" in out


def test_chat_and_gguf_refuse_what_they_cannot_do(run, tmp_path):
    root, run_dir, _ = run
    (tmp_path / "norun").mkdir()
    for f in ("config.yaml", "metrics.json", "manifest.json"):
        (tmp_path / "norun" / f).write_text((run_dir / f).read_text())
    (tmp_path / "norun" / "adapter").mkdir()
    r = run_ftx(["chat", str(tmp_path / "norun")], root)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == (
        f"ftx: run error: ftx chat: {tmp_path / 'norun'} has no trained adapter ({tmp_path / 'norun' / 'adapter'} "
        "holds no adapter_config.json; did the run finish?)")
    # the tiny model's home-made BPE tokenizer is not one llama.cpp knows: one line, nothing left behind
    g = run_ftx(["export", str(run_dir), "--format", "gguf", "--out", str(tmp_path / "g"), "--no-verify"], root)
    assert g.returncode == 2 and "Traceback" not in g.stderr, g.stderr[-2000:]
    assert g.stderr.strip().splitlines()[-1].startswith(
        "ftx: run error: ftx export --format gguf: llama.cpp's converter failed: ")
    assert not (tmp_path / "g").exists()
