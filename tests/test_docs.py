"""The documentation runs as written: docs/api.md's examples are doctests."""

from __future__ import annotations

import doctest
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_api_md_doctests() -> None:
    res = doctest.testfile(str(DOCS / "api.md"), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert res.attempted > 10
    assert res.failed == 0
