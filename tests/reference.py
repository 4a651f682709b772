"""A naive, obviously-correct RFC 6962 reference: the oracle for property tests.

Everything here follows RFC 6962 §2.1 literally and operates on the list of leaf
inputs ``D``: MTH, PATH and PROOF/SUBPROOF recurse on list slices exactly as the
RFC writes them. It is slow on purpose and shares no code with
``disclosure_ledger._core.merkle``.

The reference verifiers do not use the RFC 9162 bit-twiddling algorithm either:
they label each proof hash with the leaf range the RFC recursion says it covers,
then rebuild the roots with MTH, using a proof hash wherever its range appears.
A proof verifies exactly when both rebuilt roots match. That makes them an
exact oracle for mutated inputs too (an index or size moved by one can still
verify when it gives the proof the same shape; both verifiers must agree).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

Range = tuple[int, int]


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n > 1``)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right)


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 §2.1."""
    n = len(leaves)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = _split(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 §2.1.1: the inclusion proof of leaf ``m``."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2: the consistency proof from size ``m``."""
    return _subproof(m, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def compact_range(leaves: Sequence[bytes]) -> list[bytes]:
    """The roots of the perfect subtrees of ``D[0:n]``, left to right."""
    out: list[bytes] = []
    lo = 0
    n = len(leaves)
    while lo < n:
        size = 1
        while size * 2 <= n - lo:
            size *= 2
        out.append(mth(leaves[lo : lo + size]))
        lo += size
    return out


# The same recursions as PATH and SUBPROOF, yielding the leaf range each proof
# hash covers instead of the hash.


def path_ranges(m: int, lo: int, hi: int) -> list[Range]:
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < k:
        return [*path_ranges(m, lo, lo + k), (lo + k, hi)]
    return [*path_ranges(m - k, lo + k, hi), (lo, lo + k)]


def proof_ranges(m: int, lo: int, hi: int, whole: bool = True) -> list[Range]:
    if m == hi - lo:
        return [] if whole else [(lo, hi)]
    k = _split(hi - lo)
    if m <= k:
        return [*proof_ranges(m, lo, lo + k, whole), (lo + k, hi)]
    return [*proof_ranges(m - k, lo + k, hi, False), (lo, lo + k)]


def _rebuild(lo: int, hi: int, known: dict[Range, bytes]) -> bytes | None:
    """MTH of ``[lo, hi)`` from the labelled hashes, or None if they do not cover it."""
    if (lo, hi) in known:
        return known[(lo, hi)]
    if hi - lo <= 1:
        return None
    k = _split(hi - lo)
    left = _rebuild(lo, lo + k, known)
    if left is None:
        return None
    right = _rebuild(lo + k, hi, known)
    if right is None:
        return None
    return node_hash(left, right)


def verify_inclusion(
    leaf_hash_: bytes, index: int, size: int, proof_: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``proof_`` shows ``leaf_hash_`` at ``index`` in the tree ``root`` of ``size``."""
    if not 0 <= index < size:
        return False
    if any(len(h) != 32 for h in (leaf_hash_, root, *proof_)):
        return False
    ranges = path_ranges(index, 0, size)
    if len(ranges) != len(proof_):
        return False
    known = dict(zip(ranges, proof_, strict=True))
    known[(index, index + 1)] = leaf_hash_
    return _rebuild(0, size, known) == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof_: Sequence[bytes]
) -> bool:
    """True iff ``proof_`` shows the tree ``new_root`` extends the tree ``old_root``.

    Follows the project's rule that nothing is provable from the empty tree.
    """
    if not 0 < old_size <= new_size:
        return False
    if any(len(h) != 32 for h in (old_root, new_root, *proof_)):
        return False
    if old_size == new_size:
        return not proof_ and old_root == new_root
    ranges = proof_ranges(old_size, 0, new_size)
    if len(ranges) != len(proof_):
        return False
    known = dict(zip(ranges, proof_, strict=True))
    if old_size & (old_size - 1) == 0:
        # SUBPROOF leaves out the old root when it is a node of the new tree:
        # the verifier supplies it.
        known[(0, old_size)] = old_root
    return _rebuild(0, old_size, known) == old_root and _rebuild(0, new_size, known) == new_root
