"""RFC 6962 / RFC 9162 Merkle trees: hashing, proofs from stored hashes, verification.

This module owns the tree and nothing else: it does no I/O. Stored hashes are
named by :class:`NodeId` ``(level, n)``: the root of the perfect subtree
that covers leaves ``[n * 2**level, (n + 1) * 2**level)``. Storage layers
(the SQLite tiles, an in-memory list) implement :class:`HashReader`. Which
nodes a proof needs is planned apart from fetching them
(:func:`inclusion_nodes`, :func:`consistency_nodes`), so any store fetches the
O(log n) hashes of a proof in one round trip and never rehashes leaves.

Decisions on edge cases, following the published transparency-dev vectors:

* A leaf hash, a root and every proof hash must be exactly 32 bytes.
* A consistency proof from size 0 is refused (:class:`ProofError`), even 0 to 0:
  the empty tree is consistent with every tree, so there is nothing to prove,
  and a caller that asks is confused about what it holds. Protocols that start
  from nothing (a witness's first checkpoint) skip the proof instead.
* A consistency proof between equal sizes must be empty, and the roots equal.
  Nothing is hashed then, so the roots are compared as given, whatever their
  length (the vectors accept two equal non-32-byte roots at sizes 1 and 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from disclosure_ledger.errors import MalformedError, ProofError, RootMismatchError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "HashReader",
    "MemoryHashStore",
    "NodeId",
    "ProofNodes",
    "consistency_nodes",
    "consistency_roots_from_items",
    "frontier_from_consistency",
    "inclusion_nodes",
    "leaf_hash",
    "node_hash",
    "prove_consistency",
    "prove_inclusion",
    "root_from_inclusion",
    "subtree_ids",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()
"""The root of the empty tree: SHA-256 of nothing (RFC 6962 §2.1)."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 ‖ data)``.

    Raises:
        TypeError: if ``data`` is not bytes-like.
    """
    # Concatenation takes any bytes-like value and refuses the rest (an int
    # would otherwise turn into that many zero bytes).
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 ‖ left ‖ right)``.

    Raises:
        MalformedError: if either child is not a 32-byte hash.
    """
    if len(left) != HASH_SIZE or len(right) != HASH_SIZE:
        raise MalformedError("node_hash: children must be 32-byte hashes")
    return _sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise MalformedError(f"{what} must be {HASH_SIZE} bytes")


