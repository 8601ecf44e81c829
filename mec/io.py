"""Atomic writes of Parquet and JSON, with the run's provenance attached.

A file appears under its final name only once it is complete (written to a temporary file in the same directory,
then renamed), so a killed job never leaves a file a later stage would trust.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_PACKAGES = ("numpy", "numba", "pandas", "pyarrow", "scikit-learn", "torch", "ray")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@functools.lru_cache(maxsize=1)
def machine() -> dict[str, Any]:
    """The CPU model, CPU count and system of this process's machine. The same config and seed give the same numbers
    bit for bit on the same CPU model; on another one torch's and MKL's float kernels may round differently, and over a
    training run that drifts within the spread between seeds (docs/reproducing.md)."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or "unknown", "cpus": os.cpu_count(), "system": platform.platform()}


@functools.lru_cache(maxsize=1)
def source_commit() -> str:
    """The git commit of the checkout this package is imported from, with "+dirty" when tracked files differ from it;
    "unknown" outside a git checkout (an installed copy) or without git."""
    root = Path(__file__).resolve().parents[1]
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30,
                                  check=True).stdout.strip()  # fmt: skip

        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def _file_mode() -> int:
    """Permissions a plain open() would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _file_mode())  # mkstemp makes the file private (0600); outputs are as readable as any file
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# The longest file or folder name most file systems take (NAME_MAX), where the file system does not say its own.
NAME_MAX_BYTES = 255
# What the probe of writable_problem writes (and syncs) before removing it: a full disk shows here, not after the work.
PROBE_BYTES = 64 * 1024


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return NAME_MAX_BYTES


def writable_problem(folder: str | os.PathLike, names: tuple[str, ...] = ()) -> str | None:
    """Why new files cannot be written in `folder` (created, with its parents, where missing), or None. Each name on
    the way and each of `names` (files to come) must fit the file system's name limit; then a probe file of
    PROBE_BYTES is written, synced and removed, which shows a full disk, a read-only or virtual file system (/proc),
    a path under a regular file or through a symlink loop before any work is done. os.access cannot tell: it says
    yes to root for everything."""
    folder = Path(folder)
    existing = folder.absolute()
    while not os.path.isdir(existing) and existing != existing.parent:
        existing = existing.parent
    limit = _name_max(existing)
    for name in (*folder.parts, *names):
        if len(os.fsencode(name)) > limit:
            return f"the name {name[:24]}... is {len(os.fsencode(name))} bytes long; allowed: at most {limit} bytes"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the folder {exc.filename or folder}: {exc.strerror or type(exc).__name__}"
    try:
        fd, probe = tempfile.mkstemp(prefix=".mec-probe-", suffix=".tmp", dir=folder)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        return f"cannot write a file in {folder}: {exc.strerror or type(exc).__name__}"
    return None


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike, provenance: dict[str, Any] | None = None) -> Path:
    """Write a DataFrame atomically; `provenance` (config, seed, ...) plus package versions, the machine and the
    source commit (machine(), source_commit()) go in the file metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"mec_provenance"] = json.dumps(
        {**(provenance or {}), "versions": package_versions(), "machine": machine(), "commit": source_commit()}
    ).encode()
    table = table.replace_schema_metadata(meta)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


class CorruptFileError(ValueError):
    """An input file that exists but cannot be read (truncated, random bytes): one line naming it and what to do."""


class BadCheckpointError(ValueError):
    """A checkpoint that is corrupt or does not match its own run or metadata: one line naming the file and what to
    do (mec.runs, the backends' loaders)."""


def _corrupt(path: str | os.PathLike, exc: BaseException, remove: bool) -> CorruptFileError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if remove:  # a file the workflow produced: gone, Snakemake rebuilds it on the next run
        Path(path).unlink(missing_ok=True)
        return CorruptFileError(f"{path}: not a readable Parquet file ({reason}); removed it: rerun the workflow "
                                "to rebuild it")  # fmt: skip
    return CorruptFileError(f"{path}: not a readable Parquet file ({reason}); delete it and rebuild it")


