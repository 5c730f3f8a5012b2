"""Streaming ``multipart/form-data`` for the artifact upload form.

``request.form()`` spools every file to a temporary file before the handler sees
any of it. ``MultipartStream`` instead feeds ``request.stream()`` through
python-multipart's push parser and hands the handler one part at a time: a text
field whole (each bounded, and all of them together), a file's bytes chunk by chunk
as they arrive, so an upload goes straight into the blob store and is never held
whole in memory nor written to disk twice. Only one request chunk's worth of parsed
data is buffered at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

__all__ = ["FilePart", "MultipartInvalid", "MultipartStream", "TextPart"]


class MultipartInvalid(Exception):
    """The body is not a well-formed form of the expected size and shape."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class TextPart:
    name: str
    value: str


@dataclass(frozen=True)
class FilePart:
    name: str
    filename: str  # as the browser sent it; '' when no file was chosen


@dataclass(frozen=True)
class _Headers:
    name: str
    filename: str | None


_DATA, _END = "data", "end"
_Event = tuple[str, bytes] | _Headers


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class MultipartStream:
    """Parts of one multipart body, read as the body streams in.

    Call ``next_part`` until it returns ``None``. After a ``FilePart``, read its
    bytes with ``file_chunks`` (or let ``next_part`` skip them).

    Raises ``MultipartInvalid`` (from the constructor or while reading) for a body
    that is not ``multipart/form-data``, is malformed or cut short, has more than
    ``max_parts`` parts, or a text field over ``max_field_bytes``, or more than
    ``max_text_bytes`` of text fields in all.
    """

    def __init__(
        self,
        content_type: str,
        stream: AsyncIterator[bytes],
        *,
        max_parts: int,
        max_field_bytes: int,
        max_text_bytes: int,
    ) -> None:
        media, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if media != b"multipart/form-data" or not boundary:
            raise MultipartInvalid("send the form as multipart/form-data")
        self._stream = stream
        self._events: deque[_Event] = deque()
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._ended = False
        self._eof = False
        self._in_file = False
        self._parts = 0
        self._text_bytes = 0
        self._max_parts = max_parts
        self._max_field_bytes = max_field_bytes
        self._max_text_bytes = max_text_bytes
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
            )
        except FormParserError as exc:
            raise MultipartInvalid(f"malformed multipart body: {exc}") from None

    # python-multipart's callbacks: they only queue what they saw.
    def _on_part_begin(self) -> None:
        self._disposition = b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        filename = options.get(b"filename")
        self._events.append(
            _Headers(
                _decode(options.get(b"name", b"")),
                None if filename is None else _decode(filename),
            )
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self._events.append((_DATA, data[start:end]))

    def _on_part_end(self) -> None:
        self._events.append((_END, b""))

    def _on_end(self) -> None:
        self._ended = True

    async def _next_event(self) -> _Event | None:
        while not self._events:
            if self._eof:
                return None
            try:
                chunk = await anext(self._stream)
            except StopAsyncIteration:
                self._eof = True
                if not self._ended:
                    raise MultipartInvalid("the form was cut short") from None
                continue
            try:
                self._parser.write(chunk)
            except FormParserError as exc:
                raise MultipartInvalid(f"malformed multipart body: {exc}") from None
        return self._events.popleft()

    async def next_part(self) -> TextPart | FilePart | None:
        """The next part (skipping the rest of an unread file), or ``None``."""
        if self._in_file:
            async for _ in self.file_chunks():
                pass
        event = await self._next_event()
        if event is None:
            return None
        if not isinstance(event, _Headers):
            raise MultipartInvalid("malformed multipart body")
        self._parts += 1
        if self._parts > self._max_parts:
            raise MultipartInvalid(f"more than {self._max_parts} form fields")
        if event.filename is not None:
            self._in_file = True
            return FilePart(event.name, event.filename)
        return TextPart(event.name, await self._text(event.name))

    async def _text(self, name: str) -> str:
        value = bytearray()
        while (event := await self._next_event()) is not None:
            if isinstance(event, _Headers) or event[0] == _END:
                break
            value += event[1]
            self._text_bytes += len(event[1])
            if len(value) > self._max_field_bytes:
                raise MultipartInvalid(
                    f"the field {name!r} is longer than {self._max_field_bytes} bytes"
                )
            if self._text_bytes > self._max_text_bytes:
                raise MultipartInvalid(
                    f"the form's fields are longer than {self._max_text_bytes} bytes"
                )
        return _decode(bytes(value))

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The bytes of the file part just returned by ``next_part``."""
        while self._in_file:
            event = await self._next_event()
            if event is None or isinstance(event, _Headers) or event[0] == _END:
                self._in_file = False
                return
            yield event[1]
