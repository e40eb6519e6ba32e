"""Writing a world's files so that regenerating the same world leaves them as they were.

The refresh knows a landing file by its modification time and size (`settings.file_state`): a file written again
with the same bytes would read as a replaced extract and be ingested again, and a postcode directory written
again would make the analysis due. So a file is replaced only when its bytes differ, and then whole (a temporary
file beside it, renamed over it), so that a landing sensor never reads one half written.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import polars as pl


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` to `path` unless it already holds exactly that; True when it was written."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")  # a dot file: not a landing name (LANDING_NAME_RULE)
    partial.write_bytes(data)
    os.replace(partial, path)
    return True


def csv_bytes(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode()


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def remove_all_but(folder: Path, keep: set[str]) -> None:
    """Remove everything in `folder` not named in `keep` (a previous world's months, anything else left there)."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
