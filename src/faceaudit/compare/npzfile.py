"""NPZ archives written byte-for-byte deterministically and read back with their content digest checked.

``numpy.savez`` stamps each member with the wall-clock time, so two writes of the same arrays differ;
:func:`write_npz` fixes the stamp (1980-01-01, the ZIP epoch) and the member order, so equal arrays give
equal bytes. :func:`content_digest` is the SHA-256 of the arrays themselves (per member, sorted by name:
the name, the dtype, the shape and the C-order bytes), so a copy that decompresses to the same arrays has
the same digest whatever its compression.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["write_npz", "read_npz", "content_digest", "DIGEST_MEMBER", "DIGEST_RULE", "NpzDamaged"]

#: the member holding the hex digest of the others
DIGEST_MEMBER = "__digest__"
DIGEST_RULE = ("sha256 over the members sorted by name (the digest member excluded): per member its name, "
               "NUL, the numpy dtype string, NUL, the shape, NUL, then its C-order bytes")
_EPOCH = (1980, 1, 1, 0, 0, 0)


class NpzDamaged(Exception):
    """The archive cannot be read as written (callers turn it into their named error)."""


def content_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) of the arrays as :data:`DIGEST_RULE` says."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == DIGEST_MEMBER:
            continue
        a = np.asarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes(order="C"))
    return h.hexdigest()


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], *, compress: bool = True,
              fsync: bool = False) -> str:
    """Write ``arrays`` (plus their digest) to ``path`` atomically and deterministically; the digest."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    digest = content_digest(arrays)
    arrays[DIGEST_MEMBER] = np.asarray(digest)
    tmp = path.with_name(path.name + ".tmp")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with open(tmp, "wb") as f:
        with zipfile.ZipFile(f, mode="w", compression=method, allowZip64=True) as z:
            for name in sorted(arrays):
                info = zipfile.ZipInfo(name + ".npy", date_time=_EPOCH)
                info.compress_type = method
                info.external_attr = 0o600 << 16
                with z.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.require(arrays[name], requirements="C"),
                                              allow_pickle=False)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    return digest


def read_npz(path: str | os.PathLike, *, require_digest: bool = True) -> dict[str, np.ndarray]:
    """Every member of an NPZ archive, its digest checked (when it has one, or ``require_digest``).

    Raises :class:`NpzDamaged` with what is wrong: empty, not a ZIP archive, truncated, a member that
    does not decompress or is not an array, or a digest that does not match."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise NpzDamaged("the file is empty (0 bytes)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, zlib, numpy's header parser: any of them on a damaged file
        raise NpzDamaged(f"not a readable NPZ archive, truncated or corrupted ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    recorded = arrays.get(DIGEST_MEMBER)
    if recorded is None:
        if require_digest:
            raise NpzDamaged("it has no content digest")
        return arrays
    if recorded.shape != () or recorded.dtype.kind != "U" or str(recorded) != content_digest(arrays):
        raise NpzDamaged("its content digest does not match its content (the file was altered or corrupted)")
    return arrays
