"""Blind side-by-side review by people: export a review set, import the answers, turn them into preferences.

    ftx review export RUN [--against RUN_B] [--out DIR]   items.jsonl, items.csv, review.html (for reviewers)
                                                          + RUN/review/<set>/key.json (kept from them)
    ftx review import FILES… [--run RUN]                  unblinds: RUN/review/<set>/review.json, metrics.json 'review'
    ftx review to-preferences FILES… --out prefs.jsonl    {prompt, chosen, rejected, rater, review_id}

Side A is always the run's tuned model; side B is its base model, or the tuned model of `--against RUN_B`.
The answers are the predictions the run's generation eval already wrote (RUN/predictions_<side>.jsonl,
else RUN/eval/ from `ftx eval`); a prompt one side has and the other lacks is generated with that run's own
model and generation settings. Left/right is drawn per item from a seeded RNG (the seed is recorded in the
key); the reviewer's files never say which model wrote what.

A verdict is one of CHOICES. Per item the raters' verdicts are resolved by majority (ftx.data.curate.agreement:
the same code and kappa statistics as annotator agreement in curation); an item whose raters disagree is
*disputed* and listed; a majority tie counts as a tie. Win rate = items A won / items rated, with a Wilson
interval (statsmodels when installed, else scipy's binomtest, which gives the same interval).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftx.data.format import prepare_tokenizer
from ftx.errors import ConfigError, DataError, RunError
from ftx.eval import generate as gen
from ftx.eval.paired import wilson
from ftx.precision import use_bf16
from ftx.record.rerun import load_models
from ftx.record.rundir import RunRecord, load_run, run_spec
from ftx.runs import atomic_write_text, output_dir, read_json, read_jsonl, write_json

CHOICES = ("left", "right", "tie", "both_bad")
"""What a reviewer may answer about one item (an empty choice in the CSV = not answered)."""
VERDICTS = ("A", "B", "tie", "both_bad")
"""A choice unblinded: A (the run's tuned model) better, B better, tie, both bad."""
SKIPPED_SETS = ("offdomain",)
"""Prediction sets never reviewed by default: the off-domain probe is not the task."""
CSV_FIELDS = ("run", "review_set", "review_id", "prompt", "left", "right", "reference", "choice", "comment", "rater")
LEVEL = 0.95


# -- export ----------------------------------------------------------------------------------------------
@dataclass
class Side:
    """One model of the comparison: a run directory and which of its models (base or tuned)."""

    run: RunRecord
    model: str

    @property
    def label(self) -> str:
        return f"{self.run.path}:{self.model}"

    def describe(self) -> dict:
        return {"run": str(self.run.path.resolve()), "model": self.model, "name": self.run.config.get("name")}


def predictions(side: Side) -> dict[tuple, dict]:
    """(set, id) → prediction row of one side, from the run's own eval (or, failing that, `ftx eval`'s)."""
    for path in (side.run.path / f"predictions_{side.model}.jsonl",
                 side.run.path / "eval" / f"predictions_{side.model}.jsonl"):
        if path.is_file():
            return {(row.get("set"), str(row.get("id"))): row for _, row in read_jsonl(path)}
    return {}


def generate_missing(side: Side, wanted: list[dict]) -> dict[tuple, dict]:
    """Answers of `side` to prompts it has no prediction for, generated with the run's own model, chat format
    and eval.generation settings (greedy unless the run sampled)."""
    spec = run_spec(side.run, [])
    stored = side.run.metrics.get("eval", {}).get("precision")
    bf16 = stored == "bf16" if stored else use_bf16(spec.train.precision)
    model, tok, _path, base = load_models(spec, side.run.path, bf16)
    prepare_tokenizer(tok, spec.data.format)
    ids = [gen.chat_prompt_ids(w["prompt"], tok, spec.data.format) for w in wanted]
    if side.model == "base" and base is None and hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            texts = gen.generate(model, tok, ids, spec.eval.generation, bf16)
    else:
        texts = gen.generate(base if side.model == "base" and base is not None else model, tok, ids,
                             spec.eval.generation, bf16)
    return {(w["set"], w["id"]): {**w, "prediction": t, "generated_by": "ftx review export"}
            for w, t in zip(wanted, texts)}


def pair_items(a: Side, b: Side, sets: Optional[list[str]] = None, generate=generate_missing) -> tuple[list[dict], dict]:
    """Items {set, id, prompt, reference, A, B} both sides answered, generating the missing side; and a note of
    how many were generated per side."""
    pa, pb = predictions(a), predictions(b)
    if not pa and not pb:
        raise RunError(f"{a.run.path}: no predictions to review (neither predictions_{a.model}.jsonl nor "
                       f"predictions_{b.model}.jsonl in it or its eval/; the run had generation off: run "
                       f"`ftx eval {a.run.path} eval.generation.enabled=true` first, which writes them)")
    keys = [k for k in dict.fromkeys([*pa, *pb]) if k[0] not in SKIPPED_SETS or (sets and k[0] in sets)]
    if sets:
        have = sorted({k[0] for k in keys})
        unknown = [s for s in sets if s not in have]
        if unknown:
            raise ConfigError(f"--sets: {', '.join(unknown)} not among the predicted sets of these runs "
                              f"(available: {', '.join(have) or 'none'})")
        keys = [k for k in keys if k[0] in sets]
    generated = {}
    for side, have, other in ((a, pa, pb), (b, pb, pa)):
        missing = [{"set": k[0], "id": k[1], "prompt": other[k].get("prompt"), "answers": other[k].get("answers")}
                   for k in keys if k not in have and other[k].get("prompt")]
        generated[side.label] = len(missing)
        if missing:
            have.update(generate(side, missing))
    items = []
    for k in keys:
        if k in pa and k in pb and (pa[k].get("prompt") or pb[k].get("prompt")):
            ra, rb = pa[k], pb[k]
            answers = ra.get("answers") or rb.get("answers") or []
            items.append({"set": k[0], "id": k[1], "prompt": ra.get("prompt") or rb.get("prompt"),
                          "reference": answers[0] if answers else "", "A": ra["prediction"], "B": rb["prediction"]})
    if not items:
        raise RunError(f"{a.run.path}: no prompt answered by both {a.label} and {b.label}")
    return items, generated


def review_id(item: dict, pair: str) -> str:
    """Stable per prompt (set, id) and pair of models: every export of the same comparison gives a prompt the same
    id; another run's export never does (so answers from another run's review set are recognised)."""
    return "r" + hashlib.sha256(f"{pair}\x00{item['set']}\x00{item['id']}".encode()).hexdigest()[:10]


def blind(items: list[dict], a: Side, b: Side, seed: int) -> dict:
    """The key: a seeded shuffle of the items and, per item, which side is shown on the left."""
    rng = random.Random(seed)
    pair = f"{a.describe()['run']}:{a.model}|{b.describe()['run']}:{b.model}"
    order = list(items)
    rng.shuffle(order)
    rows = []
    for it in order:
        left = rng.choice("AB")
        rows.append({"review_id": review_id(it, pair), "set": it["set"], "id": it["id"], "left": left,
                     "prompt": it["prompt"], "reference": it["reference"], "A": it["A"], "B": it["B"]})
    ident = hashlib.sha256(json.dumps([a.label, b.label, seed, [r["review_id"] for r in rows]]).encode()).hexdigest()
    return {"review_set": "rs" + ident[:8], "seed": seed, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "A": a.describe(), "B": b.describe(), "choices": list(CHOICES), "items": rows}


def shown(key: dict) -> list[dict]:
    """What a reviewer sees: the items with left/right texts, no side names."""
    out = []
    for r in key["items"]:
        right = "B" if r["left"] == "A" else "A"
        out.append({"run": key["A"]["run"], "review_set": key["review_set"], "review_id": r["review_id"],
                    "prompt": r["prompt"],
                    "left": r[r["left"]], "right": r[right], "reference": r["reference"]})
    return out


def key_path(run_dir: Path, review_set: str) -> Path:
    return Path(run_dir) / "review" / review_set / "key.json"


def write_export(key: dict, out: Path, title: str) -> list[Path]:
    """items.jsonl, items.csv (the same items, with empty choice/comment/rater columns for a spreadsheet) and
    review.html into `out` (a temporary folder from ftx.runs.output_dir)."""
    rows = shown(key)
    atomic_write_text(out / "items.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "choice": "", "comment": "", "rater": ""})
    atomic_write_text(out / "items.csv", buf.getvalue())
    atomic_write_text(out / "review.html", page(key["review_set"], rows, title))
    return [out / "items.jsonl", out / "items.csv", out / "review.html"]


def page(review_set: str, rows: list[dict], title: str) -> str:
    """One self-contained HTML page: no server, no network, no library. The data sits in a JSON script tag
    (`</` escaped); every text is inserted with textContent, never as HTML."""
    data = json.dumps({"review_set": review_set, "run": rows[0]["run"] if rows else "", "choices": list(CHOICES),
                       "items": [{k: v for k, v in r.items() if k not in ("run", "review_set")} for r in rows]},
                      ensure_ascii=False).replace("</", "<\\/")
    return PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", data)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}
.item{border:1px solid #ccc;border-radius:6px;padding:.8em;margin:1em 0}.item.done{border-color:#3a3}
.prompt{font-weight:600;white-space:pre-wrap}.cols{display:flex;gap:1em;margin:.6em 0}
.cols>div{flex:1;background:#f6f6f6;padding:.6em;white-space:pre-wrap;border-radius:4px}
.cols h4{margin:0 0 .3em}details{margin:.3em 0;color:#555}label{margin-right:1.2em}
textarea{width:100%;height:2.6em}#bar{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd}
</style></head><body>
<div id="bar"><b>__TITLE__</b> — which answer is better? Rater name: <input id="rater" size="16">
<span id="progress"></span> <button id="download">Download answers</button> <span id="msg"></span></div>
<div id="items"></div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const LABEL = {left: "Left", right: "Right", tie: "Tie", both_bad: "Both bad"};
const store = "ftx-review-" + D.review_set;
const saved = JSON.parse(localStorage.getItem(store) || "{}");
const answers = saved.answers || {};
const el = (tag, props, kids) => { const e = document.createElement(tag); Object.assign(e, props || {});
  (kids || []).forEach(k => e.append(k)); return e; };
function persist() { localStorage.setItem(store, JSON.stringify({rater: rater.value, answers}));
  const n = Object.values(answers).filter(a => a.choice).length;
  document.getElementById("progress").textContent = n + " / " + D.items.length + " answered"; }
const rater = document.getElementById("rater"); rater.value = saved.rater || ""; rater.oninput = persist;
D.items.forEach((it, i) => {
  const a = answers[it.review_id] || (answers[it.review_id] = {choice: "", comment: ""});
  const box = el("div", {className: "item" + (a.choice ? " done" : ""), id: it.review_id});
  box.append(el("div", {className: "prompt", textContent: (i + 1) + ". " + it.prompt}));
  if (it.reference) box.append(el("details", {}, [el("summary", {textContent: "reference answer"}),
    el("div", {textContent: it.reference})]));
  box.append(el("div", {className: "cols"}, [el("div", {}, [el("h4", {textContent: "Left"}), it.left]),
    el("div", {}, [el("h4", {textContent: "Right"}), it.right])]));
  D.choices.forEach(c => { const r = el("input", {type: "radio", name: it.review_id, value: c, checked: a.choice === c});
    r.onchange = () => { a.choice = c; box.classList.add("done"); persist(); };
    box.append(el("label", {}, [r, " " + LABEL[c]])); });
  const t = el("textarea", {placeholder: "comment (optional)", value: a.comment, className: "comment"});
  t.oninput = () => { a.comment = t.value; persist(); }; box.append(t);
  document.getElementById("items").append(box);
});
persist();
document.getElementById("download").onclick = () => {
  const who = rater.value.trim(), msg = document.getElementById("msg");
  if (!who) { msg.textContent = "enter your name first"; rater.focus(); return; }
  const lines = D.items.filter(it => answers[it.review_id].choice).map(it => JSON.stringify({run: D.run, review_set: D.review_set,
    review_id: it.review_id, rater: who, choice: answers[it.review_id].choice, comment: answers[it.review_id].comment}));
  const url = URL.createObjectURL(new Blob([lines.join("\\n") + (lines.length ? "\\n" : "")], {type: "application/x-ndjson"}));
  const link = el("a", {href: url, download: "answers-" + D.review_set + "-" + who.replace(/[^\\w.-]+/g, "_") + ".jsonl"});
  document.body.append(link); link.click(); link.remove(); setTimeout(() => URL.revokeObjectURL(url), 1000);
  msg.textContent = lines.length + " answers saved";
};
</script></body></html>
"""


def export(run_dir: Path, out: Path, against: Optional[Path] = None, sets: Optional[list[str]] = None,
           seed: Optional[int] = None, overwrite: bool = False, generate=generate_missing) -> dict:
    """Build and write a review set; returns the key (also written to RUN/review/<set>/key.json)."""
    a_run = load_run(run_dir)
    a = Side(a_run, "tuned")
    b = Side(load_run(against), "tuned") if against else Side(a_run, "base")
    if against and Path(against).resolve() == Path(run_dir).resolve():
        raise ConfigError(f"--against {against}: is RUN itself (give another run, or leave --against out for "
                          "base vs tuned)")
    seed = secrets.randbelow(2**31) if seed is None else seed
    with output_dir(out, "--out", overwrite=overwrite, inputs=[a.run.path, b.run.path],
                    command="ftx review export") as tmp:
        items, generated = pair_items(a, b, sets, generate)
        key = blind(items, a, b, seed)
        key["generated"] = generated
        write_export(key, tmp, f"ftx review {key['review_set']}")
        write_json(key_path(a.run.path, key["review_set"]), key)
    return key


# -- reading answers -----------------------------------------------------------------------------------
@dataclass
class Rating:
    run: str
    review_set: str
    review_id: str
    rater: str
    choice: str
    comment: str
    where: str


def read_answers(path: Path) -> list[Rating]:
    """A downloaded answers file (JSONL) or a filled-in items.csv; a bad choice is a DataError at file:line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("review_set", "review_id", "choice") if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: not a review file (no column {', '.join(map(repr, missing))}; columns: "
                                f"{', '.join(reader.fieldnames or [])}; `ftx review export` writes items.csv)")
            rows = [(reader.line_num, row) for row in reader]
    else:
        rows = list(read_jsonl(path))
    out = []
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        choice = (row.get("choice") or "").strip().lower().replace(" ", "_")
        if not choice:
            continue  # not answered (a spreadsheet row left empty)
        if choice not in CHOICES:
            raise DataError(f"{where}: choice {row.get('choice')!r} is not one of {', '.join(CHOICES)}")
        if not row.get("review_set") or not row.get("review_id"):
            raise DataError(f"{where}: no review_set/review_id (not an answers file of `ftx review export`)")
        out.append(Rating(str(row.get("run") or ""), str(row["review_set"]), str(row["review_id"]), str(row.get("rater") or "").strip()
                          or path.stem, choice, str(row.get("comment") or "").strip(), where))
    return out


def find_key(ratings: list[Rating], path: Path, run_dir: Optional[Path]) -> tuple[Path, dict]:
    """The key of the review set the answers belong to; a file from another run's set is one line saying how many
    of its review ids match."""
    sets = Counter(r.review_set for r in ratings)
    if len(sets) > 1:
        raise DataError(f"{path}: answers from {len(sets)} review sets ({', '.join(sets)}); import one set at a time")
    rs = next(iter(sets))
    ids = {r.review_id for r in ratings}
    if run_dir is None:
        runs = {r.run for r in ratings}
        if runs == {""} or len(runs) > 1:
            raise DataError(f"{path}: the answers do not name their run (give --run RUN, the run exported)")
        run_dir = Path(next(iter(runs)))
        if not run_dir.is_dir():
            raise DataError(f"{path}: its run {run_dir} is not there any more (give --run RUN where it is now)")
    kp = key_path(run_dir, rs)
    if not kp.is_file():
        keys = sorted((Path(run_dir) / "review").glob("*/key.json"))
        known = set().union(*({i["review_id"] for i in read_json(k)["items"]} for k in keys))
        raise DataError(f"{path}: answers from another review set: {len(ids & known)} of {len(ids)} review ids are "
                        f"in the {len(keys)} review set(s) exported from {run_dir} (import each run's answers with "
                        "that run's --run)")
    key = read_json(kp)
    known = {i["review_id"] for i in key["items"]}
    stray = ids - known
    if stray:
        raise DataError(f"{path}: {len(stray)} of {len(ids)} review ids are not in review set {rs} of {run_dir} "
                        f"(e.g. {sorted(stray)[0]}); the file is from another export")
    return kp, key


def load_ratings(files: list[Path], run_dir: Optional[Path]) -> tuple[dict, list[dict], dict]:
    """(key, unblinded ratings, bookkeeping) from one or more answers files of one review set. A rater's later
    answer to an item replaces an earlier one (counted as superseded)."""
    key, kp, latest, superseded = None, None, {}, 0
    for f in files:
        ratings = read_answers(Path(f))
        if not ratings:
            raise DataError(f"{f}: no answers in it (every choice is empty)")
        k_path, k = find_key(ratings, Path(f), run_dir)
        if kp is not None and k_path != kp:
            raise DataError(f"{f}: from review set {k['review_set']}, the other files from {key['review_set']}; "
                            "import one set at a time")
        kp, key = k_path, k
        for r in ratings:
            superseded += (r.rater, r.review_id) in latest
            latest[(r.rater, r.review_id)] = r
    by_id = {i["review_id"]: i for i in key["items"]}
    out = []
    for r in latest.values():
        it = by_id[r.review_id]
        verdict = {"left": it["left"], "right": "B" if it["left"] == "A" else "A"}.get(r.choice, r.choice)
        out.append({"review_id": r.review_id, "set": it["set"], "id": it["id"], "rater": r.rater, "choice": r.choice,
                    "verdict": verdict, "comment": r.comment, "where": r.where})
    return key, out, {"files": [str(f) for f in files], "superseded": superseded, "key": str(kp)}


# -- statistics --------------------------------------------------------------------------------------------
def summarize(key: dict, ratings: list[dict], judge: Optional[dict] = None) -> dict:
    """The review block: per-item majority verdicts → win/tie/loss with Wilson intervals; per-rater counts;
    agreement (Fleiss/Cohen via ftx.data.curate.agreement.statistics); disputed items; comments."""
    from ftx.data.curate.agreement import resolve, statistics

    per_item: dict[str, dict] = {}
    for r in ratings:
        per_item.setdefault(r["review_id"], {})[r["rater"]] = r["verdict"]
    outcome = Counter()
    disputed, verdicts = [], {}
    for rid, labels in per_item.items():
        top, share, tie = resolve(labels)
        verdict = "tie" if tie else top
        verdicts[rid] = verdict
        outcome[verdict] += 1
        if len(labels) > 1 and share < 1.0:
            it = next(i for i in key["items"] if i["review_id"] == rid)
            disputed.append({"review_id": rid, "set": it["set"], "id": it["id"], "verdicts": labels,
                             "agreement": round(share, 4), "resolved": verdict})
    n = len(per_item)
    wins, losses = outcome["A"], outcome["B"]
    raters = {}
    for r in ratings:
        c = raters.setdefault(r["rater"], {v: 0 for v in VERDICTS} | {"total": 0})
        c[r["verdict"]] += 1
        c["total"] += 1
    agreement = statistics([labels for labels in per_item.values() if len(labels) > 1], named=True)
    multi = [labels for labels in per_item.values() if len(labels) > 1]
    if multi:
        agreement["unanimous_share"] = round(sum(len(set(x.values())) == 1 for x in multi) / len(multi), 4)
    out = {"review_set": key["review_set"], "A": key["A"], "B": key["B"], "seed": key["seed"],
           "items_exported": len(key["items"]), "items_rated": n, "ratings": len(ratings),
           "win": wins, "tie": outcome["tie"], "loss": losses, "both_bad": outcome["both_bad"],
           "win_rate": round(wins / n, 4) if n else None, "win_rate_ci": wilson(wins, n),
           "loss_rate": round(losses / n, 4) if n else None, "tie_rate": round(outcome["tie"] / n, 4) if n else None,
           "both_bad_rate": round(outcome["both_bad"] / n, 4) if n else None,
           "decisive_win_rate": round(wins / (wins + losses), 4) if wins + losses else None,
           "decisive_win_rate_ci": wilson(wins, wins + losses), "level": LEVEL,
           "raters": raters, "agreement": agreement, "disputed": disputed,
           "comments": [{"review_id": r["review_id"], "set": r["set"], "id": r["id"], "rater": r["rater"],
                         "verdict": r["verdict"], "comment": r["comment"]} for r in ratings if r["comment"]],
           "verdicts": verdicts}
    if judge:
        out["judge_agreement"] = judge_agreement(key, verdicts, judge)
    return out


def judge_agreement(key: dict, verdicts: dict, judge: dict) -> dict:
    """Share of items where the pairwise judge's verdict (A/B/tie, tuned = A) equals the human majority; items
    the humans called both bad are left out (the judge has no such verdict)."""
    by_id = {i["review_id"]: (i["set"], str(i["id"])) for i in key["items"]}
    both = [(v, judge[by_id[rid]]) for rid, v in verdicts.items() if v != "both_bad" and by_id[rid] in judge]
    if not both:
        return {"items": 0}
    same = sum(h == j for h, j in both)
    return {"items": len(both), "agree": same, "rate": round(same / len(both), 4), "ci": wilson(same, len(both))}


def pairwise_verdicts(run_dir: Path, key: dict) -> Optional[dict]:
    """The pairwise judge's per-item verdicts (RUN/pairwise_judge.jsonl or RUN/eval/'s), as A/B/tie with A = tuned, when the
    review compares the run's own base and tuned models; None otherwise."""
    p = next((q for q in (Path(run_dir) / "eval" / "pairwise_judge.jsonl", Path(run_dir) / "pairwise_judge.jsonl")
              if q.is_file()), None)  # `ftx eval`'s (the newer) first
    if key["B"]["model"] != "base" or key["B"]["run"] != key["A"]["run"] or p is None:
        return None
    side = {"tuned": "A", "base": "B", "tie": "tie"}
    return {(r["set"], str(r["id"])): side[r["verdict"]] for _, r in read_jsonl(p)}


def import_reviews(files: list[Path], run_dir: Optional[Path]) -> dict:
    """Unblind the answers and write RUN/review/<set>/review.json and metrics.json 'review' (the latest
    import); the model card is rewritten so it shows the win rate."""
    key, ratings, book = load_ratings(files, run_dir)
    run_dir = Path(key["A"]["run"]) if run_dir is None else Path(run_dir)
    result = summarize(key, ratings, pairwise_verdicts(run_dir, key))
    result.update(imported=time.strftime("%Y-%m-%dT%H:%M:%S%z"), files=book["files"], superseded=book["superseded"])
    write_json(key_path(run_dir, key["review_set"]).with_name("review.json"), result)
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = read_json(metrics_path)
        metrics["review"] = {k: v for k, v in result.items() if k not in ("verdicts", "comments", "disputed")} | {
            "disputed": len(result["disputed"]), "comments": len(result["comments"]),
            "path": str(key_path(run_dir, key["review_set"]).with_name("review.json"))}
        write_json(metrics_path, metrics)
    return result


def preferences(files: list[Path], run_dir: Optional[Path]) -> tuple[list[dict], dict]:
    """Reviewed pairs → {prompt, chosen, rejected, rater, review_id}, one per rating that picked a side. Left out,
    each counted by reason: ties, both bad, items whose raters picked opposite sides (contradictory pairs)."""
    key, ratings, book = load_ratings(files, run_dir)
    by_id = {i["review_id"]: i for i in key["items"]}
    sides: dict[str, set] = {}
    for r in ratings:
        if r["verdict"] in ("A", "B"):
            sides.setdefault(r["review_id"], set()).add(r["verdict"])
    rows, dropped = [], Counter()
    for r in ratings:
        it = by_id[r["review_id"]]
        if r["verdict"] not in ("A", "B"):
            dropped[r["verdict"]] += 1
            continue
        if len(sides[r["review_id"]]) > 1:
            dropped["contradicted"] += 1
            continue
        other = "B" if r["verdict"] == "A" else "A"
        if it[r["verdict"]].strip() == it[other].strip():
            dropped["identical_answers"] += 1
            continue
        rows.append({"prompt": it["prompt"], "chosen": it[r["verdict"]], "rejected": it[other],
                     "rater": r["rater"], "review_id": r["review_id"]})
    return rows, {"review_set": key["review_set"], "ratings": len(ratings), "written": len(rows),
                  "left_out": dict(dropped), "superseded": book["superseded"]}
