"""The catalogue of bad inputs and faults: each entry is what the user does, the exact one line on
stderr they get (exit code 2, no traceback), and the check. docs/errors.md lists every entry
(`python -m tests.unit.test_catalogue` prints the table; a test below keeps the two in sync).

Entries run in-process through `ftx.cli.main.main` (compose, validation, data loading with the tiny
model's tokenizer), so the module stays fast. `{d}` in a message is the test's data directory,
`{conf}` its config directory. Faults that need a real run (SIGKILL, full disk, resume) live in
tests/integration/test_faults*.py and are listed in FAULTS with where their test is.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import ftx.cli.main as cli
from ftx.spec import tree
from ftx.spec.tree import compose
from tests.helpers import ROOT, run_ftx, write_jsonl


@dataclass
class Entry:
    id: str
    what: str
    """The input or fault, as the docs table says it."""
    args: list[str]
    """`ftx …` arguments; `{d}`/`{conf}` are filled in."""
    message: str
    """The exact stderr line."""
    subprocess: bool = False
    """Run `python -m ftx` (for what only a real run reaches); its last stderr line must be the message,
    after whatever warnings the libraries print."""
    disk_full: str = ""
    """Simulate a full disk (ENOSPC) when a file of this name is renamed into place."""


TINY = ["model=tiny_llama", "curation=none"]
DATA = ["data.sources.general.path={d}/good.jsonl"]


def data(path: str, *extra: str) -> list[str]:
    """`ftx spec --data` with the tiny model and one domain source: loads, splits and tokenises."""
    return ["spec", *TINY, *DATA, f"data.sources.http.path={path}", *extra, "--data"]


def curated(*extra: str) -> list[str]:
    return ["spec", "model=tiny_llama", "curation=default", "curation.cache_dir={d}/cache",
            "data.sources.http.path={d}/good.jsonl", *DATA, *extra, "--data"]


CATALOGUE = [
    # --- the command line and config composition
    Entry("unknown-command", "an unknown command", ["frobnicate"],
          "ftx: unknown command 'frobnicate' (commands: {commands})"),
    Entry("unknown-flag", "a flag the command does not have", ["spec", "--bogus-flag"],
          "ftx: config error: ftx spec: unknown flag '--bogus-flag' (usage: ftx spec [key=value …] [--data])"),
    Entry("abbreviated-flag", "an abbreviated flag (flags are never abbreviated)", ["spec", "--dat"],
          "ftx: config error: ftx spec: unknown flag '--dat' (usage: ftx spec [key=value …] [--data])"),
    Entry("missing-argument", "a command without its required argument", ["eval"],
          "ftx: config error: ftx eval: the following arguments are required: RUN_DIR "
          "(usage: ftx eval RUN_DIR [key=value …] [--check])"),
    Entry("unknown-option", "an unknown option of a config group", ["spec", "model=llama9"],
          "ftx: config error: unknown option 'llama9' for group 'model' (available: local, smollm2_135m, tiny_llama)"),
    Entry("unknown-experiment", "an experiment that does not exist", ["spec", "experiment=nope"],
          "ftx: config error: unknown option 'nope' for group 'experiment' (available: {experiments})"),
    Entry("typo-key", "a typo'd key", ["spec", "lora.rnak=4"],
          "ftx: config error: unknown key 'lora.rnak' (valid keys of lora: {lora_keys})"),
    Entry("plus-key", "a `+`-added key no schema knows", ["spec", "+lora.rnak=4"],
          "ftx: config error: unknown key 'lora.rnak' (valid keys of lora: {lora_keys})"),
    Entry("plusplus-key", "a `++`-forced key no schema knows", ["spec", "++train.foo=1"],
          "ftx: config error: unknown key 'train.foo' (valid keys of train: {train_keys})"),
    Entry("wrong-type-int", "a string where an integer belongs", ["spec", "train.batch_size=abc"],
          "ftx: config error: 'train.batch_size': Value 'abc' of type 'str' could not be converted to Integer"),
    Entry("wrong-type-bool", "a non-boolean for a boolean", ["spec", "model.trust_remote_code=maybe"],
          "ftx: config error: 'model.trust_remote_code': Value 'maybe' is not a valid bool (type str)"),
    Entry("out-of-range", "a batch size of 0", ["spec", "train.batch_size=0"],
          "ftx: config error: train.batch_size: must be > 0, got 0"),
    Entry("bad-choice", "a value outside a key's choices", ["spec", "train.precision=fp16"],
          "ftx: config error: train.precision: must be one of auto, bf16, fp32; got 'fp16'"),
    Entry("quant-full", "quantisation with full fine-tuning", ["spec", "quant.mode=nf4", "lora.method=full"],
          "ftx: config error: quant.mode: =nf4 cannot train with lora.method=full (quantised weights are frozen); "
          "use quant=none or a LoRA method"),
    Entry("zero-offload-optimizer", "ZeRO optimizer offload without a ZeRO stage", ["spec", "zero.offload_optimizer=true"],
          "ftx: config error: zero.offload_optimizer: needs zero.stage >= 1 (got None)"),
    Entry("offload-param", "ZeRO parameter offload without stage 3", ["spec", "zero.offload_param=true"],
          "ftx: config error: zero.offload_param: needs zero.stage=3 (got None)"),
    Entry("path-without-path", "model.source=path with no path", ["spec", "model.source=path"],
          "ftx: config error: model.name_or_path: is required when model.source=path (a local folder or hub id)"),
    Entry("mix-ratio", "a mix ratio above 1", ["spec", "data.mix.domain_ratio=1.3"],
          "ftx: config error: data.mix.domain_ratio: must be in [0, 1] (0.8 = 80% domain), got 1.3"),
    Entry("bad-interpolation", "an interpolation to a key that does not exist", ["spec", "name=${{nope}}"],
          "ftx: config error: 'name': Interpolation key 'nope' not found"),
    Entry("bad-override-syntax", "an override Hydra cannot parse", ["spec", "lora.r=[1"],
          "ftx: config error: no viable alternative at input '[1'"),
    Entry("malformed-yaml", "malformed YAML in a user experiment file", ["spec", "experiment=broken"],
          "ftx: config error: {conf}/experiment/broken.yaml:5:14: malformed YAML (mapping values are not allowed here)"),
    Entry("secret-override", "a token passed as an override", ["spec", "+wandb.api_key=0123456789abcdef"],
          "ftx: config error: wandb.api_key: looks like a secret; ftx never takes secrets as overrides because "
          "overrides are written to the run directory (set WANDB_API_KEY / HF_TOKEN in the environment)"),
    # --- data files
    Entry("missing-file", "a data file that does not exist", data("{d}/missing.jsonl"),
          "ftx: data error: data.sources.http.path: file not found: {d}/missing.jsonl"),
    Entry("directory", "a directory where a data file belongs", data("{d}"),
          "ftx: data error: data.sources.http.path: {d} is a directory, expected a .jsonl file"),
    Entry("empty-file", "an empty data file", data("{d}/empty.jsonl"),
          "ftx: data error: data.sources.http.path: {d}/empty.jsonl holds no records (empty file)"),
    Entry("truncated-file", "a data file cut off mid-record", data("{d}/truncated.jsonl"),
          "ftx: data error: {d}/truncated.jsonl:30: malformed JSON (Unterminated string starting at column 59)"),
    Entry("non-utf8", "a Latin-1 data file", data("{d}/latin1.jsonl"),
          "ftx: data error: {d}/latin1.jsonl:1: not valid UTF-8 (byte 13); re-encode the file as UTF-8"),
    Entry("not-an-object", "a JSON array on a line", data("{d}/array.jsonl"),
          "ftx: data error: {d}/array.jsonl:1: expected a JSON object, got list"),
    Entry("no-text-field", "a record with none of the text fields", data("{d}/notext.jsonl"),
          "ftx: data error: {d}/notext.jsonl:1: no field 'messages', 'prompt'+'response' or 'text'; "
          "fields present: body, id (map yours with data.sources.http.fields.*)"),
    Entry("missing-mapped-field", "a mapped text field missing from the records",
          data("{d}/good.jsonl", "data.sources.http.kind=text", "data.sources.http.fields.text=body"),
          "ftx: data error: {d}/good.jsonl:1: missing field 'body'; fields present: id, prompt, response"),
    Entry("field-type", "a prompt that is a number", data("{d}/number.jsonl"),
          "ftx: data error: {d}/number.jsonl:1: field 'prompt' must be a string, got int"),
    Entry("template-tokens", "a chat template whose special tokens the tokenizer lacks",
          data("{d}/good.jsonl", "data.format.template=llama3"),
          "ftx: config error: data.format.template=llama3: the tokenizer lacks its special tokens "
          "<|start_header_id|>, <|end_header_id|>, <|eot_id|> (usable here: auto, chatml, plain)"),
    Entry("all-too-long", "max_length so short every example is dropped",
          data("{d}/good.jsonl", "data.format.max_length=16"),
          "ftx: data error: data.format.max_length=16: all 52 train examples are longer; "
          "raise it or set data.format.truncation=truncate"),
    # --- curation
    Entry("all-dropped", "every record dropped by curation", curated("curation.quality.min_words=500"),
          "ftx: data error: curation dropped every record (60 in); most were dropped by stage 'curate:quality' "
          "(60: too_short=60)"),
    Entry("seeds-empty-list", "an empty seed set", curated("curation.relevance.seeds=[]"),
          "ftx: config error: curation.relevance.seeds: is empty: the relevance stage needs seed files of "
          "in-domain examples"),
    Entry("seeds-empty-file", "a seed file with no records", curated("curation.relevance.seeds=[{d}/empty.jsonl]"),
          "ftx: data error: curation.relevance.seeds[0]: {d}/empty.jsonl holds no records (empty file)"),
    Entry("seeds-missing", "a seed file that does not exist", curated("curation.relevance.seeds=[{d}/nope.jsonl]"),
          "ftx: data error: curation.relevance.seeds[0]: file not found: {d}/nope.jsonl"),
    Entry("dev-one-class", "a relevance dev set with one class only",
          curated("curation.relevance.dev=[{d}/dev_one_class.jsonl]"),
          "ftx: data error: curation.relevance.dev: the dev set needs both relevant (1) and irrelevant (0) labels "
          "(got 5 of 5 relevant)"),
    Entry("dev-label-not-01", "a dev label that is not 0/1", curated("curation.relevance.dev=[{d}/dev_label_2.jsonl]"),
          "ftx: data error: curation.relevance.dev[0]: record l1: label 2 is not a label (use 1/0, true/false, "
          "relevant/irrelevant; null = unlabelled)"),
    Entry("feedback-other-corpus", "an active-learning feedback file from another corpus",
          curated("curation.relevance.feedback=[{d}/feedback_other.jsonl]"),
          "ftx: data error: curation.relevance.feedback[0]: 7 of its 7 labelled ids are not in this corpus "
          "(an export from another corpus or data config?)"),
    Entry("curate-out-exists", "`ftx curate --out` into a non-empty folder",
          ["curate", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}"],
          "ftx: config error: --out {d}: directory exists and is not empty (choose a new one)"),
    # --- the model
    Entry("model-missing", "a model path that does not exist",
          ["spec", "model.source=path", "model.name_or_path=/nonexistent/model", "--data"],
          "ftx: model error: model.name_or_path: '/nonexistent/model' does not exist "
          "(give an existing local folder or a hub id like org/name)"),
    Entry("model-not-a-model", "a model folder without config.json",
          ["spec", "model.source=path", "model.name_or_path={d}", "--data"],
          "ftx: model error: model.name_or_path: {d} has no config.json (expected a transformers model folder)"),
    Entry("model-offline-hub-id", "a hub id that is not cached, offline",
          ["spec", "model.source=path", "model.name_or_path=nobody/no-such-model", "--data"],
          "ftx: model error: model.name_or_path: cannot load a tokenizer from 'nobody/no-such-model' "
          "(We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the "
          "cached files.)"),
]

TRAIN = ["train", "experiment=tiny_smoke", "curation=none", "data.sources.http.path={d}/good.jsonl", *DATA,
         "hydra.run.dir={d}/runs/x"]
CATALOGUE += [
    Entry("pickle-weights", "a model folder with only pickle (*.bin) weights",
          [*TRAIN, "model.source=path", "model.name_or_path={d}/pickle_model"],
          "ftx: model error: model.name_or_path: {d}/pickle_model holds only pickle weights (*.bin), which can run "
          "code when loaded; convert them to safetensors, or set model.use_safetensors=false if you trust them",
          subprocess=True),
    Entry("int8-dora-cpu", "int8 quantisation with DoRA on a CPU", [*TRAIN, "quant=int8", "lora=dora"],
          "ftx: model error: quant.mode=int8 cannot train lora.method=dora on CPU (bitsandbytes loses the int8 scales "
          "after DoRA's first step); use quant=nf4 (QDoRA) or lora=lora", subprocess=True),
    Entry("run-dir-uncreatable", "a run directory that cannot be created (under a file)",
          [*TRAIN[:-1], "hydra.run.dir={d}/good.jsonl/run"],
          "ftx: config error: hydra.run.dir: cannot create {d}/good.jsonl/run (Not a directory)"),
    Entry("resume-not-a-checkpoint", "train.resume pointing at a folder that is not a checkpoint",
          [*TRAIN, "train.resume={d}"],
          "ftx: run error: train.resume: '{d}' is not a complete checkpoint folder (no readable trainer_state.json); "
          "use none, auto, if_present or a checkpoint-N folder", subprocess=True),
    Entry("resume-no-checkpoint", "train.resume=auto in a run directory with no checkpoint",
          [*TRAIN, "train.resume=auto"],
          "ftx: run error: train.resume=auto: no complete checkpoint in {d}/runs/x/checkpoints (resume needs the "
          "interrupted run's dir: add hydra.run.dir=<that dir>; train.resume=if_present starts fresh instead)",
          subprocess=True),
    Entry("corrupt-checkpoint", "resuming from a checkpoint whose optimizer.pt was cut short",
          [*TRAIN, "train.resume={d}/checkpoint-4"],
          "ftx: run error: train.resume: '{d}/checkpoint-4': optimizer.pt is damaged (File is not a zip file); "
          "resume from an earlier checkpoint-N or use train.resume=auto, which skips damaged checkpoints",
          subprocess=True),
]

SWEEP = ["train", "-m", "+sweep=tiny"]
CATALOGUE += [
    Entry("disk-full", "a full disk while writing the run directory (simulated ENOSPC)",
          ["curate", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}/full"],
          "ftx: run error: {d}/full/kept.jsonl: no space left on device (the previous version, if any, is intact; "
          "free some space and run again)", disk_full="kept.jsonl"),
    Entry("sweep-storage", "a sweep storage that is not a URL", [*SWEEP, "hydra.sweeper.storage=foo"],
          "ftx: config error: hydra.sweeper.storage: 'foo' is not a storage URL (use null for SQLite in the sweep "
          "dir, journal, journal:PATH, or an SQLAlchemy URL such as sqlite:///sweep.db or postgresql://user@host/db)",
          subprocess=True),
    Entry("sweep-sampler", "an unknown sweep sampler", [*SWEEP, "hydra.sweeper.sampler.name=bogus"],
          "ftx: config error: hydra.sweeper.sampler.name: must be one of tpe, random, grid, nsgaii; got 'bogus'",
          subprocess=True),
    Entry("sweep-report-not-a-sweep", "`ftx sweep-report` on a folder that is not a sweep", ["sweep-report", "{d}"],
          "ftx: run error: {d}: no sweep.json (not an ftx sweep directory); pass --storage and --study to report "
          "on a study elsewhere"),
]

CATALOGUE += [
    Entry("eval-not-a-run", "`ftx eval` on a folder that is not a run", ["eval", "{d}"],
          "ftx: run error: {d}: no config.yaml (not a finished ftx run; `ftx eval` needs config.yaml, metrics.json "
          "and adapter/)"),
    Entry("eval-damaged-metrics", "`ftx eval` on a run whose metrics.json was damaged", ["eval", "{d}/run_metrics"],
          "ftx: run error: {d}/run_metrics/metrics.json: damaged JSON (Expecting ',' delimiter at line 1 column 28); "
          "restore it or rerun the step that writes it"),
    Entry("eval-malformed-config", "`ftx eval` on a run whose config.yaml was hand-edited into bad YAML",
          ["eval", "{d}/run_yaml"],
          "ftx: run error: {d}/run_yaml/config.yaml:3:1: malformed YAML (expected the node content, but found "
          "'<stream end>')"),
]

CATALOGUE += [
    Entry("compare-missing", "`ftx compare` on a path that does not exist", ["compare", "{d}/nope"],
          "ftx: run error: {d}/nope: no such directory (give run directories, a sweep directory or a glob)"),
    Entry("report-malformed-config", "`ftx report` on a run whose config.yaml is bad YAML", ["report", "{d}/run_yaml"],
          "ftx: run error: {d}/run_yaml/config.yaml:3:1: malformed YAML (expected the node content, but found "
          "'<stream end>')"),
    Entry("report-not-a-run", "`ftx report` on a folder that is not a run", ["report", "{d}"],
          "ftx: run error: {d}: not a run directory (expected config.yaml and manifest.json in it)"),
]

# Faults with no error message: what must hold afterwards, and where that is tested.
FAULTS = [
    ("sigkill-training", "SIGKILL during training after a checkpoint, then the same command with train.resume=auto",
     "resumes from the newest complete checkpoint; every step and evaluation appears once in metrics.jsonl",
     "tests/integration/test_faults.py::test_sigkill_during_training_then_resume_loses_and_duplicates_nothing"),
    ("sigkill-curation", "SIGKILL during `ftx curate`, then the same command",
     "finished stages come from the cache; kept.jsonl, dropped.jsonl and ledger.json equal a clean run's",
     "tests/integration/test_faults.py::test_sigkill_during_curation_then_rerun_matches_a_clean_run"),
    ("sigkill-sweep", "SIGKILL of a whole sweep mid-trial, then the same command",
     "the interrupted trial is re-queued once; finished trials are kept; no trial duplicated",
     "tests/integration/test_sweep.py::test_killed_sweep_resumes_with_no_trial_lost_or_duplicated"),
    ("cut-metrics-line", "a crash in the middle of a metrics.jsonl line",
     "the cut line is skipped when read and removed on resume",
     "tests/integration/test_faults.py::test_metrics_rewind_drops_the_steps_a_resume_redoes"),
    ("disk-full-checkpoint", "a full disk while the Trainer saves a checkpoint",
     "one line `ftx: run error: RUN_DIR: no space left on device …`; after freeing space, train.resume=auto "
     "passes over the cut checkpoint (warning) and resumes from the one before",
     "tests/integration/test_faults.py::test_a_full_disk_while_saving_a_checkpoint_is_one_run_error, "
     "::test_resume_auto_passes_over_a_damaged_checkpoint"),
    ("secrets", "WANDB_API_KEY, HF_TOKEN, *_SECRET, *PASSWORD*, *_API_KEY set during a run",
     "neither names nor values appear in the run dir, .hydra/, train.log, stdout or stderr",
     "tests/integration/test_faults_secrets.py::test_a_run_writes_no_secret_names_or_values"),
    ("non-atomic-write", "code that writes a run-dir file without atomic_write_text",
     "a static test lists it (allow-list with reasons for temp-folder writes)",
     "tests/integration/test_faults.py::test_everything_a_later_step_reads_is_written_atomically"),
    ("disk-full-keeps-old", "a full disk while replacing a file that already exists",
     "the previous version stays whole and no temporary file is left",
     "tests/integration/test_faults.py::test_atomic_write_on_a_full_disk_keeps_the_previous_file"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("catalogue")
    good = [{"id": f"d{i}", "prompt": f"What is header {i}?", "response": f"Header {i} carries metadata number {i}."}
            for i in range(30)]
    text = "".join(json.dumps(r) + "\n" for r in good)
    (d / "good.jsonl").write_text(text)
    (d / "truncated.jsonl").write_text(text[:-20])
    (d / "empty.jsonl").write_text("")
    (d / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9 au lait"}\n')
    (d / "array.jsonl").write_text("[1, 2]\n")
    write_jsonl(d / "notext.jsonl", [{"id": "a", "body": "x"}])
    write_jsonl(d / "number.jsonl", [{"prompt": 3, "response": "x"}])
    write_jsonl(d / "dev_one_class.jsonl", [{"id": f"o{i}", "text": f"HTTP header {i} is a header.", "label": 1}
                                            for i in range(5)])
    write_jsonl(d / "dev_label_2.jsonl", [{"id": "l1", "text": "The Vary header selects a cached variant.", "label": 2}])
    write_jsonl(d / "feedback_other.jsonl", [{"id": f"other-{i}", "text": f"Header {i}.", "label": 1} for i in range(7)])
    pickle_model(d / "pickle_model")
    (d / "checkpoint-4").mkdir()
    (d / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    (d / "checkpoint-4" / "optimizer.pt").write_bytes(b"PK\x03\x04 cut short by a full disk")
    for name, config, metrics in (("run_metrics", None, '{"tuned": {"val_loss": 1.0 "x"}}'),
                                  ("run_yaml", "name: x\nmodel: [1,\n", "{}")):
        run = d / name
        (run / "adapter").mkdir(parents=True)
        if config is None:
            from omegaconf import OmegaConf

            from ftx.spec.run import as_dict, build_spec

            config = OmegaConf.to_yaml(OmegaConf.create(as_dict(build_spec(compose(TINY)))))
        (run / "config.yaml").write_text(config)
        (run / "metrics.json").write_text(metrics)
        (run / "manifest.json").write_text("{}")
    conf = d / "conf"
    shutil.copytree(tree.CONF_DIR, conf, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    (conf / "experiment" / "broken.yaml").write_text(
        "# @package _global_\n# ftx train experiment=broken\ntrain:\n  epochs: 2\n   batch_size: 4\n")
    return d, conf


def pickle_model(dst: Path) -> Path:
    """The tiny model's folder with its weights as a pickle (pytorch_model.bin) instead of safetensors."""
    import torch
    from safetensors.torch import load_file

    from ftx.engine.model import build_tiny
    from ftx.spec.model import ModelConfig

    src = Path(build_tiny(ModelConfig(source="tiny")))
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy(f, dst)
    torch.save(load_file(src / "model.safetensors"), dst / "pytorch_model.bin")
    return dst


