"""A small UBJSON reader, for XGBoost's dialect (typed, counted arrays of numbers).

XGBoost writes its .ubj model files in UBJSON, and the pickles of its scikit-learn
wrappers embed the same bytes; both the XGBoost format and the pickle scanner read
them with this reader. Only the standard library is imported.
"""
from __future__ import annotations

import struct

# Integer markers (lengths and counts use these) and the numeric scalars.
INTEGERS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}
SCALARS = {**INTEGERS, b"d": ">f", b"D": ">d"}
MAX_DEPTH = 64
"""Nesting a model never needs (XGBoost's documents are ~6 deep); deeper is refused, not recursed."""


class Reader:
    """Reads values from `data` starting at byte `pos`. Malformed input raises ValueError
    (or KeyError / struct.error / UnicodeDecodeError for a bad marker or string).

    Bounded by the input: a count is refused when the bytes left cannot hold that many
    items (one byte each at least, for typed containers of empty items too), and nesting
    deeper than MAX_DEPTH is refused, so the work and memory are linear in the file's size."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos
        self.depth = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"UBJSON ends early at byte {self.pos} (wanted {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def marker(self) -> bytes:
        m = self.take(1)
        while m == b"N":  # no-op marker
            m = self.take(1)
        return m

    def scalar(self, m: bytes):
        fmt = SCALARS.get(m)
        if fmt is None:
            raise ValueError(f"unknown UBJSON type marker {m!r} at byte {self.pos - 1}")
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def integer(self) -> int:
        """A marker that must be an integer type, then its value."""
        m = self.marker()
        if m not in INTEGERS:
            raise ValueError(f"UBJSON integer expected at byte {self.pos - 1}, found marker {m!r}")
        return self.scalar(m)

    def length(self) -> int:
        n = self.integer()
        if n < 0:
            raise ValueError("negative UBJSON length")
        return n

    def string(self) -> str:
        return self.take(self.length()).decode("utf-8")

    def value(self, m: bytes | None = None):
        m = m or self.marker()
        if m in SCALARS:
            return self.scalar(m)
        if m == b"S" or m == b"H":
            return self.string()
        if m == b"C":
            return self.take(1).decode("latin-1")
        if m in (b"T", b"F"):
            return m == b"T"
        if m == b"Z":
            return None
        if m in (b"[", b"{"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ValueError(f"UBJSON nested deeper than {MAX_DEPTH} levels at byte {self.pos - 1}")
            try:
                return self.container(b"]" if m == b"[" else b"}", is_object=m == b"{")
            finally:
                self.depth -= 1
        raise ValueError(f"unknown UBJSON marker {m!r} at byte {self.pos - 1}")

    def container(self, end: bytes, is_object: bool):
        item_type, count = None, None
        if self.data[self.pos : self.pos + 1] == b"$":
            self.pos += 1
            item_type = self.marker()
        if self.data[self.pos : self.pos + 1] == b"#":
            self.pos += 1
            count = self.length()
            if count > len(self.data) - self.pos:
                raise ValueError(f"UBJSON count {count} at byte {self.pos} is more than the "
                                 f"{len(self.data) - self.pos} bytes left could hold")
        if not is_object and item_type in SCALARS and count is not None:
            fmt = SCALARS[item_type]
            size = struct.calcsize(fmt)
            return list(struct.unpack(f">{count}{fmt[1]}", self.take(size * count)))
        out: dict | list = {} if is_object else []
        i = 0
        while True:
            if count is None:
                if self.data[self.pos : self.pos + 1] == end:
                    self.pos += 1
                    return out
            elif i == count:
                return out
            if is_object:
                key = self.string()
                out[key] = self.value(item_type)
            else:
                out.append(self.value(item_type))
            i += 1


def loads(data: bytes):
    """The value a UBJSON document holds."""
    return Reader(data).value()


def int_array(data: bytes, at: int, max_count: int) -> list[int] | None:
    """A counted integer array's items, `data[at:]` being `<count type><count>` (the
    bytes after an array's `[#`) followed by typed integers; None if it is anything
    else or holds more than `max_count` items."""
    try:
        reader = Reader(data, at)
        count = reader.integer()
        if not 1 <= count <= max_count:
            return None
        return [reader.integer() for _ in range(count)]
    except (ValueError, KeyError, struct.error):
        return None
