"""The checkpoint store: finished units of a long job, kept next to its output folder so
an interrupted job resumes where it stopped.

A job (a sweep's points today; calibration evaluations next) writes into
``<out>.partial/``: a manifest with the job's fingerprint (its inputs, patients, seed
and simulator version), then one JSON file per finished unit and, when the job keeps
them, the unit's arrays (``.npz``, written first: the JSON marks the unit done). Every
file is written atomically, so a kill -9 leaves either a whole unit or none; a resumed
job reads back exactly what it wrote, so its results are byte-identical to an
uninterrupted run. The store refuses a folder it did not write and a checkpoint of a
different job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["PointStore", "foreign_entries", "partial_dir", "remove_partial", "saved_units"]

log = logging.getLogger(__name__)

#: the files a store writes in ``points/``: a unit's outputs and arrays, and the
#: temporary files of their atomic writes (``.<name>.<random>``)
_UNIT_FILE = re.compile(r"\d{7}\.(json|npz)|\.\d{7}\.(json|npz)\..+")


def partial_dir(out: Path) -> Path:
    """Where the finished units of the job writing ``out`` are kept."""
    return out.with_name(out.name + ".partial")


def saved_units(out: str | os.PathLike[str]) -> int:
    """How many finished units the checkpoint of the job writing ``out`` holds."""
    points = partial_dir(Path(out)) / "points"
    return len(list(points.glob("[!.]*.json"))) if points.is_dir() else 0


def _own_and_foreign(folder: Path) -> tuple[list[Path], list[str]]:
    """The files in a checkpoint folder that a store writes, and the names of everything
    else (which the simulator never deletes)."""
    own: list[Path] = []
    foreign: list[str] = []
    if not folder.is_dir() or folder.is_symlink():
        return own, foreign
    for entry in sorted(folder.iterdir()):
        if entry.name == "manifest.json" and entry.is_file() and not entry.is_symlink():
            own.append(entry)
        elif entry.name.startswith(".manifest.json.") and entry.is_file():
            own.append(entry)  # a temporary file of the manifest's atomic write
        elif entry.name == "points" and entry.is_dir() and not entry.is_symlink():
            for f in sorted(entry.iterdir()):
                if _UNIT_FILE.fullmatch(f.name) and f.is_file() and not f.is_symlink():
                    own.append(f)
                else:
                    foreign.append(f"points/{f.name}")
        else:
            foreign.append(entry.name)
    return own, foreign


def foreign_entries(folder: Path) -> list[str]:
    """Names of the entries of a checkpoint folder that no store wrote."""
    return _own_and_foreign(folder)[1]


def remove_partial(folder: Path) -> list[str]:
    """Delete what a store wrote in ``folder`` (its manifest and units), then the folder
    if nothing else is left. Returns the names of the entries left because the simulator
    did not write them (never deleted)."""
    own, foreign = _own_and_foreign(folder)
    for f in own:
        f.unlink(missing_ok=True)
    for d in (folder / "points", folder):
        with contextlib.suppress(OSError):  # not empty (foreign files) or already gone
            d.rmdir()
    return foreign


def canonical(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs in sorted key order, whether computed now or read back, so a resumed job
    writes the same bytes as an uninterrupted one."""
    return {k: outputs[k] for k in sorted(outputs)}


