"""train.objective=dpo end to end through the CLI: SFT → DPO on the tiny model (train.init_adapter), DPO with
QLoRA and with ZeRO-2 (one process), and, slow, DPO on SmolLM2 from the shipped demo preference set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.engine_helpers import read_metrics, tiny_args
from tests.helpers import write_jsonl
from tests.unit.test_dpo import pairs

QUICK = ["train.max_steps=12", "train.batch_size=4", "optimizer.lr=5e-3", "train.dpo.beta=0.5", "eval=loss_only"]


def dpo_args(root: Path, *extra: str) -> list[str]:
    prefs = write_jsonl(root / "prefs.jsonl", pairs(48))
    general = write_jsonl(root / "general.jsonl", [{"prompt": f"General {i}?", "response": f"Answer {i}."}
                                                   for i in range(10)])
    return ["train", "experiment=sft_then_dpo", "model=tiny_llama", "train=tiny", "curation=none",
            f"data.sources.prefs.path={prefs}", f"data.sources.general.path={general}", *QUICK, *extra]


def test_sft_then_dpo_on_the_tiny_model_starts_from_the_sft_adapter(ftx, tmp_path):
    r = ftx(*tiny_args(tmp_path / "data", "hydra.run.dir=sft"))
    assert r.returncode == 0, r.stderr[-3000:]
    r = ftx(*dpo_args(tmp_path, "train.init_adapter=sft", "hydra.run.dir=dpo"))
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "dpo" / "train.log").read_text()
    assert "init adapter:" in log and "DPO reference: the starting weights" in log
    m = read_metrics(tmp_path / "dpo")
    pref = m["eval"]["preference"]["val"]
    assert pref["reward_margin"] > 0 and pref["reward_accuracy"] > 0.5
    assert m["tuned"]["val_pref_margin"] > m["base"]["val_pref_margin"]
    sft, dpo = load_file(tmp_path / "sft/adapter/adapter_model.safetensors"), \
        load_file(tmp_path / "dpo/adapter/adapter_model.safetensors")
    assert sft.keys() == dpo.keys() and any(not (sft[k] == dpo[k]).all() for k in sft)
    ledger = json.loads((tmp_path / "dpo/data/ledger.json").read_text())
    stages = {s["stage"]: s for s in (ledger["stages"] if isinstance(ledger, dict) else ledger)}
    assert stages["dpo"]["dropped_by_reason"].get("not_a_pair", 0) > 0  # the general records' training share


@pytest.mark.parametrize("extra", [["quant=nf4"], ["zero=zero2"]], ids=["qlora", "zero2"])
def test_dpo_trains_with_qlora_and_zero(ftx, tmp_path, extra):
    r = ftx(*dpo_args(tmp_path, "hydra.run.dir=run", *extra), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "run")
    assert m["eval"]["preference"]["val"]["reward_margin"] > 0
    assert m["tuned"]["val_pref_margin"] > m["base"]["val_pref_margin"]


@pytest.mark.parametrize("extra", [[], ["lora=full"]], ids=["lora", "full"])
def test_orpo_trains_one_stage_on_the_pairs_without_a_reference_model(ftx, tmp_path, extra):
    """train.objective=orpo through TRL's ORPOTrainer: the chosen replies become likelier (its SFT term) and the
    held-out margin grows (its odds-ratio term); no reference model, so lora=full makes no second copy."""
    args = [a for a in dpo_args(tmp_path, "hydra.run.dir=run", *extra) if a != "train.dpo.beta=0.5"]
    r = ftx(*args, "train.objective=orpo", "train.orpo.beta=0.5", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "ORPO: SFT loss + 0.5 x odds-ratio term, no reference model" in log and "DPO reference" not in log
    m = read_metrics(tmp_path / "run")
    assert m["tuned"]["val_pref_margin"] > m["base"]["val_pref_margin"]
    assert m["tuned"]["val_loss"] < m["base"]["val_loss"]  # the SFT half of the loss: chosen replies likelier
    assert m["eval"]["preference"]["val"]["beta"] == 0.5
    ledger = json.loads((tmp_path / "run/data/ledger.json").read_text())
    stages = {s["stage"]: s for s in (ledger["stages"] if isinstance(ledger, dict) else ledger)}
    assert stages["orpo"]["dropped_by_reason"].get("not_a_pair", 0) > 0


@pytest.mark.slow
def test_dpo_on_smollm2_from_the_demo_preferences_raises_preference_accuracy(ftx):
    """The demo loop on the embedded model: a few DPO steps on the shipped pairs (docs/feedback.md numbers)."""
    r = ftx("train", "experiment=sft_then_dpo", "train.max_steps=8", "train.batch_size=2", "optimizer.lr=3e-3",
            "optimizer.warmup_ratio=0", "hydra.run.dir=dpo", timeout=2400)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(ftx.cwd / "dpo")
    assert m["params"]["total"] > 130e6, "not the real SmolLM2-135M"
    pref = m["eval"]["preference"]["val"]
    # Measured (docs/feedback.md): preference accuracy 4/12 -> 5/12 held-out pairs, reward accuracy (TRL's
    # rewards/accuracies: the tuned model prefers the chosen reply more than the base does) 10/12, summed
    # margin -39.7 -> -33.4 nats.
    assert m["tuned"]["val_pref_accuracy"] > m["base"]["val_pref_accuracy"]
    assert pref["reward_accuracy"] > 0.5 and pref["reward_margin"] > 0
    assert m["tuned"]["val_pref_margin"] > m["base"]["val_pref_margin"]
    assert m["tuned"]["val_loss"] < m["base"]["val_loss"]  # the chosen replies became likelier
