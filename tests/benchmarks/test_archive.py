"""The archive of cached full runs (`benchmarks.archive`).

Covers: an entry stored reads back and keeps the others; the same entries give the same
bytes whatever order they were stored in, and storing what the archive holds writes nothing;
threads storing at once lose no entry; packing the older layout (one JSON file per entry)
moves every file into the archive, readable as it was.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import archive

RUN = {"task": "t", "seed": 0, "rates": [{"lr": 0.1, "rungs": {"30": 1.5, "90": 0.25}}]}


def test_an_entry_stored_reads_back_beside_the_others(tmp_path: Path) -> None:
    archive.Entry(tmp_path, "a").store(RUN)
    archive.Entry(tmp_path, "b").store({"seed": 1})
    assert archive.Entry(tmp_path, "a").load() == RUN
    assert archive.read(tmp_path) == {"a": RUN, "b": {"seed": 1}}
    assert archive.Entry(tmp_path, "c").load() is None
    assert archive.read(tmp_path / "none") == {}


def test_the_same_entries_give_the_same_bytes_and_an_unchanged_archive_is_not_written(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    for directory, keys in ((first, "ab"), (second, "ba")):
        for key in keys:
            archive.Entry(directory, key).store(RUN)
    path = first / archive.NAME
    assert path.read_bytes() == (second / archive.NAME).read_bytes()
    stamp = path.stat().st_mtime_ns
    archive.Entry(first, "a").store(json.loads(json.dumps(RUN)))
    assert path.stat().st_mtime_ns == stamp


def test_threads_storing_at_once_keep_every_entry(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: archive.Entry(tmp_path, f"k{i}").store({"i": i}), range(32)))
    assert archive.read(tmp_path) == {f"k{i}": {"i": i} for i in range(32)}


def test_packing_moves_every_file_into_the_archive(tmp_path: Path) -> None:
    archive.Entry(tmp_path, "kept").store({"seed": 1})
    (tmp_path / "a.json").write_text(json.dumps(RUN, indent=1) + "\n")
    archive.main([str(tmp_path)])
    assert list(tmp_path.glob("*.json")) == []
    assert archive.read(tmp_path) == {"a": RUN, "kept": {"seed": 1}}
