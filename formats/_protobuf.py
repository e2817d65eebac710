"""A small protobuf wire-format reader, so ONNX, Core ML and SavedModel files can be
described without importing onnx, coremltools or tensorflow.

It knows the wire format only (no schemas): callers say which field number means
what. Length-delimited values come back as zero-copy memoryview slices, so skipping
large weight blobs costs nothing.
"""
from __future__ import annotations

import struct
from typing import Iterator

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5

_MAX_FIELD = (1 << 29) - 1


class ProtobufError(ValueError):
    """The bytes are not a well-formed protobuf message (or end too early)."""


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Decode one varint at `pos`; return (value, position after it)."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtobufError("data ends inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:  # a varint is at most 10 bytes
            raise ProtobufError("varint longer than 10 bytes")


def iter_fields(buf, *, partial: bool = False) -> Iterator[tuple[int, int, object]]:
    """Yield (field_number, wire_type, value) for each field of one message.

    value is an int for VARINT, I32 and I64 (raw unsigned bits) and a memoryview for
    LEN. Groups (deprecated, used by none of the formats read here) are refused.

    With partial=True the buffer is taken to be a prefix of a longer message (a file
    head): a field cut off at the end stops iteration quietly, except that a cut
    length-delimited field yields the bytes that are present. Malformed data (bad
    wire type, field number 0) raises ProtobufError in both modes.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    end = len(view)
    pos = 0
    while pos < end:
        try:
            key, pos = read_varint(view, pos)
        except ProtobufError:
            if partial:
                return
            raise
        number, wire = key >> 3, key & 7
        if number == 0 or number > _MAX_FIELD:
            raise ProtobufError(f"invalid field number {number}")
        if wire == VARINT:
            try:
                value, pos = read_varint(view, pos)
            except ProtobufError:
                if partial:
                    return
                raise
            yield number, wire, value
        elif wire == LEN:
            try:
                length, pos = read_varint(view, pos)
            except ProtobufError:
                if partial:
                    return
                raise
            if pos + length > end:
                if partial:
                    yield number, wire, view[pos:end]
                    return
                raise ProtobufError(
                    f"field {number} needs {length} bytes but only {end - pos} remain: the data ends early"
                )
            yield number, wire, view[pos : pos + length]
            pos += length
        elif wire in (I32, I64):
            size = 4 if wire == I32 else 8
            if pos + size > end:
                if partial:
                    return
                raise ProtobufError(f"data ends inside fixed-size field {number}")
            value = int.from_bytes(view[pos : pos + size], "little")
            yield number, wire, value
            pos += size
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {number})")


def parse(buf, *, partial: bool = False) -> dict[int, list]:
    """Collect every field of one message: {field_number: [values in order]}."""
    out: dict[int, list] = {}
    for number, _wire, value in iter_fields(buf, partial=partial):
        out.setdefault(number, []).append(value)
    return out


def first(fields: dict[int, list], number: int, default=None):
    """The last occurrence wins for scalars in protobuf; for our purposes the one value."""
    values = fields.get(number)
    return values[-1] if values else default


def decode_string(value, *, strict: bool = True) -> str:
    """A string field's text. Invalid UTF-8 raises ProtobufError unless strict=False."""
    if value is None:
        return ""
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        if strict:
            raise ProtobufError(f"string field is not valid UTF-8: {exc}") from exc
        return bytes(value).decode("utf-8", "replace")


def is_text(value, *, allow_newlines: bool = True, partial: bool = False) -> bool:
    """True when bytes look like a human string (UTF-8, no control characters).

    partial=True accepts a multi-byte character cut off at the very end (a string
    read from a file head may stop mid-character).
    """
    raw = bytes(value)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (partial and exc.reason == "unexpected end of data" and exc.start >= len(raw) - 3):
            return False
        text = raw[: exc.start].decode("utf-8", "strict")
    allowed = "\n\r\t" if allow_newlines else ""
    return all(ch >= " " or ch in allowed for ch in text) and "\x7f" not in text


def signed64(value: int) -> int:
    """Reinterpret a varint as int64 (negative numbers are 10-byte two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def varints(values) -> list[int]:
    """A repeated integer field, packed (LEN) or not (VARINT), as a flat list."""
    out: list[int] = []
    for value in values or ():
        if isinstance(value, int):
            out.append(value)
            continue
        view = value
        pos = 0
        while pos < len(view):
            number, pos = read_varint(view, pos)
            out.append(number)
    return out


def float32(bits: int) -> float:
    return struct.unpack("<f", bits.to_bytes(4, "little"))[0]


def float64(bits: int) -> float:
    return struct.unpack("<d", bits.to_bytes(8, "little"))[0]


def string_map(entries) -> dict[str, str]:
    """A map<string, string> field (repeated entry messages: key 1, value 2)."""
    out: dict[str, str] = {}
    for entry in entries or ():
        fields = parse(entry)
        out[decode_string(first(fields, 1))] = decode_string(first(fields, 2))
    return out
