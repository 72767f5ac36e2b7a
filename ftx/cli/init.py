"""`ftx init [DIR]`: write a small, working ftx project (configs layered over ftx's, sample data, README).

    ftx init my-project && cd my-project && ftx spec experiment=first_run

Refuses to write into a folder that is not empty: it never overwrites a file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ftx.cli.args import command_parser, parse
from ftx.errors import ConfigError

DATA_NAME = "my_data"
"""The data option `ftx init` writes (conf/data/my_data.yaml) and the stem of its sample file."""

DATA_FILE = f"data/{DATA_NAME}.csv"
"""The sample training data, relative to the project (the one place its name is written)."""

VAL_FILE = f"data/{DATA_NAME}_val.csv"
"""The sample's own validation file, declared `split: val`: evaluated as given, never trained on."""

VAL_RECORDS = 4
"""How many of the sample's records go to the validation file (the last ones)."""

EXPERIMENT, SWEEP = "first_run", "my_sweep"

SAMPLE = [
    ("How do I undo my last commit but keep the changes?",
     "Run git reset --soft HEAD~1. The commit is removed from the branch and its changes stay staged, "
     "ready to be committed again."),
    ("How do I see which files I changed?",
     "git status lists modified, staged and untracked files; git diff shows the unstaged changes line by "
     "line and git diff --staged the staged ones."),
    ("How do I create a branch and switch to it?",
     "git switch -c feature-name creates the branch at the current commit and checks it out in one step."),
    ("How do I throw away local changes to one file?",
     "git restore path/to/file replaces the working copy with the last committed version. The changes "
     "are lost, so stash them first if you might want them."),
    ("What does git stash do?",
     "git stash saves your uncommitted changes on a stack and cleans the working tree; git stash pop "
     "applies the newest entry again and drops it from the stack."),
    ("How do I rename a branch?",
     "git branch -m old-name new-name renames it locally. On a shared remote, push the new name and "
     "delete the old one with git push origin --delete old-name."),
    ("How do I fix the message of my last commit?",
     "git commit --amend opens the editor with the last message. Only amend commits you have not pushed, "
     "because amending rewrites the commit."),
    ("What is the difference between merge and rebase?",
     "A merge joins two histories with a merge commit and keeps both as they were. A rebase replays your "
     "commits on top of another branch, which gives a straight history but rewrites those commits."),
    ("How do I get a file from another branch?",
     "git restore --source other-branch -- path/to/file copies that file as it is on the other branch "
     "into your working tree."),
    ("How do I see the history of one file?",
     "git log --follow -p -- path/to/file lists every commit that touched the file, with its diff, and "
     "follows it across renames."),
    ("How do I find the commit that introduced a bug?",
     "git bisect start, then mark a bad and a good commit; git checks out commits in between and you mark "
     "each one until it names the first bad commit."),
    ("How do I delete a local branch?",
     "git branch -d name deletes it if it is merged; git branch -D name deletes it even when it holds "
     "commits found nowhere else."),
    ("How do I add a remote repository?",
     "git remote add origin URL names the remote origin; git remote -v lists the remotes with their "
     "fetch and push addresses."),
    ("How do I update my branch with the latest main?",
     "Fetch first with git fetch origin, then either git merge origin/main or git rebase origin/main, "
     "depending on whether your team keeps merge commits."),
    ("What does git cherry-pick do?",
     "git cherry-pick COMMIT applies the changes of that one commit on top of your current branch as a "
     "new commit with a new hash."),
    ("How do I ignore files?",
     "List patterns in a .gitignore file at the repository root, such as build/ or *.log. Files already "
     "tracked stay tracked until you remove them with git rm --cached."),
    ("How do I see who changed a line?",
     "git blame path/to/file shows, for every line, the commit, author and date of its last change."),
    ("How do I undo a commit that is already pushed?",
     "git revert COMMIT adds a new commit that reverses it, so nobody's history is rewritten; it is the "
     "safe way to undo shared commits."),
    ("How do I tag a release?",
     "git tag -a v1.2.0 -m 'Release 1.2.0' creates an annotated tag; push it with git push origin v1.2.0, "
     "because tags are not pushed by default."),
    ("How do I resolve a merge conflict?",
     "Edit the conflicted files and keep the right lines between the conflict markers, then git add each "
     "file and run git commit (or git rebase --continue during a rebase)."),
    ("How do I clone only the latest history?",
     "git clone --depth 1 URL fetches only the newest commit, which is faster for large repositories; "
     "git fetch --unshallow gets the rest later."),
    ("How do I list branches with their last commit?",
     "git branch -v shows each local branch with the hash and subject of its newest commit; add -a to "
     "include remote branches."),
    ("How do I recover a commit I lost after a reset?",
     "git reflog lists where HEAD has been, including commits no branch points to; git branch rescue "
     "HASH brings one back."),
    ("How do I squash my last three commits?",
     "git rebase -i HEAD~3 opens a list of the commits; mark the second and third as squash, save, and "
     "edit the combined message."),
]


