"""The code blocks of README.md and of the documentation pages run, so that no snippet goes stale.

Each page's ```` ```python ```` blocks run in order in one namespace, in a temporary working
directory, as a reader would paste them. Two HTML comments, invisible on GitHub and on the site,
steer this:

* ``<!-- setup: ... -->`` (anywhere on the page): Python run first, e.g. to define the arrays a
  reference snippet names (``X``, ``model``);
* ``<!-- skip: reason -->`` right before a block: that block does not run (it needs MNIST, several
  processes, a GPU...). The reason must be given.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "_build" not in p.parts and "auto_examples" not in p.parts]

FENCE = re.compile(r"(?P<skip><!-- skip: (?P<reason>[^>]+?) -->\s*\n)?```python\n(?P<code>.*?)\n```", re.S)
SETUP = re.compile(r"<!-- setup:\n(?P<code>.*?)\n-->", re.S)


def blocks(text: str) -> tuple[str, list[tuple[str, str | None]]]:
    """The page's setup code and its Python blocks, each with its skip reason (or ``None``)."""
    setup = "\n".join(m.group("code") for m in SETUP.finditer(text))
    return setup, [(m.group("code"), m.group("reason")) for m in FENCE.finditer(text)]


def test_the_parser_reads_setup_skip_and_blocks():
    text = ("<!-- setup:\nX = 1\n-->\n```python\nY = X + 1\n```\n<!-- skip: needs MNIST -->\n"
            "```python\nimport nothing\n```\n```bash\nls\n```\n")
    setup, found = blocks(text)
    assert setup == "X = 1"
    assert found == [("Y = X + 1", None), ("import nothing", "needs MNIST")]


def _with_python(page: Path) -> bool:
    return any(reason is None for _, reason in blocks(page.read_text())[1])


@pytest.mark.parametrize("page", [p for p in PAGES if _with_python(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_page_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setup, found = blocks(page.read_text())
    namespace: dict = {"__name__": "__snippet__"}
    exec(compile(setup, f"{page.name}:setup", "exec"), namespace)
    for i, (code, reason) in enumerate(found):
        if reason is None:
            exec(compile(code, f"{page.name}:block{i}", "exec"), namespace)
