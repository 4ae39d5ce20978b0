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
import binascii
import hashlib
import hmac
import os
import threading
import uuid
from collections.abc import Callable, Iterable
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

from domain.common import ContentErased, ContentTampered

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


class StreamErased(MapperDeserialisationError, ContentErased):
    """The stream's data key was destroyed: its content is gone for good."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id} is erased")


class Tampered(MapperDeserialisationError, ContentTampered):
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
        return self.aes.decrypt(wrapped[:NONCE], wrapped[NONCE:], b"anxin-dek:" + stream_id.encode())


class MasterKeyNotHeld(KeyError_):
    """The store wants a master key this process does not hold (wrong key file, a
    rotation whose new key has not reached this host, a backup restored with another key)."""

    def __init__(self, expected: str, held: Iterable[str]) -> None:
        self.expected = expected
        self.held = sorted(held)
        super().__init__(
            f"本库使用的主密钥编号为 {expected}，本进程持有的主密钥编号为 "
            f"{'、'.join(self.held) or '（无）'}：请放置正确的密钥文件（ANXIN_MASTER_KEY_FILE），"
            "多台服务器轮换时请先把新密钥文件复制到每台服务器。未写入任何数据。"
        )


def parse_keys(text: str, where: str) -> list[MasterKey]:
    """A key file's keys: one base64 key a line; blank lines and `#` comments ignored."""
    keys = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            keys.append(MasterKey.decode(line))
        except (ValueError, binascii.Error):
            raise KeyFileInvalid(where, f"第 {n} 行不是 32 字节的 base64 密钥") from None
    if not keys:
        raise KeyFileInvalid(where, "文件为空")
    return keys


class KeyFileInvalid(KeyError_):
    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"主密钥文件无法读取（{where}）：{why}。请从备份中找回密钥文件。")