def fill(text: str, d, conf, experiments: str = "") -> str:
    from dataclasses import fields

    from ftx.spec.lora import LoraConfig
    from ftx.spec.train import TrainConfig

    experiments = experiments or ", ".join(sorted(p.stem for p in (Path(conf) / "experiment").glob("*.yaml")))
    return text.format(d=d, conf=conf, commands=", ".join(cli.COMMANDS), experiments=experiments,
                       lora_keys=", ".join(f.name for f in fields(LoraConfig)),
                       train_keys=", ".join(f.name for f in fields(TrainConfig)))


def run_main(args: list[str], capsys) -> tuple[int, str]:
    try:
        cli.main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("entry", CATALOGUE, ids=[e.id for e in CATALOGUE])
def test_entry(entry, files, capsys, monkeypatch, tmp_path):
    d, conf = files
    monkeypatch.setattr(tree, "CONF_DIR", conf)
    monkeypatch.chdir(tmp_path)
    args = [fill(a, d, conf) for a in entry.args]
    if entry.subprocess:
        r = run_ftx(args, tmp_path, timeout=300)  # the shipped ftx/conf (with its sweep group)
        code, err = r.returncode, r.stderr
        assert "Traceback" not in err
        assert code == 2, err[-2000:]
        assert err.strip().splitlines()[-1] == fill(entry.message, d, conf), err[-2000:]
        assert err.count("ftx: ") == 1, err[-2000:]
        return
    if entry.disk_full:
        real_replace = os.replace

        def replace(src, dst):
            if Path(dst).name == entry.disk_full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
    code, err = run_main(args, capsys)
    assert "Traceback" not in err
    assert code == 2, err
    assert err == fill(entry.message, d, conf) + "\n"
    assert not (tmp_path / "outputs").exists(), "a rejected command leaves nothing behind"


