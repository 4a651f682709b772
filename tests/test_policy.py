"""Trust policies: the file format round trip, every refusal, and quorum evaluation.

A typo in a trust policy must never weaken it silently, so each malformed
line is refused with its line number; quorums are evaluated through nested
groups exactly as written.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest

from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer, Verifier
from disclosure_ledger._core.policy import Group, Policy, format_policy, parse_policy
from disclosure_ledger.errors import MalformedError

from .ledger_helpers import log_key, witness_key, writer_key

LOG = log_key().verifier
WRITER = writer_key().verifier
A, B, C, D = (witness_key(f"witness.example/{n}").verifier for n in "abcd")


def text(*lines: str) -> str:
    return "\n".join(lines) + "\n"


NESTED = text(
    "# the camera vendor's log",
    f"log {LOG.vkey} https://log.example/",
    f"writer {WRITER.vkey}",
    "",
    f"witness a {A.vkey}",
    f"witness b {B.vkey} https://b.example/",
    f"witness c {C.vkey}",
    f"witness d {D.vkey}",
    "group ab any a b",
    "group cd all c d",
    "group top 2 ab cd",
    "quorum top",
)


def test_round_trip() -> None:
    policy = parse_policy(NESTED)
    assert policy.logs == (LOG,)
    assert policy.writers == (WRITER,)
    assert dict(policy.witnesses) == {"a": A, "b": B, "c": C, "d": D}
    assert policy.groups["top"] == Group("top", 2, ("ab", "cd"), "2")
    assert policy.groups["ab"].threshold == 1
    assert policy.groups["cd"].threshold == 2
    assert policy.quorum == "top"
    again = parse_policy(format_policy(policy))
    assert again == policy
    assert format_policy(again) == format_policy(policy)
    assert parse_policy(NESTED.encode()) == policy
    simple = Policy.simple(LOG, [WRITER], [A, B, C], threshold=2)
    assert parse_policy(format_policy(simple)) == simple
    assert format_policy(Policy.simple(LOG)) == f"log {LOG.vkey}\nquorum none\n"


def test_quorum_with_nested_groups() -> None:
    policy = parse_policy(NESTED)
    met = policy.quorum_met
    assert met([A, C, D])
    assert met([B, C, D])
    assert met([A, B, C, D])
    assert not met([A, B])  # ab, but not cd
    assert not met([A, C])  # cd needs both c and d
    assert not met([C, D])  # cd, but not ab
    assert not met([])
    assert not met([witness_key("witness.example/x").verifier, C, D])
    assert policy.describe_quorum() == "2 of 2 (ab, cd)"
    single = parse_policy(text(f"log {LOG.vkey}", f"witness a {A.vkey}", "quorum a"))
    assert single.quorum_met([A])
    assert not single.quorum_met([B])
    assert single.describe_quorum() == "a cosignature by witness a"
    for none in (text(f"log {LOG.vkey}"), text(f"log {LOG.vkey}", "quorum none")):
        policy = parse_policy(none)
        assert policy.quorum is None
        assert policy.quorum_met([])
        assert policy.describe_quorum() == "no witness cosignatures required"


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        (("logg x",), "line 1: unknown keyword 'logg'"),
        (("log",), "line 1: expected 'log"),
        ((f"log {LOG.vkey} url extra",), "line 1: expected 'log"),
        (("log not-a-key",), "line 1"),
        ((f"log {A.vkey}",), "line 1: expected an Ed25519"),
        ((f"writer {A.vkey}",), "line 1: expected an Ed25519"),
        (("writer",), "line 1: expected 'writer"),
        ((f"witness a {LOG.vkey}",), "line 1: expected a cosignature"),
        ((f"witness a {A.vkey} url extra",), "line 1: expected 'witness"),
        ((f"witness a+b {A.vkey}",), "line 1: bad name"),
        ((f"witness none {A.vkey}",), "line 1: name 'none' is already used"),
        ((f"witness a {A.vkey}", f"witness a {B.vkey}"), "line 2: name 'a' is already used"),
        ((f"witness a {A.vkey}", "group a any a"), "line 2: name 'a' is already used"),
        ((f"witness a {A.vkey}", "group g any"), "line 2: expected 'group"),
        ((f"witness a {A.vkey}", "group g any a b"), "line 2: 'b' is not defined above"),
        ((f"witness a {A.vkey}", "group g any a a"), "line 2: a member is listed twice"),
        ((f"witness a {A.vkey}", "group g 0 a"), "line 2: threshold 0 is not between 1 and 1"),
        ((f"witness a {A.vkey}", "group g 2 a"), "line 2: threshold 2 is not between 1 and 1"),
        ((f"witness a {A.vkey}", "group g 01 a"), "line 2: threshold must not have leading"),
        ((f"witness a {A.vkey}", "group g -1 a"), "line 2: threshold must be a decimal"),
        ((f"witness a {A.vkey}", "group g ² a"), "line 2: threshold must be a decimal"),
        ((f"witness a {A.vkey}", "group g ١ a"), "line 2: threshold must be a decimal"),
        ((f"witness a {A.vkey}", "group g some a"), "line 2: threshold must be a decimal"),
        ((f"witness a {A.vkey}", "group g " + "9" * 30 + " a"), "line 2: threshold must be"),
        (("quorum",), "line 1: expected 'quorum"),
        (("quorum a b",), "line 1: expected 'quorum"),
        (("quorum nobody",), "line 1: 'nobody' is not defined"),
        (("quorum none", "quorum none"), "line 2: a second quorum line"),
    ],
)
def test_each_refusal_names_the_line(lines: tuple[str, ...], needle: str) -> None:
    with pytest.raises(MalformedError) as info:
        parse_policy(text(*lines))
    assert needle in str(info.value)


def test_refused_files() -> None:
    with pytest.raises(MalformedError, match="too large"):
        parse_policy("#" * (256 * 1024 + 1))
    with pytest.raises(MalformedError, match="too large"):
        parse_policy(b"#" * (256 * 1024 + 1))
    with pytest.raises(MalformedError, match="UTF-8"):
        parse_policy(b"log \xff\n")


def test_simple_refusals() -> None:
    # The same key twice, or two keys under one name: one would be dropped silently.
    impostor = Signer(A.name, bytes(32), KEY_TYPE_COSIGNATURE).verifier
    for witnesses in ([A, B, A], [A, impostor]):
        with pytest.raises(MalformedError, match=r"two witnesses are named witness\.example/a"):
            Policy.simple(LOG, [], witnesses)
    with pytest.raises(MalformedError, match="cosignature"):
        Policy.simple(LOG, [], [WRITER])
    for k in (0, 3):
        with pytest.raises(MalformedError, match="between 1 and 2"):
            Policy.simple(LOG, [], [A, B], threshold=k)
    assert Policy.simple(LOG, [], [A, B]).groups["witnesses"].threshold == 2
    assert Policy.simple(LOG).quorum is None


def test_hand_built_policy_lookups() -> None:
    policy = Policy((LOG,), (), MappingProxyType({"a": A}), MappingProxyType({}), "a")
    assert policy.log_for(LOG.name) == LOG
    assert policy.log_for("other.example/log") is None
    assert policy.witness_keys() == [A]


def _renamed(key: Verifier, name: str) -> Verifier:
    """The same public key (and type) under another name: another key ID, one key."""
    return Verifier(name, key.key_type, key.public_key)


A_AGAIN = _renamed(A, "witness.example/a-again")
LOG_AS_WITNESS = Verifier("witness.example/log", KEY_TYPE_COSIGNATURE, LOG.public_key)


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        # One witness key under two names would count twice toward "all".
        (
            (f"witness a {A.vkey}", f"witness b {A_AGAIN.vkey}", "group g all a b", "quorum g"),
            "line 2: witness b has the same public key as witness a",
        ),
        # The very same key string under two local names.
        ((f"witness a {A.vkey}", f"witness b {A.vkey}"), "line 2: witness b has the same public"),
        ((f"log {LOG.vkey}", f"log {LOG.vkey}"), f"line 2: log {LOG.name} has the same public"),
        ((f"writer {WRITER.vkey}", f"writer {WRITER.vkey}"), "line 2: writer"),
        ((f"log {LOG.vkey}", f"writer {_renamed(LOG, 'w.example/x').vkey}"), "line 2: writer"),
        # The log's key bytes as a witness: the log could cosign its own checkpoints.
        ((f"log {LOG.vkey}", f"witness l {LOG_AS_WITNESS.vkey}"), "line 2: witness l has the"),
        # Members that reach one witness twice, directly or through a group.
        (
            (f"witness a {A.vkey}", f"witness b {B.vkey}", "group ab any a b", "group g 2 a ab"),
            "line 4: group g: members a and ab both count the same witness",
        ),
        (
            (
                f"witness a {A.vkey}",
                f"witness b {B.vkey}",
                f"witness c {C.vkey}",
                "group ab any a b",
                "group ac any a c",
                "group g all ab ac",
            ),
            "line 6: group g: members ab and ac both count the same witness",
        ),
    ],
)
def test_one_key_holds_one_place(lines: tuple[str, ...], needle: str) -> None:
    with pytest.raises(MalformedError) as info:
        parse_policy(text(*lines))
    assert needle in str(info.value)


def test_quorums_count_keys_not_names() -> None:
    policy = parse_policy(text(f"witness a {A.vkey}", f"witness b {B.vkey}", "group g all a b"))
    policy = Policy(policy.logs, policy.writers, policy.witnesses, policy.groups, "g")
    # One key's cosignature under two names (the signed message has no name) is one.
    assert not policy.quorum_met([A, A_AGAIN])
    assert policy.quorum_met([A_AGAIN, B])  # the key counts, whatever its name
    # A witness quorum is not met by an Ed25519 key with the same bytes.
    assert not policy.quorum_met([Verifier(A.name, 0x01, A.public_key), B])


def test_simple_and_hand_built_policies_refuse_a_key_twice() -> None:
    with pytest.raises(MalformedError, match="same public key"):
        Policy.simple(LOG, [], [A, A_AGAIN], threshold=2)
    with pytest.raises(MalformedError, match="same public key"):
        Policy.simple(LOG, [WRITER, _renamed(WRITER, "w.example/x")])
    with pytest.raises(MalformedError, match=f"writer {LOG.name} has the same public key as log"):
        Policy.simple(LOG, [LOG])
    with pytest.raises(MalformedError, match="same public key"):
        Policy.simple(LOG, [], [LOG_AS_WITNESS])
    with pytest.raises(MalformedError, match="same public key"):
        Policy((LOG, LOG))
    witnesses = MappingProxyType({"a": A, "b": A_AGAIN})
    with pytest.raises(MalformedError, match="witness b has the same public key as witness a"):
        Policy((LOG,), (), witnesses, MappingProxyType({}), None)
    groups = MappingProxyType({"g": Group("g", 2, ("a", "a"), "2")})
    with pytest.raises(MalformedError, match="listed twice"):
        Policy((LOG,), (), MappingProxyType({"a": A}), groups, "g")
