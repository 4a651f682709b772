"""C2SP signed-note keys and signatures.

This module owns Ed25519 keys in the signed-note string forms read by Go's
``golang.org/x/mod/sumdb/note`` and the signed-note envelope itself. It does no
I/O and reads no clock: cosignature timestamps are passed in.

Key strings (base64 is RFC 4648 standard, padded)::

    verifier: <name>+<hex8 key ID>+base64(<type byte> ‖ 32-byte public key)
    signer:   PRIVATE+KEY+<name>+<hex8 key ID>+base64(<type byte> ‖ 32-byte seed)
    key ID  = SHA-256(<name> ‖ 0x0A ‖ <type byte> ‖ public key)[:4], big-endian

Type 0x01 is a plain Ed25519 note signer (logs, record writers). Type 0x04 is a
C2SP tlog-cosignature ``cosignature/v1`` witness key: its signatures are
``u64 timestamp ‖ Ed25519 signature`` over ``"cosignature/v1\\ntime <t>\\n" ‖ text``.
Type 0x06 is a tlog-cosignature v1.1 ML-DSA-44 witness key (a 1,312-byte public
key; its signer string holds the 32-byte FIPS 204 seed): its signatures are
``u64 timestamp ‖ ML-DSA-44 signature`` (2,420 bytes) over the ``subtree/v1``
message of :func:`subtree_message`, which commits to the cosigner's name and to
the checkpoint's origin, size and root (not to extension lines).

A signed note is ``text`` (ending in a newline), one blank line, then one or
more lines ``— <name> base64(key ID ‖ signature)``. New key types may be added
by assigning new type bytes; a verifier ignores signature lines whose
(name, key ID) it does not know, so old verifiers keep working.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey, MLDSA44PublicKey
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

from disclosure_ledger.errors import (
    BadSignatureError,
    KeyFormatError,
    MalformedError,
    UntrustedKeyError,
)

__all__ = [
    "COSIGNATURE_TYPES",
    "COSIGNATURE_V1",
    "KEY_TYPE_COSIGNATURE",
    "KEY_TYPE_ED25519",
    "KEY_TYPE_MLDSA44_COSIGNATURE",
    "MAX_NOTE_SIGNATURES",
    "MAX_NOTE_SIZE",
    "Note",
    "NoteSignature",
    "OpenedNote",
    "Signer",
    "VerifiedSignature",
    "Verifier",
    "b64decode_strict",
    "b64encode",
    "check_key_name",
    "cosignature_message",
    "format_note",
    "generate_signer",
    "key_id",
    "open_note",
    "parse_note",
    "parse_signature_line",
    "parse_signer",
    "parse_verifier",
    "sign_note",
    "subtree_message",
]

KEY_TYPE_ED25519 = 0x01
KEY_TYPE_COSIGNATURE = 0x04
KEY_TYPE_MLDSA44_COSIGNATURE = 0x06
COSIGNATURE_TYPES = (KEY_TYPE_COSIGNATURE, KEY_TYPE_MLDSA44_COSIGNATURE)
"""The witness key types: Ed25519 ``cosignature/v1`` and ML-DSA-44 ``subtree/v1``."""
COSIGNATURE_V1 = "cosignature/v1"
SUBTREE_V1_LABEL = b"subtree/v1\n\x00"
MLDSA44_PUBLIC_KEY_SIZE = 1312
MLDSA44_SIGNATURE_SIZE = 2420
MAX_NOTE_SIZE = 1 << 20
"""Notes larger than this (1 MiB) are refused before any parsing."""
MAX_NOTE_SIGNATURES = 100
"""The most signature lines a note may carry (Go's note package uses the same)."""
MAX_TIMESTAMP = (1 << 63) - 1
_SIG_PREFIX = "— "
_KNOWN_TYPES = (KEY_TYPE_ED25519, KEY_TYPE_COSIGNATURE, KEY_TYPE_MLDSA44_COSIGNATURE)
_PUBLIC_SIZES = {
    KEY_TYPE_ED25519: 32,
    KEY_TYPE_COSIGNATURE: 32,
    KEY_TYPE_MLDSA44_COSIGNATURE: MLDSA44_PUBLIC_KEY_SIZE,
}


def b64encode(data: bytes) -> str:
    """Return standard, padded base64 of ``data``.

    Raises:
        TypeError: if ``data`` is not bytes-like (from :func:`base64.b64encode`).
    """
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str, what: str) -> bytes:
    """Decode canonical standard base64, refusing anything a strict encoder would not write.

    Raises:
        MalformedError: if ``text`` is not canonical padded base64.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as err:
        raise MalformedError(f"{what} is not valid base64") from err
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedError(f"{what} is not canonical base64")
    return raw


def check_key_name(name: str) -> None:
    """Check a signed-note key name: non-empty, no spaces, no ``+``, no control characters.

    Raises:
        KeyFormatError: if the name is not allowed.
    """
    if not isinstance(name, str) or not name:
        raise KeyFormatError("key name must be a non-empty string")
    if "+" in name:
        raise KeyFormatError("key name must not contain '+'")
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        raise KeyFormatError("key name must not contain spaces or control characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as err:
        raise KeyFormatError("key name must be valid Unicode (no lone surrogates)") from err


def key_id(name: str, key_type: int, public_key: bytes) -> int:
    """Return the signed-note key ID: SHA-256(name ‖ 0x0A ‖ type ‖ key)[:4] as a uint32.

    Raises:
        ValueError: if ``key_type`` is not a byte value (0 to 255).
        UnicodeEncodeError: if ``name`` holds a lone surrogate, which
            :func:`check_key_name` does not refuse.
    """
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def cosignature_message(text: str, timestamp: int) -> bytes:
    """Return the bytes a ``cosignature/v1`` signature covers.

    ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint note text.

    Raises:
        MalformedError: if the timestamp is out of range.
    """
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedError("cosignature timestamp must be between 0 and 2**63-1")
    return f"{COSIGNATURE_V1}\ntime {timestamp}\n{text}".encode()


def _opaque8(value: bytes, what: str) -> bytes:
    if not 1 <= len(value) <= 255:
        raise MalformedError(f"{what} must be 1 to 255 bytes for a subtree/v1 cosignature")
    return bytes([len(value)]) + value


def subtree_message(  # noqa: PLR0917 - the fields of the message, in its order
    cosigner: str, timestamp: int, origin: str, start: int, end: int, root: bytes
) -> bytes:
    """Return the ``subtree/v1`` message an ML-DSA-44 cosignature covers (tlog-cosignature v1.1).

    The TLS-encoded ``cosigned_message``::

        "subtree/v1\\n\\0" (12 bytes) ‖ u8 len ‖ cosigner name ‖ u64 timestamp
        ‖ u8 len ‖ log origin ‖ u64 start ‖ u64 end ‖ 32-byte root hash

    A checkpoint is the subtree ``[0, size)``. A non-zero ``start`` needs a zero timestamp.

    Raises:
        MalformedError: if a name is empty or over 255 bytes, a number is out of
            range, or the root is not 32 bytes.
    """
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedError("cosignature timestamp must be between 0 and 2**63-1")
    if not 0 <= start <= end <= MAX_TIMESTAMP:
        raise MalformedError("a subtree needs 0 <= start <= end < 2**63")
    if start and timestamp:
        raise MalformedError("a subtree that does not start at 0 is cosigned with timestamp 0")
    if not isinstance(root, bytes) or len(root) != 32:
        raise MalformedError("a subtree root must be 32 bytes")
    return b"".join(
        (
            SUBTREE_V1_LABEL,
            _opaque8(cosigner.encode("utf-8"), "the cosigner name"),
            struct.pack(">Q", timestamp),
            _opaque8(origin.encode("utf-8"), "the log origin"),
            struct.pack(">QQ", start, end),
            root,
        )
    )


def _checkpoint_subtree(text: str) -> tuple[str, int, bytes]:
    # The origin, size and root of a checkpoint's note text, for subtree/v1.
    # Parsed here, strictly, because the checkpoints module builds on this one.
    lines = text.split("\n")
    if len(lines) < 4:
        raise MalformedError("a subtree/v1 cosignature signs a checkpoint")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin or not size_text.isascii() or not size_text.isdigit():
        raise MalformedError("a subtree/v1 cosignature signs a checkpoint")
    if size_text != "0" and size_text.startswith("0"):
        raise MalformedError("checkpoint size has leading zeros")
    root = b64decode_strict(root_text, "checkpoint root")
    return origin, int(size_text), root


@dataclass(frozen=True, slots=True)
class Verifier:
    """A public key that verifies note signatures, with its name and key ID."""

    name: str
    key_type: int
    public_key: bytes
    # Derived once: verifiers look keys up by ID for every record they check.
    key_id: int = field(init=False, repr=False, compare=False)
    """The 32-bit key ID."""
    vkey: str = field(init=False, repr=False, compare=False)
    """The verifier key string ``name+hex8+base64(type ‖ key)``."""
    _public: Ed25519PublicKey | MLDSA44PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if self.key_type not in _KNOWN_TYPES:
            raise KeyFormatError(f"unsupported key type 0x{self.key_type:02x}")
        want = _PUBLIC_SIZES[self.key_type]
        kind = "ML-DSA-44" if self.key_type == KEY_TYPE_MLDSA44_COSIGNATURE else "Ed25519"
        if not isinstance(self.public_key, bytes) or len(self.public_key) != want:
            raise KeyFormatError(f"{kind} public key must be {want} bytes")
        public: Ed25519PublicKey | MLDSA44PublicKey
        try:
            if self.key_type == KEY_TYPE_MLDSA44_COSIGNATURE:
                public = MLDSA44PublicKey.from_public_bytes(self.public_key)
            else:
                public = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as err:
            raise KeyFormatError(f"not an {kind} public key") from err
        kid = key_id(self.name, self.key_type, self.public_key)
        material = b64encode(bytes([self.key_type]) + self.public_key)
        object.__setattr__(self, "key_id", kid)
        object.__setattr__(self, "vkey", f"{self.name}+{kid:08x}+{material}")
        object.__setattr__(self, "_public", public)

    def __str__(self) -> str:
        return self.vkey

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``.

        Raises:
            Nothing: a wrong or malformed signature gives ``False``.
        """
        try:
            self._public.verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify(self, text: str, signature: bytes) -> int | None:
        """Check a note signature (without its 4-byte key ID) over ``text``.

        Returns the cosignature timestamp for a type 0x04 or 0x06 key, else ``None``.

        Raises:
            BadSignatureError: if the signature does not verify (for type 0x06,
                also when ``text`` is not a checkpoint).
        """
        pub = self._public
        timestamp: int | None = None
        if self.key_type == KEY_TYPE_MLDSA44_COSIGNATURE:
            if len(signature) != 8 + MLDSA44_SIGNATURE_SIZE:
                raise BadSignatureError(f"cosignature by {self.name} has the wrong length")
            (timestamp,) = struct.unpack(">Q", signature[:8])
            try:
                origin, size, root = _checkpoint_subtree(text)
                message = subtree_message(self.name, timestamp, origin, 0, size, root)
            except MalformedError as err:
                raise BadSignatureError(f"cosignature by {self.name}: {err}") from err
            signature = signature[8:]
        elif self.key_type == KEY_TYPE_COSIGNATURE:
            if len(signature) != 8 + 64:
                raise BadSignatureError(f"cosignature by {self.name} has the wrong length")
            (timestamp,) = struct.unpack(">Q", signature[:8])
            if timestamp > MAX_TIMESTAMP:
                raise BadSignatureError(f"cosignature by {self.name} has a bad timestamp")
            message = cosignature_message(text, timestamp)
            signature = signature[8:]
        else:
            if len(signature) != 64:
                raise BadSignatureError(f"signature by {self.name} has the wrong length")
            message = text.encode()
        try:
            pub.verify(signature, message)
        except InvalidSignature as err:
            raise BadSignatureError(f"signature by {self.name} does not verify") from err
        return timestamp


