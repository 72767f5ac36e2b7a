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
from tests.helpers import ROOT, answer_all, predicted_run, run_ftx, run_main, write_jsonl


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
    locked: str = ""
    """Hold the output lock of this path (as another ftx process would) while the command runs; `{pid}`
    in the message is our pid."""
    free_memory: int = 0
    """Pretend the device has this many bytes free (ftx.engine.dpo.free_bytes), for the DPO reference check."""


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
    Entry("objective-not-measured", "an objective naming a metric the eval config does not produce",
          ["spec", "eval=loss_only", "objective.metric=tuned/val_contains"],
          "ftx: config error: objective.metric: 'tuned/val_contains' is not produced by this eval config "
          "(eval.generation.enabled=false); tuned/ takes: val_loss, test_loss, general_eval_loss"),
    Entry("significance-range", "a significance level outside (0, 1)", ["spec", "eval.significance=1.5"],
          "ftx: config error: eval.significance: must be in (0, 1) (0.05 = 5% level), got 1.5"),
    Entry("primary-not-generated", "a primary metric on a split without generation",
          ["spec", "eval.primary=general_eval_contains"],
          "ftx: config error: eval.primary: =general_eval_contains: split 'general_eval' is not generated "
          "(eval.generation.enabled=true, eval.generation.splits=[val, test])"),
    Entry("select-task-no-generation", "early stopping on a task metric with generation disabled",
          ["spec", "eval=loss_only", "eval.select.metric=task", "train.early_stopping_patience=2"],
          "ftx: config error: eval.select.metric: =task (early stopping and train.keep_best by eval.primary, "
          "generated on validation prompts) needs generation on val (eval.generation.enabled=false, "
          "eval.generation.splits=[val, test]); use eval.select.metric=loss or enable generation on val"),
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
          "ftx: config error: override 'lora.r=[1': no viable alternative at input '[1' (Hydra's override "
          "grammar: quote values holding brackets, commas or spaces, e.g. key='[1, 2]' for a list)"),
    Entry("malformed-yaml", "malformed YAML in a user experiment file", ["spec", "experiment=broken"],
          "ftx: config error: {conf}/experiment/broken.yaml:5:14: malformed YAML (mapping values are not allowed here)"),
    # --- the user's own config folder, layered in front of ftx's (docs/architecture.md: the search path)
    Entry("user-conf-unknown-option", "an option in neither your config folder nor ftx's",
          ["spec", "--config-dir", "{d}/userconf", "data=nope"],
          "ftx: config error: unknown option 'nope' for group 'data' (yours in {d}/userconf/data: broken, mine; "
          "ftx's: http_demo, http_mix, http_prefs, leaky)"),
    Entry("user-conf-malformed-yaml", "malformed YAML in your own config folder",
          ["spec", "--config-dir", "{d}/userconf", "data=broken"],
          "ftx: config error: {d}/userconf/data/broken.yaml:4:12: malformed YAML (mapping values are not allowed here)"),
    Entry("config-dir-missing", "`--config-dir` naming a folder that does not exist",
          ["spec", "--config-dir", "{d}/no_such_conf"],
          "ftx: config error: --config-dir {d}/no_such_conf: no such folder (give the folder holding your config "
          "groups: data/, experiment/, sweep/ …; `ftx init` writes one)"),
    Entry("init-not-empty", "`ftx init` into a folder that is not empty", ["init", "{d}"],
          "ftx: config error: ftx init: {d} is not empty (ftx init never overwrites; give a new or empty folder)"),
    Entry("secret-override", "a token passed as an override", ["spec", "+wandb.api_key=0123456789abcdef"],
          "ftx: config error: wandb.api_key: looks like a secret; ftx never takes secrets as overrides because "
          "overrides are written to the run directory (set WANDB_API_KEY / HF_TOKEN in the environment)"),
    Entry("secret-value-override", "a token-shaped value in an override (any key)",
          ["spec", "tracking.tags=[hf_abcdefghijklmnopqrstuvwxyz0123]"],
          "ftx: config error: tracking.tags: the value is shaped like a secret token (Hugging Face token, hf_…); "
          "ftx never takes secrets as overrides because overrides are written to the run directory "
          "(set WANDB_API_KEY / HF_TOKEN in the environment)"),
    Entry("secret-value-aws", "an AWS access key id as a value", ["spec", "name=AKIAIOSFODNN7EXAMPLE"],
          "ftx: config error: name: the value is shaped like a secret token (AWS access key id, AKIA…); "
          "ftx never takes secrets as overrides because overrides are written to the run directory "
          "(set WANDB_API_KEY / HF_TOKEN in the environment)"),
    Entry("secret-value-config", "a token-shaped value inside a user's data YAML (CONF/data/leaky.yaml)",
          ["spec", "data=leaky"],
          "ftx: config error: data.sources.http.path: the value is shaped like a secret token (GitHub token, "
          "ghp_…); ftx refuses secrets in configs because the config is written to the run directory "
          "(set WANDB_API_KEY / HF_TOKEN in the environment)"),
    # --- multirun (-m) and sweeps: validated like a single run, before any sweep directory exists
    Entry("multirun-typo-key", "a typo'd key in a `-m` list", ["train", "-m", "lora.rr=4,8"],
          "ftx: config error: override 'lora.rr=4,8': unknown key 'lora.rr' (valid keys of lora: {lora_keys})"),
    Entry("multirun-bad-value", "a bad value in a `-m` list", ["train", "-m", "lora.method=lora,dorra"],
          "ftx: config error: override 'lora.method=lora,dorra': value dorra: lora.method: must be one of lora, "
          "dora, rslora, full; got 'dorra'"),
    Entry("multirun-wrong-type", "a value of the wrong type in a `-m` list", ["train", "-m", "train.batch_size=1,abc"],
          "ftx: config error: override 'train.batch_size=1,abc': value abc: 'train.batch_size': Value 'abc' of "
          "type 'str' could not be converted to Integer"),
    Entry("multirun-unknown-option", "a sweep over a group option that does not exist",
          ["train", "-m", "lora=lora,nope"],
          "ftx: config error: override 'lora=lora,nope': unknown option 'nope' for group 'lora' "
          "(available: dora, full, lora, rslora)"),
    Entry("multirun-nested-key", "a typo inside a nested dict in a `-m` list",
          ["train", "-m", "data.mix={{domain_ratio:0.5}},{{domain_rati:0.8}}"],
          "ftx: config error: override 'data.mix={{domain_ratio:0.5}},{{domain_rati:0.8}}': unknown key "
          "'data.mix.domain_rati' (valid keys of data.mix: {mix_keys})"),
    Entry("multirun-list-element", "a list value with an element of the wrong type in a `-m` list",
          ["train", "-m", "optimizer.betas=[0.9,0.99],[0.9,abc]"],
          "ftx: config error: override 'optimizer.betas=[0.9,0.99],[0.9,abc]': value [0.9,abc]: "
          "'optimizer.betas[1]': Value 'abc' of type 'str' could not be converted to Float"),
    Entry("multirun-combination", "a `-m` grid with a combination the cross-group rules refuse",
          ["train", "-m", "quant=none,nf4", "lora.method=lora,full"],
          "ftx: config error: sweep combination quant=nf4 lora.method=full: quant.mode: =nf4 cannot train with "
          "lora.method=full (quantised weights are frozen); use quant=none or a LoRA method"),
    Entry("multirun-interval", "interval() with Hydra's basic sweeper (it cannot sample)",
          ["train", "-m", "lora.r=interval(1,4)"],
          "ftx: config error: override 'lora.r=interval(1,4)': interval() needs a sampler; Hydra's basic sweeper "
          "only enumerates lists, choice(), range() and glob() (use hydra/sweeper=ftx, or a ready +sweep=… file)"),
    Entry("multirun-tag", "a sweep tag with Hydra's basic sweeper (it reads none)",
          ["train", "-m", "lora.r=tag(log,choice(4,8))"],
          "ftx: config error: override 'lora.r=tag(log,choice(4,8))': tag(log, …) means nothing to Hydra's basic "
          "sweeper, which runs every value as listed (use hydra/sweeper=ftx for tag(log, interval(…)))"),
    Entry("multirun-and-cfg", "`-m` together with `--cfg`", ["train", "-m", "--cfg", "job"],
          "ftx: config error: ftx train: -m and --cfg cannot be combined (Hydra runs one mode at a time: -m, --run, "
          "--cfg, --info or --shell-completion)"),
    Entry("sweep-without-multirun", "several values for a key without `-m`", ["train", "lora.r=4,8"],
          "ftx: config error: lora.r=4,8: several values sweep a key, which needs a multirun (ftx train -m "
          "lora.r=4,8); for one list value write lora.r=[4,8], for one string quote it: lora.r='4,8'"),
    Entry("sweep-unknown-tag", "a typo'd sweep tag", ["train", "-m", "+sweep=tiny",
                                                     "optimizer.lr=tag(logg, interval(1e-5,1e-2))"],
          "ftx: config error: override 'optimizer.lr=tag(logg, interval(1e-5,1e-2))': unknown sweep tag 'logg' "
          "(valid: log, on interval())"),
    Entry("sweep-bad-choice", "a bad value in a sweep's choice()", ["train", "-m", "+sweep=tiny",
                                                                   "lora.method=choice(lora,dorra)"],
          "ftx: config error: override 'lora.method=choice(lora,dorra)': value dorra: lora.method: must be one of "
          "lora, dora, rslora, full; got 'dorra'"),
    Entry("sweep-file-tag", "a typo'd tag in a sweep file's hydra.sweeper.params (CONF/sweep/badtag.yaml)",
          ["train", "-m", "+sweep=badtag"],
          "ftx: config error: hydra.sweeper.params.optimizer.lr: unknown sweep tag 'logg' (valid: log, on interval())"),
    Entry("sweep-file-value", "a bad value in a sweep file's hydra.sweeper.params (CONF/sweep/badvalue.yaml)",
          ["train", "-m", "+sweep=badvalue"],
          "ftx: config error: hydra.sweeper.params.lora.method: value dorra: lora.method: must be one of lora, dora, "
          "rslora, full; got 'dorra'"),
    Entry("sweep-file-key", "a typo'd key in a sweep file's hydra.sweeper.params (CONF/sweep/badkey.yaml)",
          ["train", "-m", "+sweep=badkey"],
          "ftx: config error: hydra.sweeper.params.lora.rr: unknown key 'lora.rr' (valid keys of lora: {lora_keys})"),
    # --- data files
    Entry("missing-file", "a data file that does not exist", data("{d}/missing.jsonl"),
          "ftx: data error: data.sources.http.path: file not found: {d}/missing.jsonl"),
    Entry("directory", "a folder that is neither a save_to_disk dataset nor holds .txt/.md files",
          data("{d}/checkpoint-4"),
          "ftx: data error: data.sources.http.path: {d}/checkpoint-4 is a directory with neither a datasets "
          "save_to_disk dataset nor .txt/.md files (a folder source is one of those two)"),
    Entry("unreadable-format", "a file format ftx cannot read", data("{d}/faq.xlsx"),
          "ftx: data error: data.sources.http.path: cannot read {d}/faq.xlsx (.xlsx); readable: .jsonl, .jsonl.gz, "
          ".json, .csv, .tsv, .parquet, .arrow, a datasets save_to_disk folder, a folder or glob of .txt/.md files, "
          "or a hub dataset id (or set data.sources.http.format)"),
    Entry("csv-columns", "a CSV without the mapped columns", data("{d}/faq.csv"),
          "ftx: data error: {d}/faq.csv: no column 'messages', 'prompt'+'response' or 'text'; columns: question, "
          "answer (map yours with data.sources.http.fields.*)"),
    Entry("parquet-type", "a Parquet column of the wrong type", data("{d}/number.parquet"),
          "ftx: data error: {d}/number.parquet: column 'prompt' is int64, expected string"),
    Entry("glob-empty", "a glob that matches nothing", data("{d}/notes/*.md"),
          "ftx: data error: data.sources.http.path: no file matches {d}/notes/*.md"),
    Entry("hub-offline", "a hub dataset id on an offline machine", data("no-such-org/no-such-dataset"),
          "ftx: data error: data.sources.http.path: hub dataset 'no-such-org/no-such-dataset' is not in the local "
          "cache and this machine is offline (HF_HUB_OFFLINE=1); download it once online, or give a local file"),
    Entry("source-from-the-command-line-typo", "a typo'd key of a source added from the command line",
          ["spec", "+data.sources.mine.path=faq.csv", "+data.sources.mine.rol=domain"],
          "ftx: config error: unknown key 'data.sources.mine.rol' (valid keys of data.sources.mine: path, format, "
          "split, enabled, role, kind, fields, weight, synthetic, max_records, on_bad_record)"),
    Entry("empty-file", "an empty data file", data("{d}/empty.jsonl"),
          "ftx: data error: data.sources.http.path: {d}/empty.jsonl holds no records (empty file)"),
    Entry("truncated-file", "a data file cut off mid-record", data("{d}/truncated.jsonl"),
          "ftx: data error: {d}/truncated.jsonl:30: malformed JSON (Unterminated string starting at column 59)"),
    Entry("non-utf8", "a Latin-1 data file", data("{d}/latin1.jsonl"),
          "ftx: data error: {d}/latin1.jsonl:1: not valid UTF-8 (byte 13); re-encode the file as UTF-8"),
    Entry("not-an-object", "a JSON array on a line", data("{d}/array.jsonl"),
          "ftx: data error: {d}/array.jsonl:1: expected a JSON object, got list (a JSON array file? JSON Lines holds "
          "one object per line: name it .json, or set the source's format: json)"),
    Entry("json-array-named-jsonl", "a pretty-printed JSON array file named .jsonl", data("{d}/array_file.jsonl"),
          "ftx: data error: {d}/array_file.jsonl: holds a JSON array, not JSON Lines (one object per line): name it "
          ".json, or set the source's format: json"),
    Entry("pretty-printed-jsonl", "pretty-printed JSON objects in a .jsonl file", data("{d}/pretty.jsonl"),
          "ftx: data error: {d}/pretty.jsonl:1: holds pretty-printed JSON (an object spread over several lines); "
          "JSON Lines needs one object per line: write one record per line, or use a .json file (an array of "
          "objects)"),
    Entry("gzip-named-jsonl", "a gzip-compressed file named .jsonl", data("{d}/compressed.jsonl"),
          "ftx: data error: {d}/compressed.jsonl: is gzip-compressed but not named .gz (name it .jsonl.gz, or "
          "gunzip it)"),
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
    Entry("all-domain-dropped", "relevance dropping every domain record (general data kept)",
          ["spec", "model=tiny_llama", "curation=default", "curation.cache_dir={d}/cache",
           "curation.stages=[normalize,relevance]", "curation.relevance.threshold.mode=absolute",
           "curation.relevance.threshold.value=0.99", "data.sources.http.path={d}/good.jsonl",
           "data.sources.general.path={d}/general.jsonl", "--data"],
          "ftx: data error: curation dropped every domain record (30 in, 20 general kept): stage 'curate:relevance' "
          "dropped 30 (off_domain=30); nothing is left to train or validate on (relevance dropped 30 of 30 domain "
          "records as unlike curation.relevance.seeds, which are ftx's HTTP demo examples, not data.sources.http's "
          "domain: give seeds (and a labelled dev set) of your domain, curation.relevance.seeds=[seeds.jsonl] "
          "curation.relevance.dev=[dev.jsonl], or leave relevance out: curation=light)"),
    Entry("mix-side-emptied", "a mix share whose every example an earlier stage dropped (all general too long)",
          ["spec", *TINY, "data.sources.http.path={d}/good.jsonl", "data.sources.general.path={d}/long.jsonl",
           "data.format.max_length=64", "data.mix.domain_ratio=0.8", "--data"],
          "ftx: data error: data.mix: the training split has no general example left for a 0.2 share of the mix "
          "(check the general sources, or data.mix.domain_ratio); earlier, stage 'format:train' dropped 19 "
          "(too_long=19); also 'decontaminate' 1"),
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
    # --- output paths (ftx/runs.py: output_dir, output_file, usable_dir; earlier_run for run dirs)
    Entry("curate-out-exists", "`ftx curate --out` into a non-empty folder",
          ["curate", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}/nonempty"],
          "ftx: config error: --out {d}/nonempty: directory exists and is not empty (choose a new one, or pass "
          "--overwrite to replace it)"),
    Entry("curate-out-holds-input", "`ftx curate --out` a folder holding one of the run's own sources",
          ["curate", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}", "--overwrite"],
          "ftx: config error: --out: {d} holds {d}/good.jsonl, one of this command's inputs (writing it would "
          "replace them); choose another output path"),
    Entry("curate-out-is-file", "`ftx curate --out` an existing file",
          ["curate", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}/empty.jsonl"],
          "ftx: config error: --out: {d}/empty.jsonl is a file, not a folder (give a folder path)"),
    Entry("curate-out-uncreatable", "`ftx curate --out` under a path that is a file",
          ["curate", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}/empty.jsonl/out"],
          "ftx: config error: --out: cannot create {d}/empty.jsonl/out: {d}/empty.jsonl is a file, not a folder"),
    Entry("curate-out-locked", "`ftx curate --out O` while another ftx process writes O",
          ["curate", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}/locked"],
          "ftx: run error: --out: {d}/locked is being written by another ftx process (pid {pid}); wait for it "
          "to finish or choose another path", locked="{d}/locked"),
    Entry("augment-out-is-source", "`ftx augment --out` one of the run's own source files",
          ["augment", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}/good.jsonl",
           "--overwrite"],
          "ftx: config error: --out: {d}/good.jsonl is one of this command's inputs (writing it would replace "
          "them); choose another output path"),
    Entry("augment-out-exists", "`ftx augment --out` an existing file, without --overwrite",
          ["augment", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}/truncated.jsonl"],
          "ftx: config error: --out: {d}/truncated.jsonl exists (choose a new path, or pass --overwrite to "
          "replace it)"),
    Entry("augment-out-uncreatable", "`ftx augment --out` under a path that is a file (before the model loads)",
          ["augment", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "--out", "{d}/empty.jsonl/s.jsonl"],
          "ftx: config error: --out: cannot create {d}/empty.jsonl/s.jsonl: {d}/empty.jsonl is a file, not a "
          "folder"),
    Entry("report-out-uncreatable", "`ftx report --out` under a path that is a file",
          ["report", "{d}/run_metrics", "--out", "{d}/empty.jsonl/r"],
          "ftx: config error: --out: cannot create {d}/empty.jsonl/r: {d}/empty.jsonl is a file, not a folder"),
    Entry("report-out-is-run", "`ftx report --out` the run directory itself",
          ["report", "{d}/run_metrics", "--out", "{d}/run_metrics", "--overwrite"],
          "ftx: config error: --out: {d}/run_metrics is one of this command's inputs (writing it would replace "
          "them); choose another output path"),
    Entry("compare-out-is-file", "`ftx compare --out` an existing file",
          ["compare", "{d}/run_metrics", "--out", "{d}/empty.jsonl"],
          "ftx: config error: --out: {d}/empty.jsonl is a file, not a folder (give a folder path)"),
    Entry("model-cache-uncreatable", "a model cache (model.cache_dir or FTX_CACHE) that cannot be created",
          [*data("{d}/good.jsonl"), "model.cache_dir={d}/empty.jsonl/models"],
          "ftx: config error: model.cache_dir: cannot create {d}/empty.jsonl/models: {d}/empty.jsonl is a file, "
          "not a folder"),
    Entry("curation-cache-is-file", "a curation cache dir that is a file",
          curated("curation.cache_dir={d}/empty.jsonl"),
          "ftx: config error: curation.cache_dir: {d}/empty.jsonl is a file, not a folder (give a folder path)"),
    Entry("run-dir-reused", "`ftx train hydra.run.dir=R` on a dir that holds an earlier run, without train.resume",
          ["train", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "hydra.run.dir={d}/run_yaml"],
          "ftx: config error: hydra.run.dir: {d}/run_yaml holds a finished run (config.yaml, manifest.json, "
          "metrics.json, adapter); a run dir takes one run: continue an interrupted one with train.resume=auto, "
          "or choose a new hydra.run.dir"),
    Entry("sweep-dir-uncreatable", "`ftx train -m hydra.sweep.dir=S` under a path that is a file",
          ["train", "-m", *TINY, "lora.r=2,4", "hydra.sweep.dir={d}/empty.jsonl/sweep"],
          "ftx: config error: hydra.sweep.dir: cannot create {d}/empty.jsonl/sweep: {d}/empty.jsonl is a file, "
          "not a folder"),
    Entry("run-dir-is-file", "`ftx train hydra.run.dir=R` where R is a file",
          ["train", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "hydra.run.dir={d}/empty.jsonl"],
          "ftx: config error: hydra.run.dir: {d}/empty.jsonl is a file, not a folder (give a folder path)"),
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
    # --- curation on real corpora (issue 16)
    Entry("semantic-radius", "a semantic-dedup radius outside (0, 1]", curated("curation.semantic_dedup.radius=1.5"),
          "ftx: config error: curation.semantic_dedup.radius: must be a cosine distance in (0, 1], got 1.5"),
    Entry("embedding-model-not-a-model", "an embedding model folder that is not one",
          curated("curation.stages=[semantic_dedup]", "curation.semantic_dedup.embedding_model={d}"),
          "ftx: config error: curation.semantic_dedup.embedding_model: {d} is not a model folder (no config.json; "
          "a transformers model folder holds config.json, the weights and the tokenizer files)"),
    Entry("label-file-missing", "`ftx curate --label` with a file that does not exist",
          ["curate", "--label", "{d}/nope.jsonl"],
          "ftx: data error: --label: file not found: {d}/nope.jsonl"),
]

