"""Key files: signer keys on disk (mode 0600, optionally encrypted) and ``.pub`` files.

This module owns how keys are kept between runs. A plain key file holds the
signer key string (``PRIVATE+KEY+...``) and a newline. An encrypted key file
holds one line::

    disclosure-ledger-encrypted-key/v1 <N log2> <r> <p> <base64 salt> <base64 nonce> <base64 ct>

where the key is scrypt(passphrase, salt, n=2**N, r, p) and ``ct`` is the
AES-256-GCM encryption of the signer key string, with the header fields before
it as associated data. The ``.pub`` file holds the verifier key string and a
newline. No error message, repr or log line ever contains key material.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from disclosure_ledger._core.checkpoints import parse_decimal
from disclosure_ledger._core.notes import (
    KEY_TYPE_ED25519,
    Signer,
    Verifier,
    b64decode_strict,
    b64encode,
    generate_signer,
    parse_signer,
    parse_verifier,
)
from disclosure_ledger._fsutil import (
    check_output,
    check_private,
    decode_utf8,
    open_output,
    read_limited,
)
from disclosure_ledger.errors import KeyFormatError, MalformedError

__all__ = [
    "ENCRYPTED_HEADER",
    "derive_log_key",
    "keygen",
    "read_passphrase",
    "read_signer_file",
    "read_verifier_file",
    "write_signer_file",
]

ENCRYPTED_HEADER = "disclosure-ledger-encrypted-key/v1"
_SCRYPT_LOG_N = 15
_SCRYPT_R = 8
_SCRYPT_P = 1
_MAX_KEY_FILE = 4096
_MAX_PASSPHRASE_FILE = 4096
_SCRYPT_MAX_MEMORY = 256 << 20


def _kdf(passphrase: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << log_n, r=r, p=p).derive(passphrase.encode())


def _encrypt(secret: str, passphrase: str) -> str:
    salt = os.urandom(16)
    nonce = os.urandom(12)
    header = f"{ENCRYPTED_HEADER} {_SCRYPT_LOG_N} {_SCRYPT_R} {_SCRYPT_P}"
    key = _kdf(passphrase, salt, _SCRYPT_LOG_N, _SCRYPT_R, _SCRYPT_P)
    ad = f"{header} {b64encode(salt)} {b64encode(nonce)}".encode()
    ct = AESGCM(key).encrypt(nonce, secret.encode(), ad)
    return f"{header} {b64encode(salt)} {b64encode(nonce)} {b64encode(ct)}\n"


def _decrypt(line: str, passphrase: str | None, path: Path) -> str:
    fields = line.split(" ")
    if len(fields) != 7:
        raise KeyFormatError(f"{path}: malformed encrypted key file")
    if passphrase is None:
        raise KeyFormatError(f"{path}: the key is encrypted; a passphrase is needed")
    try:
        log_n, r, p = (parse_decimal(x, "scrypt parameter") for x in fields[1:4])
        salt = b64decode_strict(fields[4], "salt")
        nonce = b64decode_strict(fields[5], "nonce")
        ct = b64decode_strict(fields[6], "ciphertext")
    except MalformedError as err:
        raise KeyFormatError(f"{path}: malformed encrypted key file") from err
    # scrypt needs 128 * r * 2**N bytes: a key file must not be able to ask for gigabytes.
    if not (
        10 <= log_n <= 22
        and 1 <= r <= 32
        and 1 <= p <= 16
        and 128 * r << log_n <= _SCRYPT_MAX_MEMORY
        and len(nonce) == 12
    ):
        raise KeyFormatError(f"{path}: unsupported encryption parameters")
    ad = " ".join(fields[:6]).encode()
    try:
        secret = AESGCM(_kdf(passphrase, salt, log_n, r, p)).decrypt(nonce, ct, ad)
    except InvalidTag as err:
        raise KeyFormatError(f"{path}: wrong passphrase, or the key file was altered") from err
    try:
        return secret.decode("ascii")
    except UnicodeDecodeError as err:
        raise KeyFormatError(f"{path}: the decrypted key is malformed") from err


def _read_text(path: str | os.PathLike[str], what: str) -> tuple[Path, str]:
    p = Path(path)
    raw = read_limited(p, _MAX_KEY_FILE, what, KeyFormatError)
    text = decode_utf8(raw, p, what, KeyFormatError)
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise KeyFormatError(f"{p}: a {what} holds exactly one key line")
    return p, lines[0].strip()


def read_signer_file(path: str | os.PathLike[str], passphrase: str | None = None) -> Signer:
    """Read a signer key file, decrypting it with ``passphrase`` if it is encrypted.

    A key file that others may read or write (any group or other bit, as ssh
    checks) is refused, encrypted or not: the message says which ``chmod``
    fixes it. There is no override; the fix is one command.

    Raises:
        KeyFormatError: if the file is missing, unreadable, open to others,
            malformed, or the passphrase is missing or wrong. The message never
            holds key material.
    """
    p, line = _read_text(path, "key file")
    if line.startswith((ENCRYPTED_HEADER + " ", "PRIVATE+KEY+")):
        # Checked once the file is known to hold a private key, so that a .pub
        # file given by mistake is named as such rather than as "open to others".
        check_private(p, "key file", KeyFormatError)
    if line.startswith(ENCRYPTED_HEADER + " "):
        line = _decrypt(line, passphrase, p)
    if line.startswith("PRIVATE+KEY+"):
        try:
            return parse_signer(line)
        except KeyFormatError as err:
            raise KeyFormatError(f"{p}: {err}") from err
    if "+" in line and not line.startswith("PRIVATE"):
        raise KeyFormatError(f"{p}: holds a public verifier key, not a signer key")
    raise KeyFormatError(f"{p}: not a signer key file")


def read_verifier_file(path: str | os.PathLike[str]) -> Verifier:
    """Read a ``.pub`` file (or a verifier key string given as a path to one).

    Raises:
        KeyFormatError: if the file is missing, unreadable or malformed.
    """
    p, line = _read_text(path, "public key file")
    if line.startswith(("PRIVATE+KEY+", ENCRYPTED_HEADER)):
        raise KeyFormatError(f"{p}: holds a private key; give the .pub file instead")
    try:
        return parse_verifier(line)
    except KeyFormatError as err:
        raise KeyFormatError(f"{p}: {err}") from err


_FORCE_HINT = "; refusing to overwrite a key"


def _write_new(
    path: Path, data: str, mode: int, *, force: bool, protect: tuple[Path, ...] = ()
) -> None:
    # A key is never overwritten unless asked: losing a log key loses the log.
    with open_output(
        path,
        force=force,
        protect=protect,
        error=KeyFormatError,
        what="key file",
        force_hint=_FORCE_HINT,
        protected_what="the key file",
        mode=mode,
    ) as fh:
        fh.write(data.encode("utf-8"))


def write_signer_file(
    signer: Signer,
    path: str | os.PathLike[str],
    passphrase: str | None = None,
    *,
    force: bool = False,
) -> None:
    """Write a signer key file with mode 0600, encrypted when ``passphrase`` is given.

    An existing file is replaced (atomically) only with ``force``.

    Raises:
        KeyFormatError: if the file exists (without ``force``) or cannot be written.
    """
    secret = signer.private_key_string()
    data = _encrypt(secret, passphrase) if passphrase else secret + "\n"
    _write_new(Path(path), data, 0o600, force=force)


def keygen(
    name: str,
    prefix: str | os.PathLike[str],
    *,
    passphrase: str | None = None,
    key_type: int = KEY_TYPE_ED25519,
    force: bool = False,
) -> Signer:
    """Generate a key; write ``PREFIX.key`` (0600) and ``PREFIX.pub`` (0644).

    Neither file is overwritten unless ``force``; even then ``PREFIX.pub`` is
    never written over ``PREFIX.key`` (a symbolic or hard link between them).

    Raises:
        KeyFormatError: if the name is not a valid key name, a file exists
            (without ``force``), or a file cannot be written.
    """
    signer = generate_signer(name, key_type)
    base = str(prefix)
    key_path, pub_path = Path(base + ".key"), Path(base + ".pub")
    # Check both before writing either, so a refusal leaves neither file written.
    for p, other in ((key_path, pub_path), (pub_path, key_path)):
        check_output(
            p,
            force=force,
            protect=(other,),
            error=KeyFormatError,
            what="key file",
            force_hint=_FORCE_HINT,
            protected_what="the key file",
        )
    # The public key first: if writing the private key then fails, the old
    # private key (with --force) is still there and its public key is put
    # back, so a failed keygen never loses a key nor leaves a pair that
    # does not match.
    had_pub = pub_path.exists() or pub_path.is_symlink()
    old_pub: str | None = None
    if had_pub:
        with contextlib.suppress(OSError, UnicodeError):
            old_pub = pub_path.read_text(encoding="utf-8")
    _write_new(pub_path, signer.verifier.vkey + "\n", 0o644, force=force, protect=(key_path,))
    try:
        write_signer_file(signer, key_path, passphrase, force=force)
    except KeyFormatError:
        with contextlib.suppress(OSError, KeyFormatError):
            if not had_pub:
                pub_path.unlink()
            elif old_pub is not None:
                _write_new(pub_path, old_pub, 0o644, force=True, protect=(key_path,))
        raise
    return signer


_LOG_KEY_SALT = b"disclosure-ledger/log-key/v1"


def derive_log_key(master: Signer, origin: str) -> Signer:
    """The checkpoint key of the log ``origin``, derived from a master key (HKDF-SHA256).

    The Ed25519 seed is HKDF-SHA256 (RFC 5869) of the master key's seed, with
    the salt ``disclosure-ledger/log-key/v1`` and the origin as info; the key's
    name is the origin. So a vendor keeps one master key file (made by
    ``keygen``, encrypted at rest) for any number of logs, and each owner
    verifies with their own log's public key. A derived key reveals neither
    the master nor any other log's key; the master reveals every log's key.
    See docs/decisions/0009-per-log-keys.md.

    Raises:
        KeyFormatError: if ``master`` is not an Ed25519 key or ``origin`` is not a key name.
    """
    if master.key_type != KEY_TYPE_ED25519:
        raise KeyFormatError("the master key must be an Ed25519 note key (type 0x01)")
    if master.name == origin:
        raise KeyFormatError("the master key's name must not be a log's origin")
    # The private key string is the one public form of the seed: type byte, then seed.
    encoded = master.private_key_string().split("+", 4)[4]  # PRIVATE+KEY+name+hex8+b64
    seed = b64decode_strict(encoded, "master key")[1:]
    derived = HKDF(algorithm=SHA256(), length=32, salt=_LOG_KEY_SALT, info=origin.encode("utf-8"))
    return Signer(origin, derived.derive(seed))


def read_passphrase(file: str | os.PathLike[str] | None, env: str | None) -> str | None:
    """Return a key passphrase from the first line of ``file`` or from variable ``env``.

    Never from a command-line argument, where other users of the machine could
    read it. ``None`` when neither is given.

    Raises:
        KeyFormatError: if both are given, the file cannot be read or is not
            UTF-8, the variable is not set, or the passphrase is empty.
    """
    if file is not None and env is not None:
        raise KeyFormatError("give a passphrase file or a passphrase variable, not both")
    if file is not None:
        path = Path(file)
        # Bounded like every small file: /dev/zero or a wrong file must not fill memory.
        raw = read_limited(path, _MAX_PASSPHRASE_FILE, "passphrase file", KeyFormatError)
        text = decode_utf8(raw, path, "passphrase file", KeyFormatError)
        value = text.split("\n", 1)[0].removesuffix("\r")
        if not value:
            raise KeyFormatError(f"{path}: the passphrase file's first line is empty")
        return value
    if env is not None:
        env_value = os.environ.get(env)
        if env_value is None:
            raise KeyFormatError(f"environment variable {env} is not set")
        if not env_value:
            raise KeyFormatError(f"environment variable {env} is empty")
        return env_value
    return None
