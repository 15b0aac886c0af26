"""MkDocs hooks of labrram's documentation site (mkdocs.yml).

labrram maps ``drivers/``, ``protocols/`` and ``calibration_data/`` into its namespace
(``labrram.drivers``, ...) with setuptools' package-dir. The API reference reads the sources
statically, so before the build this hook lays out the package as it is installed: a tree of
links in ``build/api-src/labrram`` (the sources themselves are not copied). Pages link to
tests and modules of the repository, which the site does not publish: those links become text.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "api-src"
#: sub-packages that live outside labrram/ (pyproject.toml's [tool.setuptools.package-dir])
MAPPED = {"drivers": "drivers", "protocols": "protocols", "calibration_data": "calibration_data"}


def api_tree() -> Path:
    """Lay out ``build/api-src/labrram`` as the installed package; return ``build/api-src``."""
    package = TREE / "labrram"
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    for entry in (ROOT / "labrram").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for name, source in MAPPED.items():
        (package / name).symlink_to(ROOT / source, target_is_directory=True)
    return TREE


def on_startup(**kwargs: object) -> None:
    api_tree()


#: a Markdown link: [text](target)
_LINK = re.compile(r"\[(?P<text>[^\]\n]+)\]\((?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Links from a page to repository files outside the docs folder (a test, a module: they
    resolve when the pages are read in the repository) become their text on the site, where
    those files are not published. A link to a file that does not exist is left to the build's
    link check."""
    docs = Path(config["docs_dir"]).resolve()
    here = (docs / page.file.src_path).parent

    def unlink(m: re.Match[str]) -> str:
        target = m["target"]
        if "://" in target or target.startswith("/"):
            return m[0]
        path = (here / target).resolve()
        if path.is_relative_to(docs) or not path.is_relative_to(ROOT) or not path.exists():
            return m[0]
        return m["text"]

    return _LINK.sub(unlink, markdown)
