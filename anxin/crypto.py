"""One data key per stream, wrapped by a master key that lives outside the database.

Each event (and snapshot) state is AES-256-GCM under its stream's key with the stream
id, version and topic as associated data, so a ciphertext moved to another row, stream
or topic fails to decrypt. Wrapped keys sit in `anxin_keys` beside the events and are
written by the event recorder in the same transaction as a stream's first event
(see anxin.storage), so no event can exist without its key and a bulk import pays
one commit, not one per key. Destroying a key (shredding) erases the stream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import get_topic, resolve_topic

if TYPE_CHECKING:
    from anxin.storage import Database

FORMAT = b"\x01"
INDEX_KEY_ID = "anxin:blind-index"
NONCE = 12


class KeyError_(Exception):
    pass


class MasterKeyMissing(KeyError_):
    def __init__(self, where: str) -> None:
        super().__init__(
            f"找不到主密钥（master key）：{where}。请先运行 `anxin init`，"
            "或设置 ANXIN_MASTER_KEY_FILE / ANXIN_MASTER_KEY。"
        )


class StreamErased(MapperDeserialisationError):
    """The stream's data key was destroyed: its content is gone for good."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id} is erased")


class Tampered(MapperDeserialisationError):
    """A ciphertext failed authentication: it was altered or moved."""

    def __init__(self, stream_id: str, version: int) -> None:
        self.stream_id = stream_id
        self.version = version
        super().__init__(f"stream {stream_id} version {version} failed authentication")


