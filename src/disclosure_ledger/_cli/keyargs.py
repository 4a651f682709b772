"""Public keys on the command line: a ``.pub`` file, or the key string itself, in every command.

This module owns how a command reads an option that names a public key. The
value is read as a file if one exists at that path; otherwise, if it looks
like a verifier key string (``name+hex8+base64``), it is parsed inline. So
``--log-key log.pub`` and ``--log-key vendor.example/log+1a2b3c4d+AU...``
both work wherever a public key is asked for. Options that take a key keep
the value as a string: a path type would fold the ``//`` a base64 key may hold.
"""

from __future__ import annotations

from pathlib import Path

import click

from disclosure_ledger._cli.kit import CommandError
from disclosure_ledger._core.notes import (
    COSIGNATURE_TYPES,
    KEY_TYPE_COSIGNATURE,
    KEY_TYPE_ED25519,
    KEY_TYPE_MLDSA44_COSIGNATURE,
    Verifier,
)
from disclosure_ledger._core.notes import parse_verifier as _parse_verifier
from disclosure_ledger.errors import LedgerError
from disclosure_ledger.keys import read_verifier_file

__all__ = ["PUB", "public_key"]

PUB = click.STRING
"""The option type of a public key (a file or an inline key string): kept as given."""

_KIND = {
    KEY_TYPE_ED25519: "an Ed25519 (type 0x01)",
    KEY_TYPE_COSIGNATURE: "a cosignature (type 0x04 or 0x06)",
    KEY_TYPE_MLDSA44_COSIGNATURE: "an ML-DSA-44 cosignature (type 0x06)",
}


def public_key(value: str, option: str, want: int | None = None) -> Verifier:
    """Read the public key ``value`` gives (a file, else an inline key string) for ``option``.

    With ``want``, the key must be of that type; a witness's key may be of
    either cosignature type (Ed25519 0x04 or ML-DSA-44 0x06) where one is wanted.

    Raises:
        CommandError: naming ``option``, if the key cannot be read or parsed, or is
            of another type.
    """
    try:
        if not Path(value).exists() and value.count("+") >= 2:
            v = _parse_verifier(value)
        else:
            v = read_verifier_file(value)
    except LedgerError as err:
        raise CommandError(f"{option}: {err}") from err
    either = want in COSIGNATURE_TYPES and v.key_type in COSIGNATURE_TYPES
    if want is not None and v.key_type != want and not either:
        have = _KIND.get(v.key_type, f"a type 0x{v.key_type:02x}")
        raise CommandError(f"{option}: {v.name} is {have} key; {option} needs {_KIND[want]} key")
    return v
