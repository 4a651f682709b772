"""Trust policies: which log, writer and witness keys an owner trusts, and the witness quorum.

This module owns the policy file, in the style of the Sigsum / C2SP tlog
policy format, with signed-note verifier key strings instead of bare keys::

    # comments and blank lines are ignored
    log <vkey>                         the log's key (its name is the origin)
    writer <vkey>                      a key trusted to sign records (repeatable)
    witness <name> <vkey>              a witness, by a local name (type 0x04 key)
    group <name> <k|all|any> <member>...  k of the members (witnesses or earlier groups)
    quorum <name|none>                 the witness or group every checkpoint needs

Names are defined before use, so groups cannot form cycles. Each public key
appears once in a policy, under one name and one role: a cosignature does not
sign the witness's name, so one key listed as two witnesses would count twice
toward a quorum. Quorums are counted by key, never by name. A policy with no
``quorum`` line, or ``quorum none``, asks for no cosignatures. Unknown
keywords are errors: a typo in a trust policy must never weaken it silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .checkpoints import parse_decimal
from .errors import KeyFormatError, MalformedError
from .notes import KEY_TYPE_COSIGNATURE, KEY_TYPE_ED25519, Verifier, check_key_name, parse_verifier

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
        """Refuse a policy that names one public key twice.

        Raises:
            MalformedError: naming both uses of the key.
        """
        seen: dict[bytes, str] = {}
        uses = [(v, f"log {v.name}") for v in self.logs]
        uses += [(v, f"writer {v.name}") for v in self.writers]
        uses += [(v, f"witness {name}") for name, v in self.witnesses.items()]
        for key, use in uses:
            if key.public_key in seen:
                raise MalformedError(
                    f"{use} has the same public key as {seen[key.public_key]}; "
                    f"a policy names each key once"
                )
            seen[key.public_key] = use

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
                witnesses have the same name, or the threshold is out of range.
        """
        wit: dict[str, Verifier] = {}
        for w in witnesses:
            if w.key_type != KEY_TYPE_COSIGNATURE:
                raise MalformedError(f"witness {w.name} needs a cosignature (type 0x04) key")
            if w.name in wit:
                raise MalformedError(f"two witnesses are named {w.name}")
            if any(v.public_key == w.public_key for v in wit.values()):
                raise MalformedError(f"witness {w.name} has the same public key as another")
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
        """Whether cosignatures by ``cosigners`` satisfy the quorum.

        Raises:
            KeyError: only for a hand-built policy whose quorum or a group member names
                no witness or group; :func:`parse_policy` and :meth:`simple` never build one.
        """
        if self.quorum is None:
            return True
        # By key: two signature lines from one key, under two names, are one cosigner.
        signed = {(v.key_type, v.public_key) for v in cosigners}
        return self._satisfied(self.quorum, signed)

    def _satisfied(self, name: str, signed: set[tuple[int, bytes]]) -> bool:
        if name in self.witnesses:
            w = self.witnesses[name]
            return (w.key_type, w.public_key) in signed
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
    if v.key_type != want:
        kind = "a cosignature (type 0x04)" if want == KEY_TYPE_COSIGNATURE else "an Ed25519 (0x01)"
        raise MalformedError(f"policy line {line_no}: expected {kind} key")
    return v


def parse_policy(text: str | bytes) -> Policy:
    """Parse a policy file.

    Raises:
        MalformedError: naming the line, for an unknown keyword, a bad key, a
            name used before it is defined or defined twice, a bad threshold,
            or a second ``quorum`` line.
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
    keys_seen: dict[bytes, int] = {}

    def once(v: Verifier, line_no: int) -> Verifier:
        if v.public_key in keys_seen:
            raise MalformedError(
                f"policy line {line_no}: the same public key as on line "
                f"{keys_seen[v.public_key]}; a policy names each key once"
            )
        keys_seen[v.public_key] = line_no
        return v

    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, *args = line.split()
        if word == "log":
            if len(args) not in (1, 2):
                raise MalformedError(f"policy line {line_no}: expected 'log <vkey> [url]'")
            logs.append(once(_parse_vkey(args[0], line_no, KEY_TYPE_ED25519), line_no))
        elif word == "writer":
            if len(args) != 1:
                raise MalformedError(f"policy line {line_no}: expected 'writer <vkey>'")
            writers.append(once(_parse_vkey(args[0], line_no, KEY_TYPE_ED25519), line_no))
        elif word == "witness":
            if len(args) not in (2, 3):
                raise MalformedError(
                    f"policy line {line_no}: expected 'witness <name> <vkey> [url]'"
                )
            name = args[0]
            _check_name(name, line_no, witnesses, groups)
            witnesses[name] = once(_parse_vkey(args[1], line_no, KEY_TYPE_COSIGNATURE), line_no)
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
            groups[name] = Group(name, k, tuple(members), spec)
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