def files(name: str) -> dict[str, str]:
    """The project's files: relative path → text. Each opens with the command that uses it (the data files
    have no comment syntax: the config that names them says how they are used)."""
    rows = [{"id": f"{name}-{i:04d}", "prompt": p, "response": r} for i, (p, r) in enumerate(SAMPLE, 1)]

    def table(part: list[dict]) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["id", "prompt", "response"], lineterminator="\n")
        w.writeheader()
        w.writerows(part)
        return buf.getvalue()

    data, val = table(rows[:-VAL_RECORDS]), table(rows[-VAL_RECORDS:])
    dev = "".join(json.dumps(r) + "\n" for r in (
        {"text": "REPLACE: an example your model should learn from (in your domain)", "label": 1},
        {"text": "REPLACE: an example from nearby but off your domain, that relevance should drop", "label": 0}))
    return {
        "README.md": f"""\
# ftx project: run `ftx spec experiment={EXPERIMENT}` here first

Written by `ftx init`. ftx finds `conf/` in this folder and searches it before its own configs, so
the options below are yours and every option ftx ships (`lora=dora`, `quant=nf4`, `zero=zero2` …)
still works. The next three commands, from this folder:

```
ftx spec experiment={EXPERIMENT}                  # the composed, validated config; where each option came from
ftx train experiment={EXPERIMENT}                 # fine-tune the default base model on {DATA_FILE}
ftx train -m +sweep={SWEEP}                       # a small search over learning rate and LoRA rank
```

Add `model=tiny_llama train=tiny` to either train command for a seconds-long smoke run on a tiny
random model.

| file | what |
|---|---|
| `conf/data/{name}.yaml` | your data: `data={name}`; point `path` at your own file |
| `{DATA_FILE}` | a sample to replace: CSV with `prompt` and `response` columns (JSON Lines, JSON, Parquet, a `datasets` folder or a folder of .txt/.md files work too: docs/data.md) |
| `{VAL_FILE}` | your own validation set (`split: val`): evaluated as given, never trained on |
| `conf/experiment/{EXPERIMENT}.yaml` | a bundle of choices: `experiment={EXPERIMENT}` |
| `conf/sweep/{SWEEP}.yaml` | a search space: `ftx train -m +sweep={SWEEP}` |
| `relevance/seeds.jsonl` | in-domain examples for the relevance filter (empty: fill it, then see the experiment file) |
| `relevance/dev.jsonl` | a labelled dev set template for the relevance threshold (label 1 = keep, 0 = drop) |
""",
        f"conf/data/{name}.yaml": f"""\
# ftx train data={name}
# Your data. `path` is relative to the folder you run ftx from (this project); keys are documented in
# ftx's docs/data.md, and `ftx spec data={name} --data` prints the plan with record counts. The
# validation set is your own file (`split: val`; without one, ftx holds out 15% by content hash), and
# training records that near-duplicate it are dropped from train with a reason in the ledger.
# Use it through experiment={EXPERIMENT}, which also sets curation for it: with `data={name}` alone,
# ftx's default curation filters for relevance to its own HTTP demo and would drop these records.
name: {name}
sources:
  {name}:
    path: {DATA_FILE}             # role: domain (the default); columns: prompt/response (or messages, text)
  {name}_val:
    path: {VAL_FILE}
    split: val
format:
  max_length: 256
""",
        f"conf/experiment/{EXPERIMENT}.yaml": f"""\
# @package _global_
# ftx train experiment={EXPERIMENT}
# Your data with light curation. To filter by relevance to your domain: fill relevance/seeds.jsonl
# (in-domain examples) and relevance/dev.jsonl (labelled), then add `relevance` to the stages.
defaults:
  - override /data: {name}
  - _self_

name: {EXPERIMENT}
curation:
  stages: [normalize, quality, exact_dedup, near_dedup]
  relevance:
    seeds: [relevance/seeds.jsonl]
    dev: [relevance/dev.jsonl]
""",
        f"conf/sweep/{SWEEP}.yaml": f"""\
# @package _global_
# ftx train -m +sweep={SWEEP}
# A small seeded TPE search over learning rate and LoRA rank on your data and curation (the
# experiment {EXPERIMENT}), best validation loss wins. `ftx sweep-report outputs/sweeps/{SWEEP}` prints
# the best trial as an override line.
defaults:
  - override /hydra/sweeper: ftx
  - override /experiment: {EXPERIMENT}
  - _self_

name: {SWEEP}
train:
  save_steps: 1000        # no checkpoints mid-trial: a sweep keeps only each trial's adapter
eval:
  base_vs_tuned: false

hydra:
  sweep:
    dir: outputs/sweeps/${{name}}
  sweeper:
    n_trials: 8
    params:
      optimizer.lr: tag(log, interval(1e-5, 3e-3))
      lora.r: choice(4, 8, 16)
""",
        DATA_FILE: data,
        VAL_FILE: val,
        "relevance/seeds.jsonl": "",
        "relevance/dev.jsonl": dev,
    }


def parser():
    p = command_parser("init", "ftx init [DIR]",
                       "Write a small, working ftx project into DIR (default: the current folder), which must be "
                       "new or empty:\nconf/ with data, experiment and sweep options layered over ftx's, a "
                       "sample data file, relevance templates and a README with the next commands.")
    p.add_argument("dir", metavar="DIR", nargs="?", default=".", help="a new or empty folder (default: .)")
    return p


def cmd_init(args: list[str]) -> None:
    ns = parse(parser(), args)
    root = Path(ns.dir).expanduser()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"ftx init: {ns.dir} is a file (give a new or empty folder)")
    if root.is_dir() and any(root.iterdir()):
        raise ConfigError(f"ftx init: {ns.dir} is not empty (ftx init never overwrites; give a new or empty folder)")
    written = files(DATA_NAME)
    for rel, text in written.items():
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as f:  # "x": never overwrite, even if a file appeared meanwhile
                f.write(text)
        except FileExistsError:
            raise ConfigError(f"ftx init: {path} appeared while writing the project; not overwritten") from None
        except OSError as e:
            raise ConfigError(f"ftx init: cannot create {path} ({e.strerror or e})") from None
    where = "" if ns.dir == "." else f"cd {ns.dir} && "
    print(f"wrote {len(written)} files into {root}; next: {where}ftx spec experiment={EXPERIMENT}  (README.md has the rest)")