class Signer:
    """A private key that signs notes. Its repr and str never show the key.

    Signing goes through libsodium (PyNaCl): Ed25519 is deterministic, so the
    signatures are byte for byte those of any other implementation, and
    libsodium makes them about 1.3 times as fast as OpenSSL does on the
    machines measured in docs/performance.md, releasing the GIL while it works.
    Verification stays with ``cryptography``.
    """

    __slots__ = ("_mldsa", "_secret", "key_type", "name", "verifier")

    def __init__(self, name: str, seed: bytes, key_type: int = KEY_TYPE_ED25519) -> None:
        """Make a signer from a 32-byte seed (Ed25519, or the FIPS 204 seed for type 0x06).

        Raises:
            KeyFormatError: if the name, seed or type is not acceptable.
        """
        check_key_name(name)
        if key_type not in _KNOWN_TYPES:
            raise KeyFormatError(f"unsupported key type 0x{key_type:02x}")
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise KeyFormatError("a key seed must be 32 bytes")
        self.name = name
        self.key_type = key_type
        self._mldsa: MLDSA44PrivateKey | None = None
        if key_type == KEY_TYPE_MLDSA44_COSIGNATURE:
            # ML-DSA signs through cryptography (OpenSSL); its key is kept as the seed.
            self._mldsa = MLDSA44PrivateKey.from_seed_bytes(seed)
            self._secret = seed
            public = self._mldsa.public_key().public_bytes_raw()
        else:
            public, self._secret = crypto_sign_seed_keypair(seed)  # secret = seed ‖ public key
        self.verifier = Verifier(name, key_type, public)

    @property
    def key_id(self) -> int:
        """The 32-bit key ID."""
        return self.verifier.key_id

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id:08x})"

    __str__ = __repr__

    def private_key_string(self) -> str:
        """Return the signer key string ``PRIVATE+KEY+name+hex8+base64(type ‖ seed)``.

        This is secret material: write it only to a protected key file.

        Raises:
            UnicodeEncodeError: only if the name holds a lone surrogate (see
                :func:`key_id`); the type and seed were checked when the signer was made.
        """
        seed = self._secret[:32]
        return (
            f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64encode(bytes([self.key_type]) + seed)}"
        )

    def sign_raw(self, message: bytes) -> bytes:
        """Return the signature of ``message``: Ed25519 (64 bytes) or ML-DSA-44 (2,420).

        Raises:
            Nothing: both sign any bytes; the key was checked when the signer was made.
        """
        if self._mldsa is not None:
            return self._mldsa.sign(message)
        return crypto_sign(message, self._secret)[:64]

    def sign(self, text: str, timestamp: int | None = None) -> bytes:
        """Return the note signature of ``text`` (without the key ID).

        A cosignature key (type 0x04 or 0x06) needs ``timestamp``; others
        refuse one. A type 0x06 key signs the ``subtree/v1`` message of the
        checkpoint ``text`` (see :func:`subtree_message`).

        Raises:
            MalformedError: if ``timestamp`` is missing, superfluous or out of
                range, or (type 0x06) ``text`` is not a checkpoint.
        """
        if self.key_type == KEY_TYPE_MLDSA44_COSIGNATURE:
            if timestamp is None:
                raise MalformedError("a cosignature needs a timestamp")
            origin, size, root = _checkpoint_subtree(text)
            message = subtree_message(self.name, timestamp, origin, 0, size, root)
            return struct.pack(">Q", timestamp) + self.sign_raw(message)
        if self.key_type == KEY_TYPE_COSIGNATURE:
            if timestamp is None:
                raise MalformedError("a cosignature needs a timestamp")
            message = cosignature_message(text, timestamp)
            return struct.pack(">Q", timestamp) + self.sign_raw(message)
        if timestamp is not None:
            raise MalformedError("only cosignature keys sign with a timestamp")
        return self.sign_raw(text.encode())

    def signature_line(self, text: str, timestamp: int | None = None) -> str:
        """Return the note signature line ``— name base64(key ID ‖ sig)\\n`` for ``text``.

        Raises:
            MalformedError: as :meth:`sign`.
        """
        sig = self.sign(text, timestamp)
        return f"{_SIG_PREFIX}{self.name} {b64encode(self.key_id.to_bytes(4, 'big') + sig)}\n"


