"""Whether a checkpoint may replace one already held: the decision every holder makes.

This module owns the one rule that the owner's verifier, a witness and the
ledger's own check apply whenever they hold a signed checkpoint and are shown
another of the same log: it must be of the same origin, not smaller, of the
same root when of the same size, and consistent when larger. It does no I/O
and reads no clock; a caller that keeps evidence files writes them itself
from the :class:`~.evidence.SplitViewError` raised here.

A larger checkpoint is shown consistent by an RFC 6962 consistency proof when
the caller has one (a witness request). A caller that recomputes the tree
itself (the owner's verifier streams every record) passes no proof and checks
the root at the held size on its own: :func:`check_successor` then decides
everything but that.
"""

from __future__ import annotations

from collections.abc import Sequence

from disclosure_ledger._core.checkpoints import SignedCheckpoint
from disclosure_ledger._core.evidence import SplitViewError, detect_split_view, make_evidence
from disclosure_ledger._core.merkle import verify_consistency
from disclosure_ledger.errors import (
    MalformedError,
    ProofError,
    RollbackError,
    RootMismatchError,
)

__all__ = ["check_successor"]


def check_successor(
    held: SignedCheckpoint,
    new: SignedCheckpoint,
    proof: Sequence[bytes] | None = None,
    *,
    held_as: str = "the checkpoint held",
    new_as: str = "the new checkpoint",
) -> bool:
    """Decide whether ``new`` may replace ``held``; return whether it is larger.

    Both checkpoints have had their log signatures verified. ``proof`` is the
    RFC 6962 consistency proof from ``held``'s size to ``new``'s; ``None``
    means the caller shows consistency by other means (it recomputes the
    tree), and a larger ``new`` is then accepted here on size alone.
    ``held_as`` and ``new_as`` name the two in messages ("the saved state",
    "the bundle's checkpoint").

    Returns ``False`` for the same checkpoint again (same size, same root),
    ``True`` for a larger one.

    Raises:
        MalformedError: if the two are checkpoints of different logs.
        RollbackError: if ``new`` is smaller.
        SplitViewError: (an InconsistentCheckpointError) if the two provably
            contradict each other: one size with two roots, or a proof that
            leads to ``new``'s root from another tree at ``held``'s size. Its
            evidence is set, its ``evidence_path`` is ``None``.
        RootMismatchError: if ``proof`` does not verify and proves nothing
            (anyone can write down wrong hashes).
        ProofError: if ``proof`` has the wrong shape for the two sizes, or is
            not empty when the sizes are equal.
    """
    old, cur = held.checkpoint, new.checkpoint
    if old.origin != cur.origin:
        raise MalformedError(
            f"{new_as} is of the log {cur.origin!r}; {held_as} is of {old.origin!r}"
        )
    if cur.size < old.size:
        raise RollbackError(
            f"rollback: {new_as} is of size {cur.size}, but {held_as} is of size {old.size}:"
            " this is older than one you saw (records were removed, or a stale copy was sent)"
        )
    if cur.size == old.size:
        if proof:
            raise ProofError(f"a proof for the size already held ({cur.size}) must be empty")
        if cur.root != old.root:
            raise SplitViewError(
                f"fork: {new_as} and {held_as} are both of size {cur.size} but have"
                " different roots (the log has shown two histories)",
                make_evidence(held.note, new.note),
                None,
                index=cur.size - 1 if cur.size else None,
            )
        return False
    if proof is None:
        return True
    if old.size == 0:
        if proof:
            raise ProofError("a consistency proof from size 0 must be empty")
        return True
    try:
        verify_consistency(old.size, cur.size, old.root, cur.root, proof)
    except RootMismatchError as err:
        evidence = detect_split_view(held.note, new.note, proof, new.log_key)
        if evidence is not None:
            raise SplitViewError(
                f"fork: {new_as} of size {cur.size} does not extend {held_as} of size"
                f" {old.size} (the log has shown two histories)",
                evidence,
                None,
            ) from err
        raise RootMismatchError(
            f"the consistency proof from {old.size} to {cur.size} does not verify",
            err.expected,
            err.computed,
        ) from err
    return True
