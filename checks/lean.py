r"""LeanCert as a second certifier of the scalar claims (``prefcheck audit --certifier leancert``).

For I1, I3, I4 (its C_inf part) and E13 the Arb check runs first (points or region scope); then the scalar
statements behind it are exported to LeanCert (:mod:`proofs_numeric.lean`) *at the same points* the Arb check
evaluated (:func:`checks.claims.coverage.i1_thetas`, :func:`~checks.claims.coverage.i3_pairs`,
:func:`~checks.claims.coverage.i4_points`), or over the same balls (region scope), and verified by the Lean 4
kernel. The instance result records both certifiers and whether they agree; its status is

* ``certified`` only when Arb certified and LeanCert verified every exported statement;
* ``refuted`` when Arb refuted (a certified counterexample); LeanCert's finding is recorded beside it;
* ``error`` when the two certifiers contradict each other (one proves, the other refutes);
* ``inconclusive`` otherwise, naming the statements LeanCert could not verify and why.

Nothing falls back silently: a statement LeanCert did not verify is listed (label, statement, kernel enclosure,
reason) in ``details["leancert"]``, and the parts LeanCert does not check are named in ``not_exported``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from proofs_numeric import lean as pl
from proofs_numeric.instance import Instance

from .registry import Claim, InstanceResult, RunOptions
from .verdict import Verdict

__all__ = ["LEAN_CLAIMS", "require_leancert", "statements_for", "cross_check", "aggregate_lean", "NOT_EXPORTED"]

#: claims whose scalar statements are exported to LeanCert
LEAN_CLAIMS = ("I1", "I3", "I4", "E13")

#: what LeanCert does not check, per claim (stated in every verdict)
NOT_EXPORTED = {
    "I1": "the step from the per-pair scalar inequalities to the Loewner order (a nonnegative combination of z z^T), "
    "and the LDL^T certificates of the Arb check",
    "I3": "the rewriting of log pi as -log S (no logs in LeanCert); in region scope, the mean value theorem that turns "
    "the gradient bound into I3 on the ball",
    "I4": "the C_Sigma and C_I parts (generalized eigenvalues, certified by Arb alone) and the rewriting of "
    "the density ratio as S_theta/S*",
    "E13": "|u| > 32 (the kernel's enclosure of 1 - 2/(1+e^u) reaches 1 there), the identities "
    "d/du log sigma'(u) = 1 - 2 sigma(u) and evenness, and the algebra |1 - 2 sigma(u)| = 1 - 2/(1+e^|u|)",
}

def require_leancert() -> None:
    """Raise InvalidInput (one line, exit 2) unless leancert==0.3.2 is importable."""
    pl.import_leancert()


def _rational(claim: Claim, opts: RunOptions, name: str, inst: Instance, safe: str) -> Fraction:
    """Claim constant ``name`` as an exact Fraction (checks.constants); an irrational one (e.g. ``exp(1)/4``) is
    replaced by a rational bound on the side that makes the exported statement stronger (``safe`` = "down" or
    "up"), so that a verified statement still implies the claim."""
    from proofs_numeric.certify import arb_prec
    from proofs_numeric.region import float_down, float_up

    from .constants import constant, instance_env

    env = instance_env(inst)
    c = constant(opts, claim, name, env)
    ex = c.exact(env)
    if ex is not None:
        return ex
    with arb_prec(256):
        a = c.arb(env)
        return Fraction(float_down(a) if safe == "down" else float_up(a))


def statements_for(cid: str, claim: Claim, inst: Instance, opts: RunOptions, scope: str) -> list[pl.Statement]:
    """The statements of claim ``cid`` on ``inst``: at the Arb check's points, or over its balls (region scope)."""
    from .claims.coverage import i1_thetas, i3_pairs, i4_points

    def rat(name: str, safe: str) -> Fraction:
        return _rational(claim, opts, name, inst, safe)

    radii: list[Fraction] = []
    if scope == "region":
        from .region import region_settings

        radii, _ = region_settings(opts)
    if cid == "I1":
        up, lf = rat("upper", "down"), rat("lower_factor", "up")
        if scope == "region":
            return [s for r in radii for s in pl.i1_region_statements(inst, r, up, lf)]
        return [s for i, th in enumerate(i1_thetas(inst, opts)) for s in pl.i1_statements(inst, th, up, lf, f"theta#{i}")]
    if cid == "I3":
        lip = rat("lipschitz", "down")
        if scope == "region":
            return [s for r in radii for s in pl.i3_region_statements(inst, r, lip)]
        return pl.i3_statements(inst, i3_pairs(inst, opts), lip)
    if cid == "I4":
        rate = rat("rate", "down")
        if scope == "region":
            return [s for r in radii for s in pl.cinf_region_statements(inst, r, rate)]
        return pl.cinf_statements(inst, i4_points(inst, opts), rate)
    if cid == "E13":
        return pl.e13_statements(rat("bound", "down"))
    from proofs_numeric.errors import InvalidInput

    raise InvalidInput(f"claims: certifier leancert exports the scalar claims {', '.join(LEAN_CLAIMS)}, got {cid}")


