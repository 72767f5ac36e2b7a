"""Fast by default (issue 17): train.threads=auto respects CPU affinity, the cgroup quota and local ranks;
packing is on by default where correct and trains to the same loss as unpacked batches. In-process."""

from __future__ import annotations

import os

import pytest

from ftx.engine import dist
from ftx.errors import ConfigError
from ftx.spec.run import build_spec
from ftx.spec.tree import compose


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A fake idle machine: `cpus` in the affinity mask, psutil's logical/physical counts, no cgroup quota."""
    import psutil

    def make(cpus: int, logical: int, physical: int):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
        monkeypatch.setattr(psutil, "cpu_count", lambda logical_=True, **kw: logical if kw.get("logical", logical_)
                            else physical)
        monkeypatch.setattr(os, "cpu_count", lambda: logical)
        monkeypatch.setattr(dist, "busy_cores", lambda window=0.5: 0.0)  # an idle machine
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        return tmp_path  # an empty cgroup root: no quota

    return make


def test_auto_threads_counts_physical_cores_of_the_affinity_mask(machine):
    root = machine(cpus=16, logical=32, physical=16)  # SMT 2: 16 logical CPUs are 8 cores
    assert dist.auto_threads(str(root)) == 8
    root = machine(cpus=3, logical=4, physical=4)  # taskset -c 0-2 on a 4-core box
    assert dist.auto_threads(str(root)) == 3


def test_auto_threads_leaves_out_cores_other_processes_keep_busy(machine, monkeypatch):
    root = machine(cpus=8, logical=8, physical=8)
    monkeypatch.setattr(dist, "busy_cores", lambda window=0.5: 5.2)
    assert dist.auto_threads(str(root)) == 3
    monkeypatch.setattr(dist, "busy_cores", lambda window=0.5: 0.3)  # a little background work: still all 8
    assert dist.auto_threads(str(root)) == 8
    monkeypatch.setattr(dist, "busy_cores", lambda window=0.5: 40.0)
    assert dist.auto_threads(str(root)) == 1
    root = machine(cpus=4, logical=8, physical=8)  # taskset: the load elsewhere is not on our cores
    monkeypatch.setattr(dist, "busy_cores", lambda window=0.5: 40.0)
    assert dist.auto_threads(str(root)) == 4


@pytest.mark.alone
def test_busy_cores_sees_other_processes_but_not_this_one():
    """Measured on the real machine: a spinning child process is one busy core; a thread of this process
    spinning during the sample is not counted (the run's own start-up must not take its own cores away)."""
    import subprocess
    import sys
    import threading
    import time

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        with_child = dist.busy_cores(0.4)
    finally:
        child.kill()
        child.wait()
    stop = threading.Event()
    spin = threading.Thread(target=lambda: [None for _ in iter(lambda: stop.is_set(), True)])
    spin.start()
    try:
        with_own = dist.busy_cores(0.4)
    finally:
        stop.set()
        spin.join()
    assert with_child >= 0.7, with_child
    assert with_own <= with_child - 0.5, (with_own, with_child)


