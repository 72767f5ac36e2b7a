"""`ftx review export|import|to-preferences`: blind side-by-side review by people (docs/feedback.md).

    ftx review export RUN [--against RUN_B] [--out DIR] [--sets val,test] [--seed N]
    ftx review import FILES… [--run RUN]
    ftx review to-preferences FILES… --out prefs.jsonl [--run RUN]
"""

from __future__ import annotations

import json
from pathlib import Path

from ftx.cli.args import add_out, command_parser, parse
from ftx.errors import DataError
from ftx.record import review
from ftx.record.card import write_card
from ftx.runs import atomic_write_text, output_file

USAGE = "ftx review export|import|to-preferences …"
SUBCOMMANDS = ("export", "import", "to-preferences")


def parser():
    """`ftx review`: the group; each subcommand has its own parser below."""
    p = command_parser("review", f"{USAGE} (ftx review SUBCOMMAND --help)",
                       "Blind side-by-side review of a run's answers by people, unblinded into win rates and "
                       "preference data.\n\n" + "\n".join(__doc__.split("\n\n")[1].splitlines()))
    p.add_argument("subcommand", nargs="?", metavar="SUBCOMMAND", help=", ".join(SUBCOMMANDS))
    return p


def export_parser():
    p = command_parser("review export", "ftx review export RUN [--against RUN_B] [--out DIR] [--sets S,…] [--seed N]",
                       "A blind review set from the run's held-out prompts: base vs tuned, or tuned vs the tuned "
                       "model of RUN_B.\nWrites items.jsonl, items.csv and review.html into DIR (for the reviewers) "
                       "and the unblinding key into RUN/review/<set>/key.json (not for them).")
    p.add_argument("run", metavar="RUN", help="a finished run directory (its tuned model is side A)")
    p.add_argument("--against", metavar="RUN_B", help="compare with this run's tuned model instead of RUN's base")
    p.add_argument("--sets", help="comma-separated prediction sets to review (default: all but offdomain)")
    p.add_argument("--seed", type=int, help="seed of the left/right draw (default: a random one, recorded in the key)")
    add_out(p, "folder for the review files, new or empty unless --overwrite (default: ./review-<set of RUN>)")
    return p


def import_parser():
    p = command_parser("review import", "ftx review import FILES… [--run RUN]",
                       "Unblind reviewers' answers (downloaded answers-*.jsonl, or a filled-in items.csv) into "
                       "RUN/review/<set>/review.json and metrics.json 'review'; the model card is rewritten.")
    p.add_argument("files", nargs="+", metavar="FILES", help="answers files of one review set (one per rater)")
    p.add_argument("--run", metavar="RUN", help="the exported run (default: the run the answers name)")
    return p


def prefs_parser():
    p = command_parser("review to-preferences", "ftx review to-preferences FILES… --out prefs.jsonl [--run RUN]",
                       "Reviewed pairs → preference data {prompt, chosen, rejected, rater, review_id} for "
                       "train.objective=dpo; ties, both-bad and contradicted items are left out (counted).")
    p.add_argument("files", nargs="+", metavar="FILES", help="answers files of one review set")
    p.add_argument("--run", metavar="RUN", help="the exported run (default: the run the answers name)")
    add_out(p, "the preference JSONL file to write (never replaced unless --overwrite)", metavar="FILE", required=True)
    return p


def cmd_review(args: list[str]) -> None:
    if args and args[0] in SUBCOMMANDS:
        {"export": cmd_export, "import": cmd_import, "to-preferences": cmd_prefs}[args[0]](args[1:])
        return
    p = parser()
    ns = parse(p, args)
    if ns.subcommand is None:
        p.error(f"the following arguments are required: SUBCOMMAND ({', '.join(SUBCOMMANDS)})")
    p.error(f"unknown subcommand {ns.subcommand!r} (valid: {', '.join(SUBCOMMANDS)})")


def cmd_export(args: list[str]) -> None:
    ns = parse(export_parser(), args)
    sets = [s.strip() for s in ns.sets.split(",") if s.strip()] if ns.sets else None
    run = Path(ns.run)
    out = Path(ns.out) if ns.out else None
    if out is None:  # the set id needs the items: export into a fixed default named after the run
        out = Path(f"review-{run.resolve().name}")
    key = review.export(run, out, Path(ns.against) if ns.against else None, sets, ns.seed, ns.overwrite)
    gen = {k: v for k, v in key["generated"].items() if v}
    print(f"review set {key['review_set']}: {len(key['items'])} items, A = {key['A']['run']}:{key['A']['model']}, "
          f"B = {key['B']['run']}:{key['B']['model']}, left/right seed {key['seed']}"
          + "".join(f"; generated {v} missing answers of {k}" for k, v in gen.items()))
    print(f"for the reviewers: {out / 'review.html'} (open in a browser; no server), {out / 'items.csv'}, "
          f"{out / 'items.jsonl'}")
    print(f"key (do not share): {review.key_path(Path(key['A']['run']), key['review_set'])}")


def cmd_import(args: list[str]) -> None:
    ns = parse(import_parser(), args)
    r = review.import_reviews([Path(f) for f in ns.files], Path(ns.run) if ns.run else None)
    run = Path(r["A"]["run"])
    lo, hi = r["win_rate_ci"]
    print(f"review set {r['review_set']}: {r['items_rated']}/{r['items_exported']} items rated by "
          f"{len(r['raters'])} rater(s), {r['ratings']} ratings" + (f" ({r['superseded']} superseded)" if r["superseded"] else ""))
    print(f"A ({r['A']['model']} of {r['A']['run']}) vs B ({r['B']['model']} of {r['B']['run']}): "
          f"win {r['win']}, tie {r['tie']}, loss {r['loss']}, both bad {r['both_bad']}")
    if r["win_rate"] is not None:
        print(f"win rate {r['win_rate']:.3f} ({r['level']:.0%} Wilson [{lo:.3f}, {hi:.3f}])")
    ag = r["agreement"]
    if "fleiss_kappa" in ag:
        print(f"agreement: Fleiss' kappa {ag['fleiss_kappa']:.3f} over {ag['fleiss_items']} items; "
              f"{len(r['disputed'])} disputed")
    if "judge_agreement" in r and r["judge_agreement"].get("items"):
        j = r["judge_agreement"]
        print(f"pairwise judge agrees with the reviewers on {j['agree']}/{j['items']} items ({j['rate']:.3f})")
    if (run / "metrics.json").is_file():
        try:
            write_card(run)
        except Exception as e:  # the card is a view; the review block is written already
            print(f"(model card not rewritten: {' '.join(str(e).split())[:200]})")
    print(f"wrote {review.key_path(run, r['review_set']).with_name('review.json')}"
          + (" and metrics.json 'review'" if (run / "metrics.json").is_file() else ""))


def cmd_prefs(args: list[str]) -> None:
    ns = parse(prefs_parser(), args)
    files = [Path(f) for f in ns.files]
    with output_file(Path(ns.out), "--out", overwrite=ns.overwrite, inputs=files) as target:
        rows, info = review.preferences(files, Path(ns.run) if ns.run else None)
        if not rows:
            raise DataError(f"--out {target}: no preference pairs in {len(files)} file(s) "
                              f"({info['ratings']} ratings, left out: {json.dumps(info['left_out'])})")
        atomic_write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    left = ", ".join(f"{v} {k}" for k, v in sorted(info["left_out"].items())) or "none"
    print(f"wrote {len(rows)} preference pairs to {target} from {info['ratings']} ratings of review set "
          f"{info['review_set']} (left out: {left})")
