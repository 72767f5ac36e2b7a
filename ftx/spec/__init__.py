"""The spec layer: every config group's typed schema (one module per group), composed into one
validated, hashable RunSpec (`run.py`); the config tree and Hydra's compose API (`tree.py`).

    from ftx.spec.run import build_spec
    from ftx.spec.tree import compose
    spec = build_spec(compose(["lora.r=16"]))

Modules here import nothing from the runtime layers (data, engine, eval, track, pipeline, record,
cli): a schema is plain dataclasses and the rules that check them.
"""
