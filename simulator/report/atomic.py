"""Output folders the simulator owns, written atomically.

The simulator writes into an output folder only if the folder does not exist, is empty,
or carries the simulator's own manifest (:data:`MANIFEST`, listing the files it wrote)
and holds nothing else; anything else is refused with an :class:`InputError` (the
simulator never deletes or modifies a file it did not write). It never replaces the
working directory or one of its ancestors, the filesystem root, the home directory, or a
folder holding an input file.
A symbolic link at the output path is refused, never followed or replaced.

While a folder is being written, an exclusive lock file ``.NAME.lock`` next to it keeps a
second run out (it gets an InputError). New results go into a hidden sibling
``.NAME.tmp-XXXX`` that is swapped with the old folder in one ``renameat2
(RENAME_EXCHANGE)`` call where the kernel supports it, else by two renames
(``NAME -> .NAME.old-PID``, ``.NAME.tmp-XXXX -> NAME``). At every instant either the old or
the new results are at ``NAME``, except between the two fallback renames; the next run
into the same place (under the lock) puts ``.NAME.old-*`` back if ``NAME`` is missing and
removes every ``.NAME.tmp-*`` / ``.NAME.old-*`` leftover of the simulator's own.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import InputError

__all__ = [
    "MANIFEST",
    "OutputFolder",
    "atomic_dir",
    "atomic_write_text",
    "check_output",
    "json_roundtrip",
    "json_text",
    "output_folder",
    "png_figure",
    "safe_name",
    "write_json",
]

log = logging.getLogger(__name__)

MANIFEST = ".simulate-manifest.json"
TOOL = "myositis-ivig-sim"


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------


def safe_name(text: str, default: str = "unnamed") -> str:
    """A file name derived from user text that can only name one child of a folder.

    Control and format characters are dropped, separators become ``_`` and leading dots
    are stripped, so ``..``, ``.``, ``a/b`` or ``\\x00`` can never address the parent
    folder, the folder itself, a hidden file or anything outside it.
    """
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")
    text = re.sub(r"[/\\]", "_", text).strip().lstrip(".").strip()
    return text[:120] or default


def _display(path: Path) -> str:
    return str(path)


# --------------------------------------------------------------------------------------
# Checks: which folders the simulator may write
# --------------------------------------------------------------------------------------


def finished_checkpoint(folder: Path) -> str | None:
    """The fingerprint of the resumable job whose finished results ``folder`` holds (see
    ``OutputFolder.writing``), if any."""
    data = _read_manifest(folder)
    if data is None or not isinstance(data.get("files"), list):
        return None
    value = data.get("checkpoint_fingerprint")
    return value if isinstance(value, str) else None


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("simulator") != TOOL:
        return None
    return data


def listed(names: Sequence[str], at_most: int = 5) -> str:
    """Names for a message: the first ``at_most``, then how many more."""
    more = len(names) - at_most
    return ", ".join(names[:at_most]) + (f" and {more} more" if more > 0 else "")


def _foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` the simulator did not write (per its manifest)."""
    names = sorted(os.listdir(folder))
    if not names:
        return []
    manifest = _read_manifest(folder)
    if manifest is None or not isinstance(manifest.get("files"), list):
        return names
    ours = {str(f).split("/", 1)[0] for f in manifest["files"]} | {MANIFEST}
    return [n for n in names if n not in ours]


_MAX_REFERENCING_BYTES = 1 << 20


