"""Sphinx configuration of lipot's documentation site.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The examples of ``examples/`` named ``plot_*``, ``quickstart*`` and ``w1_toy_critics`` run during the
build (sphinx-gallery) and its printed output and figures appear on its page; the longer ones are
rendered with the output stored in their docstrings. The links into the torch, numpy, Python
and POT documentation (intersphinx) are added when those sites can be reached, and left out
otherwise (or with ``LIPOT_DOCS_OFFLINE=1``) instead of failing the build.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).parent))

import lipot  # noqa: E402
from api_pages import resolve_missing, write_pages  # noqa: E402

project = "lipot"
author = "the lipot developers"
copyright = "2026, the lipot developers"
release = version = lipot.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
templates_path = ["_templates"]
exclude_patterns = ["_templates", "_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.json", "auto_examples/*.md5", "**/*.codeobj.json"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # torch.nn.Module docstrings refer to torch names
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True

# Broken references into lipot fail the build; references into other packages are checked only
# when their inventories can be fetched (intersphinx), never guessed.
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(torch|numpy|np|scipy|ot|collections|typing|pathlib|os|tqdm|dataclasses|argparse)(\..*)?"),
    ("py:.*", r"(Tensor|Module|nn\..*|optional|callable|array-like|ndarray|Path|Iterable|Callable|Sequence|Mapping|Any)"),
    ("py:.*", r"(int|float|bool|str|tuple|list|dict|None|object|type|bytes|iterator|generator)"),
]



def _online(host: str = "docs.python.org") -> bool:
    """Whether the documentation sites can be reached (a TCP connection within 3 s)."""
    if os.environ.get("LIPOT_DOCS_OFFLINE"):
        return False
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


# Links into the torch, numpy, Python and POT documentation, when their inventories can be fetched.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "ot": ("https://pythonot.github.io", None),
} if _online() else {}

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/(quickstart\w*|w1_toy_critics|plot_\w*)\.py$",  # run these; the others show stored output
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib", "seaborn"),
    "min_reported_time": 1,
    "doc_module": ("lipot",),
    "backreferences_dir": "api/backreferences",
}


def write_module_pages(app) -> None:
    """One API page per public module of lipot (``docs/api/modules/``, generated at each build).

    Every object is documented once: a name of ``lipot.__all__`` under ``lipot`` (the pages of
    ``api/generated``), any other public name (listed in its home module's ``__all__``) in its
    home module's page. A package's page shows its docstring and links its modules.
    """
    write_pages(Path(__file__).parent / "api" / "modules")


def setup(app) -> None:
    app.connect("builder-inited", write_module_pages)
    app.connect("missing-reference", resolve_missing)


html_theme = "furo"
html_title = f"lipot {version}"
html_static_path: list[str] = []
