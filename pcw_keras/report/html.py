"""A report's blocks as one self-contained web page: inline CSS, figures embedded as base64 data URIs.

The page opens from the disk in any browser, with no server and nothing
fetched: it has no external link, script or style sheet.
"""
from __future__ import annotations

import base64
import html
import os
import re

from pcw_keras.report.document import Block, Figure, Heading, Paragraph, Table

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 62rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.5; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; }
th { background: #f6f8fa; }
code { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; font-size: .85rem; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; border-radius: 6px; }
pre code { padding: 0; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #59636e; font-size: .9rem; }
"""

_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escaped text, words between backticks as ``<code>``."""
    return _CODE.sub(lambda match: f"<code>{match.group(1)}</code>", html.escape(text, quote=False))


def _image(folder: str, name: str) -> str:
    with open(os.path.join(folder, name), "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


def _block(block: Block, folder: str) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Table):
        header = "".join(f"<th>{_inline(cell)}</th>" for cell in block.header)
        rows = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(block, Figure):
        caption = _inline(block.caption)
        return (f'<figure><img src="{_image(folder, block.file)}" alt="{html.escape(block.caption)}">'
                f"<figcaption>{caption}</figcaption></figure>")
    return f"<pre><code>{html.escape(block.text, quote=False)}</code></pre>"


def to_html(page: list[Block], folder: str, title: str) -> str:
    """The blocks as a self-contained HTML page; figures are read from ``folder`` and embedded."""
    body = "\n".join(_block(block, folder) for block in page)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