def generate_signer(name: str, key_type: int = KEY_TYPE_ED25519) -> Signer:
    """Create a new random signer of ``key_type`` (Ed25519, or ML-DSA-44 for type 0x06).

    Raises:
        KeyFormatError: if the name or type is not acceptable.
    """
    return Signer(name, secrets.token_bytes(32), key_type)


def _split_key(text: str, parts: int, what: str) -> list[str]:
    if not isinstance(text, str):
        raise KeyFormatError(f"{what} must be a string")
    if len(text) > 4096:  # an ML-DSA-44 verifier key string is about 1,800 characters
        raise KeyFormatError(f"{what} is too long")
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise KeyFormatError(f"{what} must have {parts} '+'-separated fields")
    return fields


def _decode_key_material(name: str, hex_id: str, b64: str, what: str) -> tuple[int, bytes]:
    check_key_name(name)
    if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
        raise KeyFormatError(f"{what}: key ID must be 8 lowercase hex digits")
    try:
        raw = b64decode_strict(b64, f"{what} key material")
    except MalformedError as err:
        raise KeyFormatError(str(err)) from err
    if not raw or raw[0] not in _KNOWN_TYPES:
        raise KeyFormatError(f"{what}: unsupported key type 0x{raw[0] if raw else 0:02x}")
    size = _PUBLIC_SIZES[raw[0]] if what == "verifier key" else 32
    if len(raw) != 1 + size:
        raise KeyFormatError(f"{what}: key material must be a type byte and {size} bytes")
    return raw[0], raw[1:]


