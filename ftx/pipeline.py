"""One run, as data flows through it: record spec → data → model → train → evaluate → record."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ftx.runs import MetricsLog, environment, read_json, write_json

log = logging.getLogger("ftx")


def record_spec(spec, cfg, run_dir: Path, overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    from ftx.runs import atomic_write_text
    from ftx.spec import as_dict, spec_hash

    resolved = as_dict(spec)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(resolved)))
    atomic_write_text(run_dir / "overrides.txt", "".join(o + "\n" for o in overrides))
    manifest = {"spec_hash": spec_hash(resolved), "name": spec.name, "overrides": overrides,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment()}
    write_json(run_dir / "manifest.json", manifest)
    return manifest


def execute(spec, cfg, run_dir: Path, overrides: list[str]) -> float:
    from ftx.track import Tracker

    with Tracker(spec.tracking) as tracker:  # the W&B run is finished whatever happens (multirun-safe)
        return _execute(spec, cfg, run_dir, overrides, tracker)


def _execute(spec, cfg, run_dir: Path, overrides: list[str], tracker) -> float:
    from ftx import lora as lora_mod
    from ftx import model as model_mod
    from ftx import optim as optim_mod
    from ftx.data.build import prepare
    from ftx.data.format import Collator
    from ftx.track import metrics_callback
    from ftx.train import apply_threads, build_model, is_main_process, use_bf16
    from ftx.trainer import make_trainer_class, resume_checkpoint, training_arguments
    from ftx.zero import prepare_deepspeed

    t0 = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    main = is_main_process()
    resume = resume_checkpoint(spec, run_dir)  # before record_spec overwrites the old config
    manifest = record_spec(spec, cfg, run_dir, overrides) if main else {}
    tracker.start(spec, run_dir, overrides)
    apply_threads(spec.train.threads)
    bf16 = use_bf16(spec.train.precision)

    # Data first: bad data fails in seconds, before a model is loaded.
    path = model_mod.resolve_model_path(spec.model)
    tok = model_mod.load_tokenizer(spec.model, path)
    data = prepare(spec.data, spec.curation, tok, run_dir if main else None)
    log.info("data: %s", {k: data.stats[k]["examples"] for k in ("train", "val", "test", "general_eval")})
    from ftx.eval.suite import Evaluator

    evaluator = Evaluator(spec, tok, data, bf16, run_dir if main else None, path)  # bad prompt files fail here

    # Model: load → quantise (4-bit CPU gradient trap guarded before the base evaluation below) → wrap.
    model = build_model(spec, path, bf16)
    params = lora_mod.count_parameters(model)
    log.info("trainable parameters: %s", params)

    collator = Collator(tok.pad_token_id)
    metrics: dict = {"params": params, "data": data.stats}
    if spec.eval.base_vs_tuned:
        # LoRA B starts at zero, so the wrapped model still computes the base model here.
        metrics["base"] = evaluator.run(model, "base")

    metrics_log = MetricsLog(run_dir / "metrics.jsonl")
    Trainer = make_trainer_class()
    prepare_deepspeed(spec.zero)
    args = training_arguments(spec, run_dir, bf16)
    from ftx.sweep import trial_callbacks

    callbacks = [metrics_callback(metrics_log), *trial_callbacks(spec)]  # sweep jobs: report/prune
    if spec.train.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(spec.train.early_stopping_patience))
    trainer = Trainer(model=model, args=args, train_dataset=data.train, eval_dataset=data.val,
                      data_collator=collator, callbacks=callbacks,
                      **optim_mod.trainer_kwargs(model, spec.optimizer, args))
    # Tokens this process trained on: a resumed run counts only the epochs it ran itself. Read before
    # training: save_total_limit may delete the resumed checkpoint while the run goes on.
    epoch0 = read_json(Path(resume) / "trainer_state.json").get("epoch") or 0.0 if resume else 0.0
    tracker.attach(trainer)
    t_train = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.time() - t_train
    train_tokens = data.stats["train"]["tokens"] * max((result.metrics.get("epoch") or 0.0) - epoch0, 0.0)

    metrics["tuned"] = evaluator.run(model, "tuned")
    metrics["train"] = {"seconds": round(train_seconds, 2), "steps": result.global_step,
                        "loss": result.training_loss, "tokens": int(train_tokens),
                        "tokens_per_s": round(train_tokens / max(train_seconds, 1e-9), 1)}
    metrics.update(evaluator.compare())  # delta, eval (forgetting, golden, off-domain), flags
    metrics["wall_seconds"] = round(time.time() - t0, 2)
    from ftx.cost import account

    metrics["cost"] = account(int(train_tokens), train_seconds, metrics["wall_seconds"],
                              spec.train.price_per_device_hour, metrics)
    trainer.save_model(str(run_dir / "adapter"))  # on every rank: ZeRO-3 gathers weights collectively
    if main:
        tok.save_pretrained(str(run_dir / "adapter"))
        objective = _objective(spec, metrics)
        metrics["objective"] = {"metric": spec.objective.metric, "value": objective}
        write_json(run_dir / "metrics.json", metrics)
        manifest.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), data_sources=data.lineage)
        write_json(run_dir / "manifest.json", manifest)
        from ftx.card import write_card

        write_card(run_dir)  # replaces PEFT's template README beside the adapter
        tracker.summary(metrics, run_dir)
        _print_summary(metrics, run_dir)
        return objective
    return float("nan")


def _objective(spec, metrics: dict) -> float:
    from ftx.errors import ConfigError

    node = metrics
    for part in spec.objective.metric.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"objective.metric: {spec.objective.metric!r} is not in metrics.json "
                              f"(e.g. tuned/val_loss, delta/val_loss)")
        node = node[part]
    return float(node)


def _print_summary(metrics: dict, run_dir: Path) -> None:
    from ftx.eval.suite import summary_table

    lines = summary_table(metrics)
    tr = metrics["train"]
    lines.append(f"train: {tr['steps']} steps in {tr['seconds']:.1f}s, {tr['tokens_per_s']:.0f} tokens/s; "
                 f"objective {metrics['objective']['metric']} = {metrics['objective']['value']:.4f}")
    lines.append(f"run dir: {run_dir}")
    print("\n".join(lines), flush=True)