def test_at_least_thirty_entries():
    assert len({e.id for e in CATALOGUE} | {f[0] for f in FAULTS}) == len(CATALOGUE) + len(FAULTS) >= 30


def test_remote_code_is_off_and_weights_are_safetensors_unless_configured(monkeypatch, caplog, files):
    """Every from_pretrained gets trust_remote_code from the config (default False) and safetensors only;
    model.use_safetensors=false allows pickle weights and warns."""
    import transformers

    from ftx.engine.model import load_model, load_tokenizer
    from ftx.spec.model import ModelConfig
    from ftx.spec.run import RunSpec

    d, _ = files
    spec = RunSpec()
    assert spec.model.trust_remote_code is False and spec.model.use_safetensors is True
    seen = []
    real_tok = transformers.AutoTokenizer.from_pretrained

    def tok(path, **kw):
        seen.append(("tokenizer", kw.get("trust_remote_code")))
        return real_tok(path, **kw)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tok)
    cfg = ModelConfig(source="path", name_or_path=str(d / "pickle_model"), use_safetensors=False)
    load_tokenizer(cfg)
    with caplog.at_level("WARNING", logger="ftx.engine.model"):
        model = load_model(cfg)  # the pickle folder loads only because the config allows it
    assert "model.use_safetensors=false: pickle weights may execute code when loaded" in caplog.text
    assert model.config.hidden_size == ModelConfig().tiny.hidden_size and seen == [("tokenizer", False)]
    kwargs = {}
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda p, **kw: kwargs.update(kw))
    load_model(ModelConfig(source="tiny"))
    assert kwargs["trust_remote_code"] is False and kwargs["use_safetensors"] is True


