r"""``prefcheck coverage``: every coverage constant of one instance with its certified enclosure.

``prefcheck coverage (--instance FILE | --preset NAME) [--theta v1,...] [--at v1,...] [--dps N]
[--r R] [--region R [--budget S]] [--json -|PATH]``

For the target pi* = pi_{theta*} and the sampling policy pi = pi_theta (``--theta``, default 0,
i.e. pi = pi_ref) it prints C_inf, C_Sigma, C_I (Fisher informations at ``--at``, default theta*)
and C_dev (linear class) of docs/theory.md section 4, each three ways: float64, mpmath at ``--dps``
digits and a certified Arb enclosure [lo, hi] (python-flint balls; see proofs_numeric.coverage).
It also prints C_inf^2 (the I2 bound) and, for the radius ``--r`` (default 0.5), the generalized
coverage threshold N_gen(r): the I4 upper bound d e^{2 D r} / r^2 and a searched, certified lower
bound of the supremum (at a point certified to lie in the ball). With ``--region R`` it also certifies, by
branch and bound over Arb boxes covering the ball ||theta - theta*|| <= R
(:func:`checks.region.coverage_region`), the bracket [sup over evaluated points, sup over the region] of
sup C_I(pi*; pi_theta; theta*) and of N_gen(R) = d sup C_I / R^2 (``--budget`` seconds; the bracket printed
is what was certified in that time).

Rounding, as printed: the certified columns (lo, hi, the N_gen bounds) are rounded *outward*
(lo down, hi up: first to a double, then to the printed decimal digits), so each printed bound is
a true bound; the float64 and mpmath columns and the bound/lower ratio are estimates rounded to
nearest.

Exit 0 on success, 2 on bad input (validated before any output).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from mpmath import mp

from proofs_numeric import coverage as cov
from proofs_numeric.certify import arb_prec, bits_for_dps, float_down, float_up
from proofs_numeric.errors import InvalidInput, check_dps

from .common import add_instance_source, check_json_target, emit_json, load_instance, parse_vector

NAME = "coverage"
HELP = "Print every coverage constant (C_inf, C_Sigma, C_I, C_dev, N_gen) of an instance with certified enclosures."


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_instance_source(p)
    p.add_argument(
        "--theta", metavar="V1,...", default=None, help="sampling policy pi_theta (default 0: pi_ref)"
    )
    p.add_argument("--at", metavar="V1,...", default=None, help="Fisher parameter of C_I (default theta*)")
    p.add_argument(
        "--dps", type=int, default=50, help="decimal digits (mpmath and the Arb enclosures; default 50)"
    )
    p.add_argument("--r", type=float, default=0.5, help="radius of N_gen(r) (default 0.5)")
    p.add_argument("--json", metavar="-|PATH", default=None, help="JSON to stdout (-) or to a file")
    p.add_argument(
        "--region",
        metavar="R",
        default=None,
        help="also certify brackets of sup C_I over the ball ||theta - theta*|| <= R and of N_gen(R) (checks.region)",
    )
    p.add_argument(
        "--budget", type=float, default=30.0, help="seconds for the --region branch and bound (default 30)"
    )


def _fmt(x: float) -> str:
    """An estimate, rounded to nearest (15 significant digits; scientific notation when needed)."""
    return "inf" if math.isinf(x) else f"{x:.15g}"


def _fmt_dir(x: float, up: bool, digits: int = 15) -> str:
    """A bound printed with ``digits`` significant digits rounded outward (down for lo, up for hi)."""
    if math.isinf(x) or math.isnan(x):
        return str(x)
    import decimal

    ctx = decimal.Context(prec=digits, rounding=decimal.ROUND_CEILING if up else decimal.ROUND_FLOOR)
    return format(ctx.plus(decimal.Decimal(x)).normalize(), "g") if x else "0"


def _arb_decimal(x: Any, up: bool, digits: int) -> str:
    """The upper (``up``) or lower endpoint of the Arb ball ``x`` with ``digits`` significant digits,
    rounded outward from its exact binary value (so the printed number is a true bound)."""
    import decimal

    if not x.is_finite():
        return "inf" if up else "-inf"
    end = x.upper() if up else x.lower()
    man, exp = (int(v) for v in end.man_exp())
    if exp >= 0:
        exact = decimal.Decimal(man << exp)
    else:  # man / 2^k = man 5^k / 10^k, exactly (scaleb in a context wide enough to round nothing)
        scaled = man * 5 ** (-exp)
        exact = decimal.Decimal(scaled).scaleb(exp, context=decimal.Context(prec=len(str(scaled)) + 2))
    ctx = decimal.Context(
        prec=digits, rounding=decimal.ROUND_CEILING if up else decimal.ROUND_FLOOR, Emax=10**9, Emin=-(10**9)
    )
    d = ctx.plus(exact)
    if not d:
        return "0"
    # fixed notation for moderate magnitudes, scientific otherwise (never a cut-off number)
    adj = d.adjusted()
    return format(d, "f") if -4 <= adj < 15 and len(format(d, "f")) <= digits + 6 else format(d, "e")


def bracket_digits(rel_width: float, dps: int) -> int:
    """Significant digits that show a certified bracket's width: two past its first differing digit
    (at least 6; at most the run's digits + 10, about the working precision of the enclosures)."""
    if not math.isfinite(rel_width):
        return 6
    if rel_width <= 0:
        return max(6, min(dps, 17))
    return max(6, min(dps + 10, math.ceil(-math.log10(rel_width)) + 2))


def compute(inst: Any, theta: list[float], at: list[float] | None, dps: int, r: float) -> dict[str, Any]:
    """All coverage constants of pi_theta for pi* of ``inst``: float64, mpmath and certified brackets."""
    prec = bits_for_dps(dps)
    t0 = time.perf_counter()
    f64 = cov.coverage_fast(inst, theta, at)
    t1 = time.perf_counter()
    mpv = cov.coverage_mp(inst, theta, dps, at)
    t2 = time.perf_counter()
    arbv = cov.coverage_arb(inst, theta, prec, at)
    t3 = time.perf_counter()
    rows = []
    with mp.workdps(dps):
        mp_str = {k: mp.nstr(v, dps) for k, v in mpv.items()}
        mp_str["C_inf^2"] = mp.nstr(mpv["C_inf"] ** 2, dps)
    def row(name: str, f64v: float, lo_b: Any, hi_b: Any) -> dict[str, Any]:
        with arb_prec(prec):
            lo, hi = float_down(lo_b), float_up(hi_b)
            if lo_b.is_finite() and hi_b.is_finite() and lo_b.lower() != 0:
                # the true relative width of the Arb bracket (not of its rounding to doubles)
                rel = float_up((hi_b.upper() - lo_b.lower()) / abs(lo_b.lower()))
            else:
                rel = math.inf
            digits = bracket_digits(rel, dps)
            return {
                "name": name,
                "float64": f64v,
                "mpmath": mp_str[name],
                "lo": lo,
                "hi": hi,
                "rel_width": rel,
                "lo_text": _arb_decimal(lo_b, False, digits),
                "hi_text": _arb_decimal(hi_b, True, digits),
            }

    for name in ("C_inf", "C_Sigma", "C_I", "C_dev"):
        if name == "C_inf":
            lo_b = hi_b = arbv.C_inf
        else:
            g = getattr(arbv, name)
            lo_b, hi_b = g.lo, g.hi
        rows.append(row(name, f64[name], lo_b, hi_b))
    with arb_prec(prec):
        sq = arbv.C_inf * arbv.C_inf
    rows.append(row("C_inf^2", f64["C_inf"] * f64["C_inf"], sq, sq))  # inf, not OverflowError
    ng = cov.n_gen_lower(inst, r, prec)
    with arb_prec(prec):
        ngen = {
            "r": r,
            "upper_I4": float_up(ng.upper),
            "lower_searched": float_down(ng.lower),
            "lower_theta": ng.theta,
            "points_searched": ng.searched,
            "ratio": ng.ratio(),
        }
    return {
        "instance": inst.name,
        "theta": list(theta),
        "at": list(at) if at is not None else inst.theta_star.tolist(),
        "dps": dps,
        "prec_bits": prec,
        "constants": rows,
        "N_gen": ngen,
        "timings_s": {"float64": t1 - t0, "mpmath": t2 - t1, "arb": t3 - t2},
        "note": (
            "lo/hi and the N_gen bounds: certified (Arb balls), rounded outward to float64 (lo down, hi up); "
            "float64, mpmath and N_gen ratio: estimates rounded to nearest"
        ),
    }


def run(args: argparse.Namespace) -> int:
    dps = check_dps(args.dps)
    inst = load_instance(args.instance, args.preset)
    theta = parse_vector("theta", args.theta, inst.d) if args.theta is not None else [0.0] * inst.d
    at = parse_vector("at", args.at, inst.d) if args.at is not None else None
    if not (isinstance(args.r, float) and math.isfinite(args.r) and args.r > 0):
        raise InvalidInput(f"r must be a finite number > 0, got r={args.r!r}")
    region_r = None
    if getattr(args, "region", None) is not None:
        from ..region import parse_radii

        region_r = parse_radii(str(args.region), "region")[0]  # exact: "0.3" is 3/10
    budget = getattr(args, "budget", 30.0)
    if not (isinstance(budget, float) and math.isfinite(budget) and budget > 0):
        raise InvalidInput(f"budget must be a number of seconds > 0, got budget={budget!r}")
    check_json_target(args.json)
    out = compute(inst, theta, at, dps, args.r)
    if region_r is not None:
        from ..region import coverage_region

        out["region"] = coverage_region(inst, region_r, dps, budget)
    if args.json is not None:
        emit_json(args.json, out)
        if args.json == "-":
            return 0
    _print(out)
    return 0


def _region_lines(reg: dict[str, Any]) -> str:
    r = reg["r_exact"]
    lo, hi = reg["sup_C_I"]
    nlo, nhi = reg["N_gen"]
    return (
        f"region ||theta - theta*|| <= {r} (certified by branch and bound, {reg['boxes_evaluated']} boxes, "
        f"{reg['elapsed_s']:.1f} s, stopped: {reg['stopped']}):\n"
        f"  sup C_I(pi*; pi_theta; theta*) over the ball in [{_fmt_dir(lo, False, 10)}, {_fmt_dir(hi, True, 10)}]\n"
        f"  N_gen({r}) = d sup C_I / r^2 in [{_fmt_dir(nlo, False, 10)}, {_fmt_dir(nhi, True, 10)}]  "
        f"(I4 closed form: {_fmt_dir(reg['I4_closed_form'], True, 6)})"
    )


def _print(out: dict[str, Any]) -> None:
    title = f"coverage of pi_theta (theta={out['theta']}) for pi* on {out['instance']} at {out['dps']} digits"
    ng = out["N_gen"]
    footer = (
        f"N_gen(r={ng['r']:g}): certified lower {_fmt_dir(ng['lower_searched'], False, 6)} (searched, "
        f"{ng['points_searched']} points, at a point certified in the ball) <= N_gen <= "
        f"{_fmt_dir(ng['upper_I4'], True, 6)} (I4 bound d e^(2Dr)/r^2); bound/lower ~ {ng['ratio']:.3g} (estimate)\n"
        "certified lo/hi and N_gen bounds rounded outward; float64, mpmath and ratios rounded to nearest"
    )
    if "region" in out:
        footer += "\n" + _region_lines(out["region"])
    head = ("constant", "float64", f"mpmath ({out['dps']} dps)", "certified lo", "certified hi", "rel. width")

    def cells(r: dict[str, Any]) -> tuple[str, ...]:
        width = "inf" if math.isinf(r["rel_width"]) else f"{r['rel_width']:.1e}"
        return (r["name"], _fmt(r["float64"]), _mp_short(r["mpmath"]), r["lo_text"], r["hi_text"], width)

    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        con = Console(highlight=False)
        rows = [cells(r) for r in out["constants"]]
        need = sum(max(len(x[i]) for x in [head, *rows]) for i in range(len(head))) + 3 * len(head) + 1
        if need <= con.width:  # the table when every number fits whole; the blocks below otherwise
            table = Table(title=title)
            for col in head:
                table.add_column(col, no_wrap=True)
            for row in rows:
                table.add_row(*row)
            con.print(table)
            con.print(footer)
            return
    # plain text: one block per constant (whole numbers, whatever their length)
    print(title)
    for r in out["constants"]:
        c = cells(r)
        print(f"{c[0]:<9} float64 {c[1]}   mpmath {c[2]}")
        print(f"{'':<9} certified lo {c[3]}")
        print(f"{'':<9} certified hi {c[4]}  (relative width {c[5]})")
    if sys.stdout.isatty():  # prose wrapped at word boundaries on a narrow terminal
        from rich.console import Console

        Console(highlight=False).print(footer)
    else:
        print(footer)


def _mp_short(text: str) -> str:
    """The mpmath value to 17 significant digits, rounded to nearest (the JSON keeps every digit)."""
    with mp.workdps(30):
        return str(mp.nstr(mp.mpf(text), 17, min_fixed=-4, max_fixed=15))
