"""One run, as a recipe (torchtune-style): `setup` → `prepare_data` → `build` → `evaluate("base")` →
`train` → `evaluate("tuned")` → `record`, with `cleanup` always last. `run(cfg)` is the task function
Hydra calls; `Recipe.execute` reads as the flow of a run, each step a short method.

Layering: the pipeline imports the spec, data, engine, eval and track layers; nothing below imports it.
What the record layer adds at the end of a run (the model card) comes in as `finishers`, from the CLI.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ftx.data.build import prepare
from ftx.data.format import Collator
from ftx.data.sources import absolutize
from ftx.engine import dist
from ftx.engine import dpo as dpo_mod
from ftx.engine import lora as lora_mod
from ftx.engine import model as model_mod
from ftx.engine import optim as optim_mod
from ftx.engine.build import build_model
from ftx.engine.trainer import make_trainer_class, resume_checkpoint, training_arguments
from ftx.engine.zero import prepare_deepspeed
from ftx import memory
from ftx.errors import ConfigError, RunError
from ftx.eval.select import select_callback, select_key
from ftx.eval.suite import Evaluator, summary_table
from ftx.precision import use_bf16
from ftx.runs import (MetricsLog, as_disk_full, atomic_write_text, earlier_run, environment, hold_lock, read_json,
                      write_json)
from ftx.spec.run import RunSpec, as_dict, build_spec, metric_direction, spec_hash
from ftx.track.cost import account
from ftx.track.sweep import trial_callbacks
from ftx.track.tracker import Tracker, metrics_callback

log = logging.getLogger("ftx")

Finisher = Callable[[Path], None]  # called with the run dir once metrics.json and manifest.json are written


def record_spec(spec, cfg, run_dir: Path, overrides: list[str], resolved: Optional[dict] = None) -> dict:
    """config.yaml (fully resolved), overrides.txt and manifest.json (spec hash, environment, git SHA)."""
    from omegaconf import OmegaConf

    resolved = as_dict(spec) if resolved is None else resolved
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(resolved)))
    atomic_write_text(run_dir / "overrides.txt", "".join(o + "\n" for o in overrides))
    manifest = {"spec_hash": spec_hash(resolved), "name": spec.name, "overrides": overrides,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment()}
    write_json(run_dir / "manifest.json", manifest)
    return manifest


class Recipe:
    """One fine-tuning run. State built by one step and read by later ones lives on the instance."""

    def __init__(self, spec: RunSpec, cfg, run_dir: Path, overrides: list[str], finishers: Sequence[Finisher] = ()):
        self.spec, self.cfg, self.run_dir, self.overrides = spec, cfg, Path(run_dir), overrides
        self.finishers = tuple(finishers)
        self.resolved = as_dict(spec)  # converted once: config.yaml, resume check and W&B config share it
        self.main = dist.is_main_process()
        self.metrics: dict = {}
        self.manifest: dict = {}

    # ------------------------------------------------------------------ steps

    def setup(self, tracker: Tracker) -> None:
        """Run dir, resume point (read before config.yaml is rewritten), spec record, threads, precision."""
        self.t0 = time.time()
        memory.METER.start()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.main and self.spec.train.resume == "none":  # other ranks join the dir rank 0 is writing
            reused = earlier_run(self.run_dir)
            if reused:
                raise ConfigError(f"hydra.run.dir: {reused}")
        self.resume = resume_checkpoint(self.spec, self.run_dir, self.resolved)
        # Before the manifest: its environment records the thread count train.threads resolved to.
        log.info("torch threads: %d (train.threads=%s)", dist.apply_threads(self.spec.train.threads),
                 self.spec.train.threads)
        if self.main:
            self.manifest = record_spec(self.spec, self.cfg, self.run_dir, self.overrides, self.resolved)
        self.tracker = tracker
        tracker.start(self.spec, self.run_dir, self.overrides, self.resolved)
        self.bf16 = use_bf16(self.spec.train.precision)
        memory.return_freed_blocks(self.spec.train.malloc_mmap_threshold_kb)  # before any large allocation

    def prepare_data(self) -> None:
        """Data first: bad data fails in seconds, before a model is loaded; bad prompt files fail here too."""
        spec, out = self.spec, self.run_dir if self.main else None
        self.model_path = model_mod.resolve_model_path(spec.model)
        self.tok = model_mod.load_tokenizer(spec.model, self.model_path)
        with memory.stage("data"):
            self.data = prepare(spec.data, spec.curation, self.tok, out, str(spec.train.objective))
        log.info("data: %s", {k: self.data.stats[k]["examples"] for k in ("train", "val", "test", "general_eval")})
        self.evaluator = Evaluator(spec, self.tok, self.data, self.bf16, out, self.model_path)

    def build(self) -> None:
        """Load → quantise (the 4-bit CPU gradient guard before any forward) → seed → wrap."""
        with memory.stage("model"):
            self.model = build_model(self.spec, self.model_path, self.bf16)
        dpo_mod.check_reference(self.model, self.spec)  # DPO with lora=full: the reference copy must fit
        params = lora_mod.count_parameters(self.model)
        log.info("trainable parameters: %s", params)
        self.metrics.update(params=params, data=self.data.stats)
        self.checkpointing = self.plan_memory()  # a step that cannot fit fails now, before any evaluation

    def evaluate(self, which: str) -> None:
        """`base` runs before training (LoRA B starts at zero: the wrapped model is still the base)."""
        if which == "base" and not self.spec.eval.base_vs_tuned:
            return
        if which == "tuned":  # gradients and the last step's leftovers go before generation and evaluation
            memory.release(self.model)
        with memory.stage(f"{which}_eval"):
            self.metrics[which] = self.evaluator.run(self.model, which)
        memory.release()  # the evaluation's freed batches go back to the OS before training or saving

    def loss_chunk(self) -> int:
        """train.loss_chunk in positions for this model's vocabulary (auto resolved)."""
        return self.spec.train.loss_chunk_positions(memory.vocab_size(self.model.config))

    def plan_memory(self) -> bool:
        """train.gradient_checkpointing resolved (auto: by the planned activations) and the fit check, before
        training; metrics.json memory.plan records the estimate and the decision."""
        spec = self.spec
        rows = [len(ex["input_ids"]) for ex in self.data.train] or [spec.data.format.max_length]
        length, trainable = max(rows), self.metrics["params"]["trainable"]
        plan = memory.estimate(self.model.config, spec.train.batch_size, length, trainable, self.loss_chunk())
        free = memory.available(spec.train.memory_limit_mb)
        on, why = memory.decide(spec.train.gradient_checkpointing, plan, free)
        memory.check_fit(plan, on, free, spec.train.batch_size, length, spec.train.grad_accum,
                         spec.data.format.max_length)
        self.memory_plan = {"batch": spec.train.batch_size, "length": length, "available_mb": round(free / memory.MB),
                            "activations_mb": round(plan.activations / memory.MB),
                            "checkpointed_mb": round(plan.checkpointed / memory.MB),
                            "loss_mb": round(plan.logits / memory.MB), "gradient_checkpointing": on, "why": why}
        log.info("memory plan: gradient checkpointing %s (%s)", "on" if on else "off", why)
        return on

    def train(self) -> None:
        spec, data = self.spec, self.data
        prepare_deepspeed(spec.zero)
        mlog = MetricsLog(self.run_dir / "metrics.jsonl")
        selecting = spec.train.early_stopping_patience > 0 or spec.train.keep_best
        key = select_key(self.evaluator.primary) if selecting and self.evaluator.selects_by_task() else None
        dpo = spec.train.preference()  # dpo or orpo: TRL's trainer on the prepared pairs
        if dpo:
            args = training_arguments(spec, self.run_dir, self.bf16, key, self.checkpointing,
                                      cls=dpo_mod.config_class(spec), **dpo_mod.dpo_arguments(spec))
        else:
            args = training_arguments(spec, self.run_dir, self.bf16, key, self.checkpointing)
        callbacks = [metrics_callback(mlog), *trial_callbacks(spec)]  # sweep jobs: report/prune
        if key:  # before early stopping: it reads the metric this callback adds
            callbacks.append(select_callback(self.evaluator.select_score, key, mlog.log if self.main else None))
            log.info("checkpoints chosen by %s on %d validation prompts (eval.select)", key,
                     len(self.evaluator.select_items()))
        self.metrics["select"] = {"metric": key or "eval_loss", "sample": len(self.evaluator.select_items()) if key
                                  else None, "keep_best": bool(selecting)}
        if spec.train.early_stopping_patience:
            from transformers import EarlyStoppingCallback

            callbacks.append(EarlyStoppingCallback(spec.train.early_stopping_patience))
        optim_kwargs = optim_mod.trainer_kwargs(self.model, spec.optimizer, args)
        if dpo:  # TRL's DPOTrainer on the prepared pairs (its own loss); the same model, arguments, callbacks, optimizer
            trainer = dpo_mod.make_trainer(spec, self.model, self.tok, data.pairs, args, callbacks, **optim_kwargs)
        else:
            trainer = make_trainer_class()(model=self.model, args=args, train_dataset=data.train,
                                           eval_dataset=data.val, data_collator=Collator(self.tok.pad_token_id),
                                           callbacks=callbacks, **optim_kwargs)
            trainer.loss_chunk = self.loss_chunk()
        # Tokens this process trained on: a resumed run counts only the epochs it ran itself. Read before
        # training: save_total_limit may delete the resumed checkpoint while the run goes on.
        resume = self.resume
        epoch0 = read_json(Path(resume) / "trainer_state.json").get("epoch") or 0.0 if resume else 0.0
        self.tracker.attach(trainer)
        t_train = time.time()
        with memory.stage("train"):
            result = trainer.train(resume_from_checkpoint=resume)
        seconds = time.time() - t_train
        if dpo:
            dpo_mod.drop_reference(self.model)
        per_epoch = data.stats["pairs"]["train"]["tokens"] if dpo else data.stats["train"]["tokens"]
        tokens = per_epoch * max((result.metrics.get("epoch") or 0.0) - epoch0, 0.0)
        self.trainer, self.train_seconds, self.train_tokens = trainer, seconds, int(tokens)
        if selecting and trainer.state.best_model_checkpoint:
            self.metrics["select"].update(best_checkpoint=Path(trainer.state.best_model_checkpoint).name,
                                          best_metric=trainer.state.best_metric)
        self.metrics["train"] = {"seconds": round(seconds, 2), "steps": result.global_step,
                                 "loss": result.training_loss, "tokens": int(tokens),
                                 "tokens_per_s": round(tokens / max(seconds, 1e-9), 1)}

    def record(self) -> float:
        """Comparisons, cost, adapter, metrics.json, manifest, finishers (model card), W&B summary; the objective."""
        spec, m = self.spec, self.metrics
        m.update(self.evaluator.compare())  # delta, eval (forgetting, golden, off-domain), flags
        m["wall_seconds"] = round(time.time() - self.t0, 2)
        m["cost"] = account(self.train_tokens, self.train_seconds, m["wall_seconds"],
                            spec.train.price_per_device_hour, m)
        with memory.stage("save"):
            self.trainer.save_model(str(self.run_dir / "adapter"))  # every rank: ZeRO-3 gathers weights collectively
        if not self.main:
            return float("nan")
        self.tok.save_pretrained(str(self.run_dir / "adapter"))
        m["memory"] = {**memory.METER.summary(), "plan": self.memory_plan}
        m["objective"] = resolve_objective(spec, m, self.evaluator)
        value = m["objective"]["value"]
        write_json(self.run_dir / "metrics.json", m)
        self.manifest.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), data_sources=self.data.lineage)
        write_json(self.run_dir / "manifest.json", self.manifest)
        for finish in self.finishers:  # ftx.record.card.write_card: replaces PEFT's template README
            finish(self.run_dir)
        self.tracker.summary(m, self.run_dir)
        print_summary(m, self.run_dir)
        return value

    # ------------------------------------------------------------------ the flow

    def execute(self) -> float:
        with Tracker(self.spec.tracking) as tracker:  # the W&B run is finished whatever happens (multirun-safe)
            self.setup(tracker)
            self.prepare_data()
            self.build()
            self.evaluate("base")
            self.train()
            self.evaluate("tuned")
            return self.record()