def _combine(arb: str, lean: str) -> tuple[str, bool | None]:
    """(instance status, agree) from the Arb status and LeanCert's (certified | refuted | inconclusive)."""
    if arb == "error":
        return "error", None
    if (arb == "certified" and lean == "refuted") or (arb == "refuted" and lean == "certified"):
        return "error", False
    if arb == lean and arb in ("certified", "refuted"):
        return arb, True
    if arb == "refuted":
        return "refuted", None
    return "inconclusive", None


def cross_check(cid: str, claim: Claim, inst: Instance, opts: RunOptions, res: InstanceResult) -> InstanceResult:
    """Add LeanCert's verdict on ``cid``'s scalar statements to the Arb result ``res`` (see the module docstring)."""
    scope = str(res.details.get("scope", "points"))
    stmts = statements_for(cid, claim, inst, opts, scope)
    note = "" if stmts else "no statement to export"
    outs, prov = pl.verify_statements(stmts) if stmts else ([], {"leancert": pl.LEANCERT_VERSION})
    counts: dict[str, int] = {}
    for o in outs:
        counts[o.status] = counts.get(o.status, 0) + 1
    if not stmts:
        lean_status = "inconclusive"
    elif counts.get("refuted"):
        lean_status = "refuted"
    elif counts.get("verified", 0) == len(outs):
        lean_status = "certified"
    else:
        lean_status = "inconclusive"
    status, agree = _combine(res.status, lean_status)
    failed = [o for o in outs if o.status != "verified"]
    info: dict[str, Any] = {
        "status": lean_status,
        "statements": len(outs),
        "counts": counts,
        "seconds": round(sum(o.seconds for o in outs), 3),
        "provenance": prov,
        "not_exported": NOT_EXPORTED.get(cid, ""),
        "not_verified": [
            {"label": o.label, "statement": o.text, "status": o.status, "reason": o.reason, "enclosure": o.enclosure}
            for o in failed[:10]
        ],
    }
    if note:
        info["reason"] = note
    from .runner import record_check

    record_check(
        res.details, "LeanCert (Lean 4 kernel)", tier="leancert", method=f"verify_bound, Taylor depth {pl.TAYLOR_DEPTH}",
        statements=len(outs), status=lean_status, version=pl.LEANCERT_VERSION,
    )
    res.details["leancert"] = info
    res.details["certifiers"] = {"arb": res.status, "leancert": lean_status, "agree": agree}
    if status != res.status:
        res.details["arb_status"] = res.status
        if status == "inconclusive":
            why = note or (f"{len(failed)} of {len(outs)} statement(s) not verified by LeanCert, first: "
                           f"{failed[0].label} ({failed[0].reason})" if failed else "")
            res.details["inconclusive_because"] = why
        elif status == "error":
            res.details["error"] = f"certifiers disagree: Arb {res.status}, LeanCert {lean_status}"
        res.status = status
    if res.counterexample is None and lean_status == "refuted":
        bad = next(o for o in outs if o.status == "refuted")
        res.counterexample = {"instance": inst.to_dict(), "parameters": {"leancert_statement": bad.label, "statement": bad.text}}
    return res


def aggregate_lean(v: Verdict, results: list[InstanceResult]) -> None:
    """State both certifiers in the verdict: per-certifier status counts, agreement, what LeanCert checked."""
    rows = [r for r in results if "leancert" in r.details]
    lean_counts: dict[str, int] = {}
    arb_counts: dict[str, int] = {}
    n_stmt = 0
    stmt_counts: dict[str, int] = {}
    disagree = 0
    not_verified: list[dict[str, Any]] = []
    for r in rows:
        c = r.details["certifiers"]
        lean_counts[c["leancert"]] = lean_counts.get(c["leancert"], 0) + 1
        arb_counts[c["arb"]] = arb_counts.get(c["arb"], 0) + 1
        n_stmt += int(r.details["leancert"]["statements"])
        for k, n in r.details["leancert"].get("counts", {}).items():
            stmt_counts[k] = stmt_counts.get(k, 0) + int(n)
        disagree += int(c["agree"] is False)
        not_verified += [{"instance": r.instance, **x} for x in r.details["leancert"]["not_verified"][:3]]
    both = sum(1 for r in rows if r.details["certifiers"]["arb"] == r.details["certifiers"]["leancert"] == "certified")
    first = rows[0].details["leancert"] if rows else {}
    v.details["certifiers"] = {
        "arb": arb_counts,
        "leancert": lean_counts,
        "certified_by_both": both,
        "disagreements": disagree,
        "leancert_statements": n_stmt,
        "leancert_statement_counts": stmt_counts,
        "leancert_version": pl.LEANCERT_VERSION,
        "taylor_depth": pl.TAYLOR_DEPTH,
        "leancert_not_exported": first.get("not_exported", ""),
        "leancert_not_verified": not_verified[:10],
    }
    if first.get("reason"):
        v.details["certifiers"]["leancert_reason"] = first["reason"]
    v.message = (
        f"{v.message}; certifiers: Arb and LeanCert {pl.LEANCERT_VERSION} (Lean 4 kernel), "
        f"both certified {both} of {len(rows)} instance(s), {n_stmt} LeanCert statement(s)"
        + (f", {disagree} disagreement(s)" if disagree else "")
    )
