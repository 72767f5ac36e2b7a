"""ftx/cli/multirun.py: a multirun or sweep is validated like a single run, before Hydra starts anything."""

from __future__ import annotations

import pytest

from ftx.cli.multirun import check
from ftx.errors import ConfigError
from ftx.spec import tree


@pytest.mark.parametrize("sweep", sorted(p.stem for p in (tree.CONF_DIR / "sweep").glob("*.yaml")))
def test_every_shipped_sweep_file_passes(sweep):
    check([f"+sweep={sweep}"])


def test_valid_multiruns_pass_and_key_values_cost_no_compose_each():
    check(["lora.r=4,8,16", "optimizer.lr=1e-4,3e-4", "lora=lora,dora", "train=tiny"])
    check(["+sweep=tiny", "lora.r=choice(2,4)", "optimizer.lr=tag(log, interval(1e-4, 1e-3))"])
    check(["lora.target_modules=[q_proj],[q_proj,v_proj]", "data.mix={domain_ratio:0.5},{domain_ratio:0.8}"])
    check([f"lora.r={','.join(str(r) for r in range(1, 41))}", "lora.dropout=0.0,0.1,0.2"])  # 120: values only


def test_the_basic_sweepers_combinations_are_checked_up_to_the_cap(monkeypatch):
    import ftx.cli.multirun as multirun

    bad = ["quant=none,nf4", "lora.method=lora,full"]
    with pytest.raises(ConfigError, match="^sweep combination quant=nf4 lora.method=full: "):
        check(bad)
    monkeypatch.setattr(multirun, "MAX_COMBINATIONS", 3)  # 4 combinations: each value alone passes
    check(bad)


@pytest.mark.parametrize("overrides, message", [
    (["lora.r=4,0"], "override 'lora.r=4,0': value 0: lora.r: must be > 0"),
    (["lora.r=range(0,3)"], "override 'lora.r=range(0,3)': value 0: lora.r: must be > 0"),
    (["train.precision=bf16,fp16"], "override 'train.precision=bf16,fp16': value fp16: train.precision: must be one of"),
    (["+sweep=tiny", "lora.r=choice(4,x)"], "override 'lora.r=choice(4,x)': value x: 'lora.r': Value 'x'"),
    (["+sweep=tiny", "data.mix.domain_ratio=interval(0.5, 1.5)"],
     "override 'data.mix.domain_ratio=interval(0.5, 1.5)': value 1.5: data.mix.domain_ratio: must be in [0, 1]"),
    (["+sweep=tiny", "optimizer.lr=tag(log, choice(1e-4, 1e-3))"],
     "unknown sweep tag 'log' (choice() and range() take no tags; tag(log, …) goes on interval())"),
    (["+sweep=tiny", "tracking.tags=choice([a],[b])", "lora.rr=3"], "unknown key 'lora.rr'"),
    (["lora.r=4,8", "quant=nf4", "lora.method=lora,full"],
     "override 'lora.method=lora,full': value full: quant.mode: =nf4 cannot train with lora.method=full"),
])
def test_bad_values_anywhere_in_a_sweep_are_one_config_error(overrides, message):
    with pytest.raises(ConfigError) as e:
        check(overrides)
    assert message in str(e.value) and "\n" not in str(e.value)
