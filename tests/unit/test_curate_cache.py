"""Stage cache: a re-run reads every unchanged stage back; a changed stage recomputes it and what follows."""

from __future__ import annotations

import copy
import json

import pytest

from ftx.data.curate import normalize, quality
from ftx.data.curate.pipeline import run
from ftx.data.ledger import Ledger
from tests.unit.test_curate import HTTP, LONG, config, rec

STAGES = ("normalize", "quality", "language", "pii", "exact_dedup", "near_dedup", "relevance")


def corpus() -> list[dict]:
    return [rec(i, t) for i, t in enumerate(HTTP)] + [
        rec("dup", HTTP[0]), rec("long", LONG), rec("near", LONG.replace("browser", "client")),
        rec("mail", HTTP[1] + " Mail ops@mail.com."), rec("short", "Hi."),
        rec("de", "Der Server antwortet mit einem Statuscode, wenn die Ressource nicht gefunden wurde."),
        rec("off", "Bananas are rich in potassium and make a great snack before a long run.")]


def make_cfg(tmp_path, seeds, **relevance):
    cfg = config(*STAGES, tmp=tmp_path, near_dedup={"shingle": 3, "threshold": 0.6},
                 relevance={"seeds": [str(seeds)], "active_learning": 0, **relevance})
    cfg.relevance.threshold.value = 0.05
    return cfg


@pytest.fixture
def seeds(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in HTTP[:4]))
    return path


def go(records, cfg):
    ledger = Ledger()
    res = run(copy.deepcopy(records), cfg, ledger)
    return res, ledger, {s.stage: s.cached for s in res.stages}


def test_rerun_reads_every_stage_from_the_cache_with_identical_results(tmp_path, seeds, monkeypatch):
    records = corpus()
    res1, led1, cached1 = go(records, make_cfg(tmp_path, seeds))
    assert not any(cached1.values())
    # a cached stage must not run at all
    for module in (normalize, quality):
        monkeypatch.setattr(module, "run", lambda *a, **k: pytest.fail("cached stage was recomputed"))
    res2, led2, cached2 = go(records, make_cfg(tmp_path, seeds))
    assert all(cached2.values()), cached2
    assert res2.kept == res1.kept
    assert led2.summary() == led1.summary()
    assert [(d["stage"], d["id"], d["reason"], d.get("score")) for d in led2.dropped_records] == \
        [(d["stage"], d["id"], d["reason"], d.get("score")) for d in led1.dropped_records]
    assert led1.summary()[1]["dropped_by_reason"] == {"too_short": 1}


def test_changing_a_later_stage_recomputes_only_it_and_what_follows(tmp_path, seeds):
    records = corpus()
    go(records, make_cfg(tmp_path, seeds))
    cfg = make_cfg(tmp_path, seeds)
    cfg.relevance.threshold.value = 0.2
    _, _, cached = go(records, cfg)
    assert cached == {s: s != "relevance" for s in STAGES}
    cfg = make_cfg(tmp_path, seeds)
    cfg.quality.min_words = 3
    res, ledger, cached = go(records, cfg)
    assert cached == {s: s == "normalize" for s in STAGES}
    assert "short" in {d["id"] for d in ledger.dropped_records}  # "Hi." is still too short at 3 words


def test_changed_input_or_seed_file_content_invalidates(tmp_path, seeds):
    records = corpus()
    go(records, make_cfg(tmp_path, seeds))
    changed = corpus()
    changed[0]["text"] += " Changed."
    _, _, cached = go(changed, make_cfg(tmp_path, seeds))
    assert not any(cached.values())
    seeds.write_text(seeds.read_text() + json.dumps({"text": HTTP[5]}) + "\n")  # same path, new content
    _, _, cached = go(records, make_cfg(tmp_path, seeds))
    assert cached == {s: s != "relevance" for s in STAGES}


def test_unreadable_cache_entry_is_recomputed_not_fatal(tmp_path, seeds):
    records = corpus()
    res1, _, _ = go(records, make_cfg(tmp_path, seeds))
    for drops in (tmp_path / "cache" / "quality").glob("*/drops.jsonl"):
        drops.write_text("{not json")
    res2, _, cached = go(records, make_cfg(tmp_path, seeds))
    assert cached["normalize"] and not cached["quality"] and cached["language"]
    assert res2.kept == res1.kept


def test_cache_off_never_writes(tmp_path, seeds):
    cfg = make_cfg(tmp_path, seeds)
    cfg.cache_dir = None
    _, _, cached = go(corpus(), cfg)
    _, _, cached = go(corpus(), cfg)
    assert not any(cached.values()) and not (tmp_path / "cache").exists()
