"""Exact symbolic derivations (SymPy only) of the identities and claim statements of THEORY.md.

Never imports proofs_numeric/ or checks/: the cross-check is worth something only if the
symbolic and numeric implementations are independent.
"""
