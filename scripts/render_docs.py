"""Render the documents' measured figures from the raw files under ``docs/``.

Each document is written from a template in ``docs/templates/``:

- ``docs/templates/results.md`` -> ``docs/results.md``
- ``docs/templates/benchmarks.md`` -> ``docs/benchmarks.md``
- ``docs/templates/readme_demo.md``, ``readme_speed.md`` and ``readme_report.md`` -> the blocks of
  ``README.md`` between ``<!-- BEGIN rendered: docs/templates/NAME.md -->``
  and ``<!-- END rendered -->``

A template is Markdown with placeholders ``{{ EXPR }}`` or ``{{ EXPR | FORMAT }}``:

- ``EXPR`` is a Python expression over references ``FILE#KEY``. ``FILE`` is
  a path from the repository root (``.json``, ``.jsonl`` or ``.csv``) or an
  alias declared on a line of its own anywhere in the template,
  ``<!-- data NAME = PATH -->`` (the line is not rendered). ``KEY`` is a
  dotted path: a dict key, a list index (``-1`` for the last), ``['a.b']``
  for a key with dots, or ``[field=value,...]`` for the first row of a list
  whose fields have those values (JSON lines and CSV files are lists of
  rows); ``FILE#`` alone is the whole file. The functions are ``mean``,
  ``median``, ``std`` (sample), ``min``, ``max``, ``sum``, ``len``, ``abs``,
  ``round``, ``zip``, ``pct`` (x 100, item by item), ``slope`` (least squares
  per item), ``column(rows, field)`` and ``where(rows, field, value)``.
- ``FORMAT`` is a Python format spec (``.1f``, ``,.0f``, ``+.2f``), applied to
  each item of a list (joined by ``, ``), or ``ms`` for seconds written as
  ``M min S s`` (``S s`` under a minute). Without it, values print as ``str``
  does.

``python scripts/render_docs.py`` writes the documents; ``--check`` writes
nothing and exits 1 if a document differs from its rendering (so does
``tests/test_docs.py``).
"""
from __future__ import annotations

import argparse
import csv
import difflib
import functools
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- BEGIN rendered: {template} -->"
END = "<!-- END rendered -->"
PLACEHOLDER = re.compile(r"\{\{(.+?)\}\}")
ALIAS = re.compile(r"^<!-- data (\w+) = (\S+) -->\n?$")
_SEGMENT = r"(?:[\w\-]+|\[[^\]]*\])"
REFERENCE = re.compile(rf"(?P<file>[A-Za-z_][\w./\-]*)#(?P<key>{_SEGMENT}(?:\.{_SEGMENT})*)?")


def pct(value: object) -> object:
    """A fraction (or each fraction of a list) in percent."""
    return [pct(item) for item in value] if isinstance(value, list) else 100 * value


def slope(values: list[float]) -> float:
    """The least-squares slope of ``values`` over their index (per epoch, for a curve)."""
    xs = range(len(values))
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(values)
    return sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, values)) / sum((x - x_mean) ** 2 for x in xs)


def column(rows: list[dict], field: str) -> list:
    """One field of every row (a CSV column, a JSON-lines field)."""
    return [row[field] for row in rows]


def where(rows: list[dict], field: str, value: object) -> list[dict]:
    """The rows whose ``field`` equals ``value``."""
    return [row for row in rows if row.get(field) == value]


FUNCTIONS = {"mean": statistics.fmean, "median": statistics.median, "std": statistics.stdev, "min": min,
             "max": max, "sum": sum, "len": len, "abs": abs, "round": round, "pct": pct, "slope": slope,
             "column": column, "where": where, "zip": zip}


class RenderError(ValueError):
    """A placeholder that cannot be rendered: a missing file or key, or a bad expression."""


@dataclass(frozen=True)
class Target:
    """A template and the document (or the marked block of it) it renders."""

    template: str
    document: str
    block: bool = False


TARGETS = (
    Target("docs/templates/results.md", "docs/results.md"),
    Target("docs/templates/benchmarks.md", "docs/benchmarks.md"),
    Target("docs/templates/readme_demo.md", "README.md", block=True),
    Target("docs/templates/readme_speed.md", "README.md", block=True),
    Target("docs/templates/readme_report.md", "README.md", block=True),
)


def load(path: Path) -> object:
    """A raw file's content: JSON and YAML as they are, JSON lines and CSV as lists of rows (CSV numbers as floats)."""
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix in (".yaml", ".yml"):  # a run's resolved recipe.yaml
        import yaml

        return yaml.safe_load(text)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if path.suffix == ".csv":
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(text.splitlines())]
    raise RenderError(f"raw file {path}: not .json, .yaml, .jsonl or .csv")


