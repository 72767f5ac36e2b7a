"""Fixed choices as `str` enums, and the one-line message a value outside them gets.

A field typed with a `Choice` subclass is validated by OmegaConf while Hydra composes (a bad value fails
before any group's check() runs); `ftx.spec.run.explain` turns that ValidationError into the message
`choice_message` gives. Members compare, hash, format and str() as their value (`LoraMethod.full ==
"full"`, f"{m}" == "full"), and every member's name equals its value: OmegaConf looks values up by name,
and `as_dict` writes names (enum_to_str), so config.yaml and the spec hash see the same plain strings.

Most fields say "must be one of a, b, c; got 'x'"; a group lists the fields phrased differently in its
CHOICE_MESSAGES (full key, `*` for a dict entry's name → template with {one_of}, {either}, {value!r}).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Iterable

from ftx.errors import ConfigError

ONE_OF = "must be one of {one_of}; got {value!r}"
EITHER = "must be {either}; got {value!r}"
"""'must be a or b' / 'must be a, b or c'."""


class Choice(str, Enum):
    """Base of every fixed-choice enum: behaves as its value wherever a string is expected."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


class Precision(Choice):
    """auto (bf16 where native, else fp32) | bf16 | fp32: train.precision, model.dtype, quant.compute_dtype,
    curation.relevance.embedding_precision."""

    auto = "auto"
    bf16 = "bf16"
    fp32 = "fp32"


def either(values: Iterable[str]) -> str:
    v = list(values)
    return v[0] if len(v) == 1 else f"{', '.join(v[:-1])} or {v[-1]}"


def choice_message(template: str, choices: Iterable[str], value: Any) -> str:
    """The message for `value` outside `choices`; the value as the config held it (a string)."""
    v = list(choices)
    return template.format(one_of=", ".join(v), either=either(v), value=value if isinstance(value, str) else str(value))


def check_choices(obj: Any, prefix: str, messages: dict | None = None) -> None:
    """A config built in Python, not composed (`LoraConfig(method="x")`, or a field set afterwards), gets
    the same one-line message for a value outside a Choice field's enum as composing gives. Walks nested
    dataclasses; `messages` is the group's CHOICE_MESSAGES (full key → template)."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        tp, value, key = hints.get(f.name), getattr(obj, f.name), f"{prefix}.{f.name}"
        if typing.get_origin(tp) is typing.Union:  # Optional[SomeChoice]: None is a valid value
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if value is None:
                continue
        if isinstance(tp, type) and issubclass(tp, Choice):
            if value not in tp.values():
                template = (messages or {}).get(key, ONE_OF)
                raise ConfigError(f"{key}: {choice_message(template, tp.values(), value)}")
        elif dataclasses.is_dataclass(value):
            check_choices(value, key, messages)
