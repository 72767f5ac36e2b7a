"""`ftx review`: blinding (seeded, round-trips), the review block's statistics, preference pairs, bad answers files.
No model: the runs are predicted_run() folders; the page itself is tested in a real browser in
tests/integration/test_review_e2e.py."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from ftx.errors import DataError
from ftx.record import review
from tests.helpers import answer_all, predicted_run, run_main, write_jsonl


def tuned_pick(it):
    return "left" if it["left"].endswith("detailed") else "right"


def base_pick(it):
    return "right" if it["left"].endswith("detailed") else "left"


@pytest.fixture
def exported(tmp_path):
    run = predicted_run(tmp_path, n=10)
    key = review.export(run, tmp_path / "rev", seed=7)
    return run, key, tmp_path / "rev"


def test_blinding_is_seeded_and_the_reviewer_files_never_name_a_model(tmp_path, exported):
    run, key, out = exported
    again = review.export(run, tmp_path / "rev2", seed=7)
    other = review.export(run, tmp_path / "rev3", seed=8)
    assert [(i["review_id"], i["left"]) for i in again["items"]] == [(i["review_id"], i["left"]) for i in key["items"]]
    assert again["review_set"] == key["review_set"] != other["review_set"]
    assert [i["left"] for i in other["items"]] != [i["left"] for i in key["items"]]
    assert {i["review_id"] for i in other["items"]} == {i["review_id"] for i in key["items"]}  # same prompts, same ids
    lefts = Counter(i["left"] for i in key["items"])
    assert lefts["A"] and lefts["B"], lefts  # 20 items: both sides appear on the left
    assert len(key["items"]) == 20 and {i["set"] for i in key["items"]} == {"val", "test"}  # offdomain left out
    assert review.key_path(run, key["review_set"]).is_file()
    for name in ("items.jsonl", "items.csv", "review.html"):
        text = (out / name).read_text()
        assert "tuned" not in text and "base" not in text and '"A"' not in text, name
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert sorted(rows[0]) == ["left", "prompt", "reference", "review_id", "review_set", "right", "run"]
    assert [r["review_id"] for r in rows] == [i["review_id"] for i in key["items"]]


def test_import_unblinds_who_won_with_a_wilson_interval(exported):
    run, key, out = exported
    ann = answer_all(out / "items.jsonl", out.parent / "ann.jsonl", "ann", tuned_pick)
    bob = answer_all(out / "items.jsonl", out.parent / "bob.jsonl", "bob",
                     lambda it: "tie" if it["review_id"] == key["items"][0]["review_id"] else tuned_pick(it))
    r = review.import_reviews([ann, bob], None)
    assert (r["win"], r["tie"], r["loss"], r["both_bad"], r["items_rated"]) == (19, 1, 0, 0, 20)
    assert r["raters"]["ann"]["A"] == 20 and r["raters"]["bob"] == {"A": 19, "B": 0, "tie": 1, "both_bad": 0, "total": 20}
    k, n, z = 19, 20, 1.959963985
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert r["win_rate"] == 0.95 and r["win_rate_ci"] == pytest.approx([centre - half, centre + half], abs=1e-4)
    assert [d["review_id"] for d in r["disputed"]] == [key["items"][0]["review_id"]]
    assert r["agreement"]["cohen_kappa"]["ann|bob"]["items"] == 20 and r["agreement"]["unanimous_share"] == 0.95
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["review"]["win_rate"] == 0.95 and metrics["tuned"]["val_loss"] == 1.0  # added, nothing lost
    stored = json.loads((run / "review" / key["review_set"] / "review.json").read_text())
    assert stored["verdicts"][key["items"][0]["review_id"]] == "tie"
    lost = review.import_reviews([answer_all(out / "items.jsonl", out.parent / "c.jsonl", "c", base_pick)], run)
    assert (lost["win"], lost["loss"], lost["win_rate_ci"][1]) == (0, 20, pytest.approx(0.1611, abs=1e-4))


def test_a_filled_in_spreadsheet_imports_like_the_page_and_later_answers_supersede(exported):
    import csv

    run, key, out = exported
    rows = list(csv.DictReader((out / "items.csv").open()))
    for i, row in enumerate(rows):
        row.update(choice=["Left", "right", "both bad", ""][i % 4], rater="eve", comment="too long" if i == 1 else "")
    sheet = out.parent / "sheet.csv"
    with sheet.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    later = write_jsonl(out.parent / "later.jsonl", [{"run": rows[0]["run"], "review_set": key["review_set"],
                                                      "review_id": rows[0]["review_id"], "rater": "eve", "choice": "tie"}])
    r = review.import_reviews([sheet, later], run)
    assert r["items_rated"] == 15 and r["superseded"] == 1 and r["both_bad"] == 5 and r["tie"] == 1
    assert r["comments"] == [{"review_id": rows[1]["review_id"], "set": key["items"][1]["set"],
                              "id": key["items"][1]["id"], "rater": "eve",
                              "verdict": "B" if key["items"][1]["left"] == "A" else "A", "comment": "too long"}]


def test_preferences_carry_the_rater_and_leave_out_ties_both_bad_and_contradictions(exported, tmp_path, capsys):
    run, key, out = exported
    ids = [i["review_id"] for i in key["items"]]
    ann = answer_all(out / "items.jsonl", tmp_path / "ann.jsonl", "ann",
                     lambda it: {ids[0]: "tie", ids[1]: "both_bad"}.get(it["review_id"], tuned_pick(it)))
    bob = answer_all(out / "items.jsonl", tmp_path / "bob.jsonl", "bob",
                     lambda it: base_pick(it) if it["review_id"] == ids[2] else tuned_pick(it))
    rows, info = review.preferences([ann, bob], run)
    assert info["left_out"] == {"tie": 1, "both_bad": 1, "contradicted": 2}
    assert len(rows) == 40 - 4 and {r["rater"] for r in rows} == {"ann", "bob"}
    assert all(r["chosen"].endswith("detailed") and r["rejected"].endswith("short") for r in rows)
    assert sorted(rows[0]) == ["chosen", "prompt", "rater", "rejected", "review_id"]
    assert all(r["prompt"].startswith("Question ") for r in rows)
    code, err = run_main(["review", "to-preferences", str(ann), str(bob), "--out", str(tmp_path / "p.jsonl")], capsys)
    assert code == 0 and len((tmp_path / "p.jsonl").read_text().splitlines()) == 36
    code, err = run_main(["review", "to-preferences", str(ann), "--out", str(tmp_path / "p.jsonl")], capsys)
    assert code == 2 and "exists" in err and len((tmp_path / "p.jsonl").read_text().splitlines()) == 36


def test_answers_from_another_run_and_a_bad_choice_are_one_line_each(exported, tmp_path):
    run, key, out = exported
    other = predicted_run(tmp_path, "other", n=3)
    review.export(other, tmp_path / "orev", seed=1)
    theirs = answer_all(tmp_path / "orev" / "items.jsonl", tmp_path / "theirs.jsonl", "ann", tuned_pick)
    with pytest.raises(DataError, match=r"answers from another review set: 0 of 6 review ids are in the 1 review set"):
        review.import_reviews([theirs], run)
    bad = answer_all(out / "items.jsonl", tmp_path / "bad.jsonl", "ann", lambda it: "lft")
    with pytest.raises(DataError, match=rf"^{bad}:1: choice 'lft' is not one of left, right, tie, both_bad$"):
        review.import_reviews([bad], run)
    good = answer_all(out / "items.jsonl", tmp_path / "good.jsonl", "ann", tuned_pick)
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [json.loads(f.read_text().splitlines()[0]) for f in (good, theirs)])
    with pytest.raises(DataError, match=r"mixed.jsonl: answers from 2 review sets .*; import one set at a time"):
        review.import_reviews([mixed], run)


def test_a_missing_side_is_generated_with_the_runs_own_model(tmp_path):
    run = predicted_run(tmp_path, n=4)
    base = [json.loads(line) for line in (run / "predictions_base.jsonl").read_text().splitlines()]
    write_jsonl(run / "predictions_base.jsonl", base[1:])  # val0 was never predicted by the base
    calls = []

    def fake_generate(side, wanted):
        calls.append((side.model, [(w["set"], w["id"], w["prompt"]) for w in wanted]))
        return {(w["set"], w["id"]): {**w, "prediction": "generated"} for w in wanted}

    key = review.export(run, tmp_path / "rev", seed=0, generate=fake_generate)
    assert calls == [("base", [("val", "val0", "Question val 0?")])]
    assert key["generated"] == {f"{run.resolve()}:tuned": 0, f"{run}:base": 1}
    assert next(i for i in key["items"] if i["id"] == "val0")["B"] == "generated" and len(key["items"]) == 8


def test_no_predictions_at_all_says_how_to_get_them(tmp_path):
    run = predicted_run(tmp_path, n=2)
    for p in run.glob("predictions_*.jsonl"):
        p.unlink()
    with pytest.raises(Exception, match=r"eval.generation.enabled=true"):
        review.export(run, tmp_path / "rev", seed=0)
    assert not (tmp_path / "rev").exists()
