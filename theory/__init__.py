"""Exact symbolic derivations (SymPy only) of the identities and claim statements of docs/theory.md.

Never imports proofs_numeric/ or checks/: the cross-check is worth something only if the
symbolic and numeric implementations are independent.
"""
