"""The programmatic ``prefcheck audit``: the same plan, validation, executors and reports as the CLI.

>>> from checks.api import audit
>>> [v.status for v in audit(claims="E13,I3", presets=["tiny"], dps=30)]
['certified', 'certified']
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proofs_numeric.instance import Instance

from .verdict import Verdict

__all__ = ["audit", "derive_all_sizes"]


def audit(
    claims: str | Sequence[str] | None = None,
    *,
    claims_file: str | Path | None = None,
    instances: int | Sequence[Instance] | None = None,
    presets: Sequence[str] | None = None,
    dps: int | None = None,
    seed: int | None = None,
    replications: int | None = None,
    level: float | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    scope: str = "points",
    budget: float | None = None,
    radii: Sequence[float] | None = None,
    certifier: str = "arb",
    search: float | None = None,
    tier: str = "auto",
) -> list[Verdict]:
    """Run claims as ``prefcheck audit`` does and return their verdicts (in plan order).

    Parameters
    ----------
    claims : claim ids ("I2,I5" or ["I2", "I5"]); None: every claim (or the claims file's selection).
    claims_file : a TOML claims file (constants, new inequalities, proof chains, instances).
    instances : draw this many seeded random instances (as ``--instances``), or run on these
        :class:`~proofs_numeric.instance.Instance` objects.
    presets : run on these built-in instances (e.g. ["tiny", "generic"]) instead of the defaults.
    dps, seed, replications, level : as the CLI flags.
    workers : local worker processes (1: in this process); ``scheduler``: a Dask address.
    out : write verdicts.jsonl, the reports and counterexamples/ there (``resume`` continues a run).
    scope, budget, radii : ``"region"`` certifies I1, I3, I4, D4 (and claims-file inequalities with policy
        ball) for every theta of the balls ||theta - theta*|| <= r, r in ``radii``, ``budget`` seconds each
        (as ``--scope region --budget S --radii R,...``; see :mod:`checks.region`).
    certifier : ``"leancert"`` also verifies the scalar statements with LeanCert (as ``--certifier``).
    search : seconds of adversarial search per inequality claim (as ``--search``; :mod:`checks.search`).
    tier : ``"auto"`` (the certified float64 tier first for the I2/I4 Loewner verdicts, Arb where it cannot
        decide) or ``"arb"`` (as ``--tier``).

    Raises :class:`proofs_numeric.errors.PrefcheckError` (InvalidInput) on bad input, before any work.
    """
    from proofs_numeric.errors import InvalidInput

    from .commands.audit import build_plan, run_audit

    ids = claims if claims is None or isinstance(claims, str) else ",".join(claims)
    given = None if instances is None or isinstance(instances, int) else list(instances)
    if given is not None and presets is not None:
        raise InvalidInput("instances (a list of Instance objects) cannot be combined with presets")
    args = argparse.Namespace(
        claims=ids, claims_file=None if claims_file is None else str(claims_file),
        instances=instances if given is None else None,
        dps=dps, seed=seed, out=None if out is None else str(out), resume=resume, workers=workers,
        scheduler=scheduler, json=None, replications=replications, level=level, batch_seconds=1.0,
        connect_timeout=10.0, scope=scope, budget=budget, certifier=certifier, search=search, tier=tier,
        radii=None if radii is None else ",".join(repr(float(r)) for r in radii),
    )
    plan = build_plan(args)
    if presets is not None:
        if instances is not None:
            raise InvalidInput("presets cannot be combined with instances")
        from proofs_numeric.generate import canonical_preset

        # validates each name (one-line error); either spelling (poor_coverage = poor-coverage)
        plan.source = {"kind": "presets", "names": [canonical_preset(n) for n in presets]}
        _recount(plan)
    elif given is not None:
        if not given or not all(isinstance(i, Instance) for i in given):
            raise InvalidInput("instances must be a count or a non-empty list of Instance objects")
        plan.source = {"kind": "explicit", "instances": [i.to_dict() for i in given]}
        _recount(plan)
    return run_audit(plan, progress=False)


def _recount(plan: Any) -> None:
    from .executors import count_instances, options_from_dict

    opts = options_from_dict(plan.opts)
    for pc in plan.claims:
        pc.count = count_instances(plan.source, pc.claim, opts)


def derive_all_sizes(claim: str) -> Any:
    """The size-free proof of identity ``claim`` (E1-E12, E15, E17) with K and d symbolic.

    Returns a :class:`theory.allsizes.AllSizesProof`: ``holds``, ``status`` ("proved", "refuted",
    "not proved"), ``scope`` ("all K, d" when proved), ``method``, ``steps`` (label, SymPy expression),
    ``lemmas``, ``counterexample``; ``.text()``, ``.latex()``, ``.to_json()`` as ``prefcheck derive CLAIM
    --all-sizes [--latex] [--json -]`` prints them. Raises InvalidInput for an unknown claim id.

    >>> derive_all_sizes("E12").scope
    'all K, d'
    """
    from proofs_numeric.errors import InvalidInput
    from theory import allsizes

    if not isinstance(claim, str) or claim not in allsizes.STATEMENTS:
        raise InvalidInput(
            f"claim must be one with an all-sizes proof ({', '.join(allsizes.STATEMENTS)}), got claim={claim!r}"
        )
    return allsizes.prove_all_sizes(claim)
