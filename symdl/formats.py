"""Dimension labels (MATLAB's data formats): validation and canonical order."""

from __future__ import annotations

__all__ = ["LABELS", "canonical_permutation", "check_fmt"]

LABELS = "SCBTU"
_RANK = {"S": 0, "C": 1, "B": 2, "T": 3, "U": 4}


def check_fmt(fmt: str, ndim: int) -> str:
    """Validate a label string for an array of ``ndim`` dimensions."""
    if not isinstance(fmt, str):
        raise TypeError(f"dlarray: fmt must be a string of labels from 'SCBTU', got {type(fmt).__name__}")
    fmt = fmt.upper()
    bad = [c for c in fmt if c not in LABELS]
    if bad:
        raise ValueError(f"dlarray: fmt {fmt!r} has the unknown label {bad[0]!r}; labels are S, C, B, T, U")
    for single in "CBT":
        if fmt.count(single) > 1:
            raise ValueError(f"dlarray: fmt {fmt!r} has the label {single!r} more than once")
    if len(fmt) != ndim:
        # MATLAB pads trailing singleton dimensions; we accept extra labels only
        # for trailing size-1 axes the caller adds explicitly.
        raise ValueError(f"dlarray: fmt {fmt!r} has {len(fmt)} labels but the data has {ndim} dimensions")
    return fmt


def canonical_permutation(fmt: str) -> tuple[tuple[int, ...], str]:
    """The axis permutation to MATLAB's order S..., C, B, T, U... (stable) and the
    permuted labels."""
    perm = tuple(sorted(range(len(fmt)), key=lambda i: (_RANK[fmt[i]], i)))
    return perm, "".join(fmt[i] for i in perm)
