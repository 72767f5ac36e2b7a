"""From sources to training batches: load → curate → weights → split → decontaminate → format →
mix → curriculum → pack, with one ledger; the run directory gets the split manifest and stats."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from ftx.data import balance
from ftx.data import format as fmt
from ftx.data import versions
from ftx.data.augment import drop_held_out_derivatives
from ftx.data.curate.pipeline import curate
from ftx.data.ledger import Ledger
from ftx.data.plan import (Examples, assign_weights, curriculum, decontaminate, join_prompt_clusters, mix, split,
                           split_key)
from ftx.data.sources import load_sources, text_view
from ftx.errors import DataError
from ftx.runs import sha256_text, write_json
from ftx.spec.curation import CurationConfig
from ftx.spec.data import DataConfig
from ftx.spec.train import PREFERENCE_OBJECTIVES

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test", "general_eval")


@dataclass
class Prepared:
    train: list
    """Training rows in the order to use: examples, or packed rows when data.format.packing."""
    val: list
    test: list
    general_eval: list
    stats: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    train_examples: list = field(default_factory=list)
    """The training examples before packing (same as `train` when not packing)."""
    answers: dict = field(default_factory=dict)
    """record id → the record's accepted `answers` (strings), for records that carry them: what evaluation
    needs beyond the token ids, so it never re-reads the sources."""
    pairs: dict = field(default_factory=dict)
    """split → preference pairs (ftx.data.format.encode_pairs) of the records that carry a `rejected` reply:
    what train.objective=dpo trains on (train) and preference accuracy is measured on (val, test)."""


def load_and_curate(data: DataConfig, curation: CurationConfig, out_dir: Optional[Path] = None,
                    ledger: Optional[Ledger] = None) -> tuple[list[dict], dict, Ledger]:
    ledger = ledger or Ledger()
    records, lineage = load_sources(data.sources, ledger)
    kept = curate(records, curation, ledger, out_dir)
    if not kept:
        worst = max(ledger.summary(), key=lambda s: s["dropped"], default=None)
        raise DataError(f"curation dropped every record ({len(records)} in); most were dropped by stage "
                        f"{worst['stage']!r} ({worst['dropped']}: "
                        f"{', '.join(f'{k}={v}' for k, v in worst['dropped_by_reason'].items())})" if worst else
                        "no records after curation")
    domain_in = sum(r.get("role") == "domain" for r in records)
    hint = demo_seeds_hint(data, curation, ledger, domain_in)
    if domain_in and not any(r.get("role") == "domain" for r in kept):  # else: a split error, not the cause
        raise DataError(f"curation dropped every domain record ({domain_in} in, {len(kept)} general kept): "
                        f"{ledger.cause(role='domain')}; nothing is left to train or validate on"
                        + (f" ({hint})" if hint else ""))
    if hint:
        log.warning("curation: %s", hint)
    return kept, lineage, ledger


DEMO_SEEDS = "asset:demo/"


def demo_seeds_hint(data: DataConfig, curation: CurationConfig, ledger: Ledger, domain_in: int) -> Optional[str]:
    """The shipped default curation scores relevance against ftx's HTTP demo seeds. When a user's own domain
    source loses more than a quarter of its records to that stage, say why and what to set, once."""
    r = curation.relevance
    if not (curation.enabled and "relevance" in curation.stages and r.seeds and domain_in) or \
            not all(str(s).startswith(DEMO_SEEDS) for s in r.seeds):
        return None
    own = sorted(n for n, src in data.sources.items() if getattr(src, "enabled", True)
                 and str(src.role) == "domain" and not str(src.path).startswith("asset:"))
    dropped = sum((d.get("record") or {}).get("role") == "domain" for d in ledger.dropped_records
                  if d["stage"] == "curate:relevance")
    if not own or dropped <= domain_in / 4:
        return None
    return (f"relevance dropped {dropped} of {domain_in} domain records as unlike curation.relevance.seeds, which "
            f"are ftx's HTTP demo examples, not data.sources.{own[0]}'s domain: give seeds (and a labelled dev set) "
            "of your domain, curation.relevance.seeds=[seeds.jsonl] curation.relevance.dev=[dev.jsonl], or leave "
            "relevance out: curation=light")


def plan_splits(data: DataConfig, curation: CurationConfig, out_dir: Optional[Path] = None,
                ledger: Optional[Ledger] = None) -> tuple[dict, dict, dict, Ledger]:
    """Records per split, leak-free: (parts, decontamination counts, lineage, ledger)."""
    kept, lineage, ledger = load_and_curate(data, curation, out_dir, ledger)
    ledger.data_version = versions.compute(kept, asdict(curation))  # before weights: content + curation only
    assign_weights(kept, data)
    join_prompt_clusters(kept)
    parts = split(kept, data, ledger)
    drop_held_out_derivatives(parts, ledger)
    contaminated = decontaminate(parts, data.split, ledger)
    return parts, contaminated, lineage, ledger


def prepare(data: DataConfig, curation: CurationConfig, tok, run_dir: Optional[Path] = None,
            objective: str = "sft") -> Prepared:
    """`objective=dpo` trains on the preference pairs: training records that are not pairs are dropped into the
    ledger (stage dpo, reason not_a_pair); their held-out splits still serve loss and forgetting."""
    parts, contaminated, lineage, ledger = plan_splits(data, curation, run_dir / "curation" if run_dir else None)
    balance_report = balance.apply(parts, data.balance, ledger)
    fmt.prepare_tokenizer(tok, data.format)
    encoded, stats = {}, {"split_records": {k: len(v) for k, v in parts.items()},
                          "decontaminated": contaminated, "format": {}, "balance": balance_report}
    version = ledger.data_version
    if version:
        stats["version"] = {k: version[k] for k in ("id", "records", "curation_hash")}
    for name in SPLITS:
        encoded[name], stats["format"][name] = fmt.encode_all(parts[name], tok, data.format, name, ledger)
    pairs = {}
    for name in ("train", "val", "test"):
        pairs[name], st = fmt.encode_pairs(parts[name], encoded[name], tok, data.format, name, ledger)
        if st["pairs"] or any(r.get("rejected") is not None for r in parts[name]):
            stats.setdefault("pairs", {})[name] = st
    if objective in PREFERENCE_OBJECTIVES:
        encoded["train"] = pairs_only(encoded["train"], {p["id"] for p in pairs["train"]}, parts["train"], ledger,
                                      objective)
        for name, why in (("train", "to train on"), ("val", "to measure preference accuracy on")):
            if not pairs[name]:
                raise DataError(f"train.objective={objective}: no preference pair in the {name} split {why} "
                                f"({len(parts[name])} {name} records, none with a 'rejected' reply that fits "
                                f"data.format.max_length={data.format.max_length}); add a source of "
                                "{prompt, chosen, rejected} records (docs/feedback.md)")
    for name in ("train", "val"):
        if not encoded[name]:
            st = stats["format"][name]
            raise DataError(f"data.format.max_length={data.format.max_length}: all "
                            f"{st['dropped_too_long'] + st['dropped_prompt_too_long']} {name} examples are longer; "
                            "raise it or set data.format.truncation=truncate")
    mixed, stats["mix"] = mix(encoded["train"], data, ledger)
    ordered, stats["curriculum"] = curriculum(mixed, data)
    train: Examples = ordered
    if data.format.packing:
        stages = stats["curriculum"]["stage_sizes"] if data.curriculum.strategy == "stages" else None
        train, stats["packing"] = fmt.pack(ordered, data.format.pack_length or data.format.max_length,
                                           keep_order=ordered.ordered, bands=stages, seed=data.mix.seed)
    for name in SPLITS:
        exs = ordered if name == "train" else encoded[name]
        stats[name] = dict(stats["format"][name], examples=len(exs), tokens=sum(len(e["input_ids"]) for e in exs),
                           response_tokens=sum(e["n_response"] for e in exs))
    ledger.check()
    if run_dir is not None:
        write_run_files(run_dir / "data", parts, ordered, stats, ledger)
        if version:
            versions.write(run_dir / "data", version)
    return Prepared(train, encoded["val"], encoded["test"], encoded["general_eval"], stats, lineage, ledger,
                    train_examples=ordered, answers=accepted_answers(r for part in parts.values() for r in part),
                    pairs=pairs)


def pairs_only(train: list[dict], pair_ids: set, records: list[dict], ledger: Ledger,
               objective: str = "dpo") -> list[dict]:
    """DPO/ORPO train on pairs: the training examples of the pairs kept; every other one dropped with its reason
    (ledger stage: the objective's name)."""
    by_id = {r["id"]: r for r in records}
    kept = []
    for ex in train:
        ledger.record_in(objective, 1)
        if ex["id"] in pair_ids:
            ledger.keep(objective)
            kept.append(ex)
        else:
            rec = by_id.get(ex["id"], {"id": ex["id"], "source": ex.get("source")})
            ledger.drop(objective, "not_a_pair" if rec.get("rejected") is None else "rejected_too_long", rec,
                        detail=f"train.objective={objective} trains on {{prompt, chosen, rejected}} pairs only")
    return kept


def accepted_answers(records) -> dict:
    """id → the record's `answers` list (a string counts as a one-item list), for records that carry one."""
    out = {}
    for r in records:
        a = r.get("answers")
        a = [a] if isinstance(a, str) else a if isinstance(a, list) else []
        if a:
            out[r["id"]] = [str(x) for x in a if isinstance(x, (str, int, float))]
    return out


def write_run_files(out: Path, parts: dict, train_order: list, stats: dict, ledger: Ledger) -> None:
    """split_manifest.json (ids, cluster keys and content hashes per split, and the training order),
    stats.json (counts, achieved mix, truncation, packing), ledger.json and dropped.jsonl."""
    def entries(recs):
        return [{"id": r["id"], "source": r["source"], "role": r["role"], "split_key": split_key(r)[:16],
                 "sha256": sha256_text(text_view(r.get("messages"), r.get("text")))} for r in recs]

    manifest = {name: entries(parts[name]) for name in SPLITS}
    manifest["train_order"] = [e["id"] for e in train_order]
    write_json(out / "split_manifest.json", manifest)
    write_json(out / "stats.json", stats)
    ledger.write(out)


def describe(data: DataConfig) -> list[str]:
    """The data plan in a few lines (for `ftx spec`)."""
    lines = [f"data plan: {data.name}"]
    for name, s in data.sources.items():
        w = s.weight if s.weight is not None else getattr(data.weights, s.role)
        trust = f" × record field {s.fields.weight!r}" if s.fields.weight else ""
        declared = f" split={s.split} (as given)" if str(s.split) != "auto" else ""
        lines.append(f"  source {name}: role={s.role} weight={w:g}{trust}{declared} path={s.path}")
    sp = data.split
    given = sorted({str(s.split) for s in data.sources.values() if str(s.split) in ("val", "test")})
    hashed = [f"{k} {getattr(sp, k):g}" for k in ("val", "test") if k not in given]
    lines.append(f"  split: by content hash of near-duplicate clusters (seed {sp.seed}): domain "
                 f"{', '.join(hashed) or 'nothing'}{'; ' + ', '.join(given) + ' as declared by sources' if given else ''}"
                 f"; general held out {data.general_eval_fraction:g} for forgetting")
    lines.append(f"  decontaminate: val/test/general_eval vs train, {sp.ngram}-gram overlap >= {sp.overlap:g}"
                 if sp.decontaminate else "  decontaminate: off")
    m = data.mix
    if m.domain_ratio is None:
        lines.append("  mix: every training record once (data.mix.domain_ratio=null)")
    else:
        synth = f", synthetic {m.synthetic_ratio:g} of it" if m.synthetic_ratio is not None else ""
        lines.append(f"  mix: domain {m.domain_ratio:g} / general {1 - m.domain_ratio:g}{synth}, counted in {m.unit}; "
                     f"short side: {m.on_short}")
    c = data.curriculum
    lines.append("  curriculum: none (shuffled every epoch)" if c.strategy == "none" else
                 f"  curriculum: {c.strategy} by {c.score} ({'highest' if c.descending else 'lowest'} first"
                 f"{', stages at quantiles ' + str(list(c.stages)) if c.strategy == 'stages' else ''})")
    b = data.balance
    if b.field or b.strategy != "none":
        lines.append(f"  balance: report by {b.field or '-'} and patterns {', '.join(b.patterns) or '-'}; "
                     f"train rebalanced by {b.strategy}" + (f" (cap {b.cap})" if b.strategy == "cap" else ""))
    f = data.format
    lines.append(f"  format: template={f.template}, system_prompt={'set' if f.system_prompt else 'none'}, "
                 f"prompt_loss_weight={f.prompt_loss_weight:g}, max_length={f.max_length}, truncation={f.truncation}, "
                 f"packing={'on, ' + str(f.pack_length or f.max_length) + ' tokens/row' if f.packing else 'off'}")
    return lines


def describe_counts(prep: Prepared) -> list[str]:
    """Record counts and the achieved mix (for `ftx spec --data`)."""
    s = prep.stats
    lines = ["data counts:", "  records per split: " + ", ".join(f"{k} {v}" for k, v in s["split_records"].items())]
    for row in prep.ledger.summary():
        if row["dropped"] or row["modified_by_reason"]:
            lines.append(f"  {row['stage']}: in {row['in']}, dropped {row['dropped_by_reason']}"
                         + (f", modified {row['modified_by_reason']}" if row["modified_by_reason"] else ""))
    m = s["mix"]
    lines.append(f"  train mix: {m['examples']} examples / {m['tokens']} tokens; domain share "
                 f"{m['domain_ratio_examples']:.3f} of examples, {m['domain_ratio_tokens']:.3f} of tokens")
    for src, row in m["by_source"].items():
        lines.append(f"    {src}: {row['examples']} examples ({row['repeats']} repeats), {row['tokens']} tokens")
    if "packing" in s:
        p = s["packing"]
        lines.append(f"  packing: {p['examples']} examples → {p['rows']} rows of {p['pack_length']}, fill {p['fill']:.3f}")
    return lines
