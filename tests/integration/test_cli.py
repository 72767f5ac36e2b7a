"""The CLI: one-line errors and exit code 2, `ftx spec` prints the composed spec."""

from __future__ import annotations


def test_train_with_typo_key_fails_fast_with_one_line(ftx):
    for arg in ("lora.rnak=4", "+lora.rnak=4"):
        r = ftx("train", arg, timeout=120)
        assert r.returncode == 2, r.stderr
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert lines == [lines[0]] and "lora.rnak" in lines[0], r.stderr
        assert "Traceback" not in r.stderr
        assert not (ftx.cwd / "outputs").exists(), "a failed validation must not create a run dir"


def test_spec_prints_composed_spec(ftx):
    r = ftx("spec", "lora.r=16", "model=tiny_llama", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "r: 16" in r.stdout and "source: tiny" in r.stdout and "# spec hash:" in r.stdout


def test_unknown_command(ftx):
    r = ftx("frobnicate", timeout=60)
    assert r.returncode == 2 and "unknown command" in r.stderr


# --- one parser for every command: --help, unknown flags, abbreviations (in-process: seconds, not minutes)

import pytest  # noqa: E402

import ftx.cli.main as cli  # noqa: E402


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("cmd", list(cli.COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_answers_help(cmd, flag, capsys):
    code, out, err = run_main(capsys, cmd, flag)
    assert code == 0, err
    assert out.startswith(f"usage: ftx {cmd}"), out
    assert run_main(capsys, "help", cmd)[:2] == (0, out)  # `ftx help CMD` = `ftx CMD --help`


@pytest.mark.parametrize("cmd", list(cli.COMMANDS))
def test_every_command_refuses_an_unknown_flag_in_one_line(cmd, capsys):
    code, out, err = run_main(capsys, cmd, "--bogus-flag")
    assert code == 2
    assert err.startswith("ftx: ") and err.count("\n") == 1, err
    assert "'--bogus-flag'" in err and f"usage: ftx {cmd}" in err, err


def test_flags_are_not_abbreviated(capsys):
    code, _, err = run_main(capsys, "spec", "--dat")
    assert (code, err) == (2, "ftx: config error: ftx spec: unknown flag '--dat' (usage: ftx spec [key=value …] "
                              "[--data])\n")
    code, _, err = run_main(capsys, "export", "run", "--dt", "bf16")
    assert code == 2 and "unknown flag '--dt'" in err


def test_help_without_a_command_lists_the_commands(capsys):
    for args in ([], ["--help"], ["-h"], ["help"]):
        code, out, _ = run_main(capsys, *args)
        assert code == 0 and all(f"ftx {c}" in out for c in cli.COMMANDS), out
    code, _, err = run_main(capsys, "help", "frobnicate")
    assert code == 2 and "unknown command 'frobnicate'" in err


def test_data_subcommands(capsys):
    assert run_main(capsys, "data", "diff", "--help")[:2] == (0, run_main(capsys, "data", "diff", "-h")[1])
    code, _, err = run_main(capsys, "data", "diff", "a", "b", "c")
    assert code == 2 and err.count("\n") == 1 and "unexpected argument 'c'" in err


def test_train_help_points_at_hydra_and_hydra_flags_pass_through(capsys, monkeypatch):
    code, out, _ = run_main(capsys, "train", "--help")
    assert code == 0 and "--hydra-help" in out and "--multirun" in out and "--config-dir" in out
    import ftx.cli.train as train

    seen = {}

    def fake_validate(cfg):
        seen["validated"] = True

    monkeypatch.setattr(train, "build_spec", fake_validate)
    monkeypatch.setattr(train.tree, "compose", lambda overrides, config_dir=None: seen.setdefault("overrides", overrides))
    p = train.parser()
    ns = train.parse(p, ["-m", "lora.r=4,8", "--cfg", "job", "-cd", "/x", "--info", "--resolve", "-cn", "c"])
    assert ns.overrides == ["lora.r=4,8"]
    assert train._hydra_argv(p, ns) == ["--cfg=job", "--resolve", "--multirun", "--config-name=c", "--info=all"]
    assert ns.config_dir == "/x"  # ftx's own: searched before ftx's configs (ftx.spec.tree.layers), not passed on
    code, _, err = run_main(capsys, "train", "--cfgg", "job")
    assert code == 2 and err.startswith("ftx: config error: ftx train: unknown flag '--cfgg'") and "validated" not in seen


def test_local_rank_is_stripped_once_by_main(capsys, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.delenv("LOCAL_RANK")
    code, out, _ = run_main(capsys, "--local_rank=3", "data", "--local-rank", "4", "--help")
    import os

    assert code == 0 and out.startswith("usage: ftx data") and os.environ["LOCAL_RANK"] == "3"


def test_a_closed_stdout_is_not_a_traceback(tmp_path):
    """`ftx --help | head -1`: the reader goes away; no BrokenPipeError traceback (the only subprocesses here)."""
    import subprocess
    import sys

    from tests.helpers import ftx_env

    import os

    read, write = os.pipe()
    os.close(read)  # every write to stdout fails with EPIPE, as after `head` has exited
    try:
        r = subprocess.run([sys.executable, "-m", "ftx", "--help"], stdout=write, stderr=subprocess.PIPE, text=True,
                           env=ftx_env(), timeout=60, cwd=tmp_path)
    finally:
        os.close(write)
    assert r.returncode == 1 and r.stderr == "", r.stderr
    r = subprocess.run(f"{sys.executable} -m ftx --help | head -1", shell=True, capture_output=True, text=True,
                       env=ftx_env(), timeout=60, cwd=tmp_path)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr and r.stdout.strip().startswith("ftx train")


NO_LONG_FLAGS = {"init"}
"""Commands whose only long flag is --help: an unknown `--flag=value` is still checked for them."""


@pytest.mark.parametrize("cmd", list(cli.COMMANDS))
def test_every_flag_of_every_command_is_refused_abbreviated_and_typo_d_forms_with_values_too(cmd, capsys):
    """Every long flag a command has, cut by one letter (argparse would accept the prefix), and an unknown
    `--flag=value`, are each one line naming the flag: nothing is silently ignored or guessed."""
    import importlib

    module = importlib.import_module(cli.COMMANDS[cmd].split(":")[0])
    flags = sorted({o for a in module.parser()._actions for o in a.option_strings
                    if o.startswith("--") and len(o) > 4 and o != "--help"})
    if cmd == "data":  # a group of subcommands: its flags are `ftx data diff`'s
        flags = sorted({o for a in module.diff_parser()._actions for o in a.option_strings
                        if o.startswith("--") and len(o) > 4 and o != "--help"})
    groups = {"data": {("diff", "a", "b"): flags}}
    if cmd == "review":  # each subcommand's flags, checked on that subcommand
        groups["review"] = {(sub, "x"): sorted({o for a in make()._actions for o in a.option_strings
                                                 if o.startswith("--") and len(o) > 4 and o != "--help"})
                            for sub, make in (("export", module.export_parser), ("import", module.import_parser),
                                              ("to-preferences", module.prefs_parser))}
        flags = sorted({f for fs in groups["review"].values() for f in fs})
    assert flags or cmd in NO_LONG_FLAGS, f"ftx {cmd} has no long flags to check"
    for prefix, sub_flags in groups.get(cmd, {(): flags}).items():
        for flag in sub_flags:
            cut = flag[:-1]
            if any(f == cut for f in sub_flags):
                continue
            code, _, err = run_main(capsys, cmd, *prefix, cut)
            assert code == 2 and err.count("\n") == 1 and f"unknown flag '{cut}'" in err, (flag, err)
    code, _, err = run_main(capsys, cmd, "--bogus-flag=3")
    assert code == 2 and err.count("\n") == 1 and "unknown flag '--bogus-flag'" in err, err
