"""The review half of the feedback loop on a real tiny run, with the page driven in a real headless browser
(Debian's chromium + chromium-driver through Selenium): export → click through → download → import → compare,
model card, preferences."""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import only_run_dir, run_ftx, write_jsonl

WORDS = "request header status cache proxy cookie server client method body token route".split()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")

    def rec(i, kind):
        w = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(5)]
        return {"id": f"{kind}{i}", "prompt": f"What is {w[0]} {w[1]} in case {i}?", "response": f"It is {' '.join(w)}."}

    write_jsonl(root / "domain.jsonl", [rec(i, "d") for i in range(40)])
    write_jsonl(root / "general.jsonl", [rec(i, "g") for i in range(16)])
    r = run_ftx(["train", "experiment=tiny_smoke", f"data.sources.http.path={root / 'domain.jsonl'}",
                 f"data.sources.general.path={root / 'general.jsonl'}", "eval.generation.max_new_tokens=8"], root)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, only_run_dir(root)


def browser(download_dir: Path):
    """Headless Debian chromium: no network, no first-run, no sync; a fresh profile; downloads into a folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tempfile.mkdtemp(prefix='ftx-chromium-')}"):
        o.add_argument(flag)
    o.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                        "download.prompt_for_download": False})
    return webdriver.Chrome(options=o, service=Service("/usr/bin/chromedriver"))


def wait_for(pattern: str, folder: Path, timeout: float = 30) -> Path:
    end = time.time() + timeout
    while time.time() < end:
        done = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no download matching {pattern} in {folder}: {list(folder.iterdir())}")


def ftx(capsys, *args: str) -> tuple[int, str, str]:
    """`ftx ARGS` in-process (the run itself is a subprocess): (exit code, stdout, stderr)."""
    from ftx.cli import main as cli

    try:
        cli.main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_review_page_in_a_real_browser_round_trips_to_the_win_rate(tiny_run, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    root, run = tiny_run
    base = [json.loads(line) for line in (run / "predictions_base.jsonl").read_text().splitlines()]
    # two prompts the base never answered (generated now); the tiny random model answers the same before and after
    # training, so the base's other answers are marked to tell the sides apart
    write_jsonl(run / "predictions_base.jsonl", [{**b, "prediction": b["prediction"] + " ~"} for b in base[2:]])
    code, out, err = ftx(capsys, "review", "export", str(run), "--out", str(tmp_path / "rev"), "--seed", "11")
    assert code == 0, err
    assert f"generated 2 missing answers of {run}:base" in out, out
    key = json.loads(next((run / "review").glob("*/key.json")).read_text())
    assert key["seed"] == 11 and len(key["items"]) == len({(b["set"], b["id"]) for b in base if b["set"] != "offdomain"})
    by_id = {i["review_id"]: i for i in key["items"]}
    tie_id = key["items"][0]["review_id"]

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    d = browser(downloads)
    try:
        d.get((tmp_path / "rev" / "review.html").as_uri())
        boxes = d.find_elements(By.CSS_SELECTOR, ".item")
        assert [b.get_attribute("id") for b in boxes] == list(by_id)
        first = by_id[boxes[0].get_attribute("id")]
        cols = boxes[0].find_elements(By.CSS_SELECTOR, ".cols > div")
        assert cols[0].text.removeprefix("Left").strip() == first[first["left"]].strip()  # the text, as written
        for box in boxes:  # a reviewer who always prefers the tuned model, and calls one item a tie
            rid = box.get_attribute("id")
            choice = "tie" if rid == tie_id else ("left" if by_id[rid]["left"] == "A" else "right")
            box.find_element(By.CSS_SELECTOR, f"input[value={choice}]").click()
        boxes[1].find_element(By.CSS_SELECTOR, "textarea").send_keys("clearer, but <b>terse</b>")
        assert d.find_element(By.ID, "progress").text == f"{len(boxes)} / {len(boxes)} answered"
        d.refresh()  # answers survive a reload (kept in the browser's local storage)
        assert d.find_element(By.ID, "progress").text == f"{len(boxes)} / {len(boxes)} answered"
        d.find_element(By.ID, "download").click()
        assert d.find_element(By.ID, "msg").text == "enter your name first" and not list(downloads.iterdir())
        d.find_element(By.ID, "rater").send_keys("dr ann")
        d.find_element(By.ID, "download").click()
        answers = wait_for("answers-*.jsonl", downloads)
    finally:
        d.quit()
    assert answers.name == f"answers-{key['review_set']}-dr_ann.jsonl"

    code, out, err = ftx(capsys, "review", "import", str(answers))
    assert code == 0, err
    n = len(by_id)
    metrics = json.loads((run / "metrics.json").read_text())["review"]
    assert (metrics["win"], metrics["tie"], metrics["loss"], metrics["items_rated"]) == (n - 1, 1, 0, n)
    assert metrics["raters"] == {"dr ann": {"A": n - 1, "B": 0, "tie": 1, "both_bad": 0, "total": n}}
    full = json.loads((run / "review" / key["review_set"] / "review.json").read_text())
    assert full["comments"][0]["comment"] == "clearer, but <b>terse</b>" and full["comments"][0]["verdict"] == "A"
    assert f"win rate {(n - 1) / n:.3f}" in out
    card = (run / "adapter" / "README.md").read_text()
    assert "Blind human review against its base model: win rate" in card and f"over {n} items" in card

    code, out, err = ftx(capsys, "compare", str(run), "--out", str(tmp_path / "cmp"))
    assert code == 0, err
    row = next(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert float(row["review/win_rate"]) == metrics["win_rate"] and row["tuned/val_loss"]

    code, out, err = ftx(capsys, "review", "to-preferences", str(answers), "--out", str(tmp_path / "prefs.jsonl"))
    assert code == 0, err
    assert "1 tie)" in out and "2 identical_answers" in out, out  # the two generated base answers = tuned
    prefs = [json.loads(line) for line in (tmp_path / "prefs.jsonl").read_text().splitlines()]
    identical = sum(i["A"].strip() == i["B"].strip() for rid, i in by_id.items() if rid != tie_id)
    assert len(prefs) == n - 1 - identical and all(p["rater"] == "dr ann" for p in prefs)
    assert all(p["chosen"] == by_id[p["review_id"]]["A"] and p["rejected"] == by_id[p["review_id"]]["B"] for p in prefs)