@pytest.mark.alone
def test_busy_cores_ignores_a_load_that_ends_in_the_first_sample():
    """A job that ends right as the run starts (the test run before a demo) is not load: it is busy in the
    first of the three samples only, and the median leaves it out — one window would count it."""
    import subprocess
    import sys
    import time

    code = ("import sys, time\nprint('go', flush=True)\nend = time.monotonic() + float(sys.argv[1])\n"
            "while time.monotonic() < end: pass")
    measured = {}
    for samples in (1, 3):
        child = subprocess.Popen([sys.executable, "-c", code, "0.3"], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "go"
            t0 = time.monotonic()
            measured[samples] = dist.busy_cores(0.4, samples)
            took = time.monotonic() - t0
        finally:
            child.kill()
            child.wait()
        assert took >= 0.4 * samples - 0.05, took
    assert measured[1] >= 0.5, measured  # the child spun through most of the single window
    assert measured[3] <= 0.3, measured


def test_auto_threads_respects_the_cgroup_quota_v2_and_v1(machine):
    root = machine(cpus=16, logical=16, physical=16)
    (root / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: rounded up
    assert dist.auto_threads(str(root)) == 2
    (root / "cpu.max").write_text("max 100000\n")
    assert dist.auto_threads(str(root)) == 16
    (root / "cpu.max").unlink()
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert dist.auto_threads(str(root)) == 4
    (root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # v1: no limit
    assert dist.auto_threads(str(root)) == 16


def test_auto_threads_is_shared_by_local_ranks_and_never_below_one(machine, monkeypatch):
    root = machine(cpus=8, logical=8, physical=8)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert dist.auto_threads(str(root)) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert dist.auto_threads(str(root)) == 1
    (root / "cpu.max").write_text("10000 100000\n")  # a tenth of a CPU
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert dist.auto_threads(str(root)) == 1


def test_auto_threads_on_this_machine_is_within_its_affinity():
    n = dist.auto_threads()
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_apply_threads_sets_torch_and_omp(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", before and str(before))
    try:
        assert dist.apply_threads("1") == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        assert dist.apply_threads("auto") == dist.auto_threads() == torch.get_num_threads()
        assert dist.apply_threads("0") == torch.get_num_threads()  # 0 leaves torch's default as it is
    finally:
        torch.set_num_threads(before)


def test_threads_default_auto_takes_numbers_and_refuses_the_rest():
    assert build_spec(compose([])).train.threads == "auto"
    assert build_spec(compose(["train.threads=3"])).train.threads == "3"
    for bad in ("train.threads=-1", "train.threads=many", "train.threads=1.5"):
        with pytest.raises(ConfigError) as e:
            build_spec(compose([bad]))
        assert str(e.value).startswith("train.threads: must be auto or a whole number >= 0") and "\n" not in str(e.value)


def test_loss_chunk_auto_bounds_one_chunks_logits_by_bytes_and_takes_numbers():
    train = build_spec(compose([])).train
    assert train.loss_chunk == "auto"
    assert train.loss_chunk_positions(49_152) == 1365  # SmolLM2: one chunk holds a 4 × 256 batch's answers
    assert train.loss_chunk_positions(128_256) == 523  # Llama 3: about the old fixed 512
    assert train.loss_chunk_positions(256) == 262_144  # a tiny vocabulary: one chunk for any batch
    assert train.loss_chunk_positions(1_000_000) == 512  # never below 512 positions
    assert build_spec(compose(["train.loss_chunk=0"])).train.loss_chunk_positions(49_152) == 0  # full logits
    assert build_spec(compose(["train.loss_chunk=64"])).train.loss_chunk_positions(49_152) == 64
    for bad in ("train.loss_chunk=-1", "train.loss_chunk=big"):
        with pytest.raises(ConfigError) as e:
            build_spec(compose([bad]))
        assert str(e.value).startswith("train.loss_chunk: must be auto or a whole number >= 0") and "\n" not in str(e.value)


def test_packing_is_on_by_default_and_off_for_remote_code_models_and_dpo():
    assert build_spec(compose([])).data.format.packing is True
    assert build_spec(compose(["data.format.packing=false"])).data.format.packing is False
    remote = ["model.source=path", "model.name_or_path=/some/model", "model.trust_remote_code=true"]
    assert build_spec(compose(remote)).data.format.packing is False
    assert build_spec(compose([*remote, "data.format.packing=true"])).data.format.packing is True
    assert build_spec(compose(["train.objective=dpo"])).data.format.packing is False  # whole pairs


def test_a_tiny_run_packed_by_default_reaches_the_loss_of_the_unpacked_run(tmp_path):
    """The same examples, the same number of optimizer steps and tokens per step (about): the held-out
    answer loss after training with the default (packed) rows is within 5% of training on padded batches."""
    import torch
    from transformers import TrainingArguments

    from ftx.data import format as fmt
    from ftx.engine.model import load_model, load_tokenizer
    from ftx.engine.trainer import make_trainer_class
    from ftx.runs import read_jsonl
    from ftx.spec.data import FormatConfig
    from tests.helpers import ROOT, TINY

    tok = load_tokenizer(TINY)
    recs = [{"id": str(i), "source": "http", "role": "domain", "synthetic": False, "weight": None, "text": None,
             "messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]}
            for i, (_, r) in enumerate(read_jsonl(ROOT / "ftx" / "assets" / "demo" / "http_qa.jsonl"))][:72]
    cfg = FormatConfig(prompt_loss_weight=0.0, max_length=256)
    exs = [e for r in recs for e in [fmt.encode(r, tok, cfg)[0]] if e is not None]
    train, val = exs[:60], exs[60:]
    packed, stats = fmt.pack(train, 256)
    assert stats["rows"] < len(train) / 2
    collate = fmt.Collator(tok.pad_token_id)
    losses = {}
    for name, rows, batch in (("unpacked", train, 4), ("packed", packed, 4 * len(packed) // len(train) or 1)):
        torch.manual_seed(0)
        model = load_model(TINY)
        steps = 12
        args = TrainingArguments(output_dir=str(tmp_path / name), per_device_train_batch_size=batch, use_cpu=True,
                                 max_steps=steps, learning_rate=3e-3, report_to=[], remove_unused_columns=False,
                                 seed=0, disable_tqdm=True, save_strategy="no", logging_strategy="no")
        trainer = make_trainer_class()(model=model, args=args, train_dataset=rows, data_collator=collate)
        model.eval()
        with torch.no_grad():
            before = float(trainer.compute_loss(model, dict(collate(val))))
        trainer.train()
        model.eval()
        with torch.no_grad():
            losses[name] = float(trainer.compute_loss(model, dict(collate(val))))
        assert losses[name] < before - 0.3, (name, before, losses[name])
    assert losses["packed"] == pytest.approx(losses["unpacked"], rel=0.05), losses


def test_compile_reaches_the_trainer_and_is_off_by_default(tmp_path):
    from ftx.engine.trainer import training_arguments

    assert build_spec(compose([])).train.compile is False
    assert not training_arguments(build_spec(compose([])), tmp_path, False).torch_compile
    args = training_arguments(build_spec(compose(["train.compile=true"])), tmp_path, False)
    assert args.torch_compile and args.torch_compile_backend == "inductor"


def test_liger_falls_back_with_a_warning_without_a_gpu_and_is_one_line_when_missing(monkeypatch, caplog):
    from ftx.engine import accel
    from ftx.errors import RunError

    spec = build_spec(compose(["train.liger=true"]))
    monkeypatch.setattr(accel, "_cuda", lambda: False)
    assert accel.training_options(spec) == {}
    assert "train.liger=true" in caplog.text and "training without them" in caplog.text
    monkeypatch.setattr(accel, "_cuda", lambda: True)  # a GPU machine: the kernels are switched on …
    monkeypatch.setattr(accel, "_installed", lambda m: True)
    assert accel.training_options(spec) == {"use_liger_kernel": True}
    monkeypatch.setattr(accel, "_installed", lambda m: False)  # … or the missing package named in one line
    with pytest.raises(RunError) as e:
        accel.training_options(spec)
    assert "pip install 'ftx[liger]'" in str(e.value) and "\n" not in str(e.value)


def test_flash_attention_falls_back_to_sdpa_without_a_gpu(monkeypatch, caplog):
    from ftx.engine import accel
    from ftx.engine.model import load_model
    from ftx.errors import RunError
    from ftx.spec.model import ModelConfig

    monkeypatch.setattr(accel, "_cuda", lambda: False)
    model = load_model(ModelConfig(source="tiny", dtype="fp32", attn_implementation="flash_attention_2"))
    assert model.config._attn_implementation == "sdpa"
    assert "flash_attention_2 needs a CUDA GPU" in caplog.text
    monkeypatch.setattr(accel, "_cuda", lambda: True)
    monkeypatch.setattr(accel, "_installed", lambda m: False)
    with pytest.raises(RunError, match="flash-attn package is not installed"):
        accel.attn_implementation("flash_attention_2")
    assert accel.attn_implementation("sdpa") == "sdpa"


def test_fused_adamw_is_torchs_fused_kernel_and_trains_on_cpu(tmp_path):
    import torch

    from ftx.data import format as fmt
    from ftx.engine.build import build_model
    from ftx.engine.model import load_tokenizer, resolve_model_path
    from ftx.engine.optim import trainer_kwargs
    from ftx.engine.trainer import make_trainer_class, training_arguments

    spec = build_spec(compose(["model=tiny_llama", "train=tiny", "optimizer.name=adamw_torch_fused",
                               "train.max_steps=2", "train.eval_steps=0", "train.save_steps=0"]))
    model = build_model(spec, resolve_model_path(spec.model), False)
    tok = load_tokenizer(spec.model)
    ids = [list(range(5, 45))] * 4
    rows = [{"input_ids": i, "labels": i, "loss_weight": [1.0] * len(i)} for i in ids]
    args = training_arguments(spec, tmp_path, False)
    trainer = make_trainer_class()(model=model, args=args, train_dataset=rows, eval_dataset=rows,
                                   data_collator=fmt.Collator(tok.pad_token_id),
                                   **trainer_kwargs(model, spec.optimizer, args))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer.args.save_strategy = "no"
    trainer.args.eval_strategy = "no"
    trainer.train()
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"] is True
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)


def test_lora_dropout_is_off_by_default_so_a_training_forward_draws_no_mask():
    """lora.dropout defaults to 0 (docs/training.md, "Speed": its Bernoulli masks took 15% of a SmolLM2 step
    here): the wrapped model has no active dropout, a training forward is deterministic; 0.05 turns it on."""
    import torch

    from ftx.engine.build import build_model
    from ftx.engine.model import resolve_model_path

    def forward_twice(overrides):
        spec = build_spec(compose(["model=tiny_llama", *overrides]))
        model = build_model(spec, resolve_model_path(spec.model), False)
        for name, p in model.named_parameters():  # a non-zero adapter output, so its input dropout shows
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.1)
        model.train()
        active = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
        ids = torch.arange(5, 37).view(2, 16)
        with torch.no_grad():
            return spec.lora.dropout, active, model(input_ids=ids).logits, model(input_ids=ids).logits

    p, active, a, b = forward_twice([])
    assert p == 0.0 and not active and torch.equal(a, b)
    p, active, a, b = forward_twice(["lora.dropout=0.05"])
    assert p == 0.05 and active and not torch.equal(a, b)