TRAIN = ["train", "experiment=tiny_smoke", "curation=none", "data.sources.http.path={d}/good.jsonl", *DATA,
         "hydra.run.dir={d}/runs/{id}"]  # a run dir per entry: a run dir takes one run
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
          "ftx: config error: hydra.run.dir: cannot create {d}/good.jsonl/run: {d}/good.jsonl is a file, not a "
          "folder"),
    Entry("resume-not-a-checkpoint", "train.resume pointing at a folder that is not a checkpoint",
          [*TRAIN, "train.resume={d}"],
          "ftx: run error: train.resume: '{d}' is not a complete checkpoint folder (no readable trainer_state.json); "
          "use none, auto, if_present or a checkpoint-N folder", subprocess=True),
    Entry("resume-no-checkpoint", "train.resume=auto in a run directory with no checkpoint",
          [*TRAIN, "train.resume=auto"],
          "ftx: run error: train.resume=auto: no complete checkpoint in {d}/runs/{id}/checkpoints (resume needs the "
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
    Entry("path-without-source", "a model folder given while model.source is the embedded default",
          ["spec", "model.name_or_path=/models/llama"],
          "ftx: config error: model.name_or_path: =/models/llama is read only when model.source=path, and "
          "model.source is gguf_package (it would train the smollm2-135m-instruct model instead); use model=local "
          "model.name_or_path=/models/llama, or add model.source=path"),
]

