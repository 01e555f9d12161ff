r"""A whitelist expression parser for user text (claims files, constant overrides).

User text is never given to ``eval``, ``exec`` or ``sympify``. It is parsed with
:func:`ast.parse` in ``eval`` mode and every node is checked against an explicit
allow-list:

- numbers (decimal int and float literals; a float literal keeps its decimal text, so ``0.1``
  means the rational 1/10 in SymPy and the decimal 0.1 at the working precision; hexadecimal,
  octal, binary and complex literals are refused, and so are decimal exponents beyond
  +-``MAX_POW_DIGITS``),
- the symbol names the caller allows (the claim's own symbols, or the named quantities),
- ``+ - * / **``, unary ``-`` and ``+``, parentheses,
- calls of the named functions ``exp, log, sqrt, abs`` (one argument) and
  ``min, max`` (two or more arguments), without keyword arguments.

The text must be ASCII: Python folds lookalike letters (``ℂ_inf``, fullwidth ``Ｃ_inf``) into
ASCII names (NFKC), so a non-ASCII character is refused naming the character and what it would
read as. Anything else (``__import__('os')``, attribute access, subscripts, lambdas,
comprehensions, strings, comparisons, calls of other names, ``^``) is refused with
:class:`~proofs_numeric.errors.InvalidInput` naming the key and the construct.

The checked tree is kept as small tuples and evaluated node by node, to

- a SymPy expression (:meth:`Expr.sympy`),
- an mpmath number at an explicit precision (:meth:`Expr.mp`, inside ``mp.workdps``),
- an Arb ball (:meth:`Expr.arb`; the certifier, see DESIGN.md),
- a float (:meth:`Expr.float`).

>>> e = parse("C_inf**2 + max(1, d)/2", {"C_inf", "d"}, key="rhs")
>>> e.symbols == frozenset({"C_inf", "d"})
True
>>> str(e.sympy())
'C_inf**2 + Max(1, d)/2'
>>> e.float({"C_inf": 3.0, "d": 4.0})
11.0
"""

from __future__ import annotations

import ast
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from proofs_numeric.errors import InvalidInput, check_dps

__all__ = ["Expr", "parse", "FUNCTIONS", "MAX_LENGTH"]

#: name -> (min arity, max arity or None)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "exp": (1, 1),
    "log": (1, 1),
    "sqrt": (1, 1),
    "abs": (1, 1),
    "min": (2, None),
    "max": (2, None),
}
#: longest expression text accepted (characters)
MAX_LENGTH = 2000
#: deepest nesting accepted
MAX_DEPTH = 60
#: a constant power whose result would exceed 10**MAX_POW_DIGITS is refused (SymPy would compute it exactly)
MAX_POW_DIGITS = 10_000

_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.Pow: "pow",
}
_UNARY: dict[type[ast.unaryop], str] = {ast.USub: "neg", ast.UAdd: "pos"}

# A node is ("num", text) | ("sym", name) | (op, a) | (op, a, b) | ("call", fname, (args...))
Node = tuple[Any, ...]

_DESCRIBE: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators",
    ast.IfExp: "conditional expressions",
    ast.JoinedStr: "strings",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Starred: "starred arguments",
    ast.NamedExpr: "assignment expressions",
    ast.Await: "await",
}


def _refuse(key: str, what: str, text: str) -> InvalidInput:
    return InvalidInput(f"{key}: {what} not allowed in an expression, got {key}={_short(text)}")


def non_ascii(key: str, text: str) -> InvalidInput | None:
    """The refusal of the first non-ASCII character of ``text`` (None if it is all ASCII).

    Python folds identifiers with NFKC (``ℂ_inf`` and fullwidth ``Ｃ_inf`` both become ``C_inf``), so a
    lookalike would silently name a quantity: it is refused, naming what it would read as.
    """
    for ch in text:
        if ord(ch) > 127:
            folded = unicodedata.normalize("NFKC", ch)
            name = unicodedata.name(ch, "unnamed character")
            reads = f"; it reads as {folded!r}" if folded != ch and folded.isascii() else ""
            return InvalidInput(
                f"{key}: non-ASCII character {ch!r} (U+{ord(ch):04X} {name}){reads}; only ASCII is "
                f"allowed, got {key}={_short(text)}"
            )
    return None