def _check_size(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedError(f"{what} must be a non-negative integer")


class NodeId(NamedTuple):
    """A stored hash: the ``n``-th perfect subtree of ``2**level`` leaves."""

    level: int
    n: int


class HashReader(Protocol):
    """Where stored tree hashes come from.

    ``read_hashes`` returns the hash of each requested node, in order. Every
    requested node is a complete subtree of the tree the caller asks about.
    """

    def read_hashes(self, ids: Sequence[NodeId], /) -> Sequence[bytes]:
        """Return the hashes of ``ids``, in the same order.

        Raises:
            LedgerError: (a subclass) if a hash is not stored.
        """
        ...


def subtree_ids(lo: int, hi: int) -> list[NodeId]:
    """Split leaves ``[lo, hi)`` into the perfect subtrees RFC 6962 would hash.

    ``lo`` must be a multiple of the largest power of two not above ``hi - lo``
    (true of every range a proof or a tree head asks about). Folding the
    returned hashes from the right with :func:`node_hash` gives ``MTH(D[lo:hi])``.

    Raises:
        Nothing: integer arithmetic only (an empty list when ``lo >= hi``); the
            precondition on ``lo`` is not checked.
    """
    ids: list[NodeId] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        ids.append(NodeId(level, lo >> level))
        lo += 1 << level
    return ids


def _fold(hashes: Sequence[bytes]) -> bytes:
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = _sha256(b"\x01" + h + acc).digest()
    return acc


_new_node = tuple.__new__  # NodeId without its Python-level __new__: half the cost


def _path_plan(index: int, level: int, size: int, ids: list[NodeId], groups: list[int]) -> None:
    # Append to ``ids`` the siblings on the way from node (level, index) to the
    # root of the tree of ``size`` leaves, in RFC order (lowest first), and to
    # ``groups`` how many ids make each proof hash. Bit arithmetic instead of
    # the RFC's recursion, as transparency-dev/merkle does, so a proof costs a
    # few integer operations per level. Counted in nodes of ``level``, the node
    # and the tree's last node share no subtree below ``inner``: every sibling
    # there is complete, except the one at ``inner - 1``, which holds the last
    # leaf and may be incomplete (ephemeral: folded from several stored nodes).
    # Above it, the siblings are the complete left subtrees, one per set bit.
    inner = (index ^ ((size - 1) >> level)).bit_length()
    ids += [_new_node(NodeId, (level + k, (index >> k) ^ 1)) for k in range(inner - 1)]
    groups += [1] * (inner - 1 if inner else 0)
    if inner:
        top = level + inner - 1
        start = ((index >> (inner - 1)) + 1) << top
        if size - start >= 1 << top:
            ids.append(_new_node(NodeId, (top, start >> top)))
            groups.append(1)
        else:
            edge = subtree_ids(start, size)
            ids += edge
            groups.append(len(edge))
    rest, k = index >> inner, level + inner
    while rest:
        if rest & 1:
            ids.append(_new_node(NodeId, (k, rest ^ 1)))
            groups.append(1)
        rest >>= 1
        k += 1


@dataclass(frozen=True, slots=True)
class ProofNodes:
    """The stored nodes a proof needs, planned apart from fetching them.

    A store fetches every hash in :attr:`ids` in one round trip (one query,
    one batch of tile reads) and :meth:`rehash` turns them into the proof. This
    is transparency-dev/merkle's ``proof.Nodes``: planning needs only the two
    sizes, so any backend can fetch, and none has to know RFC 6962.

    ``groups`` says how many consecutive ids make each proof hash: 1 for a
    stored node, more for a node that is not stored because its subtree is
    incomplete (the right edge of the tree), which is folded from the stored
    perfect subtrees under it, left to right.
    """

    ids: tuple[NodeId, ...]
    groups: tuple[int, ...]

    def __post_init__(self) -> None:
        if (self.groups and min(self.groups) < 1) or sum(self.groups) != len(self.ids):
            raise MalformedError("proof node groups must be positive and cover every id")

    def rehash(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Return the proof, given the hashes of :attr:`ids` in the same order.

        Raises:
            MalformedError: if there are not as many hashes as ids, or one is not 32 bytes.
        """
        if len(hashes) != len(self.ids):
            raise MalformedError(
                f"a proof needs {len(self.ids)} stored hashes; {len(hashes)} were given"
            )
        # One C-level pass over the lengths; a value that is not bytes-like
        # fails the join.
        try:
            joined = b"".join(hashes)
        except TypeError:
            joined = b""
        if len(joined) != HASH_SIZE * len(hashes) or (
            hashes and set(map(len, hashes)) != {HASH_SIZE}
        ):
            raise MalformedError(f"stored hash must be {HASH_SIZE} bytes")
        out: list[bytes] = []
        pos = 0
        for n in self.groups:
            out.append(hashes[pos] if n == 1 else _fold(hashes[pos : pos + n]))
            pos += n
        return out


def inclusion_nodes(index: int, size: int) -> ProofNodes:
    """Plan the inclusion proof of leaf ``index`` in the tree of ``size`` (RFC 6962 PATH).

    The ids are O(log size) perfect subtrees of the tree of ``size``, in the
    order :meth:`ProofNodes.rehash` needs them; the proof comes out in RFC order.

    Raises:
        MalformedError: if ``index`` or ``size`` is negative or ``index`` is not below ``size``.
    """
    _check_size(index, "index")
    _check_size(size, "size")
    if index >= size:
        raise MalformedError(f"index {index} is not below tree size {size}")
    ids: list[NodeId] = []
    groups: list[int] = []
    _path_plan(index, 0, size, ids, groups)
    return ProofNodes(tuple(ids), tuple(groups))


def consistency_nodes(old_size: int, new_size: int) -> ProofNodes:
    """Plan the consistency proof from ``old_size`` to ``new_size`` (RFC 6962 SUBPROOF).

    Equal sizes need no nodes (the proof is empty).

    Raises:
        MalformedError: if a size is negative, ``old_size`` is 0 (see the module
            docstring) or ``old_size`` is larger than ``new_size``.
    """
    _check_size(old_size, "old_size")
    _check_size(new_size, "new_size")
    if old_size == 0:
        raise MalformedError("no consistency proof exists from the empty tree")
    if old_size > new_size:
        raise MalformedError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        return ProofNodes((), ())
    # SUBPROOF(m, D[0:n], true), in RFC order: the largest perfect subtree the
    # old tree ends with (left out when it is the whole old tree, whose root
    # the verifier holds), then that subtree's path in the new tree.
    level = (old_size & -old_size).bit_length() - 1
    index = (old_size - 1) >> level
    ids: list[NodeId] = [NodeId(level, index)] if index else []
    groups: list[int] = [1] if index else []
    _path_plan(index, level, new_size, ids, groups)
    return ProofNodes(tuple(ids), tuple(groups))


def _materialize(nodes: ProofNodes, reader: HashReader) -> list[bytes]:
    if not nodes.ids:
        return []
    return nodes.rehash(reader.read_hashes(nodes.ids))


def tree_root(size: int, reader: HashReader) -> bytes:
    """Return the root of the first ``size`` leaves from stored hashes.

    Raises:
        MalformedError: if ``size`` is negative.
        LedgerError: whatever ``reader`` raises for a missing hash.
    """
    _check_size(size, "size")
    if size == 0:
        return EMPTY_ROOT
    ids = subtree_ids(0, size)
    return _fold(reader.read_hashes(ids))


def prove_inclusion(index: int, size: int, reader: HashReader) -> list[bytes]:
    """Return the RFC 6962 inclusion proof of leaf ``index`` in the tree of ``size``.

    Reads O(log size) stored hashes in one call to ``reader``.

    Raises:
        MalformedError: if ``index`` is not below ``size``.
        LedgerError: whatever ``reader`` raises for a missing hash.
    """
    return _materialize(inclusion_nodes(index, size), reader)


def prove_consistency(old_size: int, new_size: int, reader: HashReader) -> list[bytes]:
    """Return the RFC 6962 consistency proof from ``old_size`` to ``new_size``.

    The proof is empty when the sizes are equal.

    Raises:
        MalformedError: if ``old_size`` is 0 or larger than ``new_size``.
        LedgerError: whatever ``reader`` raises for a missing hash.
    """
    return _materialize(consistency_nodes(old_size, new_size), reader)


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root that ``proof`` implies for ``leaf_hash`` (RFC 9162 §2.1.3.2).

    Raises:
        MalformedError: if a hash has the wrong length or a size is negative.
        ProofError: if ``index >= size`` or the proof has the wrong length.
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_size(index, "index")
    _check_size(size, "size")
    if index >= size:
        raise ProofError(f"index {index} is not below tree size {size}")
    fn, sn = index, size - 1
    r = bytes(leaf_hash)
    for p in proof:
        if not isinstance(p, (bytes, bytearray)) or len(p) != HASH_SIZE:
            raise MalformedError("proof hashes must be 32 bytes")
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Raises:
        MalformedError: if a hash has the wrong length or a size is negative.
        ProofError: if the proof has the wrong shape for ``index`` and ``size``.
        RootMismatchError: if the proof leads to another root.
    """
    _check_hash(root, "root")
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    if computed != root:
        raise RootMismatchError("inclusion proof does not lead to the root", root, computed)


def _check_proof(proof: Sequence[bytes]) -> None:
    for p in proof:
        if not isinstance(p, (bytes, bytearray)) or len(p) != HASH_SIZE:
            raise MalformedError(f"proof hashes must be {HASH_SIZE} bytes")


def _consistency_roots(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes, list[tuple[int, bytes]]]:
    _check_proof(proof)
    items = list(proof)
    if old_size & (old_size - 1) == 0:
        items.insert(0, old_root)
    return consistency_roots_from_items(old_size, new_size, items)


def consistency_roots_from_items(
    old_size: int, new_size: int, items: Sequence[bytes]
) -> tuple[bytes, bytes, list[tuple[int, bytes]]]:
    """Run RFC 9162 §2.1.4.2 over a *self-contained* proof and return what it implies.

    ``items`` is the RFC 6962 proof with, when ``old_size`` is a power of two,
    the old tree's root as its first element (RFC 9162 takes it from the
    verifier instead). Returns ``(fr, sr, frontier)``: the old and new roots the
    proof implies, and the old tree's perfect subtrees ``(level, hash)``, left to
    right (the hashes that build ``fr``). Callers compare the roots with the
    ones they trust; this function trusts nothing.

    Raises:
        ProofError: if the proof is empty or has the wrong length for the sizes.
    """
    if not items:
        raise ProofError("consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    level = 0
    while fn & 1:
        fn >>= 1
        sn >>= 1
        level += 1
    fr = sr = items[0]
    frontier = [(level, items[0])]
    for c in items[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
                level += 1
            frontier.append((level, c))
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
        level += 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    frontier.reverse()
    return fr, sr, frontier


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` extends the tree of ``old_size``.

    Raises:
        MalformedError: if a hash has the wrong length or a size is negative.
        ProofError: if ``old_size`` is 0 or above ``new_size``, or the proof has
            the wrong shape for the two sizes.
        RootMismatchError: if the proof leads to another old or new root.
    """
    _consistency_check(old_size, new_size, old_root, new_root, proof)


def _consistency_check(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> list[tuple[int, bytes]]:
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if old_size == 0:
        raise ProofError("no consistency proof exists from the empty tree")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        # Equal sizes compare the roots as given, whatever their length: nothing
        # is hashed, and the transparency-dev vector
        # additional/sizes-are-equal-one-and-proof-is-empty accepts equal opaque roots.
        if not isinstance(old_root, bytes | bytearray) or not isinstance(
            new_root, bytes | bytearray
        ):
            raise MalformedError("roots must be bytes")
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise RootMismatchError("equal sizes with different roots", old_root, new_root)
        return []
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    fr, sr, frontier = _consistency_roots(old_size, new_size, old_root, proof)
    if fr != old_root:
        raise RootMismatchError("consistency proof does not lead to the old root", old_root, fr)
    if sr != new_root:
        raise RootMismatchError("consistency proof does not lead to the new root", new_root, sr)
    return frontier


@dataclass(slots=True)
class CompactRange:
    """The frontier of leaves ``[0, size)``: one hash per perfect subtree, left to right.

    It holds O(log size) hashes, absorbs leaf hashes one at a time or in
    batches, and gives the root at any point. A verifier streams a ledger
    through one, and extends an old, trusted tree to a new one without the old
    leaves by starting from :func:`frontier_from_consistency`.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_size(self.size, "size")
        if len(self.hashes) != self.size.bit_count():
            raise MalformedError(
                f"a compact range of size {self.size} holds {self.size.bit_count()} hashes,"
                f" not {len(self.hashes)}"
            )
        for h in self.hashes:
            _check_hash(h, "frontier hash")

    def append(self, leaf_hash: bytes) -> None:
        """Absorb one leaf hash.

        Raises:
            MalformedError: if ``leaf_hash`` is not 32 bytes.
        """
        # One absorbing routine for both: code that absorbs many leaves should
        # call extend, which is faster per leaf than either.
        self.append_nodes(leaf_hash)

    def append_nodes(self, leaf_hash: bytes) -> list[bytes]:
        """Absorb one leaf hash and return it with every node it completes.

        The list is in the order a store keeps them (the leaf, then the
        completed nodes from the lowest level up: Go's ``tlog.StoredHashes``),
        so a writer can store exactly what it returns.

        Raises:
            MalformedError: if ``leaf_hash`` is not 32 bytes.
        """
        # A tuple, not a union, in isinstance: the faster check in CPython 3.11.
        if not isinstance(leaf_hash, (bytes, bytearray)) or len(leaf_hash) != HASH_SIZE:
            raise MalformedError(f"leaf hash must be {HASH_SIZE} bytes")
        stack = self.hashes
        self.size = n = self.size + 1
        h = leaf_hash
        nodes = [h]
        while not n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            nodes.append(h)
            n >>= 1
        stack.append(h)
        return nodes

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Absorb many leaf hashes, in order.

        Raises:
            MalformedError: if a hash is not 32 bytes (those before it are absorbed).
        """
        stack = self.hashes
        size = self.size
        sha = _sha256
        try:
            for leaf in leaf_hashes:
                if not isinstance(leaf, (bytes, bytearray)) or len(leaf) != HASH_SIZE:
                    raise MalformedError("leaf hash must be 32 bytes")
                size += 1
                n = size
                h = leaf
                while not n & 1:
                    h = sha(b"\x01" + stack.pop() + h).digest()
                    n >>= 1
                stack.append(h)
        finally:
            self.size = size

    def root(self) -> bytes:
        """Return the root of the leaves absorbed so far.

        Raises:
            Nothing: it folds the hashes already held (the empty root when there are none).
        """
        if not self.hashes:
            return EMPTY_ROOT
        return _fold(self.hashes)

    def copy(self) -> CompactRange:
        """Return an independent copy.

        Raises:
            MalformedError: only if ``size`` or ``hashes`` were changed by hand so that
                they no longer agree (the copy is checked as it is built).
        """
        return CompactRange(self.size, list(self.hashes))


def frontier_from_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> CompactRange:
    """Verify a consistency proof and return the old tree's compact range.

    A verifier that trusts ``old_root`` can then absorb leaves ``old_size`` to
    ``new_size`` and compare the result with ``new_root``, without the old leaves.
    ``old_size`` 0 gives the empty range (there is nothing to prove).

    Raises:
        MalformedError, ProofError, RootMismatchError: as :func:`verify_consistency`.
    """
    if old_size == 0 and not proof:
        _check_hash(old_root, "old root")
        if old_root != EMPTY_ROOT:
            raise RootMismatchError("the empty tree has another root", EMPTY_ROOT, old_root)
        return CompactRange()
    frontier = _consistency_check(old_size, new_size, old_root, new_root, proof)
    if old_size == new_size:
        raise ProofError("cannot recover a frontier from equal sizes; keep the compact range")
    levels = [level for level, _ in frontier]
    expected = [node.level for node in subtree_ids(0, old_size)]
    if levels != expected:
        raise ProofError("consistency proof does not cover the old tree's frontier")
    return CompactRange(old_size, [h for _, h in frontier])


class MemoryHashStore:
    """Every node hash of a tree, in memory, as one list per level.

    The reference :class:`HashReader`: tests, benchmarks and small tools use it.
    """

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        """The number of leaves stored."""
        return len(self.levels[0])

    def append(self, leaf_hash: bytes) -> None:
        """Store one leaf hash and every node it completes.

        Raises:
            MalformedError: if ``leaf_hash`` is not 32 bytes.
        """
        _check_hash(leaf_hash, "leaf hash")
        levels = self.levels
        h = bytes(leaf_hash)
        level = 0
        while True:
            row = levels[level]
            row.append(h)
            if len(row) & 1:
                return
            h = _sha256(b"\x01" + row[-2] + h).digest()
            level += 1
            if level == len(levels):
                levels.append([])

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Store many leaf hashes in order.

        Raises:
            MalformedError: if a hash is not 32 bytes.
        """
        for h in leaf_hashes:
            self.append(h)

    def read_hashes(self, ids: Sequence[NodeId], /) -> list[bytes]:
        """Return the stored hashes of ``ids``.

        Raises:
            MalformedError: if a node is not stored.
        """
        levels = self.levels
        try:
            return [levels[level][index] for level, index in ids]
        except IndexError as err:
            raise MalformedError("requested a tree node that is not stored") from err