PREFS = ["spec", *TINY, "data=http_prefs", "data.sources.general.path={d}/good.jsonl"]
CATALOGUE += [
    Entry("pref-same-reply", "a preference record whose chosen and rejected replies are the same",
          [*PREFS, "data.sources.prefs.path={d}/pref_same.jsonl", "--data"],
          "ftx: data error: {d}/pref_same.jsonl:2: 'chosen' and 'rejected' are the same text; a preference pair "
          "must differ (drop the record, or keep it as SFT data with a 'response' field)"),
    Entry("pref-missing-side", "a preference record without its rejected reply",
          [*PREFS, "data.sources.prefs.path={d}/pref_one_side.jsonl", "--data"],
          "ftx: data error: {d}/pref_one_side.jsonl:3: preference record without 'rejected'; a pair needs both "
          "'chosen' and 'rejected' (fields present: chosen, id, prompt)"),
    Entry("dpo-beta", "`train.dpo.beta` <= 0", ["spec", "train.objective=dpo", "train.dpo.beta=0"],
          "ftx: config error: train.dpo.beta: must be > 0 (0.1 is usual), got 0.0"),
    Entry("dpo-sft-weight", "`train.dpo.sft_weight` < 0", ["spec", "train.objective=dpo", "train.dpo.sft_weight=-0.5"],
          "ftx: config error: train.dpo.sft_weight: must be >= 0 (0: plain DPO; 1: RPO's weight), got -0.5"),
    Entry("chosen-rise", "`eval.preference.max_chosen_rise` < 0", ["spec", "eval.preference.max_chosen_rise=-0.1"],
          "ftx: config error: eval.preference.max_chosen_rise: must be >= 0 (a relative rise: 0.10 = +10%) or "
          "null, got -0.1"),
    Entry("orpo-beta", "`train.orpo.beta` <= 0", ["spec", "train.objective=orpo", "train.orpo.beta=-1"],
          "ftx: config error: train.orpo.beta: must be > 0 (0.1 is usual), got -1.0"),
    Entry("dpo-no-pairs", "`train.objective=dpo` on data without preference pairs",
          ["spec", *TINY, *DATA, "data.sources.http.path={d}/good.jsonl", "train.objective=dpo", "--data"],
          "ftx: data error: train.objective=dpo: no preference pair in the train split to train on (52 train "
          "records, none with a 'rejected' reply that fits data.format.max_length=256); add a source of "
          "{{prompt, chosen, rejected}} records (docs/feedback.md)"),
    Entry("dpo-full-too-big", "DPO with `lora=full` on a model too big to hold a reference copy beside it",
          ["train", "experiment=tiny_smoke", "curation=none", "data=http_prefs", "train.objective=dpo", "lora=full",
           "hydra.run.dir={d}/dpo_full"],
          "ftx: model error: lora.method=full with train.objective=dpo: DPO compares the policy with a frozen "
          "reference model, which full fine-tuning must keep as a second copy (0.00 GiB) but only 0.00 GiB is free "
          "(at most 80% of it may go to the copy); use lora.method=lora (the reference is the same weights with "
          "the adapter switched off: no copy), with quant=nf4 to shrink the base further", free_memory=1024),
]

