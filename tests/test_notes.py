"""C2SP signed-note keys and notes, against Go's and C2SP's published vectors.

Then strict parsing: every wrong length, type and format is refused with the
right error, and Hypothesis checks round trips and single-bit tampering.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from disclosure_ledger._core import notes
from disclosure_ledger._core.notes import (
    MAX_NOTE_SIGNATURES,
    MAX_NOTE_SIZE,
    NoteSignature,
    Signer,
    Verifier,
)
from disclosure_ledger.errors import (
    BadSignatureError,
    KeyFormatError,
    LedgerError,
    MalformedError,
    UntrustedKeyError,
)

from .conftest import flip_bit, load_json

GO = load_json("golang-mod-sumdb-note/note-vectors.json")
PETER = GO["keys"]["PeterNeumann"]
ENOCH = GO["keys"]["EnochRoot"]
TEXT: str = GO["text"]
C2SP = load_json("c2sp/signed-note-example.json")
FORMATS = load_json("transparency-dev-formats/checkpoint-vectors.json")
KEYPAIRS: dict[str, list[str]] = FORMATS["test_keypairs"]

SEED = bytes(range(32))
PROPS = settings(max_examples=100, deadline=None)


def signer(name: str = "example.com/test", key_type: int = notes.KEY_TYPE_ED25519) -> Signer:
    return Signer(name, hashlib.sha256(name.encode()).digest(), key_type)


# --- Go's golang.org/x/mod/sumdb/note vectors -----------------------------------------


def test_go_signer_and_verifier_agree() -> None:
    s = notes.parse_signer(PETER["skey"])
    v = notes.parse_verifier(PETER["vkey"])
    assert s.verifier == v
    assert v.vkey == PETER["vkey"]
    assert str(v) == PETER["vkey"]
    assert (v.name, v.key_type, f"{v.key_id:08x}") == ("PeterNeumann", 1, "c74f20a3")


def test_go_signature_line_reproduced_exactly() -> None:
    s = notes.parse_signer(PETER["skey"])
    assert s.signature_line(TEXT) == PETER["sig_line"]
    assert notes.sign_note(TEXT, [s]) == TEXT + "\n" + PETER["sig_line"]


def test_go_private_key_string_round_trips() -> None:
    s = notes.parse_signer(PETER["skey"])
    assert s.private_key_string() == PETER["skey"]
    assert notes.parse_signer(s.private_key_string()).verifier == s.verifier


@settings(max_examples=50)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=600))
def test_libsodium_signatures_equal_openssl_ones(seed: bytes, message: bytes) -> None:
    # The signer signs with libsodium; Ed25519 is deterministic, so OpenSSL
    # (through cryptography) must produce the very same bytes, and verify them.
    s = notes.Signer("k", seed)
    openssl = Ed25519PrivateKey.from_private_bytes(seed)
    assert s.sign_raw(message) == openssl.sign(message)
    openssl.public_key().verify(s.sign_raw(message), message)


def test_signer_repr_hides_the_key() -> None:
    s = notes.parse_signer(PETER["skey"])
    seed_b64 = PETER["skey"].rsplit("+", 1)[1]
    for shown in (repr(s), str(s)):
        assert "c74f20a3" in shown
        assert seed_b64 not in shown
        assert "PRIVATE" not in shown


@pytest.mark.parametrize(
    "vkey", GO["bad_vkeys_must_reject"], ids=["trailing-garbage-key", "bad-type-byte"]
)
def test_go_bad_vkeys_rejected(vkey: str) -> None:
    with pytest.raises(KeyFormatError):
        notes.parse_verifier(vkey)


def test_go_note_with_two_signatures_opens_with_either_key() -> None:
    note = TEXT + "\n" + PETER["sig_line"] + ENOCH["sig_line"]
    peter, enoch = notes.parse_verifier(PETER["vkey"]), notes.parse_verifier(ENOCH["vkey"])

    opened = notes.open_note(note, [enoch])
    assert opened.text == TEXT
    assert [v.verifier for v in opened.verified] == [enoch]
    assert [s.name for s in opened.unverified] == ["PeterNeumann"]  # known to Go, not to us
    assert opened.signed_by(enoch) is not None
    assert opened.signed_by(peter) is None

    both = notes.open_note(note.encode(), [peter, enoch])
    assert {v.verifier.name for v in both.verified} == {"PeterNeumann", "EnochRoot"}
    assert both.unverified == ()


def test_go_note_tampered_text_fails() -> None:
    note = TEXT.replace("answer", "Answer") + "\n" + PETER["sig_line"] + ENOCH["sig_line"]
    with pytest.raises(BadSignatureError):
        notes.open_note(note, [notes.parse_verifier(ENOCH["vkey"])])


def test_go_note_with_only_unknown_keys_is_untrusted() -> None:
    note = TEXT + "\n" + PETER["sig_line"]
    with pytest.raises(UntrustedKeyError):
        notes.open_note(note, [notes.parse_verifier(ENOCH["vkey"])])
    with pytest.raises(UntrustedKeyError):
        notes.open_note(note, [])


def test_same_name_other_key_id_is_ignored() -> None:
    # A verifier named PeterNeumann with a different key is a different key.
    impostor = Signer("PeterNeumann", SEED).verifier
    with pytest.raises(UntrustedKeyError):
        notes.open_note(TEXT + "\n" + PETER["sig_line"], [impostor])


# --- the C2SP signed-note example -----------------------------------------------------


def test_c2sp_example_opens_with_its_key() -> None:
    v = notes.parse_verifier(C2SP["vkey"])
    assert f"{v.key_id:08x}" == "530d903a"
    digest = hashlib.sha256(b"example.com/foo\n\x01" + v.public_key).digest()
    assert v.key_id == int.from_bytes(digest[:4], "big")
    assert notes.key_id("example.com/foo", 1, v.public_key) == 0x530D903A
    opened = notes.open_note(C2SP["note"], [v])
    assert opened.text == "This is an example message.\n"
    assert opened.verified[0].timestamp is None


def test_c2sp_example_tampered_fails() -> None:
    v = notes.parse_verifier(C2SP["vkey"])
    with pytest.raises(BadSignatureError):
        notes.open_note(C2SP["note"].replace("example message", "example massage"), [v])


# --- transparency-dev/formats test key pairs ------------------------------------------


@pytest.mark.parametrize("name", sorted(KEYPAIRS))
def test_formats_private_key_matches_its_vkey(name: str) -> None:
    vkey, skey = KEYPAIRS[name]
    s = notes.parse_signer(skey)
    assert s.verifier == notes.parse_verifier(vkey)
    assert s.verifier.vkey == vkey
    assert s.private_key_string() == skey


def test_formats_known_unknown_and_corrupted() -> None:
    known = notes.parse_signer(KEYPAIRS["Known"][1])
    unknown = notes.parse_verifier(KEYPAIRS["Unknown"][0])
    note = notes.sign_note("A note.\n", [known])
    assert notes.open_note(note, [known.verifier]).verified[0].verifier == known.verifier
    with pytest.raises(UntrustedKeyError):
        notes.open_note(note, [unknown])
    line = note.split("\n\n", 1)[1]
    blob = base64.b64decode(line.split(" ")[2])
    corrupted = "A note.\n\n— Known " + base64.b64encode(flip_bit(blob, 100)).decode() + "\n"
    with pytest.raises(BadSignatureError):
        notes.open_note(corrupted, [known.verifier])
    with pytest.raises(BadSignatureError):
        notes.open_note(corrupted, [known.verifier, unknown])


# --- keys: wrong lengths, types and formats -------------------------------------------


@pytest.mark.parametrize(
    "name", ["has+plus", "has space", "tab\tname", "new\nline", "", "nul\x00", "\u3000ideo"]
)
def test_bad_key_names_rejected(name: str) -> None:
    with pytest.raises(KeyFormatError):
        Signer(name, SEED)
    with pytest.raises(KeyFormatError):
        Verifier(name, 1, bytes(32))
    with pytest.raises(KeyFormatError):
        notes.generate_signer(name)


def test_vkey_with_wrong_key_id_rejected() -> None:
    name, key_id, material = PETER["vkey"].split("+", 2)
    wrong = f"{int(key_id, 16) ^ 1:08x}"
    with pytest.raises(KeyFormatError):
        notes.parse_verifier(f"{name}+{wrong}+{material}")
    with pytest.raises(KeyFormatError):
        notes.parse_verifier(f"{name}+{key_id.upper()}+{material}")
    with pytest.raises(KeyFormatError):
        notes.parse_verifier(f"{name}+{key_id[:7]}+{material}")
    # right key, wrong name: the key ID covers the name
    with pytest.raises(KeyFormatError):
        notes.parse_verifier(f"PaulNeumann+{key_id}+{material}")


def test_skey_with_wrong_key_id_rejected() -> None:
    _, _, name, key_id, material = PETER["skey"].split("+", 4)
    with pytest.raises(KeyFormatError):
        notes.parse_signer(f"PRIVATE+KEY+{name}+{int(key_id, 16) ^ 1:08x}+{material}")


@pytest.mark.parametrize("key_type", [0x00, 0x02, 0x03, 0x05, 0xFF])
def test_unknown_key_types_rejected(key_type: int) -> None:
    pub = notes.parse_verifier(PETER["vkey"]).public_key
    kid = notes.key_id("PeterNeumann", key_type, pub)
    material = base64.b64encode(bytes([key_type]) + pub).decode()
    with pytest.raises(KeyFormatError):
        notes.parse_verifier(f"PeterNeumann+{kid:08x}+{material}")
    with pytest.raises(KeyFormatError):
        Verifier("PeterNeumann", key_type, pub)
    with pytest.raises(KeyFormatError):
        Signer("PeterNeumann", SEED, key_type)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_wrong_key_lengths_rejected(length: int) -> None:
    raw = bytes([1]) + b"\x07" * length
    kid = notes.key_id("k", 1, raw[1:])
    with pytest.raises(KeyFormatError):
        notes.parse_verifier(f"k+{kid:08x}+{base64.b64encode(raw).decode()}")
    with pytest.raises(KeyFormatError):
        notes.parse_signer(f"PRIVATE+KEY+k+{kid:08x}+{base64.b64encode(raw).decode()}")
    with pytest.raises(KeyFormatError):
        Verifier("k", 1, b"\x07" * length)
    with pytest.raises(KeyFormatError):
        Signer("k", b"\x07" * length)


@pytest.mark.parametrize(
    "skey",
    [
        "PRIVATE+KEY+onlyname",
        "private+key+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PUBLIC+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz=",
        "PRIVATE+KEY+Peter Neumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        PETER["vkey"],
    ],
    ids=[
        "too-few-fields",
        "lowercase-prefix",
        "wrong-prefix",
        "short-base64",
        "extra-padding",
        "space-in-name",
        "a-vkey",
    ],
)
def test_malformed_signer_keys_rejected(skey: str) -> None:
    with pytest.raises(KeyFormatError):
        notes.parse_signer(skey)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T W",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "x" * 2000,
    ],
    ids=[
        "two-fields",
        "empty-key",
        "extra-padding",
        "urlsafe-alphabet",
        "space-in-base64",
        "empty-name",
        "too-long",
    ],
)
def test_malformed_verifier_keys_rejected(vkey: str) -> None:
    with pytest.raises(KeyFormatError):
        notes.parse_verifier(vkey)


def test_key_strings_must_be_strings() -> None:
    with pytest.raises(KeyFormatError):
        notes.parse_verifier(PETER["vkey"].encode())
    with pytest.raises(KeyFormatError):
        notes.parse_signer(PETER["skey"].encode())


# --- strict base64 --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["QR==", "QQ", "QQ=", "QQ===", "Q Q==", "QQ==\n", "QQ-_", "é", "QUJD\n"]
)
def test_non_canonical_base64_rejected(text: str) -> None:
    with pytest.raises(MalformedError):
        notes.b64decode_strict(text, "test")


def test_canonical_base64_accepted() -> None:
    assert notes.b64decode_strict("QQ==", "test") == b"A"
    assert notes.b64decode_strict("", "test") == b""
    assert notes.b64encode(b"A") == "QQ=="


# --- note structure -------------------------------------------------------------------


def _one_line_note(s: Signer | None = None) -> str:
    return notes.sign_note("hello\n", [s or signer()])


@pytest.mark.parametrize(
    "note",
    [
        "hello\n",  # no blank line, no signature
        "hello\n\n",  # blank line, no signature lines
        "hello\n\n\n",
        "hello",
        "",
        "hello\n\n— example.com/test AAAAAAAA",  # no final newline
        "hello\n\n- example.com/test AAAAAAAAAA==\n",  # ASCII dash, not an em dash
        "hello\n\n—example.com/test AAAAAAAAAA==\n",
        "hello\n\n— example.com/test\n",
        "hello\n\n— example.com/test AAAAAA==\n",  # 4 bytes: a key ID, no signature
        "hello\n\n— example.com/test AAAA\n",
        "hello\n\n— example.com/test AAAAAAAAAA=\n",  # bad padding
        "hello\n\n— example+com AAAAAAAAAA==\n",
        "hello\n\n—  example.com/test AAAAAAAAAA==\n",
        "hello\n\n— example.com/test AAAAAAAAAA== \n",
        "hello\n\n— example.com/test AAAAAAAAAA==\n\n",
    ],
)
def test_malformed_notes_rejected(note: str) -> None:
    with pytest.raises(MalformedError):
        notes.parse_note(note)
    with pytest.raises(MalformedError):
        notes.open_note(note, [signer().verifier])


@pytest.mark.parametrize("char", ["\x00", "\t", "\r", "\x1b", "\x1f"])
@pytest.mark.parametrize("where", ["text", "signature"])
def test_control_characters_rejected(char: str, where: str) -> None:
    note = _one_line_note()
    if where == "text":
        bad = note.replace("hello", f"hel{char}lo")
    else:
        bad = note.replace("— example.com/test ", f"— example.com/test{char} ")
    with pytest.raises(MalformedError):
        notes.parse_note(bad)
    with pytest.raises(MalformedError):
        notes.parse_note(bad.encode())


@pytest.mark.parametrize("raw", [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
def test_invalid_utf8_rejected(raw: bytes) -> None:
    note = _one_line_note().encode().replace(b"hello", b"hel" + raw + b"lo")
    with pytest.raises(MalformedError):
        notes.parse_note(note)
    with pytest.raises(MalformedError):
        notes.open_note(note, [signer().verifier])


def test_lone_surrogate_in_str_rejected() -> None:
    with pytest.raises(MalformedError):
        notes.parse_note(_one_line_note().replace("hello", "hel\ud800lo"))


def test_non_note_types_rejected() -> None:
    for value in (None, 12, ["hello\n"]):
        with pytest.raises(MalformedError):
            notes.parse_note(value)  # type: ignore[arg-type]


def test_note_size_cap() -> None:
    s = signer()
    line = s.signature_line("x\n")
    overhead = len(("\n" + line).encode())
    at_cap = "x" * (MAX_NOTE_SIZE - overhead - 1) + "\n"
    note = notes.sign_note(at_cap, [s])
    assert len(note.encode()) == MAX_NOTE_SIZE
    assert notes.open_note(note, [s.verifier]).text == at_cap
    over = notes.sign_note("y" + at_cap, [s])
    with pytest.raises(MalformedError):
        notes.parse_note(over)
    with pytest.raises(MalformedError):
        notes.parse_note(over.encode())


def test_many_signatures_accepted_and_verified() -> None:
    signers = [signer(f"example.com/s{i}") for i in range(20)]
    note = notes.sign_note("hello\n", signers)
    opened = notes.open_note(note, [s.verifier for s in signers])
    assert len(opened.verified) == 20
    assert len(notes.parse_note(note).signatures) == 20


def test_signature_count_cap() -> None:
    s = signer()
    line = s.signature_line("hello\n")
    others = [NoteSignature(f"other{i}", i, bytes(64)).line for i in range(MAX_NOTE_SIGNATURES)]
    at_cap = "hello\n\n" + line + "".join(others[: MAX_NOTE_SIGNATURES - 1])
    assert len(notes.parse_note(at_cap).signatures) == MAX_NOTE_SIGNATURES
    assert len(notes.open_note(at_cap, [s.verifier]).unverified) == MAX_NOTE_SIGNATURES - 1
    over = "hello\n\n" + line + "".join(others)
    with pytest.raises(MalformedError):
        notes.parse_note(over)


def test_duplicate_signature_lines_count_once() -> None:
    s = signer()
    note = notes.sign_note("hello\n", [s])
    line = note.split("\n\n", 1)[1]
    opened = notes.open_note(note + line, [s.verifier])
    assert len(opened.verified) == 1


def test_wrong_signature_length_for_known_key_is_bad_signature() -> None:
    s = signer()
    for sig in (bytes(63), bytes(65), bytes(1)):
        note = notes.format_note("hello\n", [NoteSignature(s.name, s.key_id, sig)])
        with pytest.raises(BadSignatureError):
            notes.open_note(note, [s.verifier])


def test_format_and_sign_note_refuse_bad_text() -> None:
    sig = NoteSignature("k", 1, bytes(64))
    for text in ("no newline", "ctrl\x01\n", ""):
        with pytest.raises(MalformedError):
            notes.format_note(text, [sig])
        with pytest.raises(MalformedError):
            notes.sign_note(text, [signer()])
    with pytest.raises(MalformedError):
        notes.format_note("hello\n", [])
    with pytest.raises(MalformedError):
        notes.sign_note("hello\n", [])


def test_empty_text_note_round_trips() -> None:
    # The text may be a lone newline; the signature block still follows a blank line.
    s = signer()
    note = notes.sign_note("\n", [s])
    assert notes.open_note(note, [s.verifier]).text == "\n"


def test_unknown_key_type_line_is_carried_but_ignored() -> None:
    s = signer()
    note = notes.sign_note("hello\n", [s]) + NoteSignature("future", 7, b"\x09" + bytes(40)).line
    opened = notes.open_note(note, [s.verifier])
    assert [u.name for u in opened.unverified] == ["future"]


# --- cosignature/v1 keys (type 0x04) --------------------------------------------------


def test_cosignature_key_signs_with_timestamp() -> None:
    w = signer("witness.example.com/w1", notes.KEY_TYPE_COSIGNATURE)
    assert w.verifier.vkey.startswith("witness.example.com/w1+")
    assert notes.parse_verifier(w.verifier.vkey) == w.verifier
    assert notes.parse_signer(w.private_key_string()).verifier == w.verifier
    note = notes.sign_note("hello\n", [w], timestamp=1679315147)
    opened = notes.open_note(note, [w.verifier])
    assert opened.verified[0].timestamp == 1679315147
    sig = opened.verified[0].signature.signature
    assert len(sig) == 72
    assert struct.unpack(">Q", sig[:8])[0] == 1679315147
    pub = w.verifier.public_key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(pub).verify(
        sig[8:], notes.cosignature_message("hello\n", 1679315147)
    )


def test_cosignature_with_changed_timestamp_fails() -> None:
    w = signer("w", notes.KEY_TYPE_COSIGNATURE)
    good = notes.parse_note(notes.sign_note("hello\n", [w], timestamp=100)).signatures[0]
    forged = NoteSignature(good.name, good.key_id, struct.pack(">Q", 101) + good.signature[8:])
    with pytest.raises(BadSignatureError):
        notes.open_note(notes.format_note("hello\n", [forged]), [w.verifier])
    huge = NoteSignature(good.name, good.key_id, struct.pack(">Q", 1 << 63) + good.signature[8:])
    with pytest.raises(BadSignatureError):
        notes.open_note(notes.format_note("hello\n", [huge]), [w.verifier])
    short = NoteSignature(good.name, good.key_id, good.signature[:64])
    with pytest.raises(BadSignatureError):
        notes.open_note(notes.format_note("hello\n", [short]), [w.verifier])


def test_cosignature_timestamp_rules() -> None:
    w = signer("w", notes.KEY_TYPE_COSIGNATURE)
    with pytest.raises(MalformedError):
        w.sign("hello\n")
    for bad in (-1, 1 << 63):
        with pytest.raises(MalformedError):
            w.sign("hello\n", bad)
        with pytest.raises(MalformedError):
            notes.cosignature_message("hello\n", bad)
    with pytest.raises(MalformedError):
        signer().sign("hello\n", 5)
    assert notes.cosignature_message("x\n", 0) == b"cosignature/v1\ntime 0\nx\n"


def test_same_seed_different_key_types_have_different_ids() -> None:
    a = Signer("k", SEED, notes.KEY_TYPE_ED25519)
    b = Signer("k", SEED, notes.KEY_TYPE_COSIGNATURE)
    assert a.verifier.public_key == b.verifier.public_key
    assert a.key_id != b.key_id


# --- Hypothesis: round trips and tampering --------------------------------------------

# Key names: printable, no space and no '+'. Non-ASCII letters are allowed by the format.
key_names = st.text(
    alphabet=st.characters(
        min_codepoint=0x21,
        max_codepoint=0x2FFF,
        exclude_characters="+",
        categories=["L", "N", "P", "S"],
    ),
    min_size=1,
    max_size=40,
)
note_texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"]) | st.just("\n"), max_size=300
).map(lambda t: t + "\n")


@PROPS
@given(key_names, st.binary(min_size=32, max_size=32), st.sampled_from([1, 4]))
def test_key_strings_round_trip(name: str, seed: bytes, key_type: int) -> None:
    s = Signer(name, seed, key_type)
    assert notes.parse_verifier(s.verifier.vkey) == s.verifier
    again = notes.parse_signer(s.private_key_string())
    assert again.verifier == s.verifier
    assert again.private_key_string() == s.private_key_string()


@PROPS
@given(
    note_texts,
    st.lists(
        st.tuples(key_names, st.integers(0, 2**32 - 1), st.binary(min_size=1, max_size=100)),
        min_size=1,
        max_size=MAX_NOTE_SIGNATURES,
    ),
)
def test_format_and_parse_note_round_trip(text: str, sigs: list[tuple[str, int, bytes]]) -> None:
    signatures = [NoteSignature(*s) for s in sigs]
    formatted = notes.format_note(text, signatures)
    parsed = notes.parse_note(formatted)
    assert parsed.text == text
    assert list(parsed.signatures) == signatures
    assert notes.parse_note(formatted.encode()) == parsed


@PROPS
@given(note_texts, st.integers(min_value=0), st.data())
def test_any_bit_flip_of_a_signed_note_fails(text: str, bit: int, data: st.DataObject) -> None:
    s = signer()
    raw = notes.sign_note(text, [s]).encode()
    where = data.draw(st.sampled_from(["anywhere", "signature line"]))
    if where == "signature line":
        start = len(text.encode()) + 1
        bit = start * 8 + bit % ((len(raw) - start) * 8)
    tampered = flip_bit(raw, bit)
    with pytest.raises(LedgerError):
        notes.open_note(tampered, [s.verifier])


def test_key_name_with_lone_surrogate_is_refused() -> None:
    with pytest.raises(KeyFormatError):
        notes.generate_signer("a\ud800")