class PointStore:
    """Finished units (numbered 0..n-1) of one job, in ``<out>.partial/``.

    ``open`` returns the units already done (creating the folder if needed); ``save``
    keeps one more; ``arrays`` reads a unit's arrays back; ``discard_if_unused`` removes a
    folder this run created and saved nothing into (once the job's outputs are written,
    :func:`remove_partial` deletes the checkpoint). ``needs_arrays``: a unit without its arrays is
    not done (it is evaluated again)."""

    def __init__(
        self,
        out: str | os.PathLike[str],
        fingerprint: str,
        units: int,
        source: str,
        *,
        kind: str = "sweep",
        needs_arrays: bool = False,
    ) -> None:
        self.out = Path(out)
        self.folder = partial_dir(self.out)
        self.fingerprint = fingerprint
        self.units = units
        self.source = source
        self.kind = kind
        self.needs_arrays = needs_arrays
        self.created = False
        self._saved = 0

    def _json(self, i: int) -> Path:
        return self.folder / "points" / f"{i:07d}.json"

    def _npz(self, i: int) -> Path:
        return self.folder / "points" / f"{i:07d}.npz"

    def _refuse_foreign(self, folder: Path) -> None:
        """InputError naming what in the checkpoint folder no store wrote, if anything."""
        foreign = foreign_entries(folder)
        if foreign:
            from .report.atomic import listed

            raise InputError(
                f"{folder}: holds files the simulator did not write ({listed(foreign)}); it is"
                f" where an interrupted {self.kind} saves its points and is replaced"
                " when a run starts afresh: move them away (the simulator never deletes"
                " a file it did not write)"
            )

    def open(self, fresh: bool = False) -> dict[int, dict[str, Any]]:
        from .report.atomic import atomic_write_text, finished_checkpoint

        folder = self.folder
        manifest = {
            "fingerprint": self.fingerprint,
            "points": self.units,
            f"{self.kind}_file": self.source,
        }
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise InputError(
                f"{folder}: is not a folder (a {self.kind} keeps its finished points there to"
                " resume); move it away: the simulator never replaces a file it did not write"
            )
        old: dict[str, Any] | None = None
        if folder.exists():
            try:
                old = json.loads((folder / "manifest.json").read_text())
            except (OSError, ValueError):
                old = None
            if (not isinstance(old, dict) or "fingerprint" not in old) and not fresh:
                self._refuse_foreign(folder)
                raise InputError(
                    f"{folder}: it is where an interrupted {self.kind} saves its points,"
                    " but it has no readable checkpoint manifest; move it away, or use"
                    " --fresh to start again (only the files a checkpoint holds are"
                    " deleted)"
                )
        if (
            isinstance(old, dict)
            and old.get("fingerprint") != self.fingerprint
            and old.get("fingerprint") == finished_checkpoint(self.out)
        ):
            # the checkpoint of a job that finished (its results are in the output folder)
            # but was killed before removing it: nothing in it is needed
            log.info("removing the checkpoint of a finished %s: %s", self.kind, folder)
            fresh = True
        if folder.exists() and fresh:
            # only what a store wrote is deleted: a file put here by hand (a copy of the
            # input, notes) is never touched
            self._refuse_foreign(folder)
            remove_partial(folder)
        if folder.exists():
            assert old is not None
            if old.get("fingerprint") != self.fingerprint:
                raise InputError(
                    f"{folder} holds an interrupted run of a different {self.kind}: the"
                    f" {self.kind} file, a scenario, the patients, the seed or the simulator"
                    f" version changed since. Delete {folder} (or run with --fresh) to start"
                    " again"
                )
        else:
            (folder / "points").mkdir(parents=True)
            self.created = True
            atomic_write_text(
                folder / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n"
            )
        done: dict[int, dict[str, Any]] = {}
        for f in sorted((folder / "points").glob("*")):
            if f.name.startswith("."):  # a temporary file of an interrupted atomic write
                f.unlink(missing_ok=True)
                continue
            if f.suffix != ".json":
                continue
            if self.needs_arrays and not self._npz(int(f.stem)).exists():
                continue  # its arrays are missing: evaluate it again
            try:
                done[int(f.stem)] = canonical(json.loads(f.read_text()))
            except (ValueError, OSError):
                f.unlink(missing_ok=True)  # never happens with atomic writes; be safe anyway
        return done

    def save(
        self, i: int, outputs: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> None:
        """Keep unit ``i``: its arrays first (when given), then its outputs, whose file
        marks it done."""
        from .report.atomic import atomic_write_text

        if arrays is not None:
            target = self._npz(i)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **{k: arrays[k] for k in sorted(arrays)})
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        atomic_write_text(self._json(i), json.dumps(outputs, sort_keys=True))
        self._saved += 1

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        with np.load(self._npz(i), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def discard_if_unused(self) -> None:
        """After a failure: leave nothing behind if this run created the folder and
        finished no unit (there is nothing to resume)."""
        if self.created and self._saved == 0:
            remove_partial(self.folder)