CATALOGUE += [
    Entry("review-other-run", "`ftx review import` of answers exported from another run",
          ["review", "import", "{d}/answers_b.jsonl", "--run", "{d}/rv_a"],
          "ftx: data error: {d}/answers_b.jsonl: answers from another review set: 0 of 4 review ids are in the 1 "
          "review set(s) exported from {d}/rv_a (import each run's answers with that run's --run)"),
    Entry("review-bad-choice", "a reviewer's choice outside left/right/tie/both_bad",
          ["review", "import", "{d}/answers_bad.jsonl"],
          "ftx: data error: {d}/answers_bad.jsonl:2: choice 'lft' is not one of left, right, tie, both_bad"),
]

CATALOGUE += [
    Entry("sweep-storage-scheme", "a sweep storage URL of an unknown scheme",
          [*SWEEP, "hydra.sweeper.storage=redis://localhost/0"],
          "ftx: config error: hydra.sweeper.storage: unknown database 'redis' in 'redis://localhost/0' (sqlite, "
          "postgresql, mysql, …, or journal:PATH)", subprocess=True),
    Entry("curation-ray-top-k", "curation.engine=ray with a top_k relevance threshold",
          [*curated("curation.engine=ray", "curation.relevance.threshold.mode=top_k")],
          "ftx: config error: curation.relevance.threshold.mode: top_k needs every score at once and does not run "
          "on curation.engine=ray; use calibrated or absolute, or curation.engine=local"),
    Entry("step-does-not-fit", "a training step planned larger than the memory available (checked after the model "
          "loads, before any evaluation or step)", [*TRAIN, "train.memory_limit_mb=1"],
          "ftx: config error: train.batch_size: a step of 4×252 tokens needs ~21 MB (activations 5 MB, loss 16 MB, "
          "optimizer 0 MB) but 1 MB is available; lower train.batch_size=4 (raising train.grad_accum=1 keeps the "
          "effective batch) or data.format.max_length=256", subprocess=True),
    Entry("latency-budget-zero", "a latency budget of 0", ["spec", "eval.latency.max_p99_ratio=0"],
          "ftx: config error: eval.latency.max_p99_ratio: must be > 0 (a tuned/base ratio: 1.2 = +20%) or null, "
          "got 0.0"),
    Entry("tokens-budget-negative", "a negative output-tokens budget", ["spec", "eval.tokens.max_ratio=-1"],
          "ftx: config error: eval.tokens.max_ratio: must be > 0 (a tuned/base ratio: 1.2 = +20%) or null, got -1.0"),
    Entry("gguf-unmappable", "`ftx export --format gguf` of an architecture llama.cpp's converter cannot map",
          ["export", "{d}/run_arch", "--format", "gguf"],
          "ftx: run error: ftx export --format gguf: architecture FrobnicatorForCausalLM cannot be mapped to GGUF by "
          "llama.cpp's converter (`python -m convert_hf_to_gguf --print-supported-models` lists what it maps); "
          "export safetensors instead (--format safetensors)"),
]

