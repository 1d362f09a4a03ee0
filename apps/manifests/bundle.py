"""A bundle as a download (deterministic zip) or as files on disk."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

# Zip timestamps cannot predate 1980; a fixed one makes the same bundle the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644 << 16  # -rw-r--r-- in the upper 16 bits (Unix attributes)
_UNIX = 3


def _safe_relative(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if relative.is_absolute() or not relative.parts or ".." in relative.parts or "\\" in path:
        raise ValueError(f"unsafe bundle path {path!r}")
    return relative


def zip_bundle(files: Mapping[str, str], *, root: str = "") -> bytes:
    """The files as a zip with sorted entries and fixed metadata: identical input gives identical bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            name = str(PurePosixPath(root) / _safe_relative(path)) if root else str(_safe_relative(path))
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = _FILE_MODE
            info.create_system = _UNIX
            archive.writestr(info, files[path].encode("utf-8"))
    return buffer.getvalue()


def write_bundle(files: Mapping[str, str], out_dir: Path) -> list[Path]:
    """Write every file under out_dir (created if needed); paths escaping out_dir are refused."""
    written = []
    for path in sorted(files):
        target = out_dir / _safe_relative(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[path], encoding="utf-8")
        written.append(target)
    return written
