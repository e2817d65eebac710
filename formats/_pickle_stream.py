"""Pickle streams read from files: bounded reads and bounded decompression.

A joblib file may compress its whole pickle stream (zlib, gzip, bz2, xz, lzma, lz4,
or the "ZF" container of joblib < 0.10). `Opened` gives the pickle stream of a file
whichever way it was stored, as a minimal file object that never allocates more
than the data that exists and refuses to decompress past a cap (a few KB of zeros
can inflate to many GB: a decompression bomb).

Only the standard library is imported at module level (lz4 inside a function).
"""
from __future__ import annotations

import bz2
import lzma
import zlib
from pathlib import Path
from typing import Iterator

from mlconvert.errors import InputError

__all__ = ["MAX_DECOMPRESSED", "MAX_HELD", "CHUNK", "Broken", "Elided", "Stream", "Opened", "container_of_head"]

# A compressed joblib file is decompressed as a stream and refused once it grows
# past this.
MAX_DECOMPRESSED = 2 * 1024**3
CHUNK = 1 << 20
MAX_HELD = 64 * 1024**2
"""The longest opcode argument the scanner holds in memory (Stream.elide). Longer ones (a
1 GiB BINBYTES8) are read past and stand in as `Elided`: the scanner needs their length,
not their bytes, so its memory stays bounded whatever the stream holds (the cap above
bounds only the bytes). Loading, which needs the bytes, reads them whole."""


class Elided(bytes):
    """An opcode argument read past, not held: empty, but as long as the argument was."""

    def __new__(cls, length: int):
        self = super().__new__(cls)
        self.length = length
        return self

    def __len__(self) -> int:
        return self.length


class _Truncated(Exception):
    """A compressed stream ended before its end marker; args[0] = bytes produced."""


class Broken(Exception):
    """The stream is not a well-formed pickle; converted to InputError with the path."""


class Stream:
    """Minimal file object over a chunk source: read/readline/readinto/tell/skip.

    It never allocates more than the data that exists (a corrupt length field asking
    for 2**60 bytes gets a short read, which genops reports), and it stops at `cap`
    bytes so a decompression bomb is refused instead of filling memory.
    """

    def __init__(self, chunks: Iterator[bytes], cap: int, what: str):
        self._chunks = chunks
        self._cap = cap
        self._what = what
        self._buf = bytearray()
        self._off = 0
        self._pos = 0
        self._total = 0
        self._eof = False
        self.elide = False  # set by the scanner: reads longer than MAX_HELD give an Elided

    def _fill(self, need: int) -> None:
        while len(self._buf) - self._off < need and not self._eof:
            chunk = next(self._chunks, b"")
            if not chunk:
                self._eof = True
                break
            self._total += len(chunk)
            if self._total > self._cap:
                raise InputError(
                    f"{self._what} decompresses to more than {self._cap:,} bytes; refusing to go on",
                    hint="this looks like a decompression bomb; if the model is really this big, "
                    "decompress it yourself and pass the plain file",
                )
            if self._off:
                del self._buf[: self._off]
                self._off = 0
            self._buf += chunk

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._cap + 1
        elif n > MAX_HELD and self.elide:
            return self._read_past(n)
        out = []
        while n > 0:
            self._fill(min(n, CHUNK))
            avail = len(self._buf) - self._off
            if avail == 0:
                break
            take = min(avail, n)
            out.append(bytes(self._buf[self._off : self._off + take]))
            self._off += take
            self._pos += take
            n -= take
        return b"".join(out)

    def _read_past(self, n: int) -> bytes:
        """`n` bytes consumed without holding them: an Elided of length n, or b"" when the
        stream ends first (the caller reports the truncation)."""
        left = n
        while left > 0:
            self._fill(1)
            avail = len(self._buf) - self._off
            if avail == 0:
                return b""
            take = min(avail, left)
            self._off += take
            self._pos += take
            left -= take
        return Elided(n)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, limit: int = -1) -> bytes:
        out = []
        while True:
            idx = self._buf.find(b"\n", self._off)
            if idx >= 0:
                out.append(self.read(idx + 1 - self._off))
                break
            avail = len(self._buf) - self._off
            if avail:
                out.append(self.read(avail))
            self._fill(1)
            if len(self._buf) - self._off == 0:
                break
        return b"".join(out)

    def skip(self, n: int) -> None:
        while n > 0:
            got = len(self.read(min(n, CHUNK)))
            if got == 0:
                raise Broken(f"the file ends inside joblib array data ({n:,} bytes missing)")
            n -= got

    def peek(self, n: int = 1) -> bytes:
        self._fill(n)
        return bytes(self._buf[self._off : self._off + n])

    def tell(self) -> int:
        return self._pos