CATALOGUE += [
    Entry("harness-unknown-task", "an lm-evaluation-harness task name that does not exist (checked at run start, "
          "before any model loads)", [*TRAIN, "eval.harness.tasks=[ftx_genral_qa]"],
          "ftx: config error: eval.harness.tasks: no lm-eval task or group named 'ftx_genral_qa'; close matches: "
          "ftx_general_qa", subprocess=True),
    Entry("harness-limit", "an lm-evaluation-harness example cap of 0", ["spec", "eval.harness.limit=0"],
          "ftx: config error: eval.harness.limit: must be > 0 or null (every example), got 0"),
    Entry("harness-max-drop", "a negative harness forgetting budget", ["spec", "eval.forgetting.harness_max_drop=-0.1"],
          "ftx: config error: eval.forgetting.harness_max_drop: must be >= 0 or null, got -0.1"),
    Entry("mmap-threshold-range", "a heap-return threshold above glibc's maximum",
          ["spec", "train.malloc_mmap_threshold_kb=65536"],
          "ftx: config error: train.malloc_mmap_threshold_kb: must be in [0, 32768] KiB (0: the C library's default; "
          "glibc's maximum is 32 MiB), got 65536"),
    Entry("common-ngram-share-range", "a template-n-gram share outside [0, 1]",
          ["spec", "data.split.common_ngram_share=1.5"],
          "ftx: config error: data.split.common_ngram_share: must be in [0, 1] (0: count every n-gram), got 1.5"),
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
    ("soak-sweep", "random SIGKILLs of a sweep (3 kills, each after its own trial started), then reruns of the "
     "same command", "every trial number once in the study and trials.csv; n_trials counted trials; each "
     "interrupted trial re-queued once (a point killed 3 times ends FAILED with the reason); each step and "
     "evaluation once in every trial's metrics.jsonl; in == kept + dropped in every trial's ledger",
     "tests/integration/test_soak.py::test_random_sigkills_of_a_sweep_then_reruns_lose_and_duplicate_nothing"),
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
    ("sigkill-out", "SIGKILL of `ftx curate --out O` while it writes O, then the same command",
     "O is absent (everything went to the temporary sibling .O.partial); the rerun replaces the leftover and "
     "succeeds; a finished O holds the completion marker .ftx-complete",
     "tests/integration/test_outputs_e2e.py::test_sigkill_mid_write_then_the_same_command_succeeds"),
    ("two-writers", "two `ftx curate --out O` at once with different configs",
     "one writes O; the other ends with one line (`… is being written by another ftx process (pid N)` or "
     "`… directory exists and is not empty`), exit 2; O holds only the winner's files",
     "tests/integration/test_outputs_e2e.py::test_two_writers_one_wins_the_other_is_one_line"),
    ("interrupt", "Ctrl-C (SIGINT) or SIGTERM during a command",
     "one line `ftx: interrupted; rerun the same command (with train.resume=auto for training) to continue`, "
     "exit 130, no traceback; the temporary folder and the lock are removed, the target untouched",
     "tests/integration/test_outputs_e2e.py::test_an_interrupt_is_one_line_and_exit_130"),
    ("export-twice", "`ftx export R1 --out E`, then `ftx export R2 --out E`",
     "the second is refused before any model loads (`--out E: directory exists and is not empty …`); "
     "`--overwrite` replaces E only once the new export is complete",
     "tests/unit/test_outputs.py::test_a_second_export_into_the_same_folder_is_refused_before_loading"),
    ("umask", "files and folders ftx writes (atomic writes use mkstemp, 0600)",
     "the modes `open`/`mkdir` would give under the umask (0644/0755 with umask 022)",
     "tests/unit/test_outputs.py::test_written_files_and_folders_respect_the_umask"),
    ("disk-full-keeps-old", "a full disk while replacing a file that already exists",
     "the previous version stays whole and no temporary file is left",
     "tests/integration/test_faults.py::test_atomic_write_on_a_full_disk_keeps_the_previous_file"),
    ("sigkill-parallel-sweep-postgres", "SIGKILL of a sweep running two joblib trials at a time on PostgreSQL "
     "(a server the test starts), then the same command",
     "the two interrupted trials are re-queued once each; every trial number appears once, n_trials complete, "
     "the best trial is reported; the password is in no file or log",
     "tests/integration/test_sweep_workers.py::test_parallel_sweep_on_postgresql_killed_and_resumed"),
    ("sigkill-parallel-sweep-journal", "the same on a journal file written by two joblib workers at once",
     "as on PostgreSQL", "tests/integration/test_sweep_workers.py::test_parallel_sweep_on_a_journal_file_killed_and_resumed"),
    ("sweep-postgres-bad-url", "a PostgreSQL sweep storage with a wrong password or a missing database",
     "one line naming the URL with its password masked (`…ftx:***@127.0.0.1:PORT/nope': … FATAL: database \"nope\" "
     "does not exist (create it first: createdb nope)`), exit 2",
     "tests/integration/test_sweep_workers.py::test_bad_postgresql_url_is_one_line_with_the_password_masked"),
    ("curation-ray-unreachable", "curation.engine=ray with curation.ray.address where nothing listens",
     "one line within seconds: `ftx: config error: curation.ray.address: cannot connect to the Ray cluster at "
     "'127.0.0.1:9': Connection refused (…)`, exit 2; Ray not installed: one line naming `pip install 'ftx[ray]'`",
     "tests/integration/test_curate_ray.py::test_unreachable_ray_address_is_one_line"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("catalogue")
    good = [{"id": f"d{i}", "prompt": f"What is header {i}?", "response": f"Header {i} carries metadata number {i}."}
            for i in range(30)]
    text = "".join(json.dumps(r) + "\n" for r in good)
    (d / "good.jsonl").write_text(text)
    pair = {"prompt": "What does 404 mean?", "chosen": "Not Found.", "rejected": "Server error."}
    write_jsonl(d / "pref_same.jsonl", [dict(pair, id="p1"), dict(pair, id="p2", rejected=" Not Found.")])
    write_jsonl(d / "pref_one_side.jsonl", [dict(pair, id=f"p{i}") for i in (1, 2)] +
                [{"id": "p3", "prompt": "What does 410 mean?", "chosen": "Gone."}])
    (d / "truncated.jsonl").write_text(text[:-20])
    (d / "empty.jsonl").write_text("")
    (d / "nonempty").mkdir()
    (d / "nonempty" / "notes.txt").write_text("the user's\n")
    (d / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9 au lait"}\n')
    pairs = [{"prompt": "What does the Host header carry?", "response": "The name of the server."},
             {"prompt": "What does ETag identify?", "response": "One version of a resource."}]
    (d / "array_file.jsonl").write_text(json.dumps(pairs, indent=2) + "\n")
    (d / "pretty.jsonl").write_text("".join(json.dumps(r, indent=2) + "\n" for r in pairs))
    import gzip

    (d / "compressed.jsonl").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in pairs).encode()))
    (d / "array.jsonl").write_text("[1, 2]\n")
    write_jsonl(d / "notext.jsonl", [{"id": "a", "body": "x"}])
    write_jsonl(d / "long.jsonl", [{"id": f"l{i}", "prompt": f"Tell a long story {i}",
                                    "response": " ".join(f"word{j}" for j in range(200))} for i in range(20)])
    rivers = ["Danube", "Rhine", "Seine", "Thames", "Elbe"]
    write_jsonl(d / "general.jsonl", [{"id": f"g{i}", "prompt": f"Which river is number {i} on the list?",
                                       "response": f"The {rivers[i % 5]} flows past {i} old towns."} for i in range(20)])
    write_jsonl(d / "number.jsonl", [{"prompt": 3, "response": "x"}])
    (d / "faq.xlsx").write_bytes(b"PK\x03\x04")
    (d / "faq.csv").write_text("question,answer\nWhat is a header?,Metadata.\n")
    import pandas as pd

    pd.DataFrame([{"prompt": 3, "response": "x"}]).to_parquet(d / "number.parquet")
    write_jsonl(d / "dev_one_class.jsonl", [{"id": f"o{i}", "text": f"HTTP header {i} is a header.", "label": 1}
                                            for i in range(5)])
    write_jsonl(d / "dev_label_2.jsonl", [{"id": "l1", "text": "The Vary header selects a cached variant.", "label": 2}])
    write_jsonl(d / "feedback_other.jsonl", [{"id": f"other-{i}", "text": f"Header {i}.", "label": 1} for i in range(7)])
    pickle_model(d / "pickle_model")
    user = d / "userconf" / "data"
    user.mkdir(parents=True)
    (user / "mine.yaml").write_text("# ftx train data=mine\nsources:\n  mine:\n    path: mine.jsonl\n")
    (user / "broken.yaml").write_text("# ftx train data=broken\nsources:\n  mine:\n    path: a: b\n")
    (d / "checkpoint-4").mkdir()
    (d / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    (d / "checkpoint-4" / "optimizer.pt").write_bytes(b"PK\x03\x04 cut short by a full disk")
    for name, config, metrics in (("run_metrics", None, '{"tuned": {"val_loss": 1.0 "x"}}'),
                                  ("run_yaml", "name: x\nmodel: [1,\n", "{}"), ("run_arch", None, "{}")):
        run = d / name
        (run / "adapter").mkdir(parents=True)
        if config is None:
            from omegaconf import OmegaConf

            from ftx.spec.run import as_dict, build_spec

            config = OmegaConf.to_yaml(OmegaConf.create(as_dict(build_spec(compose(TINY)))))
        (run / "config.yaml").write_text(config)
        (run / "metrics.json").write_text(metrics)
        (run / "manifest.json").write_text("{}")
    from ftx.record.review import export

    for name, seed in (("rv_a", 1), ("rv_b", 2)):
        export(predicted_run(d, name, n=2), d / f"rev_{name[-1]}", seed=seed)
    answer_all(d / "rev_b" / "items.jsonl", d / "answers_b.jsonl", "ann", lambda it: "left")
    first = json.loads((d / "rev_a" / "items.jsonl").read_text().splitlines()[0])["review_id"]
    answer_all(d / "rev_a" / "items.jsonl", d / "answers_bad.jsonl", "ann",
               lambda it: "left" if it["review_id"] == first else "lft")  # line 2 is the first bad one
    (d / "run_arch" / "adapter" / "config.json").write_text('{"architectures": ["FrobnicatorForCausalLM"]}')
    conf = d / "conf"
    shutil.copytree(tree.CONF_DIR, conf, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    (conf / "experiment" / "broken.yaml").write_text(
        "# @package _global_\n# ftx train experiment=broken\ntrain:\n  epochs: 2\n   batch_size: 4\n")
    (conf / "data" / "leaky.yaml").write_text(
        "# ftx train data=leaky\ndefaults:\n  - http_demo\n  - _self_\nname: leaky\nsources:\n  http:\n"
        "    path: https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@example.com/qa.jsonl\n")
    for name, params in (("badtag", "optimizer.lr: tag(logg, interval(1e-5, 1e-2))"),
                         ("badvalue", "lora.method: choice(lora, dorra)"), ("badkey", "lora.rr: choice(4, 8)")):
        (conf / "sweep" / f"{name}.yaml").write_text(
            f"# @package _global_\n# ftx train -m +sweep={name}\ndefaults:\n  - override /hydra/sweeper: ftx\n"
            f"  - override /model: tiny_llama\n  - _self_\nhydra:\n  sweeper:\n    params:\n      {params}\n")
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


def fill(text: str, d, conf, experiments: str = "", id: str = "ID") -> str:
    from dataclasses import fields

    from ftx.spec.data import MixConfig
    from ftx.spec.lora import LoraConfig
    from ftx.spec.train import TrainConfig

    experiments = experiments or ", ".join(sorted(p.stem for p in (Path(conf) / "experiment").glob("*.yaml")))
    return text.format(d=d, conf=conf, pid="PID", id=id, commands=", ".join(cli.COMMANDS), experiments=experiments,
                       lora_keys=", ".join(f.name for f in fields(LoraConfig)),
                       mix_keys=", ".join(f.name for f in fields(MixConfig)),
                       train_keys=", ".join(f.name for f in fields(TrainConfig)))



@pytest.mark.parametrize("entry", CATALOGUE, ids=[e.id for e in CATALOGUE])
def test_entry(entry, files, capsys, monkeypatch, tmp_path):
    d, conf = files
    monkeypatch.setattr(tree, "CONF_DIR", conf)
    monkeypatch.chdir(tmp_path)
    args = [fill(a, d, conf, id=entry.id) for a in entry.args]
    if entry.subprocess:
        r = run_ftx(args, tmp_path, timeout=300)  # the shipped ftx/conf (with its sweep group)
        code, err = r.returncode, r.stderr
        assert "Traceback" not in err
        assert code == 2, err[-2000:]
        assert err.strip().splitlines()[-1] == fill(entry.message, d, conf, id=entry.id), err[-2000:]
        assert err.count("ftx: ") == 1, err[-2000:]
        if entry.args[:2] == ["train", "-m"]:
            assert not (tmp_path / "outputs").exists(), "a refused sweep leaves no sweep dir behind"
        return
    if entry.disk_full:
        real_replace = os.replace

        def replace(src, dst):
            if Path(dst).name == entry.disk_full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
    if entry.free_memory:
        from ftx.engine import dpo

        monkeypatch.setattr(dpo, "free_bytes", lambda model: entry.free_memory)
    if entry.locked:
        from ftx.runs import hold_lock

        with hold_lock(fill(entry.locked, d, conf), "--out"):
            code, err = run_main(args, capsys)
        entry = Entry(entry.id, entry.what, entry.args, entry.message.replace("{pid}", str(os.getpid())))
    else:
        code, err = run_main(args, capsys)
    assert "Traceback" not in err
    assert code == 2, err
    assert err == fill(entry.message, d, conf, id=entry.id) + "\n"
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
