"""Documents to chunks: reading text, markdown and PDF files, and token-based chunking.

Chunks are windows of at most `max_tokens` tokens of the embedding model's own
tokenizer (so a chunk is never silently truncated by the model), overlapping by
`overlap` tokens. A window's end moves back to the last paragraph, line or sentence
break in its final fifth when there is one, so chunks tend to end where thoughts do.
Chunk text is an exact slice of the source text (via the tokenizer's offsets).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".text"})
PDF_SUFFIXES = frozenset({".pdf"})
MAX_FILE_BYTES = 64 << 20
# Natural breaks, best first: a paragraph, a sentence end, a line end.
_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?])\s"), re.compile(r"\n"))


class DocumentError(ValueError):
    """A file that cannot be read as a document (the message says why)."""


@dataclass(frozen=True)
class Document:
    source: str  # path as given, for citations
    text: str


@dataclass(frozen=True)
class TextChunk:
    source: str
    position: int  # index of the chunk within its document
    text: str


class Chunker:
    """Token windows with overlap, using a Hugging Face `tokenizers` tokenizer."""

    def __init__(self, tokenizer: Any, *, max_tokens: int = 200, overlap: int = 40) -> None:
        if max_tokens < 8 or not 0 <= overlap < max_tokens // 2:
            raise ValueError("need max_tokens >= 8 and 0 <= overlap < max_tokens / 2")
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    @classmethod
    def for_model_dir(cls, model_dir: Path, **kwargs: Any) -> Chunker:
        """A chunker using the tokenizer of a sentence-transformers model directory."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_truncation()  # the model's file truncates to its input size: we window
        tokenizer.no_padding()
        return cls(tokenizer, **kwargs)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the embedding model reads for `texts`, special tokens included."""
        return sum(len(e.ids) for e in self._tokenizer.encode_batch(list(texts)))

    def chunk(self, document: Document) -> list[TextChunk]:
        text = document.text
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        offsets = [o for o in encoding.offsets if o[1] > o[0]]
        chunks: list[TextChunk] = []
        start = 0
        while start < len(offsets):
            end = min(start + self.max_tokens, len(offsets))
            if end < len(offsets):
                end = self._snap(text, offsets, start, end)
            piece = text[offsets[start][0] : offsets[end - 1][1]].strip()
            if piece:
                chunks.append(TextChunk(document.source, len(chunks), piece))
            if end == len(offsets):
                break
            start = max(end - self.overlap, start + 1)
        return chunks

    def _snap(self, text: str, offsets: Sequence[tuple[int, int]], start: int, end: int) -> int:
        """Move `end` back to a natural break within the window's last fifth."""
        floor = start + max(1, (end - start) * 4 // 5)
        window = text[offsets[floor][0] : offsets[end - 1][1]]
        for pattern in _BREAKS:
            breaks = [m.end() for m in pattern.finditer(window)]
            if breaks:
                cut = offsets[floor][0] + breaks[-1]
                for i in range(end - 1, floor, -1):
                    if offsets[i][1] <= cut:
                        return i + 1
        return end


def read_source(path: Path) -> bytes:
    """The bytes of one document file, refusing unsupported types and files over the cap.

    Read once, with the cap enforced on what is actually read (a file that grows, or a
    pipe, cannot slip past a size checked beforehand).
    """
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES | PDF_SUFFIXES:
        raise DocumentError(f"{path}: unsupported file type {suffix or '(none)'}")
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DocumentError(f"{path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DocumentError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
    return raw


def read_document(path: Path, raw: bytes | None = None) -> Document:
    """Parse one text, markdown or PDF file; `raw`, when given, is its content already read."""
    if raw is None:
        raw = read_source(path)
    if path.suffix.lower() in PDF_SUFFIXES:
        return Document(str(path), _read_pdf(path, raw))
    if b"\x00" in raw[:8192]:
        raise DocumentError(f"{path}: looks binary")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        log.warning("%s is not UTF-8; read as Latin-1", path)
    return Document(str(path), text.removeprefix("\ufeff"))


def _read_pdf(path: Path, raw: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise DocumentError(f"{path}: encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise DocumentError(f"{path}: unreadable PDF ({exc})") from None
    return "\n\n".join(p.strip() for p in pages if p.strip())


def find_documents(paths: Sequence[Path]) -> Iterator[Path]:
    """The supported files under `paths` (directories recursively, sorted, no hidden)."""
    supported = TEXT_SUFFIXES | PDF_SUFFIXES
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden and child.suffix.lower() in supported:
                    yield child
        elif path.exists():
            yield path
        else:
            raise DocumentError(f"{path}: no such file or directory")
