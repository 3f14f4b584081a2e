"""Photos and thumbnails encrypted at rest, each under its own key (envelope encryption).

A stolen or repaired tablet must not hand over pictures of the customer's parts. Every file
under ``images/`` and ``thumbnails/`` is encrypted with AES-256-GCM under a random 256-bit key
of its own; that file key is stored in the file's header wrapped by the tablet's data key
(``sidecar.keys.DataKey``). Changing the data key therefore rewrites 40 bytes of each header
and never a photo body.

File layout (version 1)::

    offset  size
         0     8  magic  b"KNSPHOTO"  (not a JPEG, PNG, WebP, BMP or TIFF signature)
         8     1  version
         9     1  log2 of the segment size (16: 64 KiB of plaintext per segment)
        10     7  nonce prefix (random)
        17    40  key slot A: the file key wrapped by a data key, or 40 zero bytes
        57    40  key slot B: the same, or 40 zero bytes
        97     …  segments: AES-256-GCM ciphertext of each 64 KiB of the photo, each with its tag

The body is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015; the one age and
Tink's streaming AEAD use): segment *i* is sealed with the nonce ``prefix ‖ i (32-bit) ‖ last``
where ``last`` is 1 only on the final segment. Each segment is authenticated before a byte of it
is used, so an upload streams a photo in 64 KiB steps without holding it whole, and a file cut
short or extended fails on its last segment instead of passing as a smaller photo. Every
segment's associated data is the header's first 17 bytes (format, segment size, nonce prefix)
and the file's path relative to the data directory: a photo moved onto another's name (its
content address) does not open. The key slots are left out of it, so re-wrapping a key leaves
the body valid.

Wrapping: AES key wrap (RFC 3394, NIST SP 800-38F) rather than AES-GCM under the data key. The
wrapped payload is itself a uniformly random key, which is what key wrap is made for: it needs
no nonce (so nothing to repeat across millions of photos), carries a 64-bit integrity check that
tells a wrong data key from a right one before any body byte is read, and is 40 bytes.

Two slots make a key rotation safe against a kill or a power cut without rewriting the file:
the new wrap goes into the free slot and is fsynced before the old slot is zeroed and fsynced.
At every moment one slot holds an intact wrap under the old or the new key, and a reader tries
both. ``rewrap_all`` can be run again after any interruption and finishes the job.

Plaintext files are still read (a store converted by ``kensa db encrypt`` keeps plain photos
until ``encrypt_existing`` has reached them, and a development store made with
``KENSA_PLAINTEXT=1`` has nothing else); with no data key, photos are written plain.
"""

from __future__ import annotations

import logging
import os
import secrets
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from sidecar.errors import PhotoUnreadable
from sidecar.keys import DataKey

if TYPE_CHECKING:
    from schema.db import Database

log = logging.getLogger(__name__)

MAGIC = b"KNSPHOTO"
VERSION = 1
SEGMENT_LOG2 = 16
SEGMENT = 1 << SEGMENT_LOG2
TAG = 16
_PREFIX = 7
_FIXED = len(MAGIC) + 2 + _PREFIX  # the authenticated part of the header
_WRAPPED = 40
_SLOTS = (_FIXED, _FIXED + _WRAPPED)
HEADER = _FIXED + 2 * _WRAPPED
_EMPTY = bytes(_WRAPPED)
# The folders whose files are photos (or derived from them), relative to the data directory.
PHOTO_DIRS = ("images", "thumbnails")


