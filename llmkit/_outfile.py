"""An output file written safely: never the input, never by two runs at once, complete or not replaced.

Results are written to ``RESULTS.partial`` beside the target, under an exclusive lock, and renamed over the target when
the run ends (normally, on Ctrl-C or on an error), so:

- ``-o`` naming the input (the same file, however spelled: a symlink, ``./``) is refused before anything is opened:
  opening it for writing first would empty the input;
- a second run writing the same target fails at start, naming the run in its way, instead of both interleaving lines;
- a reader never sees a half-replaced file, and a killed run leaves its lines in ``RESULTS.partial``.

A target that is not a regular file (``/dev/stdout``, a pipe) is written directly, without lock or rename.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from types import TracebackType
from typing import IO

from .errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the same-file check and the rename still hold
    fcntl = None  # type: ignore[assignment]

__all__ = ["OutputFile", "OutputFileError"]

_PARTIAL = ".partial"


class OutputFileError(ConfigError):
    """The output cannot be written as asked (it is the input, or another run is writing it)."""


class OutputFile:
    """``with OutputFile(target, inputs=[path]) as out: out.write(...)``; raises ``OutputFileError`` on entering."""

    def __init__(self, target: str | os.PathLike[str], *, inputs: tuple[Path, ...] = ()) -> None:
        self.target = Path(target)
        self.partial = self.target.with_name(self.target.name + _PARTIAL)
        self._inputs = inputs
        self._file: IO[str] | None = None
        self._direct = False

    def __enter__(self) -> IO[str]:
        for source in self._inputs:
            for path in (self.target, self.partial):
                if _same_file(path, source):
                    raise OutputFileError(
                        f"-o {self.target} is the input file {source}: writing it would destroy the prompts; "
                        "write the results to another file"
                    )
        if self.target.exists() and not stat.S_ISREG(self.target.stat().st_mode):
            self._direct = True
            self._file = open(self.target, "w", encoding="utf-8")  # noqa: SIM115 - closed in __exit__
            return self._file
        self._file = _locked(self.partial, self.target)
        return self._file

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Put what was written in place, also after Ctrl-C or an error: every finished line is kept. A run that
        failed before writing anything (the backend did not start) leaves the target as it was."""
        if self._file is None:
            return
        try:
            self._file.flush()
            if self._direct:
                pass
            elif exc is not None and self._file.tell() == 0:
                self.partial.unlink(missing_ok=True)
            else:
                os.replace(self.partial, self.target)
        finally:
            self._file.close()  # releases the lock only after the rename
            self._file = None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _locked(partial: Path, target: Path) -> IO[str]:
    """``partial`` opened empty for writing under an exclusive lock; ``OutputFileError`` if another run holds it."""
    for _ in range(5):
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The path may have been renamed to the target by the run that held the lock: then lock a new file.
            if os.fstat(fd).st_ino == os.stat(partial).st_ino:
                os.ftruncate(fd, 0)
                return io.open(fd, "w", encoding="utf-8", closefd=True)  # noqa: UP020 - from a descriptor
        except BlockingIOError:
            os.close(fd)
            raise OutputFileError(
                f"another llmkit run is writing {target} (it holds {partial}); wait for it to finish, or write to "
                "another file with -o"
            ) from None
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise OutputFileError(f"could not lock {partial}: it keeps being replaced; is another run writing {target}?")
