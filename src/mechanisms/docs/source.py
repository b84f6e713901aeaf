"""What counts as a document to check: UTF-8 text, not empty, not binary, not huge.

Refusals are input errors (exit 2 on the command line, 422 from the API) with a
message that says what is wrong with which file, never a traceback.
"""

from __future__ import annotations

from mechanisms.core.errors import InvalidInput

# 1 MiB: about 160,000 words or 330 pages, far past any document people read (a decision
# doc is 2-3 pages), and checked in a few seconds. A larger file is refused at once.
MAX_BYTES = 1024 * 1024
# Like git and grep: a NUL byte in the first 8 KiB means binary.
BINARY_SNIFF = 8192


class DocumentError(InvalidInput):
    code = "invalid_document"


def check_text(text: str, name: str) -> str:
    """The text itself, once it is known to be something worth checking."""
    if not text.strip():
        raise DocumentError(f"{name}: is empty; there is nothing to check")
    if "\x00" in text:
        raise DocumentError(f"{name}: contains NUL characters; is it a binary file?")
    return text


def decode(data: bytes, name: str) -> str:
    if len(data) > MAX_BYTES:
        raise DocumentError(
            f"{name}: {len(data):,} bytes is more than the {MAX_BYTES:,}-byte limit"
        )
    if b"\x00" in data[:BINARY_SNIFF]:
        raise DocumentError(f"{name}: looks like a binary file, not Markdown")
    try:
        # utf-8-sig: a byte-order mark is not part of the first line's text.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{name}: is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
            "convert it to UTF-8 first"
        ) from None
    return check_text(text, name)