def _number(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


def lookup(data: object, key: str, where: str) -> object:
    """The value at a dotted ``key`` in ``data``; ``where`` names the file in errors."""
    value, path = data, []
    for segment in re.findall(_SEGMENT, key or ""):
        path.append(segment)
        value = _step(value, segment, f"{where}#{'.'.join(path)}")
    return value


def _step(value: object, segment: str, where: str) -> object:
    if segment.startswith("[") and segment[1:2] in "'\"":
        segment = segment[2:-2]
    elif segment.startswith("["):
        wanted = dict(part.split("=", 1) for part in segment[1:-1].split(","))
        rows = value if isinstance(value, list) else []
        for row in rows:
            if isinstance(row, dict) and all(_same(row.get(k), v) for k, v in wanted.items()):
                return row
        raise RenderError(f"{where}: no row with {segment[1:-1]}")
    if isinstance(value, dict):
        if segment in value:
            return value[segment]
        raise RenderError(f"{where}: no key {segment!r} (keys: {', '.join(map(str, list(value)[:12]))})")
    if isinstance(value, list) and re.fullmatch(r"-?\d+", segment):
        if -len(value) <= int(segment) < len(value):
            return value[int(segment)]
        raise RenderError(f"{where}: index {segment} out of range ({len(value)} items)")
    raise RenderError(f"{where}: cannot take {segment!r} of a {type(value).__name__}")


def _same(value: object, text: str) -> bool:
    return str(value) == text or (isinstance(value, (int, float)) and _number(text) == value)


def evaluate(expression: str, aliases: dict[str, str], root: Path, cache: dict) -> object:
    """The value of a placeholder's expression, its references read from the raw files."""
    values: dict[str, object] = {}

    def reference(match: re.Match) -> str:
        name = match["file"]
        path = aliases.get(name, name)
        if path not in cache:
            if not (root / path).is_file():
                raise RenderError(f"raw file {path} not found")
            cache[path] = load(root / path)
        values[f"_r{len(values)}"] = lookup(cache[path], match["key"], path)
        return f"_r{len(values) - 1}"

    code = REFERENCE.sub(reference, expression)
    try:
        return eval(code, {"__builtins__": {}, **FUNCTIONS, **values})  # the templates are the repository's own
    except Exception as error:  # any failure names the placeholder
        raise RenderError(f"cannot evaluate {expression.strip()!r}: {error}") from error


def fmt(value: object, spec: str) -> str:
    """``value`` written with a format spec (each item of a list), or ``ms`` for seconds."""
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(item, spec) for item in value)
    if spec == "ms":
        seconds = round(float(value))
        return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
    if not spec:
        return str(value)
    text = format(value, spec)
    return "0" + text[2:] if text.startswith("-0") and not re.search(r"[1-9]", text) else text


def render(text: str, root: Path = ROOT, name: str = "<template>") -> str:
    """A template's text with its alias lines dropped and its placeholders filled."""
    lines = text.splitlines(keepends=True)
    aliases = {alias[1]: alias[2] for alias in map(ALIAS.match, lines) if alias}
    cache: dict = {}
    out = []
    for number, line in enumerate(lines, 1):
        if not ALIAS.match(line):
            fill = functools.partial(_fill, aliases=aliases, root=root, cache=cache, where=f"{name}:{number}")
            out.append(PLACEHOLDER.sub(fill, line))
    return "".join(out)


def _fill(match: re.Match, aliases: dict[str, str], root: Path, cache: dict, where: str) -> str:
    expression, _, spec = match[1].partition(" | ")
    try:
        return fmt(evaluate(expression, aliases, root, cache), spec.strip())
    except RenderError as error:
        raise RenderError(f"{where}: {{{{{match[1]}}}}}: {error}") from None


def expected(target: Target, root: Path = ROOT) -> str:
    """The document's full text as its template renders it."""
    rendered = render((root / target.template).read_text(), root, target.template)
    if not target.block:
        return rendered
    document = (root / target.document).read_text()
    begin = BEGIN.format(template=target.template)
    head, found, rest = document.partition(begin + "\n")
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise RenderError(f"{target.document}: no block '{begin}' ... '{END}'")
    return f"{head}{begin}\n{rendered}{END}{tail}"


def stale(root: Path = ROOT) -> list[str]:
    """For each document that differs from its rendering, a unified diff (rendered -> on disk)."""
    problems = []
    for target in TARGETS:
        want, have = expected(target, root), (root / target.document).read_text()
        if want != have:
            diff = difflib.unified_diff(want.splitlines(), have.splitlines(), f"{target.template} (rendered)",
                                        target.document, n=0, lineterm="")
            problems.append("\n".join(diff))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is not its rendering")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    for target in TARGETS:
        (ROOT / target.document).write_text(expected(target))
        print(f"{target.template} -> {target.document}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
