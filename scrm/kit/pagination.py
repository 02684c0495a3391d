"""Keyset (cursor) pagination over descending 64-bit ids."""

from __future__ import annotations

import base64
import binascii

from scrm.errors import Invalid


def encode_cursor(sort_value: int, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{sort_value}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        left, right = raw.split(":", 1)
        return int(left), int(right)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Invalid("cursor is not valid", field="cursor") from exc
