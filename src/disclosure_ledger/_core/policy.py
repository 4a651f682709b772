"""Trust policies: which log, writer and witness keys an owner trusts, and the witness quorum.

This module owns the policy file, in the style of the Sigsum / C2SP tlog
policy format, with signed-note verifier key strings instead of bare keys::

    # comments and blank lines are ignored
    log <vkey>                         the log's key (its name is the origin)
    writer <vkey>                      a key trusted to sign records (repeatable)
    witness <name> <vkey>              a witness, by a local name (type 0x04 key)
    group <name> <k|all|any> <member>...  k of the members (witnesses or earlier groups)
    quorum <name|none>                 the witness or group every checkpoint needs

Names are defined before use, so groups cannot form cycles. A policy with no
``quorum`` line, or ``quorum none``, asks for no cosignatures. Unknown
keywords are errors: a typo in a trust policy must never weaken it silently.

One key holds one place. A cosignature signs the checkpoint and a timestamp,
not the witness's name, so one signature line can be relabelled with any name
(and that name's key ID) and still verify under the same public key. A policy
that listed one key as two witnesses would let one witness count twice, so a
public key may appear only once in a policy, whatever its name or role (log,
writer or witness), and the members of a group must reach disjoint sets of
witnesses. Quorums are counted by public key, never by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from disclosure_ledger._core.checkpoints import parse_decimal
from disclosure_ledger._core.notes import (
    COSIGNATURE_TYPES,
    KEY_TYPE_COSIGNATURE,
    KEY_TYPE_ED25519,
    Verifier,
    check_key_name,
    parse_verifier,
)
from disclosure_ledger.errors import KeyFormatError, MalformedError

__all__ = ["MAX_POLICY_SIZE", "Group", "Policy", "format_policy", "parse_policy"]

MAX_POLICY_SIZE = 256 * 1024
"""The largest policy file accepted, in bytes."""


@dataclass(frozen=True, slots=True)
class Group:
    """``threshold`` of ``members`` (witness or group names) must be satisfied."""

    name: str
    threshold: int
    members: tuple[str, ...]
    spec: str


@dataclass(frozen=True, slots=True)
class Policy:
    """What an owner (or recipient, or gate) trusts."""

    logs: tuple[Verifier, ...] = ()
    writers: tuple[Verifier, ...] = ()
    witnesses: Mapping[str, Verifier] = field(default_factory=lambda: MappingProxyType({}))
    groups: Mapping[str, Group] = field(default_factory=lambda: MappingProxyType({}))
    quorum: str | None = None

    def __post_init__(self) -> None:
        """Refuse a policy in which one key would count twice.

        :func:`parse_policy` refuses the same faults naming the line; this is
        the backstop for policies built in code (:meth:`simple`, or by hand).

        Raises:
            MalformedError: if a public key appears twice (any names, any roles),
                or a group's members reach one witness twice.
        """
        claimed: dict[bytes, str] = {}
        for role, key in self._roles():
            _claim_key(claimed, role, key)
        reach: dict[str, frozenset[bytes]] = {}
        for group in self.groups.values():
            _check_disjoint(group, self.witnesses, self.groups, reach)

    def _roles(self) -> Iterable[tuple[str, Verifier]]:
        for key in self.logs:
            yield f"log {key.name}", key
        for key in self.writers:
            yield f"writer {key.name}", key
        for name, key in self.witnesses.items():
            yield f"witness {name}", key

    @classmethod
    def simple(
        cls,
        log: Verifier,
        writers: Iterable[Verifier] = (),
        witnesses: Iterable[Verifier] = (),
        threshold: int | None = None,
    ) -> Policy:
        """Build a policy from keys: ``threshold`` of ``witnesses`` (default: all of them).

        Raises:
            MalformedError: if a witness key is not a cosignature key, two
                witnesses have the same name, one public key is given twice
                (under any names, in any roles), or the threshold is out of range.
        """
        wit: dict[str, Verifier] = {}
        for w in witnesses:
            if w.key_type not in COSIGNATURE_TYPES:
                raise MalformedError(
                    f"witness {w.name} needs a cosignature (type 0x04 or 0x06) key"
                )
            if w.name in wit:
                raise MalformedError(f"two witnesses are named {w.name}")
            wit[w.name] = w
        groups: dict[str, Group] = {}
        quorum: str | None = None
        if wit:
            k = len(wit) if threshold is None else threshold
            if not 1 <= k <= len(wit):
                raise MalformedError(f"threshold must be between 1 and {len(wit)}")
            groups["witnesses"] = Group("witnesses", k, tuple(wit), str(k))
            quorum = "witnesses"
        return cls((log,), tuple(writers), MappingProxyType(wit), MappingProxyType(groups), quorum)

    def log_for(self, origin: str) -> Verifier | None:
        """Return the trusted log key whose name is ``origin``.

        Raises:
            Nothing: a lookup by name (``None`` when no log has it).
        """
        for log in self.logs:
            if log.name == origin:
                return log
        return None

    def witness_keys(self) -> list[Verifier]:
        """Every witness key named by the policy.

        Raises:
            Nothing: it copies the policy's witness keys.
        """
        return list(self.witnesses.values())

    def quorum_met(self, cosigners: Iterable[Verifier]) -> bool:
        """Whether cosignatures by ``cosigners`` satisfy the quorum, counting each key once.

        A cosigner counts for the policy's witness with the same public key
        (and type 0x04), whatever name it carries; keys the policy does not name
        count for nothing.

        Raises:
            KeyError: only for a hand-built policy whose quorum or a group member names
                no witness or group; :func:`parse_policy` and :meth:`simple` never build one.
        """
        if self.quorum is None:
            return True
        # By public key, not by name: a cosignature does not sign the witness's
        # name, so the same signature under two names is still one witness.
        signed = {v.public_key for v in cosigners if v.key_type in COSIGNATURE_TYPES}
        return self._satisfied(self.quorum, signed)

    def _satisfied(self, name: str, signed: set[bytes]) -> bool:
        if name in self.witnesses:
            return self.witnesses[name].public_key in signed
        group = self.groups[name]
        count = sum(1 for m in group.members if self._satisfied(m, signed))
        return count >= group.threshold

    def describe_quorum(self) -> str:
        """A short human description of the quorum.

        Raises:
            KeyError: only for a hand-built policy whose quorum names no witness or
                group; :func:`parse_policy` and :meth:`simple` never build one.
        """
        if self.quorum is None:
            return "no witness cosignatures required"
        if self.quorum in self.witnesses:
            return f"a cosignature by witness {self.quorum}"
        group = self.groups[self.quorum]
        return f"{group.threshold} of {len(group.members)} ({', '.join(group.members)})"


def _parse_vkey(text: str, line_no: int, want: int) -> Verifier:
    try:
        v = parse_verifier(text)
    except KeyFormatError as err:
        raise MalformedError(f"policy line {line_no}: {err}") from err
    if v.key_type != want and not (want in COSIGNATURE_TYPES and v.key_type in COSIGNATURE_TYPES):
        kind = (
            "a cosignature (type 0x04 or 0x06)"
            if want in COSIGNATURE_TYPES
            else "an Ed25519 (0x01)"
        )
        raise MalformedError(f"policy line {line_no}: expected {kind} key")
    return v


def _claim_key(claimed: dict[bytes, str], role: str, key: Verifier, where: str = "") -> None:
    """Record that ``role`` holds ``key``; refuse a key that another role holds already."""
    other = claimed.get(key.public_key)
    if other is not None:
        raise MalformedError(
            f"{where}{role} has the same public key as {other}: "
            "one key may hold only one place in a policy"
        )
    claimed[key.public_key] = role


def _reach(
    name: str,
    witnesses: Mapping[str, Verifier],
    groups: Mapping[str, Group],
    memo: dict[str, frozenset[bytes]],
    visiting: frozenset[str] = frozenset(),
) -> frozenset[bytes]:
    """The public keys of the witnesses that ``name`` (a witness or group) can count."""
    if name in witnesses:
        return frozenset({witnesses[name].public_key})
    if name in memo:
        return memo[name]
    group = groups.get(name)
    if group is None or name in visiting:
        # An undefined name or a cycle (only in a policy built by hand) counts
        # no key here; quorum_met reports the undefined name when it meets it.
        return frozenset()
    keys = frozenset().union(
        *(_reach(m, witnesses, groups, memo, visiting | {name}) for m in group.members)
    )
    memo[name] = keys
    return keys


def _check_disjoint(
    group: Group,
    witnesses: Mapping[str, Verifier],
    groups: Mapping[str, Group],
    memo: dict[str, frozenset[bytes]],
    where: str = "",
) -> None:
    """Refuse a group two of whose members can count the same witness."""
    if len(set(group.members)) != len(group.members):
        raise MalformedError(f"{where}group {group.name}: a member is listed twice")
    seen: dict[bytes, str] = {}
    for member in group.members:
        for key in _reach(member, witnesses, groups, memo):
            other = seen.get(key)
            if other is not None:
                raise MalformedError(
                    f"{where}group {group.name}: members {other} and {member} both count "
                    "the same witness; a witness may count only once in a group"
                )
            seen[key] = member


def parse_policy(text: str | bytes) -> Policy:
    """Parse a policy file.

    Raises:
        MalformedError: naming the line, for an unknown keyword, a bad key, a
            public key given a second time (under any name, in any role), a
            name used before it is defined or defined twice, a group whose
            members count one witness twice, a bad threshold, or a second
            ``quorum`` line.
    """
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_POLICY_SIZE:
            raise MalformedError("policy file is too large")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise MalformedError("policy file is not valid UTF-8") from err
    if len(text) > MAX_POLICY_SIZE:
        raise MalformedError("policy file is too large")
    logs: list[Verifier] = []
    writers: list[Verifier] = []
    witnesses: dict[str, Verifier] = {}
    groups: dict[str, Group] = {}
    quorum: str | None = None
    quorum_seen = False
    claimed: dict[bytes, str] = {}
    reach: dict[str, frozenset[bytes]] = {}
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, *args = line.split()
        if word == "log":
            if len(args) not in (1, 2):
                raise MalformedError(f"policy line {line_no}: expected 'log <vkey> [url]'")
            key = _parse_vkey(args[0], line_no, KEY_TYPE_ED25519)
            _claim_key(claimed, f"log {key.name}", key, f"policy line {line_no}: ")
            logs.append(key)
        elif word == "writer":
            if len(args) != 1:
                raise MalformedError(f"policy line {line_no}: expected 'writer <vkey>'")
            key = _parse_vkey(args[0], line_no, KEY_TYPE_ED25519)
            _claim_key(claimed, f"writer {key.name}", key, f"policy line {line_no}: ")
            writers.append(key)
        elif word == "witness":
            if len(args) not in (2, 3):
                raise MalformedError(
                    f"policy line {line_no}: expected 'witness <name> <vkey> [url]'"
                )
            name = args[0]
            _check_name(name, line_no, witnesses, groups)
            key = _parse_vkey(args[1], line_no, KEY_TYPE_COSIGNATURE)
            _claim_key(claimed, f"witness {name}", key, f"policy line {line_no}: ")
            witnesses[name] = key
        elif word == "group":
            if len(args) < 3:
                raise MalformedError(
                    f"policy line {line_no}: expected 'group <name> <k|all|any> <member>...'"
                )
            name, spec, *members = args
            _check_name(name, line_no, witnesses, groups)
            for m in members:
                if m not in witnesses and m not in groups:
                    raise MalformedError(f"policy line {line_no}: {m!r} is not defined above")
            if len(set(members)) != len(members):
                raise MalformedError(f"policy line {line_no}: a member is listed twice")
            if spec == "all":
                k = len(members)
            elif spec == "any":
                k = 1
            else:
                try:
                    k = parse_decimal(spec, "threshold")
                except MalformedError as err:
                    raise MalformedError(f"policy line {line_no}: {err} (k, all or any)") from err
            if not 1 <= k <= len(members):
                raise MalformedError(
                    f"policy line {line_no}: threshold {k} is not between 1 and {len(members)}"
                )
            group = Group(name, k, tuple(members), spec)
            _check_disjoint(group, witnesses, groups, reach, f"policy line {line_no}: ")
            groups[name] = group
        elif word == "quorum":
            if quorum_seen:
                raise MalformedError(f"policy line {line_no}: a second quorum line")
            if len(args) != 1:
                raise MalformedError(f"policy line {line_no}: expected 'quorum <name|none>'")
            quorum_seen = True
            if args[0] != "none":
                if args[0] not in witnesses and args[0] not in groups:
                    raise MalformedError(f"policy line {line_no}: {args[0]!r} is not defined")
                quorum = args[0]
        else:
            raise MalformedError(f"policy line {line_no}: unknown keyword {word!r}")
    return Policy(
        tuple(logs),
        tuple(writers),
        MappingProxyType(witnesses),
        MappingProxyType(groups),
        quorum,
    )


def _check_name(
    name: str, line_no: int, witnesses: Mapping[str, Verifier], groups: Mapping[str, Group]
) -> None:
    try:
        check_key_name(name)
    except KeyFormatError as err:
        raise MalformedError(f"policy line {line_no}: bad name: {err}") from err
    if name == "none" or name in witnesses or name in groups:
        raise MalformedError(f"policy line {line_no}: name {name!r} is already used")


def format_policy(policy: Policy) -> str:
    """Return the policy file text (see the module docstring for the format).

    Raises:
        Nothing: pure formatting of the policy's keys and names.
    """
    lines = [f"log {v.vkey}" for v in policy.logs]
    lines += [f"writer {v.vkey}" for v in policy.writers]
    lines += [f"witness {name} {v.vkey}" for name, v in policy.witnesses.items()]
    lines += [f"group {g.name} {g.spec} {' '.join(g.members)}" for g in policy.groups.values()]
    lines.append(f"quorum {policy.quorum or 'none'}")
    return "\n".join(lines) + "\n"
