"""The benchmarks' cached full runs: one compressed JSON file of named entries per directory.

Every full run a benchmark trains (the dense ground truth, the noise floor's nudged rates,
the rates chosen at other seeds, the ceiling's) is kept in OUT/ground-truth/full-runs.json.xz,
one entry per (task, seed, kind, configuration hash): one file per set of results to commit
(benchmarks/results, benchmarks/results/portable) instead of hundreds. Its bytes depend on
the entries alone (keys sorted; xz stores no timestamp), and a file that would not change
is not written again.

A writer reads the file, sets its entry and replaces the file whole, holding a lock on its
directory: the threads and processes of benchmarks running at once keep each other's runs,
and a reader never sees half a file.

    python -m benchmarks.archive DIR [DIR ...]

packs the older layout, one JSON file per entry in DIR (named by its key), into DIR's
archive, checks that every entry reads back as its file did, and deletes the files.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import lzma
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

NAME = "full-runs.json.xz"


@dataclass(frozen=True)
class Entry:
    """The entry `key` of the archive in `directory`."""

    directory: Path
    key: str

    def load(self) -> Any | None:
        """Its value (do not change it: reads are shared), or None where it was never stored."""
        return read(self.directory).get(self.key)

    def store(self, value: Any) -> None:
        """Set it to `value` (JSON data), creating the archive where there is none."""
        with _locked(self.directory):
            _write(self.directory, {**read(self.directory), self.key: value})


def read(directory: Path) -> Mapping[str, Any]:
    """Every entry of `directory`'s archive ({} where there is none), decoded once per version
    of the file: do not change what it returns."""
    path = directory / NAME
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    return _decoded(path, stat.st_ino, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _decoded(path: Path, inode: int, mtime_ns: int, size: int) -> Mapping[str, Any]:
    try:
        entries: Mapping[str, Any] = json.loads(lzma.decompress(path.read_bytes()))
    except (lzma.LZMAError, ValueError) as error:
        message = f"{path} is unreadable ({error}); delete it to recompute its runs"
        raise ValueError(message) from None
    return entries


def encode(entries: Mapping[str, Any]) -> bytes:
    """The archive's bytes: the same entries give the same bytes."""
    return lzma.compress(json.dumps(entries, sort_keys=True, separators=(",", ":")).encode())


def _write(directory: Path, entries: Mapping[str, Any]) -> None:
    """Replace the archive by `entries` (under the lock), unless it holds them already."""
    path = directory / NAME
    data = encode(entries)
    if path.exists() and path.read_bytes() == data:
        return
    partial = path.with_name(f"{NAME}.partial")
    partial.write_bytes(data)
    partial.replace(path)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Held by one thread or process at a time: an exclusive flock on the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def pack(directory: Path) -> int:
    """Move the per-entry JSON files of `directory` into its archive (checked: every entry
    reads back equal to its file before the file is deleted); how many it moved."""
    files = sorted(directory.glob("*.json"))
    loose = {f.stem: json.loads(f.read_text()) for f in files}
    if not loose:
        return 0
    with _locked(directory):
        _write(directory, {**read(directory), **loose})
    packed = read(directory)
    if differ := [key for key, value in loose.items() if packed.get(key) != value]:
        raise SystemExit(f"{directory / NAME}: {differ[0]} did not read back; files kept")
    for f in files:
        f.unlink()
    return len(files)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="e.g. OUT/ground-truth")
    for directory in parser.parse_args(argv).dirs:
        print(f"{directory / NAME}: {pack(directory)} files packed")


if __name__ == "__main__":
    main()