def _referenced_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The input files and every file they name, recursively: a YAML input's string
    values that are the path of an existing regular file (relative to the input's folder,
    or absolute) are inputs too, so a scenario's ``extends`` chain, a sweep's strategy
    files and their bases, a study's arms are all protected. Reads YAML as a node graph
    (aliases not expanded); a file that cannot be read or parsed names nothing more."""
    import yaml

    out: list[Path] = []
    seen: set[Path] = set()
    stack = [Path(f) for f in inputs]
    while stack:
        path = stack.pop()
        try:
            key = path.resolve()
        except (OSError, RuntimeError):
            continue
        if key in seen:
            continue
        seen.add(key)
        out.append(path)
        try:
            if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
                continue
            if path.stat().st_size > _MAX_REFERENCING_BYTES:
                continue
            root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        nodes, visited = [root], set()
        while nodes:
            node = nodes.pop()
            if node is None or id(node) in visited:
                continue
            visited.add(id(node))
            if isinstance(node, yaml.ScalarNode):
                text = str(node.value)
                if not text or len(text) > 4096 or "\n" in text or "\0" in text:
                    continue
                candidate = Path(text).expanduser()
                if not candidate.is_absolute():
                    candidate = path.parent / candidate
                with contextlib.suppress(OSError, ValueError):
                    if candidate.is_file():
                        stack.append(candidate)
            elif isinstance(node, yaml.SequenceNode):
                nodes.extend(node.value)
            elif isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    nodes.extend((k, v))
    return out


def _protected(real: Path, inputs: Iterable[str | os.PathLike[str]]) -> str | None:
    """Why ``real`` (resolved) may never be replaced, or None."""
    cwd = Path.cwd().resolve()
    if real == cwd:
        return "is the current working directory"
    if cwd.is_relative_to(real):
        return "contains the current working directory"
    if real == Path(real.anchor):
        return "is the filesystem root"
    with contextlib.suppress(RuntimeError, KeyError):
        if real == Path.home().resolve():
            return "is the home directory"
    for f in _referenced_files(inputs):
        rf = f.resolve()
        if rf.is_relative_to(real):
            return f"holds the input file {f}"
    return None


def check_output(
    target: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    label: str = "--out",
) -> None:
    """Refuse (InputError) an output folder the simulator may not write; writes nothing."""
    target = Path(target)
    where = f"{label} {_display(target)}"
    if target.name == "" and target.anchor and target == Path(target.anchor):
        raise InputError(  # "/" (its name is "", as is "."'s)
            f"{where}: is the filesystem root; the results replace the whole folder, so it"
            " is never used as an output folder: name a folder to create"
        )
    if target.name in ("", ".", ".."):
        raise InputError(
            f"{where}: name a folder to create, not '.' or '..' (the results"
            " replace the whole folder)"
        )
    if target.is_symlink():
        raise InputError(
            f"{where}: is a symbolic link; give the folder it points to (the"
            " simulator never replaces a link)"
        )
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{where}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"{where}: no permission to write in {parent}")
            break
    why = _protected(target.resolve(), inputs)
    if why is not None:
        raise InputError(
            f"{where}: {why}; the results replace the whole folder, so it is"
            " never used as an output folder"
        )
    if not target.exists():
        return
    if not target.is_dir():
        raise InputError(f"{where}: exists and is not a folder")
    foreign = _foreign_entries(target)
    if foreign:
        raise InputError(
            f"{where}: the folder holds files the simulator did not write"
            f" ({listed(foreign)}); choose another folder, or move them away (the"
            " simulator never deletes a file it did not write)"
        )


# --------------------------------------------------------------------------------------
# The lock, leftovers, and the swap
# --------------------------------------------------------------------------------------


#: the first bytes of every lock file the simulator creates
LOCK_MARK = b"myositis-ivig-sim output lock\n"


def _create_lock(path: Path) -> int | None:
    """Create ``path`` holding :data:`LOCK_MARK` and locked by us, atomically (a file
    linked into place only once written and locked); the open descriptor, or None if
    ``path`` exists."""
    import fcntl

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}-")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, LOCK_MARK)
        try:
            os.link(tmp, path)
        except FileExistsError:
            os.close(fd)
            return None
        except OSError:  # a filesystem without hard links: create it in place
            os.close(fd)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return None
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, LOCK_MARK)
        return fd
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def _lock(target: Path, label: str) -> Iterator[None]:
    """An exclusive, non-blocking lock on ``.NAME.lock`` next to ``target``. A file of
    that name the simulator did not write (it does not start with :data:`LOCK_MARK`) is
    never locked, written or removed: the run is refused."""
    import fcntl

    path = target.parent / f".{target.name}.lock"
    where = f"{label} {_display(target)}"
    for _ in range(5):
        try:
            fd = _create_lock(path)
        except OSError as err:
            raise InputError(
                f"{where}: cannot write in {target.parent} ({err.strerror or err})"
            ) from None
        if fd is None:  # it exists: another run's, a crashed run's, or not ours
            try:
                # O_NONBLOCK: a FIFO in the way must not block the open
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            except FileNotFoundError:
                continue
            except OSError as err:
                raise _lock_in_way(
                    where, path, f"could not open it: {err.strerror or err}"
                ) from None
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):  # a folder, a FIFO, ...: never ours
                os.close(fd)
                raise _lock_in_way(where, path, f"it is {_kind_of(mode)}")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InputError(
                    f"{where}: another simulate run is writing this folder; wait for it"
                    " to finish or choose another folder"
                ) from None
            if os.pread(fd, len(LOCK_MARK), 0) != LOCK_MARK:
                os.close(fd)
                raise _lock_in_way(where, path)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file while we waited: lock the new one
    else:  # pragma: no cover - five races in a row
        raise InputError(f"{where}: another simulate run is writing this folder")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _lock_in_way(where: str, path: Path, detail: str = "") -> InputError:
    """The refusal for a lock file name held by something the simulator did not write
    (a file without :data:`LOCK_MARK`, a folder, a FIFO, ...), naming the output folder
    and the lock path."""
    return InputError(
        f"{where}: {path} is in the way{f'; {detail}' if detail else ''}: the simulator"
        " keeps its lock under that name and did not write it; move it or choose another"
        " folder"
    )


def _our_lock_draft(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as fh:
            return fh.read(len(LOCK_MARK) + 1) == LOCK_MARK
    except OSError:
        return False


def _ours_or_empty(folder: Path) -> bool:
    if folder.is_symlink() or not folder.is_dir():
        return False
    return _read_manifest(folder) is not None or not any(folder.iterdir())


def recover_leftovers(target: Path) -> None:
    """Restore or remove what an interrupted run into ``target`` left (call under lock)."""
    prefix = f".{target.name}."
    olds, tmps = [], []
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir(target.parent)):
            if not entry.startswith(prefix):
                continue
            rest = entry[len(prefix) :]
            path = target.parent / entry
            if rest.startswith("old-") and _ours_or_empty(path):
                olds.append(path)
            elif rest.startswith("tmp-") and _ours_or_empty(path):
                tmps.append(path)
            elif rest.startswith("lock-") and _our_lock_draft(path):
                # a lock file being created when its run was killed
                with contextlib.suppress(OSError):
                    os.unlink(path)
    if not os.path.lexists(target):
        for old in olds:
            manifest = _read_manifest(old)
            if manifest is not None and isinstance(manifest.get("files"), list):
                log.warning("restoring the results of an interrupted run: %s -> %s", old, target)
                os.rename(old, target)
                olds.remove(old)
                break
    for path in olds + tmps:
        log.info("removing a leftover of an interrupted run: %s", path)
        shutil.rmtree(path, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where not supported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(tmp: Path, target: Path) -> None:
    """Put ``tmp`` at ``target``; the previous ``target`` (if any) is removed."""
    if not target.exists():
        os.rename(tmp, target)
        return
    if _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old results
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if old.exists():
        shutil.rmtree(old)
    os.rename(target, old)
    try:
        _rename_into_place(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _rename_into_place(tmp: Path, target: Path) -> None:
    os.rename(tmp, target)


def _files_of(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST
    )


def _write_manifest(
    folder: Path, kind: str, files: list[str] | None, checkpoint: str | None = None
) -> None:
    data: dict[str, Any] = {"simulator": TOOL, "simulator_version": __version__, "kind": kind}
    if files is None:
        data["writing"] = True
    else:
        data["files"] = files
    if checkpoint is not None:
        data["checkpoint_fingerprint"] = checkpoint
    (folder / MANIFEST).write_text(json_text(data), encoding="utf-8")


class OutputFolder:
    """A claimed output folder: checked, locked, leftovers recovered. ``writing()``
    yields a temporary sibling that replaces the folder when the block ends."""

    def __init__(self, target: Path, kind: str, label: str) -> None:
        self.target = target
        self.kind = kind
        self.label = label

    @contextlib.contextmanager
    def writing(self, checkpoint: str | None = None) -> Iterator[Path]:
        """``checkpoint``: the fingerprint of the resumable job (``store.PointStore``)
        whose results these are, kept in the manifest so that a checkpoint left by a kill
        between the swap and its removal is known for what it is."""
        target = self.target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; results follow the umask
            _write_manifest(tmp, self.kind, None)
            try:
                yield tmp
            except OSError as err:
                raise _renamed(err, tmp, target) from None
            _write_manifest(tmp, self.kind, _files_of(tmp), checkpoint)
            _swap_in(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _renamed(err: OSError, tmp: Path, target: Path) -> OSError:
    """The same error naming the output folder instead of the temporary one."""
    name = err.filename
    if isinstance(name, str) and name.startswith(str(tmp)):
        name = str(target) + name[len(str(tmp)) :]
        new = type(err)(err.errno, err.strerror, name)
        return new
    return err


@contextlib.contextmanager
def output_folder(
    target: str | os.PathLike[str],
    *,
    kind: str,
    inputs: Iterable[str | os.PathLike[str]] = (),
    label: str = "output folder",
) -> Iterator[OutputFolder]:
    """Check, lock and tidy ``target`` for writing (see the module docstring)."""
    target = Path(target)
    check_output(target, inputs=inputs, label=label)
    # the parent folders this run creates, deepest first: removed again, if still empty,
    # when the run fails or is interrupted
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"{label} {_display(target)}: cannot create its folder {err.filename or ''}"
            f" ({err.strerror or err})"
        ) from None
    try:
        with _lock(target, label):
            recover_leftovers(target)
            check_output(target, inputs=inputs, label=label)  # after recovery
            yield OutputFolder(target, kind, label)
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()  # only an empty folder: a kept .partial stays
            except OSError:
                break
        raise


@contextlib.contextmanager
def atomic_dir(
    target: str | os.PathLike[str],
    *,
    kind: str = "run",
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``target`` in one swap."""
    with (
        output_folder(target, kind=kind, inputs=inputs) as folder,
        folder.writing() as tmp,
    ):
        yield tmp


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a file through a temporary sibling and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _clean(value.item())
    return value


def json_text(data: Any) -> str:
    """Deterministic JSON: sorted keys, no NaN/inf (null instead), stable float repr,
    newline at end."""
    return json.dumps(_clean(data), indent=2, allow_nan=False, sort_keys=True) + "\n"


def json_roundtrip(data: Any) -> Any:
    """The data exactly as a reader of the JSON file sees it (NaN and inf as None)."""
    return json.loads(json.dumps(_clean(data), allow_nan=False))


def png_figure(path: str | os.PathLike[str], alt: str) -> str:
    """An HTML <figure> with the PNG inline (base64), for self-contained reports."""
    import base64
    import html

    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    Path(path).write_text(json_text(data), encoding="utf-8")
