r"""Each registered claim's statement in LaTeX (the subset matplotlib's mathtext renders).

Written from docs/theory.md; a claim's overridable constants appear by name (``k`` in I2, ``a`` in
I4, ...), with their defaults in the registry (:attr:`checks.registry.Claim.constants`). The HTML
report and ``prefcheck docs`` render these offline (:func:`svg`); a claim without an entry here (a
claims-file claim) uses :meth:`Claim.latex`, the LaTeX of its relation.
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from typing import Any

__all__ = ["TEX", "CONSTANT_SYMBOLS", "claim_tex", "svg"]

#: the symbol under which a claim's constant appears in its LaTeX statement
CONSTANT_SYMBOLS: dict[tuple[str, str], str] = {
    ("I1", "upper"): "u",
    ("I1", "lower_factor"): "l",
    ("I2", "exponent"): "k",
    ("I3", "lipschitz"): "L",
    ("I4", "rate"): "a",
    ("I6", "factor"): "c",
    ("E13", "bound"): "b",
    ("E14", "factor"): "f",
    ("E15", "grad_factor"): "g",
    ("E15", "hess_factor"): "h",
    ("D3", "c"): "c",
    ("D4", "c"): "c",
    ("S5", "c"): "c",
    ("S3", "c"): "c",
}

TEX: dict[str, str] = {
    "E1": r"\nabla_\theta A_x(\theta) = \mu_\theta(x) := \mathbb{E}_{y\sim\pi_\theta(\cdot|x)}\,\phi(x,y)",
    "E2": r"\nabla^2_\theta A_x(\theta) = S_\theta(x) := \mathrm{Cov}_{y\sim\pi_\theta(\cdot|x)}\,\phi(x,y)",
    "E3": r"\nabla_\theta \log \pi_\theta(y|x) = \phi(x,y) - \mu_\theta(x)",
    "E4": r"J(\pi^*) - J(\pi) = \beta\,\mathbb{E}_x\,\mathrm{KL}(\pi(\cdot|x)\,\|\,\pi^*(\cdot|x))",
    "E5": r"\ell(\theta; x, y, y', o) = \mathrm{softplus}(-o\,\beta\,\langle\theta, z\rangle),\ z = \phi(x,y) - \phi(x,y')",
    "E6": r"\nabla \ell = -o\,\beta\,\sigma(-o\,\beta\langle\theta, z\rangle)\, z",
    "E7": r"\nabla^2 \ell = \beta^2\,\sigma'(\beta\langle\theta, z\rangle)\, z z^\top",
    "E8": r"\nabla \ell = -o\,\beta\,\sigma(-o\,\beta h)\,(\nabla\log\pi(y|x) - \nabla\log\pi(y'|x))",
    "E9": r"\nabla L_q(\theta^*) = 0\ \ \mathrm{for\ every\ sampler}\ q",
    "E10": r"\nabla^2 L_q(\theta) = I_q(\theta) := \beta^2\,\mathbb{E}_q[\sigma'(\beta\langle\theta,z\rangle)\, z z^\top]",
    "E11": r"\mathbb{E}_q\,\mathbb{E}_o[\nabla\ell\,\nabla\ell^\top]\,|_{\theta^*} = I_q(\theta^*)",
    "E12": r"\Sigma_q := \mathbb{E}_q[z z^\top],\quad \Sigma_{\pi} = 2\,\mathbb{E}_x\, S_\pi(x)",
    "E13": r"\sigma'(-u) = \sigma'(u),\quad |\frac{d}{du}\log\sigma'(u)| = |1 - 2\sigma(u)| < b",
    "E14": r"\mathbb{E}_{y,y'\sim\pi}[(f(y) - f(y'))^2] = f\,\mathrm{Var}_\pi(f),\quad C_{\mathrm{dev}} = C_\Sigma",
    "E15": r"\nabla L_{RD} = g\,\beta\,\mathbb{E}_q[(\beta\langle\theta,z\rangle - \Delta r)\,z],\quad "
    r"\nabla^2 L_{RD} = h\,\beta^2\,\Sigma_q",
    "E16": r"r = \beta\langle\theta^*,\phi\rangle,\ \mathrm{span}\{z_i\} = \mathbb{R}^d\ \Rightarrow\ \hat\theta_{RD} = \theta^*",
    "E17": r"\sum_{y,y'} W(y,y')\, z z^\top = 2\,\Phi_x^\top(\mathrm{diag}(W\mathbf{1}) - W)\,\Phi_x",
    "I1": r"\|\theta\| \leq W:\ \ l\,\beta^2\sigma'(\beta W D)\,\Sigma_q \preceq I_q(\theta) \preceq u\,\beta^2\,\Sigma_q",
    "I2": r"C_\Sigma(\pi^*;\pi) \leq C_\infty(\pi^*;\pi)^k,\quad C_I(\pi^*;\pi;\theta) \leq C_\infty(\pi^*;\pi)^k",
    "I3": r"|\log\pi_{\theta'}(y|x) - \log\pi_\theta(y|x)| \leq L\, D_x\, \|\theta' - \theta\|_2",
    "I4": r"\|\theta - \theta^*\| \leq r:\ \ C_\infty(\pi^*;\pi_\theta) \leq e^{a D r},\quad "
    r"C_\Sigma,\, C_I \leq e^{2 a D r}",
    "I5": r"s \mapsto C_\infty(\pi^*;\pi_{\theta^* + s u})\ \mathrm{is\ non\!-\!decreasing\ on}\ s \geq 0",
    "I6": r"\mathrm{tr}(I_q^{-1} I_{q^*}) \leq c\, d\, C_I(\pi^*; q)",
    "D1": r"\min_\lambda\, g(\lambda) = d_Z,\quad g(\lambda) := \max_z\, a_z^\top M(\lambda)^{-1} a_z",
    "D2": r"\exists\ \mathrm{optimal}\ \lambda^*:\ |\mathrm{supp}\,\lambda^*| \leq d_Z(d_Z + 1)/2",
    "D3": r"z^\top M^{-1} z \leq c\, d_Z / (\beta^2 w_\theta(z))\ \ \mathrm{for\ every\ pair}\ z",
    "D4": r"M(\lambda;\theta^*) \succeq c\, e^{-\beta e} M(\lambda;\theta),\quad e = \max_z |\langle\theta^* - \theta, z\rangle|",
    "S1": r"n\,\|\hat\theta - \theta^*\|^2_{I_q(\theta^*)} \to \chi^2_d",
    "S2": r"\mathbb{E}[(\hat\theta - \theta^*)^\top I^* (\hat\theta - \theta^*)] \sim \mathrm{tr}(I_q^{-1} I^*)/n",
    "S3": r"n \geq c\,N_{\mathrm{gen}}(r):\ \ \mathrm{risk}_t \to d/n\ \ \mathrm{geometrically\ in\ rounds}\ t",
    "S4": r"N_{\mathrm{offline}} / N_{\mathrm{on\!-\!policy}} \sim \mathrm{tr}(I_{q_{\mathrm{ref}}}^{-1} I^*)/d",
    "S5": r"\max_z |\langle\theta_2 - \theta^*, z\rangle| \leq c\,\sqrt{\frac{e^{\beta e_1} d_Z \log(2|Z|/\delta)}"
    r"{(1-\alpha)\, n_2\, \beta^2 \min_z w_{\theta_1}(z)}}",
    "S6": r"(\hat\theta - \theta^*)^\top(\beta^2 \sum_i z_i z_i^\top)(\hat\theta - \theta^*)/(2 s^2) \sim \chi^2_d",
    "Q1": r"s \mapsto C_\Sigma(\pi^*;\pi_{\theta^* + s u})\ \mathrm{non\!-\!decreasing\ on}\ s \geq 0\ ?",
}


#: how a claims file's quantity names are typeset
_NAMES = {
    "C_inf": r"C_\infty", "C_Sigma": r"C_\Sigma", "C_I": "C_I", "C_dev": r"C_{\mathrm{dev}}",
    "N_gen_bound": r"N_{\mathrm{gen}}^{\mathrm{I4}}", "norm_theta_star": r"\|\theta^*\|", "dist": r"\|\theta - \theta^*\|",
    "tr_ratio": r"\mathrm{tr}(I_q^{-1} I_{q^*})", "subopt": r"\mathrm{subopt}",
}


def custom_tex(spec: Any) -> str | None:
    """The LaTeX of a claims-file inequality (lhs <= rhs) or chain (steps joined by <=), or None."""
    import sympy

    from .exprparse import parse

    if not isinstance(spec, dict):
        return None
    texts = spec.get("steps") if isinstance(spec.get("steps"), list) else [spec.get("lhs"), spec.get("rhs")]
    if not texts or any(not isinstance(t, (str, int, float)) for t in texts):
        return None
    try:
        exprs = []
        for t in texts:
            e = parse(t, _symbols_of(t))
            names = {n: sympy.Symbol(_NAMES.get(n, n)) for n in e.symbols}
            exprs.append(sympy.latex(e.sympy(names)))
    except Exception:  # noqa: BLE001 - not typeset: the report shows the words
        return None
    return r" \leq ".join(exprs)


def _symbols_of(text: Any) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", str(text))) - {"exp", "log", "sqrt", "abs", "min", "max"}


def claim_tex(claim: Any, spec: Any = None) -> str | None:
    """The LaTeX statement of a claim: this table, a claims-file claim's expressions (``spec``), the
    LaTeX of its relation; None when there is none (the report then shows the words only)."""
    if claim.id in TEX:
        return TEX[claim.id]
    if spec is not None:
        return custom_tex(spec)
    if getattr(claim, "relation", None) is None:
        return None
    try:
        return str(claim.latex())
    except Exception:  # noqa: BLE001 - a relation that cannot be printed: the words
        return None


@lru_cache(maxsize=256)
def svg(tex: str, fontsize: float = 13.0) -> str | None:
    """``tex`` rendered by matplotlib's mathtext as an inline ``<svg>`` element (glyphs as paths:
    no font or network needed to show it), or None when mathtext cannot parse it.

    Rendered pictures are cached beside the lambdified derivations (``~/.cache/prefcheck/svg``,
    keyed by the text, the size and the matplotlib version; ``PREFCHECK_NO_CACHE=1`` bypasses it).
    """
    import hashlib
    import os
    from importlib.metadata import version

    from theory.compiled import cache_dir

    key = hashlib.sha256(f"{tex}\0{fontsize}\0{version('matplotlib')}".encode()).hexdigest()[:32]
    base = cache_dir()
    path = base / "svg" / f"{key}.svg" if base is not None else None
    if path is not None and path.is_file() and not path.is_symlink():
        try:
            cached = path.read_text(encoding="utf-8")
            if safe_svg(cached):  # the cache is data: anything but a plain picture is rebuilt
                return cached
        except (OSError, UnicodeDecodeError):
            pass
    picture = _render(tex, fontsize)
    if picture is not None and path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{key}.{os.getpid()}.tmp")
            tmp.write_text(picture, encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written is only slower
    return picture


_UNSAFE = re.compile(
    r"<\s*(script|foreignObject|iframe|object|embed|image|a)\b|\bon[a-z]+\s*=|javascript:|"
    r"(?<![\w:])href\s*=|xlink:href\s*=\s*[\"'](?!#)|@import|url\(\s*[\"']?(?!#)",
    re.I,
)


def safe_svg(text: str) -> bool:
    """True for an ``<svg>`` element with nothing active in it: no script, event handler, foreign
    content, or link that leaves the picture (matplotlib's own output: paths and ``#`` references)."""
    t = text.strip()
    return t.startswith("<svg") and t.endswith("</svg>") and len(t) < 2_000_000 and not _UNSAFE.search(t)


def _render(tex: str, fontsize: float) -> str | None:
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(0.01, 0.01))
    FigureCanvasSVG(fig)
    fig.text(0, 0, f"${tex}$", fontsize=fontsize)
    buf = io.StringIO()
    try:
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.03, metadata={"Date": None})
    except ValueError:  # mathtext's parse error
        return None
    text = buf.getvalue()
    start = text.find("<svg")
    picture = re.sub(r"<metadata>.*?</metadata>", "", text[start:], flags=re.S).strip() if start >= 0 else ""
    return picture if safe_svg(picture) else None
