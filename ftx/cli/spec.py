"""`ftx spec [overrides] [--data]`: print the composed, validated run spec and data plan."""

from __future__ import annotations

from ftx.cli.args import add_config_dir, command_parser, parse
from ftx.cli.preflight import check_paths
from ftx.spec.run import as_dict, build_spec, spec_hash
from ftx.spec.tree import compose_choices
from ftx.engine.model import load_tokenizer


def parser():
    p = command_parser("spec", "ftx spec [key=value …] [--data]",
                       "Print the composed, validated run spec, its hash and the data plan.", overrides=True)
    p.add_argument("--data", action="store_true",
                   help="load, split, tokenise and mix the data for real (no model weights): record counts")
    add_config_dir(p)
    return p


def cmd_spec(args: list[str]) -> None:
    from omegaconf import OmegaConf

    ns = parse(parser(), args)
    cfg, choices, where = compose_choices(ns.overrides, ns.config_dir)
    spec = build_spec(cfg)
    if ns.data:  # --data loads the tokenizer (model cache) and may curate (curation cache)
        check_paths(spec, model=True)
    resolved = as_dict(spec)
    print(OmegaConf.to_yaml(OmegaConf.create(resolved)), end="")
    print(f"# spec hash: {spec_hash(resolved)}")
    from ftx.data.build import describe, describe_counts

    lines = where.describe(choices) + describe(spec.data)
    if ns.data:
        from ftx.data.build import prepare

        lines += describe_counts(prepare(spec.data, spec.curation, load_tokenizer(spec.model),
                                               objective=str(spec.train.objective)))
    print("".join(f"# {line}\n" for line in lines), end="")
