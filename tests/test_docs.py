"""The documentation runs as written: docs/api.md's examples are doctests."""

from __future__ import annotations

import doctest
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_api_md_doctests() -> None:
    res = doctest.testfile(str(DOCS / "api.md"), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert res.attempted > 10
    assert res.failed == 0


def test_claims_md_is_generated_from_the_registry(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """docs/claims.md is exactly what `prefcheck docs` generates: regenerate it when a claim changes."""
    from checks.cli import main
    from checks.commands.docs import render
    from checks.registry import all_claims

    assert main(["docs", "--check", str(DOCS / "claims.md")]) == 0, "run: prefcheck docs --out docs/claims.md"
    text = render()
    for cid, claim in all_claims().items():
        assert f"\n## {cid}\n" in text and claim.statement in text
    assert text.count("```latex") >= 13  # every identity with a derivation shows it
    assert "theory.md#4-coverage" in text and "| `exponent` | `2` | `k` |" in text
    # a stale copy (a claim's statement edited in the registry but not here) is caught
    stale = tmp_path / "claims.md"
    stale.write_text(text.replace("C_inf(pi*; pi)^2", "C_inf(pi*; pi)^3", 1))
    capsys.readouterr()
    assert main(["docs", "--check", str(stale)]) == 1
    assert "not up to date" in capsys.readouterr().err
    out = tmp_path / "new" / "claims.md"
    assert main(["docs", "--out", str(out)]) == 0 and out.read_text() == text


def test_instance_examples_load_and_match_their_family() -> None:
    from proofs_numeric.instance import Instance

    files = sorted((DOCS.parent / "examples" / "instances").glob("*.toml"))
    assert [f.stem for f in files] == ["generic", "near-collinear", "poor-coverage", "two-response"]
    for f in files:
        inst = Instance.load(f)
        assert inst.meta["family"].replace("_", "-") == f.stem
        assert f"`{f.name}`" in (DOCS / "instances.md").read_text()