def _file_chunks(fh) -> Iterator[bytes]:
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            return
        yield chunk


def _inflate_chunks(fh, kind: str, what: str) -> Iterator[bytes]:
    """Decompress `fh` in bounded steps (max_length), so one call never explodes."""
    if kind == "zlib":
        d = zlib.decompressobj()
    elif kind == "gzip":
        d = zlib.decompressobj(wbits=31)
    elif kind == "bz2":
        d = bz2.BZ2Decompressor()
    elif kind == "xz":
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif kind == "lzma":
        d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    elif kind == "lz4":
        lz4_frame = _lz4_frame(what)
        d = lz4_frame.LZ4FrameDecompressor()
    else:  # pragma: no cover - callers pass known kinds
        raise ValueError(kind)
    errors = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError, RuntimeError)
    try:
        if kind in ("zlib", "gzip"):
            pending = b""
            produced = 0
            while not d.eof:
                if not pending:
                    pending = fh.read(CHUNK)
                    if not pending:
                        out = d.decompress(b"", CHUNK)  # flush what zlib still holds
                        if out:
                            produced += len(out)
                            yield out
                            continue
                        raise _Truncated(produced)
                out = d.decompress(pending, CHUNK)
                pending = d.unconsumed_tail
                if out:
                    produced += len(out)
                    yield out
        else:
            produced = 0
            while not d.eof:
                if d.needs_input:
                    data = fh.read(CHUNK)
                    if not data:
                        raise _Truncated(produced)
                else:
                    data = b""
                out = d.decompress(data, CHUNK)
                if out:
                    produced += len(out)
                    yield out
    except _Truncated as exc:
        # The end of a compressed stream carries its checksum: without it, even
        # bytes already decompressed are unverified.
        raise InputError(
            f"{what}: the {kind} stream ends early, after {exc.args[0]:,} decompressed bytes; the file is truncated",
            hint="the file is damaged or was cut off; get a fresh copy",
        ) from None
    except errors as exc:
        raise InputError(f"{what}: corrupt {kind} data ({exc})", hint="the file is damaged; get a fresh copy") from exc


def _lz4_frame(what: str):
    try:
        import lz4.frame as lz4_frame  # optional: only joblib's lz4 compressor writes these
    except ImportError:
        raise InputError(
            f"{what} is an lz4-compressed joblib file, and the lz4 module is not installed",
            hint="pip install lz4, then try again",
        ) from None
    return lz4_frame


# joblib < 0.10 compressed files: "ZF" + the length in hex padded to 19 chars, then zlib.
_ZFILE_HEADER = 2 + 19


def container_of_head(head: bytes) -> str | None:
    """Compression a joblib file's first bytes announce, or None for an uncompressed stream."""
    if head[:1] == b"\x78" and len(head) >= 2 and ((head[0] << 8) | head[1]) % 31 == 0:
        return "zlib"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"ZF") and len(head) > 3 and head[2:4] == b"0x":
        return "zfile"
    return None


class Opened:
    """The pickle stream of a file plus how it was stored; a context manager."""

    def __init__(self, path: Path, cap: int):
        self.path = path
        try:
            self._fh = open(path, "rb")
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path and permissions") from exc
        head = self._fh.read(8)
        self._fh.seek(0)
        kind = container_of_head(head)
        what = str(path)
        if kind is None:
            self.compression = None
            # a plain file is as big as it is: the cap is for what decompression makes
            self.stream = Stream(_file_chunks(self._fh), 1 << 62, what)
        elif kind == "zfile":
            self.compression = "zfile"
            hdr = self._fh.read(_ZFILE_HEADER)
            if self._fh.read(1) != b" ":
                self._fh.seek(len(hdr))
            self.stream = Stream(_inflate_chunks(self._fh, "zlib", what), cap, what)
        else:
            self.compression = kind
            self.stream = Stream(_inflate_chunks(self._fh, kind, what), cap, what)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()
