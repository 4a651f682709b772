"""C2SP checkpoints, cosignatures, tlog-proof receipts and tlog-witness requests.

Real signed checkpoints (tessera's test log, sum.golang.org, Rekor v2 staging)
open with their published keys; the C2SP examples parse and re-format byte for
byte; strict parsing refuses every non-canonical form; Hypothesis checks the
format/parse round trips and that single-bit tampering is caught.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from disclosure_ledger._core import checkpoints, merkle, notes
from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    Receipt,
    WitnessRequest,
    format_checkpoint,
    format_receipt,
    format_witness_request,
    open_checkpoint,
    parse_checkpoint,
    parse_receipt,
    parse_witness_request,
    sign_checkpoint,
)
from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer
from disclosure_ledger.errors import (
    BadSignatureError,
    LedgerError,
    MalformedError,
    RootMismatchError,
    UntrustedKeyError,
)

from .conftest import flip_bit, load_json, vectors_dir

PROPS = settings(max_examples=100, deadline=None)

LOG = vectors_dir() / "tessera-testdata-log" / "testdata" / "log"
TESSERA_VKEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"
TESSERA_SKEY = (
    "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg"
)
GO = load_json("golang-mod-sumdb-note/note-vectors.json")
C2SP = load_json("c2sp/format-examples.json")
FORMATS = load_json("transparency-dev-formats/checkpoint-vectors.json")
SIGSTORE = vectors_dir() / "sigstore-python"

ROOT = merkle.leaf_hash(b"root")


def signer(name: str = "example.com/log", key_type: int = notes.KEY_TYPE_ED25519) -> Signer:
    return Signer(name, hashlib.sha256(name.encode()).digest(), key_type)


# --- tessera's test log ---------------------------------------------------------------

TESSERA_FILES = [f"checkpoint.{n}" for n in range(16)] + ["checkpoint"]


@pytest.mark.parametrize("name", TESSERA_FILES)
def test_tessera_checkpoint_opens_with_log_key(name: str) -> None:
    raw = (LOG / name).read_bytes()
    signed = open_checkpoint(raw, notes.parse_verifier(TESSERA_VKEY))
    assert signed.checkpoint.origin == "example.com/log/testdata"
    assert signed.checkpoint.size == (15 if name == "checkpoint" else int(name.split(".")[1]))
    assert signed.note == raw.decode()
    assert signed.cosignatures == ()


@pytest.mark.parametrize("name", TESSERA_FILES)
def test_tessera_checkpoint_resigned_byte_for_byte(name: str) -> None:
    raw = (LOG / name).read_text(encoding="utf-8")
    body = raw.split("\n\n", 1)[0] + "\n"
    cp = parse_checkpoint(body)
    assert format_checkpoint(cp) == body
    assert sign_checkpoint(cp, notes.parse_signer(TESSERA_SKEY)) == raw


def test_tessera_signer_matches_verifier() -> None:
    assert notes.parse_signer(TESSERA_SKEY).verifier == notes.parse_verifier(TESSERA_VKEY)


@pytest.mark.parametrize("n", [0, 7, 15])
def test_tessera_checkpoint_tampered_fails(n: int) -> None:
    raw = (LOG / f"checkpoint.{n}").read_text(encoding="utf-8")
    lines = raw.split("\n")
    lines[1] = str(n + 1)
    with pytest.raises(BadSignatureError):
        open_checkpoint("\n".join(lines), notes.parse_verifier(TESSERA_VKEY))
    with pytest.raises(UntrustedKeyError):
        open_checkpoint(raw, signer("example.com/log/testdata").verifier)


# --- Go's sumdb tree note -------------------------------------------------------------


def test_go_tree_note_golden_text() -> None:
    golden = GO["tlog_format_tree_golden"]
    record_hash = base64.b64decode(golden["record_hash_b64"])
    # In Go's test the tree's hash is RecordHash("hello world"), an RFC 6962 leaf hash.
    assert merkle.leaf_hash(golden["record"].encode()) == record_hash
    cp = Checkpoint("go.sum database tree", golden["tree_size"], record_hash)
    assert format_checkpoint(cp) == golden["note_text"]
    assert cp.body == golden["note_text"]
    parsed = parse_checkpoint(golden["note_text"])
    assert parsed == cp
    assert format_checkpoint(parsed) == golden["note_text"]


# --- transparency-dev/formats: a real sum.golang.org checkpoint -----------------------


def test_sum_golang_org_checkpoint_opens() -> None:
    real = FORMATS["real_sum_golang_org_checkpoint"]
    key = notes.parse_verifier(real["vkey"])
    signed = open_checkpoint(real["note"], key, origin=real["origin"])
    assert signed.checkpoint.origin == "go.sum database tree"
    assert signed.checkpoint.size == 6476701
    assert signed.log_key == key


def test_sum_golang_org_checkpoint_origin_is_enforced() -> None:
    real = FORMATS["real_sum_golang_org_checkpoint"]
    key = notes.parse_verifier(real["vkey"])
    with pytest.raises(UntrustedKeyError):
        open_checkpoint(real["note"], key)  # origin defaults to the key name
    with pytest.raises(UntrustedKeyError):
        open_checkpoint(real["note"], key, origin="go.sum database tree2")


def test_sum_golang_org_checkpoint_tampered_fails() -> None:
    real = FORMATS["real_sum_golang_org_checkpoint"]
    key = notes.parse_verifier(real["vkey"])
    with pytest.raises(BadSignatureError):
        open_checkpoint(real["note"].replace("6476701", "6476702"), key, origin=real["origin"])


# --- C2SP format examples -------------------------------------------------------------


def test_c2sp_cosigned_checkpoint_parses() -> None:
    note = notes.parse_note(C2SP["checkpoint_with_cosignature"])
    cp = parse_checkpoint(note.text)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    log_sig, cosig = note.signatures
    assert (log_sig.name, f"{log_sig.key_id:08x}") == ("example.com/behind-the-sofa", "033de0ae")
    assert len(log_sig.signature) == 64
    want = C2SP["cosignature_parsed"]
    assert cosig.name == "witness.example.com/w1"
    assert f"{cosig.key_id:08x}" == want["key_id"] == "8d66cf3f"
    assert len(cosig.signature) == 72 == 8 + want["ed25519_sig_len"]
    assert 4 + len(cosig.signature) == want["total_decoded_len"]
    assert int.from_bytes(cosig.signature[:8], "big") == want["timestamp"] == 1679315147
    assert note.signatures[1].line + "" in C2SP["checkpoint_with_cosignature"]


def test_c2sp_cosignature_message_bytes() -> None:
    note = notes.parse_note(C2SP["checkpoint_with_cosignature"])
    want = C2SP["ed25519_cosigned_message"].encode()
    assert notes.cosignature_message(note.text, 1679315147) == want


def test_c2sp_witness_request_round_trips() -> None:
    body = C2SP["witness_add_checkpoint_request_body"]
    request = parse_witness_request(body)
    assert request.old_size == 20852014
    assert len(request.proof) == 4
    assert all(len(h) == 32 for h in request.proof)
    assert parse_checkpoint(notes.parse_note(request.checkpoint).text).size == 20852163
    assert format_witness_request(request) == body
    assert parse_witness_request(body.encode()) == request


def test_c2sp_tlog_proof_with_elided_signature_is_malformed() -> None:
    # "hI2DJw[...]1roloI=" is not base64: the whole receipt must be refused.
    with pytest.raises(MalformedError):
        parse_receipt(C2SP["tlog_proof_example_sigs_elided"])


def test_c2sp_tlog_proof_header_parses() -> None:
    text = C2SP["tlog_proof_example_sigs_elided"]
    header, _, elided = text.partition("\n\n")
    body = elided.split("\n\n", 1)[0] + "\n"
    valid_note = sign_checkpoint(parse_checkpoint(body), signer("example.com/fancylog"))
    receipt = parse_receipt(header + "\n\n" + valid_note)
    assert receipt.index == 73894
    assert len(receipt.proof) == 5
    extra_b64 = "YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ"
    assert receipt.extra == base64.b64decode(extra_b64)
    assert receipt.extra is not None
    assert receipt.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert receipt.proof[0] == base64.b64decode("gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=")
    assert format_receipt(receipt) == header + "\n\n" + valid_note


# --- sigstore Rekor v2 (staging) ------------------------------------------------------


def _rekor() -> tuple[dict[str, Any], bytes]:
    bundle = load_json("sigstore-python/staging-rekor-v2.txt.sigstore.json")
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    trusted = load_json(
        "sigstore-python/"
        "ed6a9cf4e7c2e3297a4b5974fce0d17132f03c63512029d7aa3a402b43acab49.trusted_root.json"
    )
    der = base64.b64decode(trusted["tlogs"][1]["publicKey"]["rawBytes"])
    public = load_der_public_key(der)
    assert isinstance(public, Ed25519PublicKey)
    return entry, public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_rekor_v2_checkpoint_signature() -> None:
    entry, pub = _rekor()
    envelope = entry["inclusionProof"]["checkpoint"]["envelope"]
    name = "log2025-alpha1.rekor.sigstage.dev"
    key = notes.Verifier(name, notes.KEY_TYPE_ED25519, pub)
    line = notes.parse_note(envelope).signatures[0]
    # Rekor v2 uses the signed-note key-ID rule for Ed25519 keys (it happens to equal
    # the log ID's first bytes here), so the ordinary open_checkpoint path applies.
    assert line.name == name
    assert line.key_id == key.key_id == 0xF30D5A99
    signed = open_checkpoint(envelope, key)
    assert signed.checkpoint.size == 646
    # And independently of the key-ID rule: the raw Ed25519 signature over the text.
    note = notes.parse_note(envelope)
    Ed25519PublicKey.from_public_bytes(pub).verify(note.signatures[0].signature, note.text.encode())
    with pytest.raises(BadSignatureError):
        open_checkpoint(envelope.replace("\n646\n", "\n647\n"), key)


def test_rekor_v2_inclusion_proof() -> None:
    entry, _ = _rekor()
    proof = entry["inclusionProof"]
    body = base64.b64decode(entry["canonicalizedBody"])
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    root = base64.b64decode(proof["rootHash"])
    index, size = int(proof["logIndex"]), int(proof["treeSize"])
    assert (index, size, len(hashes)) == (645, 646, 4)
    merkle.verify_inclusion(merkle.leaf_hash(body), index, size, hashes, root)
    cp = parse_checkpoint(notes.parse_note(proof["checkpoint"]["envelope"]).text)
    assert (cp.size, cp.root) == (size, root)
    with pytest.raises(RootMismatchError):
        merkle.verify_inclusion(merkle.leaf_hash(body + b" "), index, size, hashes, root)


# --- checkpoint parsing: strictness ---------------------------------------------------


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def non_canonical(b64: str) -> str:
    """Set an unused low bit of the last data character: same bytes, not canonical."""
    data = b64.rstrip("=")
    assert len(b64) - len(data) in (1, 2), "needs padding to have spare bits"
    last = B64[B64.index(data[-1]) | 1]
    return data[:-1] + last + b64[len(data) :]


def _body(size: str = "5", root: str | None = None, origin: str = "example.com/log") -> str:
    return f"{origin}\n{size}\n{root if root is not None else base64.b64encode(ROOT).decode()}\n"


@pytest.mark.parametrize(
    "size",
    [
        "01",
        "00",
        "+1",
        "-1",
        " 1",
        "1 ",
        "",
        "1e3",
        "0x1",
        "1_000",
        "\u0663",
        "１",
        str(2**63),
        "9" * 20,
    ],
)
def test_non_canonical_sizes_rejected(size: str) -> None:
    with pytest.raises(MalformedError):
        parse_checkpoint(_body(size=size))
    with pytest.raises(MalformedError):
        checkpoints.parse_decimal(size, "size")


def test_canonical_sizes_accepted() -> None:
    assert parse_checkpoint(_body(size="0")).size == 0
    assert parse_checkpoint(_body(size=str(2**63 - 1))).size == 2**63 - 1


@pytest.mark.parametrize(
    "root",
    [
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        "",
        base64.b64encode(ROOT).decode().rstrip("="),
        non_canonical(base64.b64encode(ROOT).decode()),
        base64.urlsafe_b64encode(b"\xff" * 32).decode(),
        " " + base64.b64encode(ROOT).decode(),
    ],
    ids=["31-bytes", "33-bytes", "empty", "unpadded", "padding-bits", "urlsafe", "leading-space"],
)
def test_bad_roots_rejected(root: str) -> None:
    with pytest.raises(MalformedError):
        parse_checkpoint(_body(root=root))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com/log\n",
        "example.com/log\n5\n",
        _body().rstrip("\n"),
        "\n" + _body()[len("example.com/log\n") :],
        _body() + "\n",  # an empty extension line
    ],
    ids=["empty", "origin-only", "no-root", "no-final-newline", "empty-origin", "empty-extension"],
)
def test_incomplete_checkpoints_rejected(text: str) -> None:
    with pytest.raises(MalformedError):
        parse_checkpoint(text)


def test_checkpoint_parse_refuses_non_text_and_huge_input() -> None:
    with pytest.raises(MalformedError):
        parse_checkpoint(_body().encode())  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        parse_checkpoint(_body() + "x" * notes.MAX_NOTE_SIZE + "\n")
    with pytest.raises(MalformedError):
        parse_checkpoint(_body(origin="a\x01b"))


def test_checkpoint_extensions_round_trip() -> None:
    text = _body() + "ext one\n— not a signature, just an extension\n"
    cp = parse_checkpoint(text)
    assert cp.extensions == ("ext one", "— not a signature, just an extension")
    assert format_checkpoint(cp) == text


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"root": bytes(31)}, "short root"),
        ({"root": bytes(33)}, "long root"),
        ({"root": "00" * 32}, "root as str"),
        ({"size": -1}, "negative size"),
        ({"size": 2**63}, "size over int64"),
        ({"size": True}, "bool size"),
        ({"size": 1.0}, "float size"),
        ({"origin": ""}, "empty origin"),
        ({"origin": "a\nb"}, "two-line origin"),
        ({"origin": "a\tb"}, "control char in origin"),
        ({"extensions": ("",)}, "empty extension"),
        ({"extensions": ("a\nb",)}, "two-line extension"),
        ({"extensions": ("a\x00",)}, "control char in extension"),
    ],
)
def test_bad_checkpoint_values_rejected(kwargs: dict[str, object], why: str) -> None:
    args: dict[str, object] = {"origin": "example.com/log", "size": 1, "root": ROOT, **kwargs}
    with pytest.raises(MalformedError):
        Checkpoint(**args)  # type: ignore[arg-type]


# --- signing, opening and cosigning ---------------------------------------------------


def test_sign_and_open_checkpoint() -> None:
    log = signer()
    cp = Checkpoint("example.com/log", 42, ROOT, ("ext",))
    note = sign_checkpoint(cp, log)
    signed = open_checkpoint(note, log.verifier)
    assert signed.checkpoint == cp
    assert signed.note == note
    with pytest.raises(UntrustedKeyError):
        open_checkpoint(note, signer("example.com/other").verifier)
    with pytest.raises(UntrustedKeyError):
        open_checkpoint(sign_checkpoint(cp, signer("example.com/log2")), log.verifier)
    with pytest.raises(BadSignatureError):
        open_checkpoint(note.replace("\n42\n", "\n43\n"), log.verifier)


def test_checkpoint_signed_only_by_a_witness_is_untrusted() -> None:
    log, witness = signer(), signer("w", KEY_TYPE_COSIGNATURE)
    cp = Checkpoint("example.com/log", 1, ROOT)
    only_witness = format_checkpoint(cp) + "\n" + checkpoints.cosign_checkpoint(cp, witness, 7)
    with pytest.raises(UntrustedKeyError):
        open_checkpoint(only_witness, log.verifier, [witness.verifier])


def test_cosigned_checkpoint() -> None:
    log = signer()
    w1, w2 = signer("w1", KEY_TYPE_COSIGNATURE), signer("w2", KEY_TYPE_COSIGNATURE)
    cp = Checkpoint("example.com/log", 9, ROOT)
    note = checkpoints.add_signature_lines(
        sign_checkpoint(cp, log),
        [checkpoints.cosign_checkpoint(cp, w1, 1000), checkpoints.cosign_checkpoint(cp, w2, 2000)],
    )
    # adding a line it already has is a no-op
    assert (
        checkpoints.add_signature_lines(note, [checkpoints.cosign_checkpoint(cp, w1, 1000)]) == note
    )
    signed = open_checkpoint(note, log.verifier, [w1.verifier, w2.verifier])
    assert {(c.witness.name, c.timestamp) for c in signed.cosignatures} == {
        ("w1", 1000),
        ("w2", 2000),
    }
    assert [c.timestamp for c in signed.cosigned_by([w2.verifier])] == [2000]
    # a witness the caller does not trust is ignored, not an error
    assert open_checkpoint(note, log.verifier, [w1.verifier]).cosigned_by([w2.verifier]) == []
    # an Ed25519 key passed as a witness is not a cosigner
    assert open_checkpoint(note, log.verifier, [signer("w1").verifier]).cosignatures == ()


def test_forged_cosignature_fails() -> None:
    log, w = signer(), signer("w1", KEY_TYPE_COSIGNATURE)
    cp = Checkpoint("example.com/log", 9, ROOT)
    other = Checkpoint("example.com/log", 10, ROOT)
    note = sign_checkpoint(cp, log) + checkpoints.cosign_checkpoint(other, w, 5)
    assert open_checkpoint(note, log.verifier).cosignatures == ()
    with pytest.raises(BadSignatureError):
        open_checkpoint(note, log.verifier, [w.verifier])


def test_key_type_misuse_refused() -> None:
    cp = Checkpoint("w", 1, ROOT)
    with pytest.raises(MalformedError):
        sign_checkpoint(cp, signer("w", KEY_TYPE_COSIGNATURE))
    with pytest.raises(MalformedError):
        checkpoints.cosign_checkpoint(cp, signer("w"), 1)
    with pytest.raises(MalformedError):
        checkpoints.cosign_checkpoint(cp, signer("w", KEY_TYPE_COSIGNATURE), -1)


def test_add_signature_lines_refuses_malformed_lines() -> None:
    note = sign_checkpoint(Checkpoint("example.com/log", 1, ROOT), signer())
    good = note.rsplit("\n\n", 1)[1].rstrip("\n")  # a well-formed line
    for bad in (
        "not a signature",
        "— name !!!",
        "— a+b AAAAAAAAAA==",
        good + "\n" + good,  # two lines passed as one
        good.replace(" ", "\t", 1),
        good + "\x00",
    ):
        with pytest.raises(MalformedError):
            checkpoints.add_signature_lines(note, [bad])
    many = [f"— w{i} " + good.rsplit(" ", 1)[1] for i in range(notes.MAX_NOTE_SIGNATURES)]
    with pytest.raises(MalformedError, match="more than"):
        checkpoints.add_signature_lines(note, many)


# --- receipts (tlog-proof) ------------------------------------------------------------


def _log_with(n: int) -> tuple[list[bytes], merkle.MemoryHashStore]:
    leaves = [f"record {i}".encode() for i in range(n)]
    store = merkle.MemoryHashStore()
    store.extend(merkle.leaf_hash(x) for x in leaves)
    return leaves, store


def _receipt(index: int = 3, n: int = 7, extra: bool = True) -> tuple[Receipt, Signer, list[bytes]]:
    log = signer()
    leaves, store = _log_with(n)
    note = sign_checkpoint(Checkpoint("example.com/log", n, merkle.tree_root(n, store)), log)
    proof = tuple(merkle.prove_inclusion(index, n, store))
    return Receipt(index, proof, note, leaves[index] if extra else None), log, leaves


def test_receipt_round_trip_and_verify() -> None:
    receipt, log, leaves = _receipt()
    text = format_receipt(receipt)
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert parse_receipt(text) == receipt
    assert parse_receipt(text.encode()) == receipt
    verified = checkpoints.verify_receipt(parse_receipt(text), log.verifier)
    assert (verified.index, verified.leaf) == (3, leaves[3])
    assert verified.leaf_hash == merkle.leaf_hash(leaves[3])
    checkpoints.verify_receipt(receipt, log.verifier, leaf=leaves[3])
    checkpoints.verify_receipt(
        Receipt(3, receipt.proof, receipt.checkpoint), log.verifier, leaf_hash_=verified.leaf_hash
    )


def test_receipt_without_extra_round_trips() -> None:
    receipt, log, leaves = _receipt(extra=False)
    text = format_receipt(receipt)
    assert "extra" not in text
    assert parse_receipt(text) == receipt
    with pytest.raises(MalformedError):
        checkpoints.verify_receipt(receipt, log.verifier)  # no leaf to check
    checkpoints.verify_receipt(receipt, log.verifier, leaf=leaves[3])


def test_receipt_for_the_wrong_leaf_fails() -> None:
    receipt, log, leaves = _receipt()
    with pytest.raises(RootMismatchError) as info:
        checkpoints.verify_receipt(receipt, log.verifier, leaf=leaves[4])
    assert info.value.expected != info.value.computed
    forged = Receipt(3, receipt.proof, receipt.checkpoint, b"forged")
    with pytest.raises(RootMismatchError):
        checkpoints.verify_receipt(forged, log.verifier)
    with pytest.raises(MalformedError):
        checkpoints.verify_receipt(
            receipt, log.verifier, leaf=leaves[3], leaf_hash_=merkle.leaf_hash(b"other")
        )
    with pytest.raises(LedgerError):
        checkpoints.verify_receipt(
            Receipt(4, receipt.proof, receipt.checkpoint, leaves[3]), log.verifier
        )
    with pytest.raises(UntrustedKeyError):
        checkpoints.verify_receipt(receipt, signer("example.com/other").verifier)


RECEIPT_HEAD = "c2sp.org/tlog-proof@v1\n"
H = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "head",
    [
        "c2sp.org/tlog-proof@v2\nindex 1\n",
        "index 1\n",
        RECEIPT_HEAD,
        RECEIPT_HEAD + "index 01\n",
        RECEIPT_HEAD + "index -1\n",
        RECEIPT_HEAD + "index +1\n",
        RECEIPT_HEAD + "index  1\n",
        RECEIPT_HEAD + f"index {2**63}\n",
        RECEIPT_HEAD + "index 1\n" + base64.b64encode(bytes(31)).decode() + "\n",
        RECEIPT_HEAD + "index 1\n" + base64.b64encode(bytes(33)).decode() + "\n",
        RECEIPT_HEAD + "index 1\n" + non_canonical(H) + "\n",
        RECEIPT_HEAD + "index 1\n" + H + " \n",
        RECEIPT_HEAD + "extra !!\nindex 1\n",
        RECEIPT_HEAD + "extra QR==\nindex 1\n",
        RECEIPT_HEAD + "index 1\nextra QQ==\n",
        RECEIPT_HEAD + "index 1\n" + (H + "\n") * 65,
    ],
    ids=[
        "wrong-version",
        "no-header",
        "no-index",
        "index-leading-zero",
        "index-negative",
        "index-plus",
        "index-space",
        "index-over-int64",
        "hash-31-bytes",
        "hash-33-bytes",
        "hash-non-canonical",
        "hash-trailing-space",
        "extra-not-base64",
        "extra-non-canonical",
        "extra-after-index",
        "too-many-hashes",
    ],
)
def test_malformed_receipts_rejected(head: str) -> None:
    note = sign_checkpoint(Checkpoint("example.com/log", 1, ROOT), signer())
    with pytest.raises(MalformedError):
        parse_receipt(head + "\n" + note)


def test_receipt_structure_rejected() -> None:
    receipt, _, _ = _receipt()
    text = format_receipt(receipt)
    with pytest.raises(MalformedError):
        parse_receipt(text.replace("\n\n", "\n", 1))  # no blank line before the checkpoint
    with pytest.raises(MalformedError):
        parse_receipt(text.split("\n\n", 1)[0] + "\n\n")  # no checkpoint
    with pytest.raises(MalformedError):
        parse_receipt(text.encode().replace(b"c2sp", b"c2\xffp"))
    with pytest.raises(MalformedError):
        parse_receipt(text + "trailing\n")
    with pytest.raises(MalformedError):
        parse_receipt(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"index": -1},
        {"index": 2**63},
        {"proof": (bytes(31),)},
        {"proof": (bytes(33),)},
        {"checkpoint": "not a note\n"},
    ],
    ids=["negative-index", "index-over-int64", "hash-31", "hash-33", "bad-note"],
)
def test_bad_receipt_values_rejected(kwargs: dict[str, object]) -> None:
    receipt, _, _ = _receipt()
    args: dict[str, object] = {
        "index": receipt.index,
        "proof": receipt.proof,
        "checkpoint": receipt.checkpoint,
        **kwargs,
    }
    with pytest.raises(MalformedError):
        Receipt(**args)  # type: ignore[arg-type]


# --- witness requests (tlog-witness add-checkpoint) -----------------------------------


def test_witness_request_round_trip_and_proof_verifies() -> None:
    log = signer()
    _, store = _log_with(9)
    old_root, new_root = merkle.tree_root(4, store), merkle.tree_root(9, store)
    note = sign_checkpoint(Checkpoint("example.com/log", 9, new_root), log)
    request = WitnessRequest(4, tuple(merkle.prove_consistency(4, 9, store)), note)
    text = format_witness_request(request)
    parsed = parse_witness_request(text)
    assert parsed == request
    cp = open_checkpoint(parsed.checkpoint, log.verifier).checkpoint
    merkle.verify_consistency(parsed.old_size, cp.size, old_root, cp.root, parsed.proof)
    with pytest.raises(RootMismatchError):
        merkle.verify_consistency(parsed.old_size, cp.size, new_root, cp.root, parsed.proof)
    first = WitnessRequest(0, (), note)
    assert format_witness_request(first).startswith("old 0\n\n")
    assert parse_witness_request(format_witness_request(first)) == first


@pytest.mark.parametrize(
    "head",
    [
        "",
        "old\n",
        "old 01\n",
        "old -1\n",
        "old +1\n",
        "Old 1\n",
        "old 1 \n",
        f"old {2**63}\n",
        "old 1\n" + base64.b64encode(bytes(31)).decode() + "\n",
        "old 1\n" + base64.b64encode(bytes(33)).decode() + "\n",
        "old 1\n" + non_canonical(H) + "\n",
        "old 1\n" + (H + "\n") * 65,
    ],
    ids=[
        "empty",
        "no-number",
        "leading-zero",
        "negative",
        "plus",
        "capitalised",
        "trailing-space",
        "over-int64",
        "hash-31",
        "hash-33",
        "hash-non-canonical",
        "too-many-hashes",
    ],
)
def test_malformed_witness_requests_rejected(head: str) -> None:
    note = sign_checkpoint(Checkpoint("example.com/log", 1, ROOT), signer())
    with pytest.raises(MalformedError):
        parse_witness_request(head + "\n" + note)


def test_witness_request_structure_rejected() -> None:
    body = C2SP["witness_add_checkpoint_request_body"]
    with pytest.raises(MalformedError):
        parse_witness_request(body.replace("\n\n", "\n", 1))
    with pytest.raises(MalformedError):
        parse_witness_request(body.encode().replace(b"old", b"\xffld"))
    with pytest.raises(MalformedError):
        WitnessRequest(-1, (), sign_checkpoint(Checkpoint("a", 1, ROOT), signer("a")))
    with pytest.raises(MalformedError):
        WitnessRequest(1, (bytes(31),), sign_checkpoint(Checkpoint("a", 1, ROOT), signer("a")))


# --- Hypothesis: round trips and tampering --------------------------------------------

line_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=40
)
hashes32 = st.binary(min_size=32, max_size=32)
checkpoints_st = st.builds(
    Checkpoint,
    origin=line_text,
    size=st.integers(min_value=0, max_value=2**63 - 1),
    root=hashes32,
    extensions=st.lists(line_text, max_size=4).map(tuple),
)
LOG_SIGNER = signer("example.com/prop")
WITNESS = signer("example.com/witness", KEY_TYPE_COSIGNATURE)


@PROPS
@given(checkpoints_st)
def test_checkpoint_round_trip(cp: Checkpoint) -> None:
    assert parse_checkpoint(format_checkpoint(cp)) == cp


@PROPS
@given(
    st.integers(min_value=0, max_value=2**63 - 1),
    st.lists(hashes32, max_size=64).map(tuple),
    st.none() | st.binary(max_size=200),
    checkpoints_st,
)
def test_receipt_round_trip(
    index: int, proof: tuple[bytes, ...], extra: bytes | None, cp: Checkpoint
) -> None:
    receipt = Receipt(index, proof, sign_checkpoint(cp, LOG_SIGNER), extra)
    assert parse_receipt(format_receipt(receipt)) == receipt


@PROPS
@given(
    st.integers(min_value=0, max_value=2**63 - 1), st.lists(hashes32, max_size=64), checkpoints_st
)
def test_witness_request_round_trip(old: int, proof: list[bytes], cp: Checkpoint) -> None:
    request = WitnessRequest(old, tuple(proof), sign_checkpoint(cp, LOG_SIGNER))
    assert parse_witness_request(format_witness_request(request)) == request


@PROPS
@given(
    checkpoints_st.map(lambda c: Checkpoint("example.com/prop", c.size, c.root, c.extensions)),
    st.integers(min_value=0),
)
def test_any_bit_flip_of_a_signed_checkpoint_fails(cp: Checkpoint, bit: int) -> None:
    raw = sign_checkpoint(cp, LOG_SIGNER).encode()
    with pytest.raises(LedgerError):
        open_checkpoint(flip_bit(raw, bit), LOG_SIGNER.verifier)


@PROPS
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=2**63 - 1))
def test_bit_flip_in_a_cosignature_never_counts_as_cosigned(bit: int, timestamp: int) -> None:
    cp = Checkpoint("example.com/prop", 10, ROOT)
    signed = sign_checkpoint(cp, LOG_SIGNER)
    line = checkpoints.cosign_checkpoint(cp, WITNESS, timestamp).encode()
    # Flip inside the cosignature line only (its final newline excluded): the
    # witness's line either becomes unknown (and is ignored) or fails to verify.
    tampered = signed.encode() + flip_bit(line[:-1], bit) + b"\n"
    try:
        opened = open_checkpoint(tampered, LOG_SIGNER.verifier, [WITNESS.verifier])
    except LedgerError:
        return
    assert opened.cosigned_by([WITNESS.verifier]) == []
    assert (
        open_checkpoint(signed.encode() + line, LOG_SIGNER.verifier, [WITNESS.verifier])
        .cosigned_by([WITNESS.verifier])[0]
        .timestamp
        == timestamp
    )


def _signed_note() -> str:
    return sign_checkpoint(
        Checkpoint("example.com/log", 1, merkle.leaf_hash(b"a")),
        Signer("example.com/log", bytes(32)),
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda note: Receipt(True, (), note),  # would format as "index True"
        lambda note: Receipt(-1, (), note),
        lambda note: Receipt(0, [bytes(32)], note),  # a list makes the value unhashable
        lambda note: Receipt(0, (bytes(31),), note),
        lambda note: Receipt(0, (), note, extra="leaf"),
        lambda note: WitnessRequest(False, (), note),
        lambda note: WitnessRequest(1 << 63, (), note),
        lambda note: WitnessRequest(0, [bytes(32)], note),
        lambda note: Checkpoint("o", True, bytes(32)),
        lambda note: Checkpoint("o", 1, bytes(32), ["ext"]),
    ],
)
def test_values_refuse_wrong_types(build: Any) -> None:
    with pytest.raises(MalformedError):
        build(_signed_note())


def test_peek_checkpoint_reads_without_trusting() -> None:
    note = _signed_note()
    assert checkpoints.peek_checkpoint(note) == parse_checkpoint(notes.parse_note(note).text)
    # It does not verify: a note signed by anyone is read all the same.
    stranger = sign_checkpoint(
        Checkpoint("example.com/log", 1, bytes(32)), Signer("example.com/log", bytes(range(32)))
    )
    assert checkpoints.peek_checkpoint(stranger).root == bytes(32)
    with pytest.raises(UntrustedKeyError):
        open_checkpoint(stranger, Signer("example.com/log", bytes(32)).verifier)
