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
