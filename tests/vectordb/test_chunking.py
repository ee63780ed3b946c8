"""Chunking against the model's own tokenizer, and reading documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_vectordb.chunking import (
    Chunker,
    Document,
    DocumentError,
    find_documents,
    read_document,
)
from swarm_vectordb.embedding import resolve_model


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    model_dir, _ = resolve_model("all-MiniLM-L6-v2")
    return Chunker.for_model_dir(model_dir, max_tokens=48, overlap=8)


def tokens(chunker: Chunker, text: str) -> int:
    return len(chunker._tokenizer.encode(text, add_special_tokens=False).ids)


PROSE = " ".join(
    f"Sentence number {i} talks about chunk {i * 7} and its Swarm reference." for i in range(120)
)


def test_chunks_fit_the_model_cover_the_text_in_order_and_overlap(chunker: Chunker) -> None:
    chunks = chunker.chunk(Document("prose.txt", PROSE))
    assert len(chunks) > 10
    assert [c.position for c in chunks] == list(range(len(chunks)))
    cursor = 0
    for chunk in chunks:
        assert tokens(chunker, chunk.text) <= chunker.max_tokens
        start = PROSE.find(chunk.text)
        assert start != -1, "a chunk is not an exact slice of the source"
        assert start <= cursor, "a gap between chunks"
        cursor = max(cursor, start + len(chunk.text))
    assert cursor >= len(PROSE.rstrip()) - 1
    # sentence snapping: most chunks end at a sentence end
    assert sum(c.text.endswith(".") for c in chunks) >= len(chunks) * 0.8


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=3000))
def test_any_text_chunks_into_exact_slices_within_the_limit(text: str) -> None:
    model_dir, _ = resolve_model("all-MiniLM-L6-v2")
    small = Chunker.for_model_dir(model_dir, max_tokens=16, overlap=4)
    for chunk in small.chunk(Document("x", text)):
        assert chunk.text
        assert chunk.text in text
        assert tokens(small, chunk.text) <= 16


def test_empty_and_blank_documents(chunker: Chunker) -> None:
    assert chunker.chunk(Document("e", "")) == []
    assert chunker.chunk(Document("e", " \n\t ")) == []


def test_bad_chunker_settings() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        Chunker(None, max_tokens=4)
    with pytest.raises(ValueError, match="overlap"):
        Chunker(None, max_tokens=100, overlap=60)


def write_pdf(path: Path, lines: list[str]) -> None:
    """A minimal one-page PDF with Helvetica text, xref offsets computed exactly."""
    stream = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({s}) '" for s in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(out)


def test_reading_text_markdown_and_pdf(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("plain text")
    (tmp_path / "b.md").write_bytes(b"\xef\xbb\xbf# Title\n\nbody")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    write_pdf(tmp_path / "c.pdf", ["Swarm chunks are 4096 bytes.", "Feeds are mutable."])
    assert read_document(tmp_path / "a.txt").text == "plain text"
    assert read_document(tmp_path / "b.md").text == "# Title\n\nbody"
    assert read_document(tmp_path / "latin.txt").text == "café"
    pdf = read_document(tmp_path / "c.pdf").text
    assert "Swarm chunks are 4096 bytes." in pdf
    assert "Feeds are mutable." in pdf


def test_unreadable_documents_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02")
    (tmp_path / "x.exe").write_bytes(b"MZ")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really")
    big = tmp_path / "big.txt"
    with big.open("wb") as fh:
        fh.truncate((64 << 20) + 1)
    for name, words in [
        ("bin.txt", "binary"),
        ("x.exe", "unsupported"),
        ("broken.pdf", "unreadable PDF"),
        ("big.txt", "larger than"),
        ("missing.txt", "No such file"),
    ]:
        with pytest.raises(DocumentError, match=words):
            read_document(tmp_path / name)


def test_find_documents_recurses_sorted_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / ".git").mkdir()
    for name in ["docs/b.md", "docs/a.txt", "docs/sub/c.pdf", "docs/.git/x.md", "docs/skip.png"]:
        (tmp_path / name).write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_documents([tmp_path / "docs"])]
    assert found == ["docs/a.txt", "docs/b.md", "docs/sub/c.pdf"]
    with pytest.raises(DocumentError, match="no such file"):
        list(find_documents([tmp_path / "nope"]))