_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)$")


def _short(text: str) -> str:
    t = text if len(text) <= 60 else text[:57] + "..."
    return repr(t)


@dataclass(frozen=True)
class Expr:
    """A parsed, checked expression: its text, its tree and the symbols it uses."""

    text: str
    tree: Node
    symbols: frozenset[str]
    key: str = "expression"

    # ------------------------------------------------------------ sympy
    def sympy(self, symbols: Mapping[str, Any] | None = None) -> Any:
        """The expression as SymPy, built node by node (exact rationals for literals).

        ``symbols`` maps a name to the SymPy object to use (default: ``sympy.Symbol(name)``).
        """
        import sympy

        table = dict(symbols or {})

        def sym(name: str) -> Any:
            if name not in table:
                table[name] = sympy.Symbol(name)
            return table[name]

        def div(a: Any, b: Any) -> Any:
            if b == 0:
                raise InvalidInput(f"{self.key}: division by zero in {_short(self.text)}")
            return a / b

        def pow_(a: Any, b: Any) -> Any:
            self._check_pow(a, b)
            return a**b

        funcs: dict[str, Callable[..., Any]] = {
            "exp": sympy.exp,
            "log": sympy.log,
            "sqrt": sympy.sqrt,
            "abs": sympy.Abs,
            "min": sympy.Min,
            "max": sympy.Max,
            "div": div,
            "pow": pow_,
        }

        def num(text: str) -> Any:
            return sympy.Rational(text) if _is_decimal(text) else sympy.Float(text)

        return self._evaluate({name: sym(name) for name in self.symbols}, num, funcs)

    def _check_pow(self, a: Any, b: Any) -> None:
        if getattr(a, "is_Number", False) and getattr(b, "is_Number", False):
            try:
                size = abs(float(b)) * math.log10(max(abs(float(a)), 1e-300))
            except (OverflowError, ValueError):
                size = math.inf
            if abs(size) > MAX_POW_DIGITS:
                raise InvalidInput(
                    f"{self.key}: the constant power {a}**{b} has about {size:.3g} digits "
                    f"(limit {MAX_POW_DIGITS}), got {self.key}={_short(self.text)}"
                )

    # ----------------------------------------------------------- numeric
    def _evaluate(
        self, values: Mapping[str, Any], num: Callable[[str], Any], fn: Mapping[str, Callable[..., Any]]
    ) -> Any:
        """Walk the tree: literals through ``num``, symbols from ``values``, calls, ``pow`` and
        (if given) ``div`` through ``fn``; +, -, * and plain division with the operands' own operators."""
        missing = sorted(self.symbols - set(values))
        if missing:
            raise InvalidInput(f"{self.key}: no value for symbol {missing[0]!r} in {_short(self.text)}")

        def ev(n: Node) -> Any:
            op = n[0]
            if op == "num":
                return num(n[1])
            if op == "sym":
                return values[n[1]]
            if op == "neg":
                return -ev(n[1])
            if op == "pos":
                return ev(n[1])
            if op == "call":
                return fn[n[1]](*(ev(a) for a in n[2]))
            a, b = ev(n[1]), ev(n[2])
            if op == "add":
                return a + b
            if op == "sub":
                return a - b
            if op == "mul":
                return a * b
            if op == "div":
                return fn["div"](a, b) if "div" in fn else a / b
            if op == "pow":
                return fn["pow"](a, b)
            raise AssertionError(op)  # pragma: no cover

        return ev(self.tree)

    def mp(self, values: Mapping[str, Any], dps: int) -> Any:
        """Evaluate with mpmath at ``dps`` digits (values are converted with ``mpf``)."""
        from mpmath import mp, mpf

        check_dps(dps)
        with mp.workdps(dps):
            vals = {k: mpf(v) for k, v in values.items()}
            fn: dict[str, Callable[..., Any]] = {
                "exp": mp.exp,
                "log": mp.log,
                "sqrt": mp.sqrt,
                "abs": abs,
                "min": min,
                "max": max,
                "pow": lambda a, b: mp.power(a, b),
            }
            return +self._evaluate(vals, mpf, fn)

    def float(self, values: Mapping[str, float]) -> float:
        """Evaluate in float64 (``math`` functions)."""
        fn: dict[str, Callable[..., Any]] = {
            "exp": math.exp,
            "log": math.log,
            "sqrt": math.sqrt,
            "abs": abs,
            "min": min,
            "max": max,
            "pow": lambda a, b: float(a) ** float(b),
        }
        return float(self._evaluate({k: float(v) for k, v in values.items()}, float, fn))

    def arb(self, values: Mapping[str, Any]) -> Any:
        """Evaluate with Arb balls (python-flint) at the current ``flint.ctx.prec``.

        The caller sets the precision in a scoped helper (:func:`proofs_numeric.certify.arb_prec`).
        ``min``/``max`` of balls are the balls of the pointwise min/max (Arb's own).
        A power with an integer literal exponent uses exact integer powering.
        """
        import flint

        from proofs_numeric.certify import arb_max, arb_min

        def apow(a: Any, b: Any) -> Any:
            if b.is_exact() and b.is_integer():
                return _arb_ipow(a, int(b.unique_fmpz()))
            return a**b

        fn: dict[str, Callable[..., Any]] = {
            "exp": lambda a: a.exp(),
            "log": lambda a: a.log(),
            "sqrt": lambda a: a.sqrt(),
            "abs": abs,
            "min": lambda *xs: arb_min(xs),
            "max": lambda *xs: arb_max(xs),
            "pow": apow,
        }
        vals = {k: v if isinstance(v, flint.arb) else flint.arb(v) for k, v in values.items()}
        return self._evaluate(vals, lambda t: flint.arb(t), fn)

    def __str__(self) -> str:
        return self.text


