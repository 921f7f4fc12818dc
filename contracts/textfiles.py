"""Opening the project's text inputs: one gzip-aware, BOM-tolerant reader whose decoding errors name file and line.

Inputs come from many tools: a run gzipped without the `.gz` name, a queries.tsv saved by an editor that writes a
UTF-8 byte-order mark (which would otherwise become part of the first id), a corpus with one Latin-1 line. So the
compression is decided by the file's first bytes, not its name; a BOM at the start is dropped (as `utf-8-sig`
would); and a byte that is not UTF-8, or gzip data that ends early, is a ValueError naming the file and the line
instead of a traceback.
"""
from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["GZIP_MAGIC", "TextFile", "is_gzip", "open_text", "open_text_writer"]

GZIP_MAGIC = b"\x1f\x8b"
BOM = "\ufeff"  # the UTF-8 byte-order mark, as text
_DECODING_ERRORS = (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error)


def is_gzip(path: str | Path) -> bool:
    """Whether the file starts with the gzip magic bytes (whatever its name).

    Args:
        path: an existing file.

    Returns:
        True for gzip data.
    """
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_text(path: str | Path, what: str = "input") -> TextFile:
    """Open a text file for reading, decompressing gzip data, dropping a UTF-8 BOM, checking the decoding.

    Lines end as in Python's text mode (`\\n`, `\\r\\n` and `\\r` all end a line and read as `\\n`).

    Args:
        path: the file; gzip-compressed or not, whatever its name.
        what: what the file holds, for the messages ("run", "qrels").

    Returns:
        A `TextFile`: iterate it for lines or `read()` it whole; use it as a context manager.

    Raises:
        FileNotFoundError: no file at `path`.
        IsADirectoryError: `path` is a folder.
        ValueError: while reading, a byte that is not UTF-8 (naming the line and column) or damaged gzip data.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {what} file here")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a folder, where a {what} file was expected")
    return TextFile(path, compressed=is_gzip(path))


def open_text_writer(path: str | Path, compressed: bool) -> IO[str]:
    """A UTF-8 text file for writing, gzip-compressed on request with a zero timestamp (the same run, the same bytes).

    Args:
        path: the file to write (usually the temporary path of `contracts.atomic.atomic_path`).
        compressed: whether to gzip the text.

    Returns:
        An open text file.
    """
    if not compressed:
        return open(path, "w", encoding="utf-8")
    raw = open(path, "wb")
    return io.TextIOWrapper(_ClosingGzip(raw), encoding="utf-8")


class _ClosingGzip(gzip.GzipFile):
    """A GzipFile over an open file object that closes that file too (GzipFile leaves a passed fileobj open)."""

    def __init__(self, raw: IO[bytes]):
        super().__init__(filename="", mode="wb", fileobj=raw, mtime=0)
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


class TextFile:
    """A text file opened by `open_text`: lines or whole text, with decoding errors turned into ValueErrors.

    Args:
        path: the file.
        compressed: whether it is gzip (found by `open_text` from its first bytes, not its name).
    """

    def __init__(self, path: Path, compressed: bool):
        self.path = path
        self.compressed = compressed
        self._text = self._open(errors="strict")
        self._at_start = True

    def _open(self, errors: str) -> IO[str]:
        # The BOM is dropped by hand, not by the `utf-8-sig` codec: that codec silently decodes a file holding only
        # the first one or two bytes of a BOM as empty text instead of failing.
        binary: IO[bytes] = gzip.open(self.path, "rb") if self.compressed else open(self.path, "rb")
        return io.TextIOWrapper(binary, encoding="utf-8", errors=errors)

    def _without_bom(self, text: str) -> str:
        if self._at_start:
            self._at_start = False
            return text.removeprefix(BOM)
        return text

    def __iter__(self) -> Iterator[str]:
        try:
            for first in self._text:
                yield self._without_bom(first)
                break
            yield from self._text  # a generator around the file's own iterator: no Python call per line
        except _DECODING_ERRORS as e:
            raise self._explain(e) from None

    def read(self) -> str:
        """The whole remaining text.

        Returns:
            The text, without a leading UTF-8 BOM.

        Raises:
            ValueError: bytes that are not UTF-8, or a damaged gzip stream, naming the file and line.
        """
        try:
            return self._without_bom(self._text.read())
        except _DECODING_ERRORS as e:
            raise self._explain(e) from None

    def close(self) -> None:
        """Close the file (also done on leaving a `with` block)."""
        self._text.close()

    def __enter__(self) -> TextFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _explain(self, error: Exception) -> ValueError:
        """The error's file and line, found by a second pass (only on this error path; the first pass counts nothing).

        The text layer decodes ahead in chunks, so the failing line is not the last one handed out: read again,
        keeping undecodable bytes as surrogates, and find the first line that holds one (or where the data ends).
        """
        lineno = 0
        try:
            with self._open(errors="surrogateescape") as text:
                for lineno, line in enumerate(text, 1):  # noqa: B007 (lineno is used after the loop)
                    try:
                        line.encode("utf-8")
                    except UnicodeEncodeError as bad:
                        byte = ord(line[bad.start]) - 0xDC00
                        return ValueError(
                            f"{self.path}, line {lineno}: not UTF-8 text (byte 0x{byte:02x} at character "
                            f"{bad.start + 1}); save the file as UTF-8"
                        )
        except _DECODING_ERRORS:
            pass  # damaged gzip: the lines read so far locate it
        if isinstance(error, UnicodeDecodeError):
            return ValueError(
                f"{self.path}, line {lineno + 1}: not UTF-8 text ({error.reason}); save the file as UTF-8"
            )
        return ValueError(
            f"{self.path}, line {lineno + 1}: the gzip-compressed data is damaged or ends early "
            f"({type(error).__name__}: {error}); was the file copied completely?"
        )
