"""The engine groups as data: DeepSpeed configs, cross-group one-liners, LLRD groups, dropout, resume
bookkeeping, training arguments and the launcher plumbing of the CLI. In-process, seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from ftx.cli import args as cli_args
from ftx.cli import train as cli_train
from ftx.engine.zero import deepspeed_config
from ftx.errors import ConfigError, RunError
from ftx.spec.run import as_dict, build_spec
from ftx.spec.tree import compose

ZERO = {"none": (None, False, False), "zero1": (1, False, False), "zero2": (2, False, False),
        "zero3": (3, False, False), "zero2_offload": (2, True, False), "zero3_offload": (3, True, True)}


@pytest.mark.parametrize("option", sorted(ZERO))
def test_each_zero_option_generates_its_deepspeed_config(option):
    spec = build_spec(compose([f"zero={option}"]))
    stage, off_opt, off_param = ZERO[option]
    ds = deepspeed_config(spec.zero, bf16=True)
    if stage is None:
        assert ds is None
        return
    z = ds["zero_optimization"]
    assert z["stage"] == stage
    assert ("offload_optimizer" in z) == off_opt and ("offload_param" in z) == off_param
    assert z.get("stage3_gather_16bit_weights_on_model_save") is (True if stage == 3 else None)
    # The HF Trainer builds optimizer and scheduler from the optimizer group: nothing to JIT-compile.
    assert "optimizer" not in ds and "scheduler" not in ds
    assert ds["bf16"] == {"enabled": True} and ds["zero_force_ds_cpu_optimizer"] is False
    assert deepspeed_config(spec.zero, bf16=False)["bf16"] == {"enabled": False}


def test_quant_zero_precision_combinations_compose():
    """All verified to train on CPU (tests/integration/test_zero*.py); config must refuse none of them."""
    precisions = ("auto", "bf16", "fp32")
    for i, (quant, zero) in enumerate((q, z) for q in ("none", "int8", "nf4") for z in sorted(ZERO)):
        spec = build_spec(compose([f"quant={quant}", f"zero={zero}", f"train.precision={precisions[i % 3]}"]))
        combo = f"quant={quant} zero={zero} train.precision={precisions[i % 3]}"
        # each group option really lands in the spec (none silently dropped or overridden by another)
        assert (spec.quant.mode, spec.quant.enabled, spec.train.precision) == (quant, quant != "none",
                                                                              precisions[i % 3]), combo
        z = spec.zero
        assert (z.stage, z.offload_optimizer, z.offload_param) == ZERO[zero], combo
        assert (deepspeed_config(z, bf16=True) is None) == (zero == "none"), combo


@pytest.mark.parametrize("overrides,needle", [
    (["zero.offload_param=true"], "zero.offload_param: needs zero.stage=3"),
    (["zero=zero2", "zero.offload_param=true"], "zero.offload_param: needs zero.stage=3 (got 2)"),
    (["zero.offload_optimizer=true"], "zero.offload_optimizer: needs zero.stage >= 1"),
    (["zero.stage=4"], "zero.stage: must be null, 0, 1, 2 or 3"),
    (["quant=nf4", "lora=full"], "quant.mode: =nf4 cannot train with lora.method=full"),
    (["quant.mode=int4"], "quant.mode: must be one of none, int8, nf4, fp4"),
    (["quant.compute_dtype=fp16"], "quant.compute_dtype"),
    (["optimizer.name=adam"], "optimizer.name: must be one of adamw_torch, adamw_torch_fused, adamw_bnb_8bit"),
    (["optimizer.llrd=1.5"], "optimizer.llrd: must be in (0, 1]"),
    (["optimizer.dropout=1.0"], "optimizer.dropout: must be in [0, 1)"),
    (["optimizer.scheduler=step"], "optimizer.scheduler"),
    (["lora.method=qlora"], "lora.method: must be one of lora, dora, rslora, full"),
    (["train.early_stopping_patience=2", "train.eval_steps=3", "train.save_steps=4"],
     "train.save_steps: =4 must be a multiple of train.eval_steps=3"),
    (["train.early_stopping_patience=2", "train.eval_steps=0", "train.save_steps=4"],
     "train.save_steps: =4 with train.eval_steps=0"),
    (["train.grad_accum=0"], "train.grad_accum: must be > 0"),
    (["train.epochs=0", "train.max_steps=-1"], "train.epochs: must be > 0 unless train.max_steps > 0"),
])
def test_engine_bad_input_is_one_line_naming_the_key(overrides, needle):
    with pytest.raises(ConfigError) as e:
        build_spec(compose(overrides))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_lora_alpha_defaults_to_twice_r_and_variants_map_to_peft():
    from ftx.engine.lora import peft_config

    for option, dora, rs in (("lora", False, False), ("dora", True, False), ("rslora", False, True)):
        spec = build_spec(compose([f"lora={option}", "lora.r=6"]))
        pc = peft_config(spec.lora)
        assert (pc.r, pc.lora_alpha, pc.use_dora, pc.use_rslora) == (6, 12.0, dora, rs)
        assert pc.target_modules == "all-linear"
    assert peft_config(build_spec(compose(["lora.alpha=3"])).lora).lora_alpha == 3


def _tiny_model():
    from ftx.engine.model import load_model
    from ftx.spec.model import ModelConfig

    return load_model(ModelConfig(name="tiny-llama", source="tiny", dtype="fp32"))


def test_lora_unknown_target_module_is_one_line():
    from ftx.engine.lora import wrap
    from ftx.spec.lora import LoraConfig

    with pytest.raises(ConfigError) as e:
        wrap(_tiny_model(), LoraConfig(target_modules=["qproj"]))
    assert "lora.target_modules=['qproj']" in str(e.value) and "q_proj" in str(e.value)


def test_full_method_trains_every_weight():
    from ftx.engine.lora import count_parameters, wrap
    from ftx.spec.lora import LoraConfig

    params = count_parameters(wrap(_tiny_model(), LoraConfig(method="full")))
    assert params["trainable"] == params["total"] > 0


def test_llrd_groups_scale_lr_by_depth_and_skip_decay_on_norms():
    from ftx.engine.optim import param_groups
    from ftx.spec.optimizer import OptimizerConfig

    model = _tiny_model()  # 2 layers; full fine-tuning so embeddings, norms and head all train
    groups = param_groups(model, OptimizerConfig(lr=1.0, llrd=0.5, weight_decay=0.1))
    lr_of = {n: g["lr"] for g in groups for n in g["names"]}
    wd_of = {n: g["weight_decay"] for g in groups for n in g["names"]}
    assert lr_of["model.norm.weight"] == 1.0
    assert lr_of["model.layers.1.self_attn.q_proj.weight"] == 0.5
    assert lr_of["model.layers.0.mlp.up_proj.weight"] == 0.25
    assert lr_of["model.embed_tokens.weight"] == 0.125
    assert wd_of["model.layers.0.mlp.up_proj.weight"] == 0.1
    assert wd_of["model.layers.0.input_layernorm.weight"] == 0.0 and wd_of["model.norm.weight"] == 0.0
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_llrd_reaches_the_trainers_optimizer(tmp_path):
    from transformers import Trainer, TrainingArguments

    from ftx.engine.lora import wrap
    from ftx.engine.optim import trainer_kwargs
    from ftx.spec.lora import LoraConfig
    from ftx.spec.optimizer import OptimizerConfig

    model = wrap(_tiny_model(), LoraConfig(r=2))
    cfg = OptimizerConfig(lr=0.1, llrd=0.5)
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=cfg.lr, use_cpu=True, report_to=[],
                             optim="adamw_torch")
    trainer = Trainer(model=model, args=args, **trainer_kwargs(model, cfg, args))
    lrs = sorted({round(g["lr"], 6) for g in trainer.create_optimizer().param_groups})
    assert lrs == [0.025, 0.05]  # LoRA sits in blocks 0 and 1 of 2
    assert trainer_kwargs(model, OptimizerConfig(), args) == {}


def test_8bit_adamw_keeps_8bit_states_on_cpu(tmp_path):
    from transformers import Trainer, TrainingArguments

    from ftx.engine.optim import forget_previous_run

    forget_previous_run()  # an earlier test's Trainer left 32-bit overrides keyed by ids a new tensor may reuse
    args = TrainingArguments(output_dir=str(tmp_path), optim="adamw_bnb_8bit", use_cpu=True, report_to=[])
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    p = torch.nn.Parameter(torch.randn(64, 128))
    opt = cls([p], **kwargs)
    p.grad = torch.randn_like(p)
    before = p.detach().clone()
    opt.step()
    assert "bitsandbytes" in cls.__module__
    assert opt.state[p]["state1"].dtype == torch.uint8 and not torch.equal(before, p)


def test_a_previous_runs_32bit_override_does_not_leak_into_the_next_run():
    """Why build_model clears bitsandbytes' GlobalOptimManager: an override registered for one tensor id
    applies to whatever tensor gets that id next (ids are reused after garbage collection)."""
    import bitsandbytes as bnb

    from ftx.engine.optim import forget_previous_run

    p = torch.nn.Parameter(torch.randn(64, 128))
    manager = bnb.optim.GlobalOptimManager.get_instance()
    manager.pid2config[id(p)] = {"optim_bits": 32}  # what a previous run's stale entry amounts to
    forget_previous_run()
    opt = bnb.optim.AdamW8bit([p])
    p.grad = torch.randn_like(p)
    opt.step()
    assert opt.state[p]["state1"].dtype == torch.uint8


def test_model_dropout_is_applied_to_the_loaded_model():
    from ftx.engine.optim import apply_dropout

    model = _tiny_model()
    assert apply_dropout(model, 0.5) == model.config.num_hidden_layers
    assert all(layer.self_attn.attention_dropout == 0.5 for layer in model.model.layers)
    x = torch.randint(0, model.config.vocab_size, (2, 12))
    model.train()
    torch.manual_seed(0)
    a = model(input_ids=x).logits
    b = model(input_ids=x).logits
    assert not torch.allclose(a, b), "dropout is not active in training mode"
    model.eval()
    assert torch.equal(model(input_ids=x).logits, model(input_ids=x).logits)
    assert apply_dropout(model, None) == 0


def test_non_reentrant_checkpointing_gives_lora_the_same_gradients():
    from ftx.engine.lora import wrap
    from ftx.spec.lora import LoraConfig

    def grads(checkpointing: bool):
        torch.manual_seed(0)
        model = wrap(_tiny_model(), LoraConfig(r=2, dropout=0.0))
        for n, p in model.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.02)
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        x = torch.arange(24).view(2, 12) % model.config.vocab_size
        model(input_ids=x, labels=x).loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    plain, ckpt = grads(False), grads(True)
    assert all(torch.allclose(plain[k], ckpt[k], atol=1e-6) and ckpt[k].abs().sum() > 0 for k in plain)


def test_base_dtype_follows_precision_and_method(default_spec):
    from ftx.engine.build import base_dtype

    assert base_dtype(default_spec, bf16=True) == "bf16"
    assert base_dtype(default_spec, bf16=False) == "fp32"
    assert base_dtype(build_spec(compose(["lora=full"])), bf16=True) == "fp32"  # fp32 master weights
    assert base_dtype(build_spec(compose(["model.dtype=bf16", "lora=full"])), bf16=True) == "bf16"


def test_training_arguments_carry_the_train_and_optimizer_groups(tmp_path):
    from ftx.engine.trainer import training_arguments

    spec = build_spec(compose(["train.grad_accum=3", "train.gradient_checkpointing=true", "train.eval_steps=5",
                               "train.save_steps=10", "train.max_steps=20", "train.seed=7",
                               "optimizer=adamw_8bit", "optimizer.scheduler=linear", "optimizer.warmup_ratio=0.2",
                               "optimizer.weight_decay=0.01", "optimizer.max_grad_norm=0.5"]))
    a = training_arguments(spec, tmp_path, bf16=False)
    assert (a.gradient_accumulation_steps, a.max_steps, a.seed, a.data_seed) == (3, 20, 7, 7)
    assert a.activation_checkpointing and a.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert (a.eval_strategy, a.eval_steps, a.save_strategy, a.save_steps) == ("steps", 5, "steps", 10)
    assert (a.optim, a.lr_scheduler_type, a.warmup_steps) == ("adamw_bnb_8bit", "linear", 0.2)
    assert (a.weight_decay, a.max_grad_norm, a.bf16, a.deepspeed) == (0.01, 0.5, False, None)
    per_epoch = training_arguments(build_spec(compose(["train.eval_steps=0", "train.save_steps=0"])), tmp_path, True)
    assert (per_epoch.eval_strategy, per_epoch.save_strategy, per_epoch.bf16) == ("epoch", "epoch", True)


def _checkpoint(run_dir: Path, step: int, state: str = '{"global_step": 1}') -> Path:
    d = run_dir / "checkpoints" / f"checkpoint-{step}"
    d.mkdir(parents=True)
    if state is not None:
        (d / "trainer_state.json").write_text(state)
    return d


def test_newest_checkpoint_is_numeric_and_skips_ones_cut_off_by_a_kill(tmp_path):
    from ftx.engine.trainer import newest_checkpoint, resume_path

    assert newest_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, 9)
    good = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 11, state=None)        # killed before trainer_state.json
    _checkpoint(tmp_path, 12, state='{"global')  # killed while writing it
    assert newest_checkpoint(tmp_path) == str(good)
    assert resume_path("auto", tmp_path) == str(good) == resume_path("if_present", tmp_path)
    assert resume_path("none", tmp_path) is None
    assert resume_path(str(good), tmp_path) == str(good)


def test_resume_errors_are_one_line(tmp_path):
    from ftx.engine.trainer import resume_path

    with pytest.raises(RunError) as e:
        resume_path("auto", tmp_path)
    assert "train.resume=auto: no complete checkpoint in" in str(e.value) and "hydra.run.dir" in str(e.value)
    assert resume_path("if_present", tmp_path) is None
    with pytest.raises(RunError, match="is not a complete checkpoint folder"):
        resume_path(str(tmp_path / "nope"), tmp_path)


def test_resume_refuses_a_run_dir_written_by_another_spec(tmp_path, caplog, default_spec):
    from ftx.engine.trainer import resume_checkpoint

    spec = default_spec
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(as_dict(spec)))
    ckpt = _checkpoint(tmp_path, 5)
    same = build_spec(compose(["train.resume=auto"]))
    assert resume_checkpoint(same, tmp_path) == str(ckpt)  # train.resume itself may differ
    other = build_spec(compose(["train.resume=auto", "lora.r=4", "optimizer.lr=0.1"]))
    with pytest.raises(RunError) as e:
        resume_checkpoint(other, tmp_path)
    assert "different run spec (differs in lora.r, optimizer.lr)" in str(e.value)
    explicit = build_spec(compose([f"train.resume={ckpt}", "optimizer.lr=0.1"]))
    assert resume_checkpoint(explicit, tmp_path / "elsewhere") == str(ckpt)  # asked for: a warning only
    assert "differs in optimizer.lr" in caplog.text


def test_launcher_local_rank_is_stripped_wherever_it_appears(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")  # registers the original state, restored after the test
    monkeypatch.delenv("LOCAL_RANK")
    assert cli_args.strip_local_rank(["--local_rank=1", "train", "a=1"]) == ["train", "a=1"]
    assert cli_args.strip_local_rank(["train", "--local-rank", "0", "a=1"]) == ["train", "a=1"]
    import os

    assert os.environ["LOCAL_RANK"] == "1"


def test_ranks_agree_on_one_run_dir_and_only_rank0_writes(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_PORT", "29999")
    monkeypatch.setenv("RANK", "0")
    r0 = cli_train._distributed_run_dir(["lora.r=4"])
    monkeypatch.setenv("RANK", "1")
    r1 = cli_train._distributed_run_dir(["lora.r=4"])
    dir0 = [o for o in r0 if o.startswith("hydra.run.dir=")]
    assert dir0 and dir0 == [o for o in r1 if o.startswith("hydra.run.dir=")]
    assert "hydra.output_subdir=null" in r1 and "hydra/job_logging=stdout" in r1
    assert "hydra.output_subdir=null" not in r0
    given = cli_train._distributed_run_dir(["hydra.run.dir=/x"])
    assert given.count("hydra.run.dir=/x") == 1 and not [o for o in given if o.startswith("hydra.run.dir=/tmp")]


def test_multi_node_without_run_dir_is_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="multi-node run needs it set to one folder on a shared filesystem"):
        cli_train._distributed_run_dir([])
    assert cli_train._distributed_run_dir(["hydra.run.dir=/shared/x"])[-1] == "hydra.run.dir=/shared/x"