def _arb_ipow(a: Any, n: int) -> Any:
    """a**n for an integer n by repeated multiplication.

    python-flint 0.9's ``arb ** int`` returns nan when the ball contains 0 (it goes through
    exp(n log a)); products of balls are always valid enclosures.
    """
    import flint

    if n < 0:
        return 1 / _arb_ipow(a, -n)
    out, base = flint.arb(1), a
    while n:
        if n & 1:
            out = out * base
        n >>= 1
        if n:
            base = base * base
    return out


def _is_decimal(text: str) -> bool:
    return "inf" not in text.lower() and "nan" not in text.lower()


def parse(text: Any, symbols: Iterable[str], *, key: str = "expression") -> Expr:
    """Parse ``text`` into a checked :class:`Expr` using only ``symbols`` as names.

    Parameters
    ----------
    text : the user's expression (a string, or an int/float which is taken as a literal).
    symbols : the names the expression may use (function names are always allowed as calls).
    key : where the text came from, used in error messages ("constants.I2.exponent").

    Raises
    ------
    InvalidInput : one line naming ``key`` and what was refused.
    """
    allowed = frozenset(symbols)
    if isinstance(text, bool):
        raise InvalidInput(f"{key} must be a number or an expression string, got {key}={text!r}")
    if isinstance(text, (int, float)):
        if isinstance(text, float) and not math.isfinite(text):
            raise InvalidInput(f"{key} must be finite, got {key}={text!r}")
        return Expr(repr(text), ("num", repr(text)), frozenset(), key)
    if not isinstance(text, str):
        raise InvalidInput(f"{key} must be a number or an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"{key} must be at most {MAX_LENGTH} characters, got {len(text)}")
    if not text.strip():
        raise InvalidInput(f"{key} must be a non-empty expression, got {key}={text!r}")
    bad = non_ascii(key, text)
    if bad is not None:
        raise bad
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidInput(f"{key}: not a valid expression ({exc.msg}), got {key}={_short(text)}") from None
    except (RecursionError, MemoryError, ValueError):
        raise InvalidInput(f"{key}: expression too deeply nested, got {key}={_short(text)}") from None
    used: set[str] = set()
    src = text.strip()

    def conv(n: ast.AST, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise InvalidInput(f"{key}: expression nested deeper than {MAX_DEPTH}, got {key}={_short(text)}")
        if isinstance(n, ast.Constant):
            v = n.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                what = "strings" if isinstance(v, (str, bytes)) else f"the constant {v!r}"
                raise _refuse(key, what, text)
            seg = ast.get_source_segment(src, n) or repr(v)
            seg = seg.replace("_", "")
            if isinstance(v, int) and seg[:2].lower() in ("0x", "0o", "0b"):
                base = {"0x": "hexadecimal", "0o": "octal", "0b": "binary"}[seg[:2].lower()]
                raise InvalidInput(
                    f"{key}: {base} literal {seg[:20]!r} not allowed (write numbers in decimal), "
                    f"got {key}={_short(text)}"
                )
            expo = _EXPONENT.search(seg)
            if expo is not None and abs(int(expo.group(1)[:8])) > MAX_POW_DIGITS:
                raise InvalidInput(
                    f"{key}: the exponent of {seg[:30]!r} is beyond +-{MAX_POW_DIGITS}, got {key}={_short(text)}"
                )
            if isinstance(v, float) and not math.isfinite(v):
                raise InvalidInput(f"{key}: non-finite literal {seg} in {_short(text)}")
            if isinstance(v, int) and abs(v) > 10**100:
                raise InvalidInput(f"{key}: integer literal too large in {_short(text)}")
            return ("num", seg)
        if isinstance(n, ast.Name):
            if n.id in allowed:
                used.add(n.id)
                return ("sym", n.id)
            if n.id in FUNCTIONS:
                raise InvalidInput(f"{key}: the function {n.id!r} must be called, got {key}={_short(text)}")
            names = ", ".join(sorted(allowed)) or "none"
            raise InvalidInput(f"{key}: unknown symbol {n.id!r} (allowed: {names}), got {key}={_short(text)}")
        if isinstance(n, ast.BinOp):
            if isinstance(n.op, ast.BitXor):
                raise InvalidInput(f"{key}: '^' is not a power here, write '**', got {key}={_short(text)}")
            bop = _BINOPS.get(type(n.op))
            if bop is None:
                raise _refuse(key, f"the operator {type(n.op).__name__}", text)
            return (bop, conv(n.left, depth + 1), conv(n.right, depth + 1))
        if isinstance(n, ast.UnaryOp):
            uop = _UNARY.get(type(n.op))
            if uop is None:
                raise _refuse(key, f"the operator {type(n.op).__name__}", text)
            return (uop, conv(n.operand, depth + 1))
        if isinstance(n, ast.Call):
            if not isinstance(n.func, ast.Name):
                what = "attribute access" if isinstance(n.func, ast.Attribute) else "calling an expression"
                raise _refuse(key, what, text)
            fname = n.func.id
            if fname not in FUNCTIONS:
                fns = ", ".join(FUNCTIONS)
                raise InvalidInput(
                    f"{key}: calling {fname!r} is not allowed (functions: {fns}), got {key}={_short(text)}"
                )
            if n.keywords:
                raise _refuse(key, "keyword arguments", text)
            lo, hi = FUNCTIONS[fname]
            if len(n.args) < lo or (hi is not None and len(n.args) > hi):
                want = f"{lo}" if hi == lo else f"at least {lo}"
                raise InvalidInput(
                    f"{key}: {fname} takes {want} argument(s), got {len(n.args)} in {_short(text)}"
                )
            return ("call", fname, tuple(conv(a, depth + 1) for a in n.args))
        what = _DESCRIBE.get(type(n), type(n).__name__)
        raise _refuse(key, what, text)

    node = conv(tree.body, 0)
    return Expr(src, node, frozenset(used), key)