# --- writing ---------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` to a temporary name, fsync, rename into place and fsync the folder: a power
    cut leaves the whole file or none (seed 002's atomic update)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in (data,) if isinstance(data, bytes) else data:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">I?", index, last)


def _aad(fixed: bytes, relative: str) -> bytes:
    return fixed + relative.encode("utf-8")


def seal(data: bytes, key: DataKey, relative: str) -> Iterator[bytes]:
    """The encrypted file of ``data`` stored at ``relative``, as a header and its segments."""
    file_key = AESGCM.generate_key(bit_length=256)
    fixed = MAGIC + bytes((VERSION, SEGMENT_LOG2)) + secrets.token_bytes(_PREFIX)
    yield fixed + aes_key_wrap(key.raw, file_key) + _EMPTY
    aead = AESGCM(file_key)
    aad = _aad(fixed, relative)
    count = max(1, -(-len(data) // SEGMENT))
    view = memoryview(data)
    for i in range(count):
        piece = view[i * SEGMENT : (i + 1) * SEGMENT]
        yield aead.encrypt(_nonce(fixed[-_PREFIX:], i, i == count - 1), piece, aad)


def stored_size(size: int, key: DataKey | None) -> int:
    """The bytes on disk of a photo of ``size`` bytes, written with ``key`` (or plain)."""
    if key is None:
        return size
    return HEADER + size + TAG * max(1, -(-size // SEGMENT))


def write(data_dir: Path, relative: str, data: bytes, key: DataKey | None) -> None:
    """Store ``data`` at ``data_dir/relative`` atomically: encrypted under a new file key
    wrapped by ``key``, or plain when there is none (``KENSA_PLAINTEXT=1``)."""
    target = data_dir / relative
    atomic_write(target, data if key is None else seal(data, key, relative))


def present(data_dir: Path, relative: str, size: int, key: DataKey | None) -> bool:
    """Whether a whole copy of a ``size``-byte photo is already stored at ``relative`` the way
    ``key`` would store it (the content address makes a second write a no-op)."""
    target = data_dir / relative
    try:
        return target.stat().st_size == stored_size(size, key)
    except OSError:
        return False


# --- reading ---------------------------------------------------------------------------------


def is_encrypted(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def _unwrap(wrapped: bytes, key: DataKey) -> bytes | None:
    if wrapped == _EMPTY:
        return None
    try:
        return aes_key_unwrap(key.raw, wrapped)
    except InvalidUnwrap:
        return None


def _parse_header(header: bytes, relative: str) -> tuple[bytes, list[bytes]]:
    if len(header) < HEADER:
        raise PhotoUnreadable(
            f"the photo file {relative} is truncated (its header is incomplete)",
            reason="truncated", path=relative,
        )
    if header[len(MAGIC)] != VERSION or header[len(MAGIC) + 1] != SEGMENT_LOG2:
        raise PhotoUnreadable(
            f"the photo file {relative} was written by a newer kensa (format "
            f"{header[len(MAGIC)]}); update the app",
            reason="unknown_format", path=relative,
        )
    return header[:_FIXED], [header[s : s + _WRAPPED] for s in _SLOTS]


class PhotoReader:
    """One stored photo, opened: its plaintext ``size`` and its bytes as verified ``chunks()``.

    Opening checks the key (a wrong key fails here, before any byte is read); each chunk is
    authenticated before it is returned, so a damaged file raises ``PhotoUnreadable`` and never
    yields bytes that are not the photo's.
    """

    __slots__ = ("_aad", "_aead", "_fixed", "_segments", "name", "path", "relative", "size")

    def __init__(self, data_dir: Path, relative: str, key: DataKey | None) -> None:
        self.relative = relative
        self.path = data_dir / relative
        self.name = self.path.name
        self._aead: AESGCM | None = None
        try:
            with self.path.open("rb") as fh:
                header = fh.read(HEADER)
                total = os.fstat(fh.fileno()).st_size
        except FileNotFoundError as exc:
            raise PhotoUnreadable(
                f"the photo file {relative} is missing on this tablet", reason="missing",
                path=relative,
            ) from exc
        except OSError as exc:
            raise PhotoUnreadable(
                f"the photo file {relative} cannot be read: {exc.strerror}", reason="io",
                path=relative,
            ) from exc
        if not header.startswith(MAGIC):
            self.size = total  # a plain photo (development store, or not yet converted)
            self._segments = 0
            return
        self._fixed, slots = _parse_header(header, relative)
        if key is None:
            raise PhotoUnreadable(
                f"the photo file {relative} is encrypted and the app was started without the "
                "tablet's data key", reason="no_key", path=relative,
            )
        file_key = next((k for k in (_unwrap(s, key) for s in slots) if k is not None), None)
        if file_key is None:
            raise PhotoUnreadable(
                f"the photo file {relative} cannot be opened with this tablet's data key (a key "
                "of another tablet, or a damaged header)", reason="wrong_key", path=relative,
            )
        self._aead = AESGCM(file_key)
        self._aad = _aad(self._fixed, relative)
        body = total - HEADER
        self._segments = max(1, -(-body // (SEGMENT + TAG)))
        self.size = body - TAG * self._segments
        if self.size < 0:
            raise PhotoUnreadable(
                f"the photo file {relative} is truncated", reason="truncated", path=relative
            )

    def __repr__(self) -> str:
        return f"PhotoReader({self.relative!r}, size={self.size})"

    def chunks(self) -> Iterator[bytes]:
        """The photo's bytes in order, each piece authenticated first (64 KiB at a time)."""
        with self.path.open("rb") as fh:
            if self._aead is None:
                while chunk := fh.read(SEGMENT):
                    yield chunk
                return
            fh.seek(HEADER)
            prefix = self._fixed[-_PREFIX:]
            for i in range(self._segments):
                sealed = fh.read(SEGMENT + TAG)
                last = i == self._segments - 1
                try:
                    yield self._aead.decrypt(_nonce(prefix, i, last), sealed, self._aad)
                except InvalidTag as exc:
                    raise PhotoUnreadable(
                        f"the photo file {self.relative} is damaged or was altered (segment "
                        f"{i + 1} of {self._segments} fails its check)",
                        reason="damaged", path=self.relative,
                    ) from exc

    def read(self) -> bytes:
        return b"".join(self.chunks())


def open_photo(data_dir: Path, relative: str, key: DataKey | None) -> PhotoReader:
    return PhotoReader(data_dir, relative, key)


def read(data_dir: Path, relative: str, key: DataKey | None) -> bytes:
    """The whole, verified photo at ``relative`` (a plain file is returned as it is)."""
    return PhotoReader(data_dir, relative, key).read()


# --- converting and re-keying ------------------------------------------------------------------


def _photo_files(data_dir: Path, db: Database) -> list[str]:
    """Every photo and thumbnail: the rows' paths and whatever else lies in the photo folders (a
    photo stored by a request whose attachment failed is still a photo)."""
    found: set[str] = set()
    with db.read() as session:
        rows = session.execute(
            sa.text("SELECT file_path, thumbnail_path FROM inspection_images")
        ).all()
    for row in rows:
        found.update(p for p in row if p)
    for folder in PHOTO_DIRS:
        root = data_dir / folder
        if root.is_dir():
            found.update(
                p.relative_to(data_dir).as_posix()
                for p in root.rglob("*")
                if p.is_file() and not p.name.startswith(".")  # .incoming-*.part: unfinished
            )
    return sorted(r for r in found if (data_dir / r).is_file())


def _encrypt_plain(data_dir: Path, relative: str, key: DataKey) -> None:
    data = (data_dir / relative).read_bytes()
    if data.startswith(MAGIC):
        return
    write(data_dir, relative, data, key)


def encrypt_existing(data_dir: Path, db: Database, key: DataKey) -> int:
    """Encrypt every plain photo and thumbnail in place (``kensa db encrypt``); return how many.

    Each file is replaced by temp + fsync + rename, so a kill leaves it plain or encrypted,
    never half of each; running it again skips the files already done.
    """
    done = 0
    for relative in _photo_files(data_dir, db):
        if not is_encrypted(data_dir / relative):
            _encrypt_plain(data_dir, relative, key)
            done += 1
    if done:
        log.info("encrypted %d photo files", done)
    return done


def _write_slot(fh: BinaryIO, offset: int, value: bytes) -> None:
    fh.seek(offset)
    fh.write(value)
    fh.flush()
    os.fsync(fh.fileno())


def rewrap(path: Path, relative: str, old: DataKey, new: DataKey) -> bool:
    """Re-wrap one encrypted file's key from ``old`` to ``new``; False when it already was."""
    with path.open("r+b") as fh:
        _, slots = _parse_header(fh.read(HEADER), relative)
        under_new = [_unwrap(s, new) for s in slots]
        if any(k is not None for k in under_new):
            here = 0 if under_new[0] is not None else 1
            other = 1 - here
            if slots[other] == _EMPTY:
                return False
            # Interrupted after the new wrap was written: finish by dropping the old one.
            _write_slot(fh, _SLOTS[other], _EMPTY)
            return True
        under_old = [_unwrap(s, old) for s in slots]
        if all(k is None for k in under_old):
            raise PhotoUnreadable(
                f"the photo file {relative} opens with neither the old nor the new data key",
                reason="wrong_key", path=relative,
            )
        here = 0 if under_old[0] is not None else 1
        file_key = under_old[here]
        assert file_key is not None
        # New wrap first, durable, then the old one gone: a kill between the two leaves a file
        # that opens with either key, and the next run only drops the old slot.
        _write_slot(fh, _SLOTS[1 - here], aes_key_wrap(new.raw, file_key))
        _write_slot(fh, _SLOTS[here], _EMPTY)
        return True


def rewrap_all(data_dir: Path, db: Database, old: DataKey, new: DataKey) -> int:
    """Move every photo and thumbnail from data key ``old`` to ``new`` (``kensa key rotate``):
    encrypted files get their key re-wrapped (bodies untouched), plain ones are encrypted under
    ``new``. Return how many files changed.

    Safe to run again after a kill at any point; during and after an interrupted run each file
    opens with the old or the new key. A file that opens with neither (another tablet's, or
    damaged) is left as it is and logged as an error: it is lost to both keys already, and
    refusing the rotation for it would keep a key that may have leaked and, on a rotation the
    next start finishes, keep the tablet from starting at all.
    """
    changed = 0
    failed: list[str] = []
    for relative in _photo_files(data_dir, db):
        path = data_dir / relative
        try:
            if is_encrypted(path):
                changed += rewrap(path, relative, old, new)
            else:
                _encrypt_plain(data_dir, relative, new)
                changed += 1
        except PhotoUnreadable as exc:
            log.error("photo file left as it is: %s", exc.message)
            failed.append(relative)
    log.info("re-keyed %d photo files%s", changed,
             f"; {len(failed)} open with neither key" if failed else "")
    return changed