@dataclass(frozen=True)
class MasterKey:
    key: bytes

    @cached_property
    def kek_id(self) -> str:
        return hashlib.sha256(b"anxin-kek-id" + self.key).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(AESGCM.generate_key(bit_length=256))

    def encode(self) -> str:
        return base64.b64encode(self.key).decode()

    @classmethod
    def decode(cls, text: str) -> MasterKey:
        key = base64.b64decode(text.strip())
        if len(key) != 32:
            raise ValueError("master key must be 32 bytes, base64-encoded")
        return cls(key)

    @cached_property
    def aes(self) -> AESGCM:
        return AESGCM(self.key)

    def wrap(self, stream_id: str, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self.aes.encrypt(nonce, data_key, b"anxin-dek:" + stream_id.encode())

    def unwrap(self, stream_id: str, wrapped: bytes) -> bytes:
        return self.aes.decrypt(
            wrapped[:NONCE], wrapped[NONCE:], b"anxin-dek:" + stream_id.encode()
        )


class MasterKeyFile:
    """The key file: base64 text, mode 0600. During rotation a `.new` file exists
    until every data key is re-wrapped; both are tried, by key id."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def pending_path(self) -> Path:
        return self.path.with_name(self.path.name + ".new")

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> MasterKey:
        if self.path.exists():
            raise FileExistsError(f"主密钥已存在，拒绝覆盖：{self.path}")
        key = MasterKey.generate()
        self._write(self.path, key)
        return key

    def load_all(self) -> list[MasterKey]:
        keys = []
        for p in (self.path, self.pending_path):
            if p.exists():
                keys.append(MasterKey.decode(p.read_text()))
        if not keys:
            raise MasterKeyMissing(str(self.path))
        return keys

    def begin_rotation(self) -> MasterKey:
        key = MasterKey.generate()
        self._write(self.pending_path, key)
        return key

    def finish_rotation(self) -> None:
        os.replace(self.pending_path, self.path)

    @staticmethod
    def _write(path: Path, key: MasterKey) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.encode() + "\n")


class KeyStore:
    """Data keys by stream id: generated on first use, cached unwrapped in memory,
    persisted wrapped by the recorder with the stream's first events."""

    def __init__(self, master_keys: list[MasterKey]) -> None:
        self.master = master_keys[0]
        self.keks = {k.kek_id: k for k in master_keys}
        self.db: Database | None = None
        self._ciphers: dict[str, AESGCM] = {}
        self._pending: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self._index_key: bytes | None = None

    def named_key(self, key_id: str) -> bytes:
        """A key that belongs to no stream (blind index, audit notes): created once,
        stored wrapped like a data key, so master-key rotation never changes it."""
        assert self.db is not None
        row = self.db.fetch_key(key_id)
        if row is None:
            self.db.insert_key(key_id, self.master.wrap(key_id, os.urandom(32)), self.master.kek_id)
            row = self.db.fetch_key(key_id)
            assert row is not None
        if row[0] is None:
            raise StreamErased(key_id)
        return self._unwrap(key_id, row[0], row[1])

    def ensure_named_key(self, key_id: str) -> None:
        """Create a named key if the store has none yet (without unwrapping it)."""
        assert self.db is not None
        if self.db.fetch_key(key_id) is None:
            self.db.insert_key(key_id, self.master.wrap(key_id, os.urandom(32)), self.master.kek_id)

    def named_cipher(self, key_id: str) -> AESGCM:
        aes = self._ciphers.get(key_id)
        if aes is None:
            aes = self._ciphers[key_id] = AESGCM(self.named_key(key_id))
        return aes

    @property
    def index_key(self) -> bytes:
        if self._index_key is None:
            self._index_key = self.named_key(INDEX_KEY_ID)
        return self._index_key

    # -- writing ------------------------------------------------------------------
    def cipher_for_write(self, stream_id: str, version: int) -> AESGCM:
        aes = self._ciphers.get(stream_id)
        if aes is not None:
            return aes
        if version > 1:
            return self.cipher_for_read(stream_id, version)
        data_key = AESGCM.generate_key(bit_length=256)
        aes = AESGCM(data_key)
        with self._lock:
            self._pending[stream_id] = (self.master.wrap(stream_id, data_key), self.master.kek_id)
            self._ciphers[stream_id] = aes
        return aes

    def take_pending(self, stream_ids: Iterable[str]) -> list[tuple[str, bytes, str]]:
        """Wrapped keys of these streams not yet stored: the recorder writes them."""
        out = []
        with self._lock:
            for sid in stream_ids:
                item = self._pending.get(sid)
                if item is not None:
                    out.append((sid, item[0], item[1]))
        return out

    def committed(self, stream_ids: Iterable[str]) -> None:
        with self._lock:
            for sid in stream_ids:
                self._pending.pop(sid, None)

    def abandoned(self, stream_ids: Iterable[str]) -> None:
        """A save failed: forget keys that never reached the database."""
        with self._lock:
            for sid in stream_ids:
                if self._pending.pop(sid, None) is not None:
                    self._ciphers.pop(sid, None)

    # -- reading ------------------------------------------------------------------
    def cipher_for_read(self, stream_id: str, version: int) -> AESGCM:
        aes = self._ciphers.get(stream_id)
        if aes is not None:
            return aes
        assert self.db is not None
        row = self.db.fetch_key(stream_id)
        if row is None or row[0] is None:
            raise StreamErased(stream_id)
        aes = AESGCM(self._unwrap(stream_id, row[0], row[1]))
        self._ciphers[stream_id] = aes
        return aes

    def _unwrap(self, stream_id: str, wrapped: bytes, kek_id: str) -> bytes:
        kek = self.keks.get(kek_id)
        if kek is None:
            raise KeyError_(f"stream {stream_id} is wrapped by unknown master key {kek_id}")
        return kek.unwrap(stream_id, bytes(wrapped))

    def prefetch(self, stream_ids: Iterable[str]) -> None:
        """Before many streams are read: their keys with one query per 500 instead of one
        per stream. Keys not in hand are unwrapped; any key found shredded is forgotten,
        even one in hand (another process may have shredded it since), so reading that
        stream then raises StreamErased."""
        assert self.db is not None
        wanted = list(dict.fromkeys(stream_ids))
        if len(wanted) < 2:
            return
        for stream_id, wrapped, kek_id in self.db.fetch_keys(wanted):
            if wrapped is None:
                self.forget(stream_id)
            elif stream_id not in self._ciphers:
                self._ciphers[stream_id] = AESGCM(self._unwrap(stream_id, wrapped, kek_id))

    def preload(self) -> int:
        """Unwrap every live key at once (for reading the whole log)."""
        assert self.db is not None
        n = 0
        for stream_id, wrapped, kek_id in self.db.all_keys():
            if wrapped is None:
                # Shredded, perhaps by another process since we cached it: forget it.
                self.forget(stream_id)
            elif stream_id not in self._ciphers:
                self._ciphers[stream_id] = AESGCM(self._unwrap(stream_id, wrapped, kek_id))
                n += 1
        return n

    def check_live(self, stream_id: str) -> None:
        """Before a stream is read: a key we cached may since have been shredded by
        another process (the CLI beside a running server); then forget it and refuse."""
        if stream_id in self._ciphers and self.is_erased(stream_id):
            self.forget(stream_id)
            raise StreamErased(stream_id)

    def forget(self, stream_id: str) -> None:
        with self._lock:
            self._ciphers.pop(stream_id, None)
            self._pending.pop(stream_id, None)

    def is_erased(self, stream_id: str) -> bool:
        assert self.db is not None
        row = self.db.fetch_key(stream_id)
        return row is not None and row[0] is None

    # -- blind index --------------------------------------------------------------
    def blind(self, purpose: str, value: str) -> str:
        return hmac.new(
            self.index_key, purpose.encode() + b"\x1f" + value.encode(), hashlib.sha256
        ).hexdigest()

    def deterministic_id(self, purpose: str, value: str) -> UUID:
        """A stream id nobody can compute without the master key (so ids leak nothing)."""
        return uuid.UUID(bytes=bytes.fromhex(self.blind(purpose, value))[:16], version=4)


def _aad(stream_id: str, version: int, topic: str) -> bytes:
    return f"{stream_id}\x1f{version}\x1f{topic}".encode()


def stream_key(originator_id: Any) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else str(originator_id)


class StreamMapper(Mapper):
    """The library's mapper with one key per stream and the row bound as AAD."""

    def __init__(self, transcoder: Transcoder, keystore: KeyStore) -> None:
        super().__init__(transcoder=transcoder)
        self.keystore = keystore

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        topic = get_topic(domain_event.__class__)
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        version = state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        sid = stream_key(originator_id)
        aes = self.keystore.cipher_for_write(sid, version)
        nonce = os.urandom(NONCE)
        blob = FORMAT + nonce + aes.encrypt(nonce, self.transcoder.encode(state), _aad(sid, version, topic))
        return StoredEvent(
            originator_id=originator_id, originator_version=version, topic=topic, state=blob
        )

    def decrypt_state(self, stored: StoredEvent) -> dict[str, Any]:
        sid = stream_key(stored.originator_id)
        aes = self.keystore.cipher_for_read(sid, stored.originator_version)
        blob = bytes(stored.state)
        if blob[:1] != FORMAT:
            raise Tampered(sid, stored.originator_version)
        try:
            plain = aes.decrypt(
                blob[1 : 1 + NONCE], blob[1 + NONCE :], _aad(sid, stored.originator_version, stored.topic)
            )
        except InvalidTag as e:
            raise Tampered(sid, stored.originator_version) from e
        return self.transcoder.decode(plain)

    def to_domain_event(self, stored: StoredEvent) -> Any:
        cls = resolve_topic(stored.topic)
        state = self.decrypt_state(stored)
        oid = stored.originator_id
        state["originator_id"] = oid if isinstance(oid, UUID) else UUID(str(oid))
        state["originator_version"] = stored.originator_version
        class_version = getattr(cls, "class_version", 1)
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event
