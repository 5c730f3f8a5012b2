"""The upload form's streaming multipart reader: parts come out as the body
streams in (a file's first bytes before the body has been read whole), whatever
the chunking, and malformed or oversized forms are refused."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from xdp47_api.ui.multipart import (
    FilePart,
    MultipartInvalid,
    MultipartStream,
    TextPart,
)
from xdp47_api.usecases.artifact_uploads import client_filename

BOUNDARY = "----xdp47test"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
FILE = random.Random(7).randbytes(50_000)


def _body(fields: dict[str, str], file: bytes | None = FILE) -> bytes:
    out = b""
    for name, value in fields.items():
        out += (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
            f'name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    if file is not None:
        out += (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
            f'name="file"; filename="a b.tar"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += file + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


class Chunks:
    """An async body in chunks of ``size`` that counts what was read."""

    def __init__(self, body: bytes, size: int) -> None:
        self.chunks = [body[i : i + size] for i in range(0, len(body), size)]
        self.read = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.read == len(self.chunks):
            raise StopAsyncIteration
        self.read += 1
        return self.chunks[self.read - 1]


def _stream(body: Chunks, **limits: int) -> MultipartStream:
    return MultipartStream(
        CONTENT_TYPE,
        body,
        max_parts=limits.get("max_parts", 8),
        max_field_bytes=limits.get("max_field_bytes", 1000),
        max_text_bytes=limits.get("max_text_bytes", 2000),
    )


async def _read_all(form: MultipartStream) -> None:
    while (part := await form.next_part()) is not None:
        if isinstance(part, FilePart):
            async for _ in form.file_chunks():
                pass


@pytest.mark.parametrize("size", [1, 7, 100, 4096, 1 << 20])
async def test_parts_come_out_whatever_the_chunking(size: int) -> None:
    body = Chunks(_body({"csrf_token": "tok", "version": "1.0 ü"}), size)
    form = _stream(body)
    assert await form.next_part() == TextPart("csrf_token", "tok")
    assert await form.next_part() == TextPart("version", "1.0 ü")
    assert await form.next_part() == FilePart("file", "a b.tar")
    got = b"".join([chunk async for chunk in form.file_chunks()])
    assert got == FILE
    assert await form.next_part() is None


async def test_a_file_streams_before_the_body_is_read_whole() -> None:
    body = Chunks(_body({"version": "1"}), 1000)
    form = _stream(body)
    await form.next_part()
    assert isinstance(await form.next_part(), FilePart)
    chunks = form.file_chunks()
    first = await anext(chunks)
    assert FILE.startswith(first)
    assert body.read < len(body.chunks) // 2  # not buffered up front
    async for _ in chunks:
        pass
    assert body.read == len(body.chunks)


async def test_an_unread_file_is_skipped() -> None:
    form = _stream(Chunks(_body({}), 333))
    assert isinstance(await form.next_part(), FilePart)
    assert await form.next_part() is None


@pytest.mark.parametrize(
    ("body", "limits", "message"),
    [
        (_body({"metadata": "x" * 1001}), {}, "longer than 1000 bytes"),
        (_body({f"f{n}": "x" * 900 for n in range(3)}), {}, "longer than 2000"),
        (_body({f"f{n}": "" for n in range(9)}), {}, "more than 8 form fields"),
        (_body({"version": "1"})[:-40], {}, "cut short"),
        (b"not a multipart body at all", {}, "malformed"),
    ],
)
async def test_bad_forms_are_refused(
    body: bytes, limits: dict[str, int], message: str
) -> None:
    with pytest.raises(MultipartInvalid, match=message):
        await _read_all(_stream(Chunks(body, 512), **limits))


def test_other_content_types_are_refused() -> None:
    for content_type in ("application/octet-stream", "multipart/form-data", ""):
        with pytest.raises(MultipartInvalid, match="multipart/form-data"):
            MultipartStream(
                content_type,
                Chunks(b"", 1),
                max_parts=1,
                max_field_bytes=1,
                max_text_bytes=1,
            )


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("app-1.0.tar.gz", "app-1.0.tar.gz"),
        ("C:\\Users\\me\\app (1).bin", "app _1_.bin"),
        ("../../etc/passwd", "passwd"),
        ("  spaced.bin", "spaced.bin"),
        ("..", None),
        ("", None),
        (None, None),
    ],
)
def test_client_filenames_are_made_safe(sent: str | None, kept: str | None) -> None:
    assert client_filename(sent) == kept
