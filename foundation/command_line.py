"""A config dataclass as a command line, both ways, from one declaration per flag.

A field made with `option` is a flag: `--batch-size` for batch_size (a positional where it
says so), its type from the annotation, its default the field's (none: a required flag), its
help, choices and any other add_argument keyword from the field itself. `add_options` puts a
config's flags on a parser (`command_parser` on a new one), `config_of` makes the config of
what it parsed, `argv_of` writes a config back as the flags that give it. A bool is a switch:
`--name` where it defaults to False, `--no-name` where it defaults to True; a tuple takes its
values after the flag. A config that takes another's flag copies that field (`like`) instead
of declaring it again."""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Collection
from dataclasses import MISSING, Field, field, fields
from typing import Any

OPTION = "option"  # the metadata key of a field that is a flag


def option(default: Any = MISSING, help: str | None = None, **argparse_keywords) -> Field:
    """A config field that is a flag: its default, its help, and add_argument's other keywords
    (choices, metavar, nargs, type); `flags` names it otherwise (e.g. ("--quality", "-q")),
    `positional=True` makes it an argument without a flag."""
    return field(default=default, metadata={OPTION: {"help": help, **argparse_keywords}})


def like(config_class: type, name: str, **changes) -> Field:
    """`config_class`'s field `name` declared again as it is (flag, choices, help), with
    `changes` over it (a default, a help, ...): one declaration for a flag two configs take."""
    source = _fields(config_class)[name]
    default = changes.pop("default", source.default)
    return field(default=default, metadata={OPTION: {**source.metadata[OPTION], **changes}})


def command_parser(prog: str, description: str, config_class: type | None = None,
                   formatter_class=argparse.ArgumentDefaultsHelpFormatter
                   ) -> argparse.ArgumentParser:
    """A command's parser, each flag's help ending in its default; `config_class`'s flags on
    it (a docstring description wants argparse.RawDescriptionHelpFormatter)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=formatter_class)
    if config_class is not None:
        add_options(parser, config_class)
    return parser


def add_options(parser: argparse.ArgumentParser, config_class: type) -> None:
    """Every flag of a config, in its fields' order."""
    hints = typing.get_type_hints(config_class)
    for f in fields(config_class):
        if OPTION in f.metadata:
            _add(parser, f, hints[f.name], {})


def add_option(parser: argparse.ArgumentParser, config_class: type, name: str,
               **changes) -> None:
    """One of a config's flags on another command's parser, `changes` over its declaration
    (e.g. flags=("--loader-workers",), dest="loader_workers")."""
    _add(parser, _fields(config_class)[name], typing.get_type_hints(config_class)[name], changes)


def config_of(config_class: type, values: dict):
    """The config of parsed values (argparse's lists as tuples)."""
    return config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def argv_of(config, leave_out: Collection[str] = (), always: Collection[str] = ()) -> list[str]:
    """The flags that give `config` back through its parser: each flag field that differs from
    its default (and those in `always`), positionals first; `leave_out`: fields the caller
    writes its own way."""
    positionals, argv = [], []
    for f in fields(config):
        if OPTION not in f.metadata or f.name in leave_out:
            continue
        value = getattr(config, f.name)
        if value == f.default and f.name not in always:
            continue
        spec, name = f.metadata[OPTION], _names(f)[0]
        if spec.get("positional"):
            positionals.append(str(value))
        elif isinstance(value, bool):
            argv += [name] if value != f.default else []  # a switch: given, or left out
        elif value is None:
            raise ValueError(f"{type(config).__name__}.{f.name} = None: {name} cannot say it; "
                             f"leave it at its default {f.default!r}")
        elif isinstance(value, tuple):
            argv += [name, *map(str, value)]
        else:
            argv += [name, str(value)]
    return positionals + argv


def check_choices(config) -> None:
    """Each field with choices holds one of them (or None), whatever made the config: a
    parser, a file, a checkpoint or code (a config's __post_init__ calls it)."""
    for f in fields(config):
        choices = f.metadata.get(OPTION, {}).get("choices")
        value = getattr(config, f.name)
        if choices is not None and value is not None and value not in choices:
            raise ValueError(f"{_names(f)[0]} {value}: give one of "
                             f"{', '.join(map(str, choices))}")


def _fields(config_class: type) -> dict[str, Field]:
    return {f.name: f for f in fields(config_class)}


def _names(f: Field) -> tuple[str, ...]:
    spec, flag = f.metadata[OPTION], f.name.replace("_", "-")
    if spec.get("positional"):
        return (f.name,)
    if "flags" in spec:
        return tuple(spec["flags"])
    return (f"--no-{flag}",) if f.default is True else (f"--{flag}",)


def _add(parser: argparse.ArgumentParser, f: Field, hint, changes: dict) -> None:
    spec = {**f.metadata[OPTION], **changes}
    names = tuple(spec.pop("flags", None) or _names(f))
    positional = spec.pop("positional", False)
    if f.default is MISSING:  # a required flag, or a positional
        keywords = {} if positional else {"required": True}
    else:
        keywords = {"default": list(f.default) if isinstance(f.default, tuple) else f.default}
    kind = _without_none(hint)
    if kind is bool:
        keywords["action"] = "store_false" if f.default is True else "store_true"
    elif typing.get_origin(kind) is tuple:
        keywords |= {"type": typing.get_args(kind)[0], "nargs": "+"}
    else:
        keywords["type"] = kind
    if not positional:
        keywords["dest"] = f.name
    parser.add_argument(*names, **keywords | spec)


def _without_none(hint):
    """`int | None` -> int; a hint that is no one type (str | Path) needs the option's type."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [k for k in typing.get_args(hint) if k is not type(None)]
        return kinds[0] if len(kinds) == 1 else hint
    return hint
