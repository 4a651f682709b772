"""Key files: modes, passphrases, tampering and malformed files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from disclosure_ledger import keys as keys_module
from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer
from disclosure_ledger.errors import KeyFormatError
from disclosure_ledger.keys import (
    ENCRYPTED_HEADER,
    keygen,
    read_passphrase,
    read_signer_file,
    read_verifier_file,
    write_signer_file,
)

SIGNER = Signer("example.com/writer", bytes(range(32)))


def test_plain_key_file_round_trips_with_mode_0600(tmp_path: Path) -> None:
    signer = keygen("example.com/log", tmp_path / "log")
    key, pub = tmp_path / "log.key", tmp_path / "log.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert pub.read_text() == signer.verifier.vkey + "\n"
    assert read_signer_file(key).verifier == signer.verifier
    assert read_verifier_file(pub) == signer.verifier
    with pytest.raises(KeyFormatError, match="already exists"):
        keygen("example.com/log", tmp_path / "log")
    witness = keygen("example.com/w", tmp_path / "w", key_type=KEY_TYPE_COSIGNATURE)
    assert read_signer_file(tmp_path / "w.key").key_type == KEY_TYPE_COSIGNATURE
    assert witness.verifier.key_type == KEY_TYPE_COSIGNATURE


def test_encrypted_key_round_trips_and_hides_the_seed(tmp_path: Path) -> None:
    path = tmp_path / "enc.key"
    write_signer_file(SIGNER, path, "correct horse")
    text = path.read_text()
    assert text.startswith(ENCRYPTED_HEADER + " ")
    assert "PRIVATE" not in text
    assert read_signer_file(path, "correct horse").verifier == SIGNER.verifier
    with pytest.raises(KeyFormatError, match="passphrase is needed"):
        read_signer_file(path)
    with pytest.raises(KeyFormatError, match="wrong passphrase") as info:
        read_signer_file(path, "battery staple")
    assert "PRIVATE" not in str(info.value)


def _fields(path: Path) -> list[str]:
    return path.read_text().strip().split(" ")


def _write(path: Path, fields: list[str]) -> None:
    path.write_text(" ".join(fields) + "\n")


def test_tampered_encrypted_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "enc.key"
    write_signer_file(SIGNER, path, "pw")
    fields = _fields(path)
    ct = bytearray(base64.b64decode(fields[6]))
    ct[0] ^= 1
    _write(path, [*fields[:6], base64.b64encode(bytes(ct)).decode()])
    with pytest.raises(KeyFormatError, match="altered"):
        read_signer_file(path, "pw")
    # The parameters are authenticated too: a weaker N is not accepted silently.
    _write(path, [fields[0], "14", *fields[2:]])
    with pytest.raises(KeyFormatError, match="altered"):
        read_signer_file(path, "pw")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f[:6], "malformed"),  # a field missing
        (lambda f: [f[0], "+15", *f[2:]], "malformed"),  # not a canonical decimal
        (lambda f: [f[0], "1_5", *f[2:]], "malformed"),
        (lambda f: [*f[:4], f[4].rstrip("=") + "A", *f[5:]], "malformed"),  # bad base64
        (lambda f: [f[0], "22", "32", *f[3:]], "unsupported"),  # 16 GiB of scrypt memory
        (lambda f: [f[0], "9", *f[2:]], "unsupported"),
    ],
)
def test_malformed_encrypted_key_is_refused(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "enc.key"
    write_signer_file(SIGNER, path, "pw")
    _write(path, change(_fields(path)))
    with pytest.raises(KeyFormatError, match=message):
        read_signer_file(path, "pw")


def test_bad_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFormatError, match="no such"):
        read_signer_file(tmp_path / "missing.key")
    with pytest.raises(KeyFormatError, match="directory"):
        read_verifier_file(tmp_path)
    (tmp_path / "bin.pub").write_bytes(b"\xff\xfe")
    with pytest.raises(KeyFormatError, match="UTF-8"):
        read_verifier_file(tmp_path / "bin.pub")
    (tmp_path / "big.key").write_text("x" * 5000)
    (tmp_path / "big.key").chmod(0o600)
    with pytest.raises(KeyFormatError, match="too large"):
        read_signer_file(tmp_path / "big.key")
    (tmp_path / "two.pub").write_text(SIGNER.verifier.vkey + "\n" + SIGNER.verifier.vkey + "\n")
    with pytest.raises(KeyFormatError, match="exactly one"):
        read_verifier_file(tmp_path / "two.pub")
    (tmp_path / "pub.key").write_text(SIGNER.verifier.vkey + "\n")
    (tmp_path / "pub.key").chmod(0o600)
    with pytest.raises(KeyFormatError, match="public verifier key"):
        read_signer_file(tmp_path / "pub.key")
    (tmp_path / "priv.pub").write_text(SIGNER.private_key_string() + "\n")
    with pytest.raises(KeyFormatError, match="private key") as info:
        read_verifier_file(tmp_path / "priv.pub")
    assert "PRIVATE+KEY" not in str(info.value)


def test_passphrase_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("first line\nsecond\n")
    assert read_passphrase(tmp_path / "pw", None) == "first line"
    monkeypatch.setenv("DL_PW", "from env")
    assert read_passphrase(None, "DL_PW") == "from env"
    assert read_passphrase(None, None) is None
    (tmp_path / "empty").write_text("\n")
    for file, env in ((tmp_path / "pw", "DL_PW"), (tmp_path / "empty", None), (None, "DL_NONE")):
        with pytest.raises(KeyFormatError):
            read_passphrase(file, env)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o700])
@pytest.mark.parametrize("passphrase", [None, "pw"])
def test_a_key_file_open_to_others_is_refused(
    tmp_path: Path, mode: int, passphrase: str | None
) -> None:
    path = tmp_path / "k.key"
    write_signer_file(SIGNER, path, passphrase)
    assert read_signer_file(path, passphrase).verifier == SIGNER.verifier
    path.chmod(mode)
    # 0700: the execute bit is the owner's own; only group and other bits matter.
    if mode & 0o077 == 0:
        assert read_signer_file(path, passphrase).verifier == SIGNER.verifier
        return
    with pytest.raises(KeyFormatError) as info:
        read_signer_file(path, passphrase)
    how = "readable" if mode & 0o044 else "writable"
    assert str(info.value) == (
        f"{path}: the key file is {how} by others (mode {mode:04o}); run chmod 600 {path}"
    )
    path.chmod(0o400)  # read-only for the owner is fine
    assert read_signer_file(path, passphrase).verifier == SIGNER.verifier


def test_a_symlink_to_an_open_key_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.key"
    write_signer_file(SIGNER, target)
    target.chmod(0o644)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(KeyFormatError, match="readable by others"):
        read_signer_file(link)


def test_keygen_refuses_existing_files_and_force_replaces_them(tmp_path: Path) -> None:
    first = keygen("example.com/log", tmp_path / "log")
    key, pub = tmp_path / "log.key", tmp_path / "log.pub"
    before = key.read_bytes(), pub.read_bytes()
    for existing in (key, pub):
        other = pub if existing is key else key
        other.rename(tmp_path / "aside")
        with pytest.raises(KeyFormatError, match="already exists"):
            keygen("example.com/log", tmp_path / "log")
        assert not other.exists()  # nothing written when one of the two is refused
        (tmp_path / "aside").rename(other)
    assert (key.read_bytes(), pub.read_bytes()) == before
    second = keygen("example.com/log", tmp_path / "log", force=True)
    assert second.verifier != first.verifier
    assert read_signer_file(key).verifier == second.verifier
    assert read_verifier_file(pub) == second.verifier
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.key", "log.pub"]


def test_write_signer_file_refuses_an_existing_file_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_text("precious\n")
    with pytest.raises(KeyFormatError, match="already exists"):
        write_signer_file(SIGNER, path)
    assert path.read_text() == "precious\n"
    write_signer_file(SIGNER, path, force=True)
    assert read_signer_file(path).verifier == SIGNER.verifier
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_keygen_never_writes_the_public_key_over_the_private_one(tmp_path: Path, link: str) -> None:
    keygen("example.com/log", tmp_path / "log")
    key, pub = tmp_path / "log.key", tmp_path / "log.pub"
    secret = key.read_bytes()
    pub.unlink()
    if link == "symlink":
        pub.symlink_to(key)
    else:
        os.link(key, pub)
    for force in (False, True):
        with pytest.raises(KeyFormatError, match="is the key file"):
            keygen("example.com/log", tmp_path / "log", force=force)
        assert key.read_bytes() == secret


def test_keygen_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "log.key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyFormatError, match="already exists"):
        keygen("example.com/log", tmp_path / "log")
    assert not (tmp_path / "elsewhere").exists()
    assert not (tmp_path / "log.pub").exists()


def test_a_passphrase_file_is_read_in_bounded_memory(tmp_path: Path) -> None:
    with pytest.raises(KeyFormatError, match="too large to be a passphrase file"):
        read_passphrase("/dev/zero", None)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000 + b"\n")
    with pytest.raises(KeyFormatError, match="too large to be a passphrase file"):
        read_passphrase(big, None)
    with pytest.raises(KeyFormatError, match="is a directory"):
        read_passphrase(tmp_path, None)
    with pytest.raises(KeyFormatError, match="no such passphrase file"):
        read_passphrase(tmp_path / "missing", None)
    (tmp_path / "bin").write_bytes(b"\xff\n")
    with pytest.raises(KeyFormatError, match="not valid UTF-8"):
        read_passphrase(tmp_path / "bin", None)


def test_a_forced_keygen_that_fails_keeps_the_old_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = keygen("example.com/log", tmp_path / "log")
    key_before = (tmp_path / "log.key").read_text()
    pub_before = (tmp_path / "log.pub").read_text()

    def fail(*_args: object, **_kwargs: object) -> None:
        raise KeyFormatError("log.key: cannot write")

    monkeypatch.setattr(keys_module, "write_signer_file", fail)
    with pytest.raises(KeyFormatError, match="cannot write"):
        keygen("example.com/log", tmp_path / "log", force=True)
    assert (tmp_path / "log.key").read_text() == key_before
    assert (tmp_path / "log.pub").read_text() == pub_before == first.verifier.vkey + "\n"
    # Without an old pair, a failed keygen leaves no file behind.
    with pytest.raises(KeyFormatError, match="cannot write"):
        keygen("example.com/other", tmp_path / "other")
    assert not (tmp_path / "other.pub").exists()
    assert not (tmp_path / "other.key").exists()


def test_a_forced_keygen_whose_public_key_fails_keeps_the_old_private_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keygen("example.com/log", tmp_path / "log")
    key_before = (tmp_path / "log.key").read_text()
    pub_before = (tmp_path / "log.pub").read_text()
    real = keys_module._write_new

    def fail_pub(path: Path, *args: object, **kwargs: object) -> None:
        if path.suffix == ".pub":
            raise KeyFormatError("log.pub: cannot write")
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(keys_module, "_write_new", fail_pub)
    with pytest.raises(KeyFormatError, match="cannot write"):
        keygen("example.com/log", tmp_path / "log", force=True)
    assert (tmp_path / "log.key").read_text() == key_before
    assert (tmp_path / "log.pub").read_text() == pub_before