class MasterKeyFile:
    """The key file: base64 keys, one a line, mode 0600. It holds the store's current
    key and, during a rotation, the keys still in use; which one is current is recorded
    in the store (the key ring), never guessed from the file. Every change is written
    to a new file, fsynced, renamed over the old one and the folder fsynced, before the
    database commits anything that depends on it. A `.new` file left by a rotation of
    earlier versions is read too."""

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
        self._write([key], exclusive=True)
        return key

    def load_all(self) -> list[MasterKey]:
        keys: list[MasterKey] = []
        for p in (self.path, self.pending_path):
            if p.exists():
                for k in parse_keys(p.read_text(encoding="ascii", errors="replace"), str(p)):
                    if k not in keys:
                        keys.append(k)
        if not keys:
            raise MasterKeyMissing(str(self.path))
        return keys

    def add(self, key: MasterKey, held: Iterable[MasterKey] = ()) -> None:
        """Add a key to the file (durably), keeping those it holds and the `held` ones
        (the keys a process works with, which may not have come from this file)."""
        keys = self.load_all() if self.path.exists() or self.pending_path.exists() else []
        wanted = [*keys, *(k for k in held if k not in keys)]
        if key not in wanted or wanted != keys:
            self._write([*(k for k in wanted if k != key), key])

    def keep_only(self, kek_ids: Iterable[str]) -> list[str]:
        """Drop every key not named (retired ones), durably; the ids dropped."""
        keep = set(kek_ids)
        keys = self.load_all()
        dropped = [k.kek_id for k in keys if k.kek_id not in keep]
        if dropped or self.pending_path.exists():
            self._write([k for k in keys if k.kek_id in keep])
            if self.pending_path.exists():
                self.pending_path.unlink()
                _fsync_dir(self.path.parent)
        return dropped

    def _write(self, keys: list[MasterKey], exclusive: bool = False) -> None:
        if not keys:
            raise ValueError("a key file holds at least one key")
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = "".join(f"{k.encode()}  # {k.kek_id}\n" for k in keys)
        tmp = folder / f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if exclusive:
                os.link(tmp, self.path)  # fails if the file appeared meanwhile: never overwritten
                os.unlink(tmp)
            else:
                os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyStore:
    """Data keys by stream id: generated on first use, cached unwrapped in memory,
    persisted wrapped by the recorder with the stream's first events.

    Master keys form a ring: the store records which one is current (`anxin_keyring`),
    and a data key is wrapped inside the transaction that stores it, under the key the
    store names current at that moment. So a rotation by another process (or host) is
    followed without a restart: a key id this process does not hold makes it read its
    key source again (`reload`), and if the key is still missing the write is refused
    with a message naming it. Nothing is ever wrapped by a key the store has retired."""

    def __init__(self, master_keys: list[MasterKey], reload: Callable[[], list[MasterKey]] | None = None) -> None:
        self.keks = {k.kek_id: k for k in master_keys}
        self.reload = reload
        self.db: Database | None = None
        self._ciphers: dict[str, AESGCM] = {}
        self._pending: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._index_key: bytes | None = None
        # Called with (stream id, 0) when a many-keys read meets a key that fails
        # authentication (the application quarantines that stream; see anxin.quarantine).
        self.on_tampered: Callable[[str, int], Any] | None = None

    # -- master keys --------------------------------------------------------------------
    def kek(self, kek_id: str) -> MasterKey:
        """A master key by id; the key source is read again once if it is not held."""
        kek = self.keks.get(kek_id)
        if kek is None and self.reload is not None:
            for k in self.reload():
                self.keks.setdefault(k.kek_id, k)
            kek = self.keks.get(kek_id)
        if kek is None:
            raise MasterKeyNotHeld(kek_id, self.keks)
        return kek

    @property
    def master(self) -> MasterKey:
        """The store's current master key."""
        assert self.db is not None
        return self.kek(self.db.current_kek_id())

    def wrap_current(self, c: Any, items: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes, str]]:
        """Wrap data keys under the key the store names current, read in the transaction
        `c` that will store them (so a rotation's switch cannot pass between the two)."""
        items = list(items)
        if not items:
            return []
        assert self.db is not None
        kek = self.kek(self.db.current_kek_id(c))
        return [(sid, kek.wrap(sid, key), kek.kek_id) for sid, key in items]

    def check_at_open(self) -> None:
        """Before anything is written: this process must hold the store's current key and
        that key must unwrap the store's data keys. A store without a ring yet (new, or
        from before the ring) gets one here, from the keys its data keys name."""
        assert self.db is not None
        self.db.ensure_keyring(self)
        current = self.db.current_kek_id()
        kek = self.kek(current)
        samples = self.db.sample_keys(current, 3)
        if samples and not any(self._unwraps(kek, sid, w) for sid, w in samples):
            raise KeyError_(
                f"主密钥（编号 {current}）无法解开本库的数据密钥：数据库或密钥文件已损坏，"
                "请运行 `anxin check`。未写入任何数据。"
            )

    @staticmethod
    def _unwraps(kek: MasterKey, stream_id: str, wrapped: bytes) -> bool:
        try:
            kek.unwrap(stream_id, bytes(wrapped))
            return True
        except InvalidTag:
            return False

    def named_key(self, key_id: str) -> bytes:
        """A key that belongs to no stream (blind index, audit notes): created once,
        stored wrapped like a data key, so master-key rotation never changes it."""
        assert self.db is not None
        row = self.db.fetch_key(key_id)
        if row is None:
            self.ensure_named_key(key_id)
            row = self.db.fetch_key(key_id)
            assert row is not None
        if row[0] is None:
            raise StreamErased(key_id)
        return self._unwrap(key_id, row[0], row[1])

    def ensure_named_key(self, key_id: str) -> None:
        """Create a named key if the store has none yet (without unwrapping it)."""
        assert self.db is not None
        if self.db.fetch_key(key_id) is None:
            self.db.insert_named_key(self, key_id, os.urandom(32))

    def named_cipher(self, key_id: str) -> AESGCM:
        aes = self._ciphers.get(key_id)
        if aes is None:
            aes = self._ciphers[key_id] = AESGCM(self.named_key(key_id))
        return aes

    def ensure_index_key(self) -> None:
        """The blind index's key made now, if it is not yet (not inside a view's transaction)."""
        self.ensure_named_key(INDEX_KEY_ID)

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
            self._pending[stream_id] = data_key  # wrapped by the recorder, in the save's transaction
            self._ciphers[stream_id] = aes
        return aes

    def take_pending(self, stream_ids: Iterable[str]) -> list[tuple[str, bytes]]:
        """Data keys of these streams not yet stored: the recorder wraps and writes them."""
        out = []
        with self._lock:
            for sid in stream_ids:
                item = self._pending.get(sid)
                if item is not None:
                    out.append((sid, item))
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
        kek = self.kek(kek_id)
        try:
            return kek.unwrap(stream_id, bytes(wrapped))
        except InvalidTag as e:  # the wrapped key was altered or moved: this stream only
            raise Tampered(stream_id, 0) from e

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
                self._cache_or_skip(stream_id, wrapped, kek_id)

    def preload(self) -> int:
        """Unwrap every live key at once (for reading the whole log)."""
        assert self.db is not None
        n = 0
        for stream_id, wrapped, kek_id in self.db.all_keys():
            if wrapped is None:
                # Shredded, perhaps by another process since we cached it: forget it.
                self.forget(stream_id)
            elif stream_id not in self._ciphers:
                n += self._cache_or_skip(stream_id, wrapped, kek_id)
        return n

    def _cache_or_skip(self, stream_id: str, wrapped: bytes, kek_id: str) -> bool:
        """One key of many: a key that fails authentication stops that stream only (it is
        left out, so reading it raises Tampered), not the read of every other."""
        try:
            self._ciphers[stream_id] = AESGCM(self._unwrap(stream_id, wrapped, kek_id))
            return True
        except Tampered:
            if self.on_tampered is not None:
                self.on_tampered(stream_id, 0)
            return False

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

    def forget_all(self) -> None:
        """Forget every stored key held unwrapped: each stream's next read unwraps it again."""
        with self._lock:
            for sid in [sid for sid in self._ciphers if sid not in self._pending]:
                del self._ciphers[sid]

    def is_erased(self, stream_id: str) -> bool:
        assert self.db is not None
        row = self.db.fetch_key(stream_id)
        return row is not None and row[0] is None

    # -- blind index --------------------------------------------------------------
    def blind(self, purpose: str, value: str) -> str:
        return hmac.new(self.index_key, purpose.encode() + b"\x1f" + value.encode(), hashlib.sha256).hexdigest()

    def deterministic_id(self, purpose: str, value: str) -> UUID:
        """A stream id nobody can compute without the master key (so ids leak nothing)."""
        return uuid.UUID(bytes=bytes.fromhex(self.blind(purpose, value))[:16], version=4)


def _aad(stream_id: str, version: int, topic: str) -> bytes:
    return f"{stream_id}\x1f{version}\x1f{topic}".encode()


def seal(aes: AESGCM, stream_id: str, version: int, topic: str, plain: bytes) -> bytes:
    """An encoded event state as stored: format byte, fresh nonce, AES-GCM bound to its row."""
    nonce = os.urandom(NONCE)
    return FORMAT + nonce + aes.encrypt(nonce, plain, _aad(stream_id, version, topic))


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
        blob = seal(aes, sid, version, topic, self.transcoder.encode(state))
        return StoredEvent(originator_id=originator_id, originator_version=version, topic=topic, state=blob)

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
