"""`ftx eval RUN_DIR [overrides] [--check]`: re-evaluate a finished run.

Rebuilds the run from its own record (ftx.record.rundir) — config.yaml (the resolved spec), the base model it names and
adapter/ — re-derives the same held-out splits (the split is a content hash), and measures base
(adapter disabled) and tuned under the precision the run evaluated with (metrics.json eval.precision:
a bf16-trained run is measured under bf16 autocast, like with like). Results go to RUN_DIR/eval/
(eval.json and predictions) and into metrics.json under `reeval`, with a reproduction check against
the stored base/tuned metrics (eval.reproduce_rtol). Overrides (eval.golden.path=…) change what is
measured; --check exits 1 when the stored metrics are not reproduced.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ftx.errors import RunError
from ftx.record.rundir import load_run, run_spec
from ftx.runs import flatten
from ftx.engine import dist, model as model_mod, quant as quant_mod
from ftx.engine.build import base_dtype
from ftx.eval import harness
from ftx.eval.ops import PREFIX as OPS_PREFIX
from ftx.eval.suite import Evaluator
from ftx.precision import use_bf16
from ftx.runs import read_json, write_json
from ftx.track import tracker as track

log = logging.getLogger("ftx")


def load_models(spec, run_dir: Path, train_bf16: bool):
    """(tuned model, tokenizer, base path, separate base model or None when the adapter can be disabled).

    The base is loaded as training loaded it (ftx.engine.build.build_model minus the PEFT wrap): the same
    weight dtype, quantisation and k-bit preparation, so the numbers can match."""
    from dataclasses import replace

    path = model_mod.resolve_model_path(spec.model)
    tok = model_mod.load_tokenizer(spec.model, path)
    adapter = run_dir / "adapter"
    mcfg = replace(spec.model, dtype=base_dtype(spec, train_bf16))
    if spec.lora.method == "full":  # adapter/ holds the whole tuned model; the base is loaded beside it
        tuned = model_mod.load_model(mcfg, str(adapter))
        base = model_mod.load_model(mcfg, path) if spec.eval.base_vs_tuned else None
        return tuned, tok, path, base
    from peft import PeftModel
    from safetensors import SafetensorError

    model = model_mod.load_model(mcfg, path, quant_mod.bnb_config(spec.quant, train_bf16),
                                 device_map=quant_mod.device_map(spec.quant))
    if spec.quant.enabled:  # the 4-bit CPU guard and k-bit preparation (fp32 norms) training ran with
        model = quant_mod.prepare(model, spec.quant, False)
    try:
        model = PeftModel.from_pretrained(model, str(adapter))
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        raise RunError(f"{adapter}: cannot load the adapter onto {path} ({str(e).splitlines()[0]})") from None
    return model, tok, path, None


def reproduction(stored: dict, fresh: dict, rtol: float) -> dict:
    """Compare re-evaluated against stored metrics: |new − old| <= rtol · max(|old|, 1) per key."""
    diffs, failed = {}, []
    for side in ("base", "tuned"):
        for k, old in stored.get(side, {}).items():
            if k.startswith(OPS_PREFIX):  # timings are measured again, never reproduced
                continue
            new = fresh.get(side, {}).get(k)
            if isinstance(old, (int, float)) and isinstance(new, (int, float)):
                d = abs(new - old)
                diffs[f"{side}/{k}"] = d
                if d > rtol * max(abs(old), 1.0):
                    failed.append(f"{side}/{k}: stored {old:.6g}, now {new:.6g}")
    return {"ok": bool(diffs) and not failed, "rtol": rtol, "compared": len(diffs),
            "max_abs_diff": max(diffs.values(), default=None), "failed": failed}


def reevaluate(run_dir: Path, overrides: list[str]) -> dict:
    from ftx.data.build import prepare
    from ftx.data.format import prepare_tokenizer

    record = load_run(run_dir, finished=True)
    spec, stored, manifest = run_spec(record, overrides), record.metrics, record.manifest
    dist.apply_threads(spec.train.threads)
    stored_precision = stored.get("eval", {}).get("precision")
    # Training's precision decides how the base was loaded; with eval.precision=train it is what the
    # run recorded (precision=auto may resolve differently on another machine).
    train_bf16 = (stored_precision == "bf16" if stored_precision and spec.train.precision == "auto"
                  and spec.eval.precision == "train" else use_bf16(spec.train.precision))
    bf16 = train_bf16 if spec.eval.precision == "train" else spec.eval.precision == "bf16"
    harness.check(spec.eval.harness)  # eval.harness.tasks=[…]: a bad name fails before the models load
    model, tok, path, base = load_models(spec, run_dir, train_bf16)
    prepare_tokenizer(tok, spec.data.format)
    data = prepare(spec.data, spec.curation, tok, None)
    changed = sorted(n for n, s in data.lineage.items()
                     if manifest.get("data_sources", {}).get(n, {}).get("sha256") not in (None, s["sha256"]))
    out_dir = run_dir / "eval"
    ev = Evaluator(spec, tok, data, bf16, out_dir, path)
    result: dict = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "overrides": overrides,
                    "data_changed": changed}
    if spec.eval.base_vs_tuned:
        if base is None:  # PEFT: the adapter switched off is exactly the base model
            with model.disable_adapter():
                result["base"] = ev.run(model, "base")
        else:
            result["base"] = ev.run(base, "base")
            del base
    result["tuned"] = ev.run(model, "tuned")
    result.update(ev.compare())
    result["reproduced"] = reproduction(stored, result, spec.eval.reproduce_rtol)
    if stored_precision and stored_precision != result["eval"]["precision"]:
        result["reproduced"]["note"] = (f"stored metrics were measured in {stored_precision}, these in "
                                        f"{result['eval']['precision']}: not like with like")
    measured = [o for o in overrides if not o.split("=")[0].lstrip("+~").startswith("tracking.")]
    if measured:
        result["reproduced"]["note"] = "; ".join(filter(None, [result["reproduced"].get("note"), (
            f"overrides {' '.join(measured)} change what is measured: differences may be intended")]))
    if changed:
        log.warning("data changed since training (%s): the re-evaluation measures different data", ", ".join(changed))
    write_json(out_dir / "eval.json", result)
    stored["reeval"] = result
    write_json(run_dir / "metrics.json", stored)
    publish(spec, run_dir, result)
    return result


def publish(spec, run_dir: Path, result: dict) -> None:
    """Re-evaluation into W&B: `ftx.track.tracker.log_eval(tracking_cfg, run_dir, result)` when the tracking
    module offers it, else a small session of our own that resumes the run's W&B id (tracking.json)."""
    hook = getattr(track, "log_eval", None)
    if hook is not None:
        hook(spec.tracking, run_dir, result)
    elif spec.tracking.backend == "wandb":
        _wandb_summary(spec.tracking, run_dir, result)


def _wandb_summary(cfg, run_dir: Path, result: dict) -> None:
    mode = track.resolve_mode(cfg)
    if mode == "disabled":
        return
    info = read_json(run_dir / "tracking.json") if (run_dir / "tracking.json").is_file() else {}
    try:
        import wandb

        run = wandb.init(project=info.get("project") or cfg.project, entity=info.get("entity") or cfg.entity,
                         id=info.get("run_id"), resume="allow" if info.get("run_id") else None, mode=mode,
                         dir=str(run_dir), job_type="eval", reinit="finish_previous")
        try:
            run.summary.update(flatten(result, "/", "reeval", scalars_only=True))
        finally:
            run.finish()
    except Exception as e:  # tracking never fails an evaluation
        log.warning("W&B update of the re-evaluation failed: %s", " ".join(str(e).split())[:300])


