"""Sub-commands of ``pcw`` that live in their own modules.

Each module here defines one click command (or group) named ``command``;
:func:`register` adds them all to the ``pcw`` group. Modules import their heavy
dependencies inside the command body so that ``pcw --help`` stays fast.
"""
from __future__ import annotations

import importlib
import pkgutil

import click


def register(group: click.Group) -> None:
    """Adds every ``command`` defined in this package's modules to ``group``."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        command = getattr(importlib.import_module(f"{__name__}.{module.name}"), "command", None)
        if isinstance(command, click.Command):
            group.add_command(command)


def parse_sets(sets: tuple[str, ...]) -> dict[str, object]:
    """``--set section.field=value`` options as recipe overrides (values read as YAML); a bad one is named."""
    from pcw_keras.recipes import parse_override

    overrides = {}
    for text in sets:
        try:
            key, value = parse_override(text)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--set") from None
        overrides[key] = value
    return overrides