def parse_verifier(vkey: str) -> Verifier:
    """Parse a verifier key string ``name+hex8+base64(type ‖ key)``.

    Raises:
        KeyFormatError: if the string is malformed or its key ID does not match.
    """
    name, hex_id, b64 = _split_key(
        vkey.strip() if isinstance(vkey, str) else vkey, 3, "verifier key"
    )
    key_type, public = _decode_key_material(name, hex_id, b64, "verifier key")
    try:
        verifier = Verifier(name, key_type, public)
    except KeyFormatError as err:
        raise KeyFormatError(f"verifier key: {err}") from err
    if f"{verifier.key_id:08x}" != hex_id:
        raise KeyFormatError("verifier key: key ID does not match the key")
    return verifier


def parse_signer(skey: str) -> Signer:
    """Parse a signer key string ``PRIVATE+KEY+name+hex8+base64(type ‖ seed)``.

    Errors never include key material.

    Raises:
        KeyFormatError: if the string is malformed or its key ID does not match.
    """
    fields = _split_key(skey.strip() if isinstance(skey, str) else skey, 5, "signer key")
    if fields[0] != "PRIVATE" or fields[1] != "KEY":
        raise KeyFormatError("signer key must start with PRIVATE+KEY+")
    key_type, seed = _decode_key_material(fields[2], fields[3], fields[4], "signer key")
    signer = Signer(fields[2], seed, key_type)
    if f"{signer.key_id:08x}" != fields[3]:
        raise KeyFormatError("signer key: key ID does not match the key")
    return signer


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line of a note: key name, key ID and signature bytes."""

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> str:
        """The line as it appears in a note, with its newline."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {b64encode(blob)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed, not yet verified, signed note."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that a known key verified; ``timestamp`` is set for cosignatures."""

    verifier: Verifier
    signature: NoteSignature
    timestamp: int | None


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note with at least one verified signature.

    ``unverified`` holds the lines from keys the caller does not know; they
    are kept (so the note can be passed on whole) but prove nothing.
    """

    text: str
    verified: tuple[VerifiedSignature, ...]
    unverified: tuple[NoteSignature, ...]

    def signed_by(self, verifier: Verifier) -> VerifiedSignature | None:
        """Return the verified signature by ``verifier``, if there is one.

        Raises:
            Nothing: a lookup among signatures that already verified.
        """
        for v in self.verified:
            if v.verifier == verifier:
                return v
        return None


