"""Values a view keeps sealed under their stream's own key (a name, a label, a
category), so shredding the stream erases them from the views too."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.common import ERASED_LABEL, UNREADABLE_LABEL, ContentErased, ContentTampered

if TYPE_CHECKING:
    from projections.source import Source


def _cipher(app: Source, stream_id: str) -> tuple[str, Any]:
    """(the stream's id as hex, its key's cipher)."""
    sid = UUID(str(stream_id)).hex
    return sid, app.keystore.cipher_for_read(sid, 1)


def _aad(sid: str) -> bytes:
    return b"view\x1f" + sid.encode()


def seal_for(app: Source, stream_id: str, text: str) -> bytes:
    """Encrypt a value a view keeps (a name, a label) under its stream's own key, so
    shredding the stream erases it from views too."""
    sid, aes = _cipher(app, stream_id)
    nonce = os.urandom(12)
    return nonce + aes.encrypt(nonce, text.encode(), _aad(sid))


def seal_det(app: Source, stream_id: str, value: str, salt: str) -> bytes | None:
    """Seal a value under its stream's key, readable with `open_for` (None: the stream
    is erased).

    The nonce is derived from the stream, the column and the event's position, so the
    same event always seals to the same bytes (a rebuild gives identical rows) and no
    nonce is ever used for two different plaintexts under one key."""
    try:
        sid, aes = _cipher(app, stream_id)
    except ContentErased:
        return None
    nonce = hmac.new(b"anxin-view-nonce", f"{sid}\x1f{salt}".encode(), hashlib.sha256).digest()[:12]
    return nonce + aes.encrypt(nonce, value.encode(), _aad(sid))


def open_for(app: Source, stream_id: str, blob: bytes | None) -> str:
    """The value sealed by `seal_for` or `seal_det`, or 已删除 once the stream is erased."""
    if blob is None:
        return ""
    try:
        sid, aes = _cipher(app, stream_id)
        return aes.decrypt(blob[:12], blob[12:], _aad(sid)).decode()
    except ContentErased:
        return ERASED_LABEL
    except ContentTampered as e:
        app.quarantine_stream(e.stream_id, e.version)
        return UNREADABLE_LABEL
