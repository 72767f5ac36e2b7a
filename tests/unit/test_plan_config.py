"""Bad data-plan settings fail while composing, with one line naming the key and what is valid."""

from __future__ import annotations

import pytest

from ftx.errors import ConfigError
from ftx.spec.run import build_spec
from ftx.spec.tree import compose


@pytest.mark.parametrize("overrides,needle", [
    (["data.mix.domain_ratio=-0.1"], "data.mix.domain_ratio: must be in [0, 1] (0.8 = 80% domain), got -0.1"),
    (["data.mix.domain_ratio=1.5"], "data.mix.domain_ratio: must be in [0, 1]"),
    (["data.mix.domain_ratio=0.8", "data.mix.synthetic_ratio=0.2"],
     "data.mix.synthetic_ratio: =0.2 but no source has role=synthetic"),
    (["data.mix.synthetic_ratio=0.1"], "data.mix.synthetic_ratio: needs data.mix.domain_ratio"),
    (["data.mix.domain_ratio=0.5", "data.mix.synthetic_ratio=0.7"], "must be <= data.mix.domain_ratio=0.5"),
    (["data.mix.domain_ratio=0.8", "~data.sources.general"],
     "data.mix.domain_ratio: =0.8 puts 0.2 of the mix on role=general, but no source has role=general"),
    (["data.sources.http.role=general"], "data.sources: needs at least one source with role=domain"),
    (["data.sources.http.role=gold"], "data.sources.http.role: must be one of domain, general, synthetic; got 'gold'"),
    (["data.mix.unit=bytes"], "data.mix.unit: must be examples or tokens"),
    (["data.mix.on_short=pad"], "data.mix.on_short: must be one of downsample, upsample, error"),
    (["data.format.template=vicuna"], "data.format.template: must be one of auto, chatml, llama3, plain"),
    (["data.format.prompt_loss_weight=1.5"], "data.format.prompt_loss_weight: must be in [0, 1]"),
    (["data.format.prompt_loss_weight=-0.5"], "data.format.prompt_loss_weight: must be in [0, 1]"),
    (["data.format.truncation=cut"], "data.format.truncation: must be one of drop, truncate, error"),
    (["data.format.pack_length=64"], "data.format.pack_length: must be >= data.format.max_length=256"),
    (["data.curriculum.strategy=random"], "data.curriculum.strategy: must be one of none, score, stages"),
    (["data.curriculum.strategy=stages", "data.curriculum.stages=[0.7,0.3]"], "data.curriculum.stages: must be increasing"),
    (["data.weights.synthetic=-1"], "data.weights.synthetic: must be >= 0"),
    (["data.sources.http.weight=-2"], "data.sources.http.weight: must be >= 0"),
    (["data.split.ngram=0"], "data.split.ngram: must be >= 1"),
    (["data.split.val=0"], "data.split.val: must be in (0, 1)"),
])
def test_bad_plan_settings_are_one_line_errors(overrides, needle):
    with pytest.raises(ConfigError) as err:
        build_spec(compose(overrides))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_mix_ratio_is_a_plain_sweepable_number_and_the_plan_composes():
    for r in ("0", "0.35", "0.8", "1.0"):
        spec = build_spec(compose(["data=http_mix", f"data.mix.domain_ratio={r}"]))
        assert spec.data.mix.domain_ratio == float(r)
    spec = build_spec(compose(["data=http_mix", "data.format.packing=true", "data.curriculum.strategy=stages",
                               "data.mix.unit=tokens", "data.sources.general.role=synthetic",
                               "data.mix.domain_ratio=1.0", "data.mix.synthetic_ratio=0.1"]))
    assert spec.data.mix.unit == "tokens" and spec.data.sources["general"].role == "synthetic"
    assert spec.data.sources["general"].weight is None and spec.data.weights.synthetic == 0.5