def table() -> str:
    rows = ["| # | input or fault | what `ftx` prints (one line on stderr, exit code 2) | test |",
            "|---|---|---|---|"]
    exps = "broken, " + ", ".join(sorted(p.stem for p in (tree.CONF_DIR / "experiment").glob("*.yaml")))

    def show(text: str) -> str:
        return fill(text, "DIR", "CONF", exps).replace("|", "\\|")

    for i, e in enumerate(CATALOGUE, 1):
        rows.append(f"| {i} | {e.what}: `ftx {show(' '.join(e.args))}` | `{show(e.message)}` | "
                    f"test_catalogue.py::test_entry[{e.id}] |")
    rows += ["", "Faults with no error message — what holds afterwards:", "",
             "| # | fault | outcome | test |", "|---|---|---|---|"]
    for j, (fid, what, outcome, where) in enumerate(FAULTS, len(CATALOGUE) + 1):
        rows.append(f"| {j} | {what} | {outcome} | {where} |")
    return "\n".join(rows) + "\n"


def test_docs_table_lists_every_entry():
    doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    missing = [row for row in table().splitlines() if row.startswith("| ") and row not in doc]
    assert not missing, "docs/errors.md is out of date (python -m tests.unit.test_catalogue): " + missing[0]


if __name__ == "__main__":
    sys.stdout.write(table())