def _to_text(msg: bytes | str, what: str) -> str:
    if isinstance(msg, str):
        raw = msg.encode("utf-8", "surrogatepass")
    elif isinstance(msg, bytes | bytearray | memoryview):
        raw = bytes(msg)
    else:
        raise MalformedError(f"{what} must be bytes or str")
    if len(raw) > MAX_NOTE_SIZE:
        raise MalformedError(f"{what} is larger than {MAX_NOTE_SIZE} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MalformedError(f"{what} is not valid UTF-8") from err
    for ch in text:
        if ch < " " and ch != "\n":
            raise MalformedError(f"{what} contains a control character")
    return text


def parse_note(msg: bytes | str) -> Note:
    """Split a signed note into its text and signature lines, checking syntax only.

    Raises:
        MalformedError: if the note is too large, not UTF-8, has control
            characters, has no signatures, too many, or a malformed line.
    """
    text = _to_text(msg, "note")
    if not text.endswith("\n"):
        raise MalformedError("note must end with a newline")
    split = text.rfind("\n\n")
    if split < 0:
        raise MalformedError("note has no blank line before its signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block:
        raise MalformedError("note has no signatures")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise MalformedError(f"note has more than {MAX_NOTE_SIGNATURES} signatures")
    return Note(body, tuple(_parse_signature_line(line) for line in lines))


def _parse_signature_line(line: str) -> NoteSignature:
    # One line of a note's signature block, without its newline; the caller
    # has checked it for control characters.
    if not line.startswith(_SIG_PREFIX):
        raise MalformedError("note signature line must start with '— '")
    rest = line[len(_SIG_PREFIX) :]
    name, sep, b64 = rest.partition(" ")
    if not sep:
        raise MalformedError("note signature line must be '— name signature'")
    try:
        check_key_name(name)
    except KeyFormatError as err:
        raise MalformedError(f"note signature line: {err}") from err
    blob = b64decode_strict(b64, "note signature")
    if len(blob) < 5:
        raise MalformedError("note signature is too short")
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def parse_signature_line(line: str) -> NoteSignature:
    """Parse one signature line ``— name base64(key ID ‖ signature)``, newline optional.

    Raises:
        MalformedError: if it is not a well-formed signature line.
    """
    if not isinstance(line, str):
        raise MalformedError("a note signature line must be a str")
    body = line[:-1] if line.endswith("\n") else line
    if any(ch < " " for ch in body):
        raise MalformedError("note signature line has control characters")
    return _parse_signature_line(body)


def format_note(text: str, signatures: Sequence[NoteSignature]) -> str:
    """Return the signed note: ``text``, a blank line, then one line per signature.

    Raises:
        MalformedError: if ``text`` is not valid note text or there is no signature.
    """
    _check_text(text)
    if not signatures:
        raise MalformedError("a signed note needs at least one signature")
    return text + "\n" + "".join(s.line for s in signatures)


def _check_text(text: str) -> None:
    _to_text(text, "note text")
    if not text.endswith("\n"):
        raise MalformedError("note text must end with a newline")


def sign_note(text: str, signers: Sequence[Signer], timestamp: int | None = None) -> str:
    """Sign ``text`` with each signer and return the signed note.

    ``timestamp`` is used by cosignature keys only.

    Raises:
        MalformedError: if ``text`` is not valid note text or there is no signer.
    """
    _check_text(text)
    if not signers:
        raise MalformedError("a signed note needs at least one signer")
    lines = [
        s.signature_line(text, timestamp if s.key_type in COSIGNATURE_TYPES else None)
        for s in signers
    ]
    return text + "\n" + "".join(lines)


def open_note(msg: bytes | str, verifiers: Iterable[Verifier]) -> OpenedNote:
    """Parse a signed note and verify the signatures of the keys in ``verifiers``.

    Lines from unknown keys (name and key ID not both matching) are ignored.
    Duplicate lines from one key count once.

    Raises:
        MalformedError: if the note is malformed (see :func:`parse_note`).
        BadSignatureError: if a known key's signature does not verify.
        UntrustedKeyError: if no known key signed the note.
    """
    note = parse_note(msg)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[VerifiedSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in note.signatures:
        ident = (sig.name, sig.key_id)
        verifier = known.get(ident)
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if ident in seen:
            continue
        seen.add(ident)
        timestamp = verifier.verify(note.text, sig.signature)
        verified.append(VerifiedSignature(verifier, sig, timestamp))
    if not verified:
        raise UntrustedKeyError("note is not signed by any trusted key")
    return OpenedNote(note.text, tuple(verified), tuple(unverified))
