"""Command-line flags made from a config dataclass, one flag per field, and back."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

__all__ = ["add_config_flags", "config_from_args"]


def _flag(name: str, prefix: str) -> str:
    return "--" + (prefix + name).replace("_", "-")


def _dest(name: str, prefix: str) -> str:
    return (prefix + name).replace("-", "_")


def _none_or(parse: Any) -> Any:
    def parser(text: str) -> Any:
        return None if text.lower() == "none" else parse(text)

    parser.__name__ = getattr(parse, "__name__", "value")
    return parser


def add_config_flags(
    parser: argparse.ArgumentParser | Any,
    config_type: type[Any],
    *,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> None:
    """Add ``--field-name`` for every field of ``config_type`` (a dataclass).

    ``bool`` fields get ``--x/--no-x``; ``Literal`` fields get choices; optional
    fields accept ``none``. Defaults are the dataclass's unless ``defaults``
    says otherwise; the help shows them.
    """
    hints = get_type_hints(config_type)
    overrides = defaults or {}
    group = parser.add_argument_group(f"{config_type.__name__} settings")
    for field in dataclasses.fields(config_type):
        if field.name in skip or not field.init:
            continue
        kind = hints[field.name]
        if (
            field.default is dataclasses.MISSING
            and field.default_factory is not dataclasses.MISSING
        ):
            continue  # nested configs are not flags
        default = overrides.get(field.name, field.default)
        required = default is dataclasses.MISSING
        optional = False
        if get_origin(kind) in (typing.Union, types.UnionType):
            members = [a for a in get_args(kind) if a is not type(None)]
            optional = len(members) < len(get_args(kind))
            kind = members[0]
        flag, dest = _flag(field.name, prefix), _dest(field.name, prefix)
        doc = "(required)" if required else f"(default: {default})"
        if required:
            default = None
        if kind is bool:
            group.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=default, help=doc
            )
        elif get_origin(kind) is Literal:
            group.add_argument(
                flag, dest=dest, choices=list(get_args(kind)), default=default, help=doc
            )
        elif kind in (int, float, str):
            parse = _none_or(kind) if optional else kind
            group.add_argument(
                flag, dest=dest, type=parse, default=default, required=required, help=doc
            )


def config_from_args(
    config_type: type[Any], args: argparse.Namespace, *, prefix: str = "", **fixed: Any
) -> Any:
    """Build ``config_type`` from the parsed flags (plus ``fixed`` values)."""
    values = dict(fixed)
    for field in dataclasses.fields(config_type):
        dest = _dest(field.name, prefix)
        if field.name not in values and hasattr(args, dest):
            values[field.name] = getattr(args, dest)
    return config_type(**values)