TIE_BREAK = ("tuned/val_loss", 1e-6)
"""objective.metric=auto on a task metric: value = metric − 1e-6 × tuned/val_loss, so runs with the same task
score (a multiple of 1/n) rank by loss, and the loss never outweighs one example (n < 10⁴, loss < 100)."""


def objective(spec, metrics: dict, metric: Optional[str] = None) -> float:
    metric = metric or spec.objective.metric
    node = metrics
    for part in metric.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"objective.metric: {metric!r} is not in metrics.json "
                              f"(e.g. tuned/val_loss, delta/val_loss)")
        node = node[part]
    return float(node)


def auto_metric(spec, metrics: dict, evaluator) -> tuple[str, str]:
    """objective.metric=auto → (metric, why): tuned/<eval.primary> when the validation records carry accepted
    answers and the primary metric was measured, else tuned/val_loss."""
    primary = getattr(evaluator, "primary", None)
    if getattr(evaluator, "has_answers", False) and primary in metrics.get("tuned", {}):
        return f"tuned/{primary}", f"validation records carry accepted answers; eval.primary {primary}"
    why = "no accepted answers on the validation records" if not getattr(evaluator, "has_answers", False) else \
        f"{primary} not measured"
    return "tuned/val_loss", why


def resolve_objective(spec, metrics: dict, evaluator=None) -> dict:
    """metrics.json `objective`: the resolved metric and direction, the value returned to Hydra (tie-broken
    and, with on_regression=penalize, penalised) and the run's flags."""
    o = spec.objective
    metric, why = (o.metric, "objective.metric") if o.metric != "auto" else auto_metric(spec, metrics, evaluator)
    direction = str(o.direction) if o.direction != "auto" else metric_direction(metric)
    study = (spec.sweep or {}).get("direction")
    if study and study != direction:
        raise RunError(f"objective.metric: resolved to {metric} ({direction}, {why}) but the sweep's study "
                       f"{study}s; set objective.metric (and hydra.sweeper.direction) explicitly for this sweep")
    raw = objective(spec, metrics, metric)
    value, out = raw, {"metric": metric, "direction": direction, "why": why}
    if o.metric == "auto" and direction == "maximize" and metric != TIE_BREAK[0]:
        loss = metrics.get("tuned", {}).get("val_loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            value = raw - TIE_BREAK[1] * loss
            out["tie_breaker"] = {"metric": TIE_BREAK[0], "weight": TIE_BREAK[1]}
    flags = list(metrics.get("flags", []))
    if flags and o.on_regression == "penalize":
        value = value - (abs(value) + 1) if direction == "maximize" else value + (abs(value) + 1)
    out.update(raw=raw, value=value, on_regression=str(o.on_regression), flagged=bool(flags))
    return out


def print_summary(metrics: dict, run_dir: Path) -> None:
    lines = summary_table(metrics)
    tr = metrics["train"]
    lines.append(f"train: {tr['steps']} steps in {tr['seconds']:.1f}s, {tr['tokens_per_s']:.0f} tokens/s; "
                 f"objective {metrics['objective']['metric']} = {metrics['objective'].get('raw', metrics['objective']['value']):.4f} "
                 f"({metrics['objective'].get('direction', 'minimize')}"
                 + (f"; returned {metrics['objective']['value']:.6g} with the tuned/val_loss tie-break"
                    if "tie_breaker" in metrics["objective"] else "")
                 + ("; flagged" if metrics["objective"].get("flagged") else "") + ")")
    lines.append(f"run dir: {run_dir}")
    print("\n".join(lines), flush=True)


def execute(spec, cfg, run_dir: Path, overrides: list[str], finishers: Sequence[Finisher] = ()) -> float:
    return Recipe(spec, cfg, run_dir, overrides, finishers).execute()


def run(cfg, finishers: Sequence[Finisher] = ()) -> float:
    """The task function: one validated run spec, executed end to end. Returns the objective.
    `finishers` run on the main rank after metrics.json/manifest.json (the CLI passes the model card)."""
    from hydra.core.hydra_config import HydraConfig

    spec = build_spec(cfg)
    # Relative source paths → absolute, against the folder the run started in: config.yaml then reads the
    # same data from anywhere (`ftx eval RUN --check`); the lineage keeps the path as written.
    absolutize(spec.data.sources, HydraConfig.get().runtime.cwd if HydraConfig.initialized() else None)
    dist.submitit_ranks()
    if not dist.is_main_process():  # only rank 0 writes into the run dir, logs included
        for h in [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]:
            logging.getLogger().removeHandler(h)
    hydra = HydraConfig.initialized()
    run_dir = Path(HydraConfig.get().runtime.output_dir) if hydra else Path(cfg.get("run_dir") or ".")
    overrides = list(HydraConfig.get().overrides.task) if hydra else []
    clean = False
    try:
        if not dist.is_main_process():
            value = execute(spec, cfg, run_dir, overrides, finishers)
        else:
            with hold_lock(run_dir, "hydra.run.dir"):  # one process per run dir (its other ranks excepted)
                value = execute(spec, cfg, run_dir, overrides, finishers)
        clean = True
        return value
    except Exception as e:  # a full disk while saving a checkpoint surfaces as a library's RuntimeError
        full = as_disk_full(e, run_dir.resolve())
        if full is None:
            raise
        raise full from None
    finally:
        dist.teardown_at_exit(clean)