def read_parquet(path: str | os.PathLike, remove_if_corrupt: bool = False, **kwargs) -> pd.DataFrame:
    """pandas.read_parquet, but a truncated or corrupt file is a one-line CorruptFileError naming it (with
    `remove_if_corrupt`, for the workflow's own outputs, the file is removed so that a rerun rebuilds it)."""
    try:
        return pd.read_parquet(path, **kwargs)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _corrupt(path, exc, remove_if_corrupt) from None


class MissingProvenanceError(CorruptFileError, KeyError):
    """A Parquet file whose provenance lacks a key the reader needs (a file this project did not write, or wrote
    without it): one line naming the file. A KeyError too, for callers that test for a key."""

    __str__ = ValueError.__str__  # the message, not KeyError's quoted repr of it


class Provenance(dict):
    """The provenance of a Parquet file (write_parquet's mec_provenance metadata): a dict whose missing key is a
    one-line MissingProvenanceError naming the file, not a bare KeyError."""

    def __init__(self, path: str | os.PathLike, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.path = path

    def __missing__(self, key: str) -> Any:
        what = f"no {key!r} in its provenance" if self else "no provenance (not written by mec.io.write_parquet)"
        raise MissingProvenanceError(f"{self.path}: {what}; allowed: a file the workflow or `mec` wrote; rebuild it")


def read_provenance(path: str | os.PathLike, remove_if_corrupt: bool = False) -> Provenance:
    """The provenance write_parquet stored in a Parquet file ({} where it stored none); a key it lacks is a one-line
    error naming the file (Provenance)."""
    try:
        meta = pq.read_schema(path).metadata or {}
        data = json.loads(meta.get(b"mec_provenance", b"{}"))
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _corrupt(path, exc, remove_if_corrupt) from None
    if not isinstance(data, dict):
        raise _corrupt(path, ValueError("its mec_provenance metadata is not a JSON object"), remove_if_corrupt)
    return Provenance(path, data)


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _library_paths() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(str(Path(path).resolve()) + os.sep for path in paths)


def one_line_failure(exc: BaseException) -> bool:
    """Whether an exception that ends a job says all there is in its one-line message: the project's own errors
    (a corrupt file, a bad checkpoint, a locked run, a config value: a ValueError raised by the project's code, not
    inside a library) and any operating-system error (a full disk, a path that cannot be written: OSError names the
    path). Anything else (a RuntimeError included) looks like a bug, whose traceback is worth its lines."""
    if isinstance(exc, (CorruptFileError, BadCheckpointError, OSError)):
        return True
    if not isinstance(exc, ValueError):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and not str(Path(frames[-1].filename).resolve()).startswith(_library_paths())


def failure_line(exc: BaseException) -> str:
    """The one line a job's log ends with when `exc` ends it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if isinstance(exc, OSError) else text  # [Errno 28] ... says less alone


def log_to_file(path: str | os.PathLike, append: bool = False) -> None:
    """Send this process's log records (INFO and up, timestamped) to a job's log file, and the exception that ends
    the process too: one line where its message says it all (one_line_failure), else its traceback. A failed job's
    log says why it failed, not only the console."""
    logging.basicConfig(
        filename=str(path),
        filemode="a" if append else "w",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    previous = sys.excepthook

    def log_failure(kind, exc, tb) -> None:
        if one_line_failure(exc):  # its one line says which file or value, and what to do
            logging.getLogger("mec").error("the job failed: %s", failure_line(exc))
            if not _is_same_file(sys.stderr, path):
                print(f"error: {failure_line(exc)}", file=sys.stderr)
            return
        logging.getLogger("mec").error("the job failed", exc_info=(kind, exc, tb))
        if not _is_same_file(sys.stderr, path):  # a job whose stderr is its log already has the traceback now
            previous(kind, exc, tb)

    sys.excepthook = log_failure


def _is_same_file(stream, path: str | os.PathLike) -> bool:
    try:
        return os.path.samestat(os.fstat(stream.fileno()), os.stat(path))
    except (AttributeError, OSError, ValueError):
        return False
