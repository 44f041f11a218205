"""Writing a run folder: one writer per destination, a commit with no window, one line for a failed write.

A run is written to a temporary sibling folder, `<parent>/.<name>.tmp-XXXXXXXX`,
and put in place only when complete:

- **The swap.** Where the system can exchange two paths in one step, the
  finished folder and the earlier run trade places atomically, and the old run
  (now under the temporary name) is deleted: Linux's `renameat2(RENAME_EXCHANGE)`
  (ext4, XFS, Btrfs, tmpfs, overlayfs...) and macOS's `renamex_np(RENAME_SWAP)`
  (APFS). Elsewhere (another system, NFS, some FUSE file systems, which answer
  EINVAL or ENOSYS), two renames: the old run to `.<name>.old-XXXXXXXX/run`, then
  the new one in. A kill between them leaves no run at the destination, only
  the old one aside; `recover` puts it back, and the next writer and every
  loader call it. So a reader finds the old run or the new one, never neither
  for longer than it takes to notice.

  Why not a `current` symlink swapped with `rename`, portable as it is: the
  destination would become a link, which changes what a user's `--out` folder
  is (copies, archives and `rm -r` treat links differently, Windows needs
  privileges for them), and every existing run folder would need converting.
  The swap keeps the destination an ordinary folder.

- **The lock.** One process at a time writes a destination: `lock_destination`
  takes an `fcntl.flock` on `<parent>/.<name>.lock`, which holds the holder's
  pid, start time and command, so that a second one is refused in one line
  that names it. The kernel drops the lock when its process dies, however it
  dies. The holder deletes the file when it is done; a process that locked a
  file deleted meanwhile sees that its path now names another file (or none)
  and tries again, so two processes can never both hold the lock. (Where
  `fcntl` is missing, on Windows, nothing is locked.)

- **Leftovers.** Whoever holds the lock first puts back a run that a killed
  commit left aside, then deletes the temporary and old folders that killed
  runs left behind: only this destination's, and, being the only writer, none
  that a live process still uses.

- **Write failures.** A full disk, a file size limit, a read-only file system or
  a permission problem while writing is one `NlpkitError` line; anything partly
  written is removed. HDF5 (the weights files of epoch backups) does not survive
  a failed write: it prints a stream of errors and can crash the process. So
  before such a write, `require_room` checks the free space and the file size
  limit against `saved_size`, an upper bound of what the model's variables take.
  (A disk that another process fills between the check and the write can still
  reach HDF5; Keras writes weights files only by path, so there is no way to
  give HDF5 a Python file whose errors it would report cleanly.)
"""

import contextlib
import ctypes
import datetime
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from nlpkit.errors import NlpkitError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

AT_FDCWD = -100
RENAME_EXCHANGE = 2  # Linux renameat2 flag
RENAME_SWAP = 2  # macOS renamex_np flag
# The errors that say "this cannot be written here", as opposed to a bug.
# Full, read-only or forbidden; or a place no file can be made (a path under /proc, through a file, too long).
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP}
# What saving variables takes on disk, at most: their bytes with a margin, and the file format's own per
# variable and per file (a Keras weights file: about 1.4 KiB a variable, 16 KiB in all for small models).
MARGIN = 1.25
PER_VARIABLE = 4096
PER_FILE = 65536
NOTE_LIMIT = 4096


# --- the lock --------------------------------------------------------------------------------------


def lock_path(destination):
    destination = Path(destination)
    return destination.parent / f".{destination.name}.lock"


class DestinationLock:
    """The right to write `destination`, held from the start of a run until it is saved or has failed.

        with lock_destination("models/sentiment"):
            ...
    """

    def __init__(self, destination):
        self.destination = Path(destination)
        self.path = lock_path(destination)
        self.handle = None

    def acquire(self):
        """Takes the lock, or raises NlpkitError naming the process that holds it."""
        if fcntl is None:
            return self
        with write_errors(self.destination, "a lock file beside it"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while self.handle is None:
                handle = open(self.path, "a+", encoding="utf-8")  # "a+" never empties the holder's note
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _read_note(handle)
                    handle.close()
                    raise NlpkitError(f"{self.destination}: another nlpkit process is writing this run "
                                      f"({holder}); wait for it to end, or choose another --out.") from None
                if _names(self.path, handle):
                    self.handle = handle
                else:  # its holder deleted the file as we opened it: lock the file now at that path
                    handle.close()
            try:
                _write_note(self.handle)
            except BaseException:
                self.release()
                raise
        return self

    def release(self):
        """Deletes the lock file, then unlocks it (in that order: see `acquire`)."""
        if self.handle is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.handle.close()
        self.handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def _names(path, handle):
    """True if `path` still names the open file `handle`."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(handle.fileno()))
    except FileNotFoundError:
        return False


def _write_note(handle):
    started = datetime.datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
    command = " ".join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]])
    handle.seek(0)
    handle.truncate()
    json.dump({"pid": os.getpid(), "started": started, "command": command[:200]}, handle)
    handle.flush()


def _read_note(handle):
    """Who holds the lock, as words for the refusal ("pid 1234, started ..., command ...")."""
    handle.seek(0)
    try:
        note = json.loads(handle.read(NOTE_LIMIT))
        parts = [f"pid {int(note['pid'])}", f"started {note['started']}", f"`{note['command']}`"]
    except (ValueError, TypeError, KeyError):  # being written, or not ours
        return "a process that has not said which yet"
    return ", ".join(str(part)[:200] for part in parts)


def lock_destination(destination):
    """Locks `destination` for this process (see `DestinationLock`), then puts back a run that a killed
    commit left aside and deletes the folders that killed runs left behind."""
    lock = DestinationLock(destination).acquire()
    try:
        with write_errors(destination, "over leftovers of an earlier run"):
            _put_back(Path(destination))
            _remove_leftovers(Path(destination))
    except BaseException:
        lock.release()
        raise
    return lock


# --- leftovers and recovery --------------------------------------------------------------------------


def _siblings(destination, kind):
    """This destination's temporary ("tmp") or old ("old") folders, as `tempfile.mkdtemp` names them."""
    pattern = re.compile(rf"\.{re.escape(destination.name)}\.{kind}-[a-z0-9_]{{8}}")
    if not destination.parent.is_dir():
        return []
    return [p for p in destination.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir()]


def _aside(destination):
    """The runs that commits killed between their two renames left aside, newest first."""
    found = [p / "run" for p in _siblings(destination, "old") if (p / "run").is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _put_back(destination):
    if destination.exists():
        return False
    aside = _aside(destination)
    if not aside:
        return False
    os.rename(aside[0], destination)
    return True


def _remove_leftovers(destination):
    for folder in _siblings(destination, "tmp") + _siblings(destination, "old"):
        shutil.rmtree(folder, ignore_errors=True)


def recover(destination):
    """Puts back the run that a commit killed between its two renames left aside, if `destination` is
    missing; returns True if it did. For loaders: it does nothing while another process writes there,
    or where it cannot write."""
    destination = Path(destination)
    if destination.exists() or not _aside(destination):
        return False
    try:
        lock = DestinationLock(destination).acquire()
    except (NlpkitError, OSError):
        return False
    with lock:
        return _put_back(destination)


# --- the swap ----------------------------------------------------------------------------------------


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _exchange(first, second):
    """Swaps two existing paths in one step. False where this system or file system cannot."""
    try:
        if sys.platform.startswith("linux"):
            function = _libc().renameat2
            function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            arguments = (AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE)
        elif sys.platform == "darwin":
            function = _libc().renamex_np
            function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
            arguments = (os.fsencode(first), os.fsencode(second), RENAME_SWAP)
        else:
            return False
    except (AttributeError, OSError):  # a C library without the call (glibc < 2.28, musl < 1.2.x)
        return False
    if function(*arguments) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def swap_into_place(folder, destination):
    """Puts the finished `folder` at `destination`, replacing what was there, and deletes the old run."""
    folder, destination = Path(folder), Path(destination)
    if not destination.exists():
        os.rename(folder, destination)
    elif _exchange(folder, destination):
        shutil.rmtree(folder, ignore_errors=True)  # now the old run
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old-", dir=destination.parent))
        os.rename(destination, old / "run")
        os.rename(folder, destination)  # a kill before this line is undone by `recover`
        shutil.rmtree(old, ignore_errors=True)
    _fsync_folder(destination.parent)


def _fsync_folder(folder):
    """Makes the renames in `folder` durable (a no-op where folders cannot be opened, on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# --- room and write errors ---------------------------------------------------------------------------


def _value_bytes(variable):
    import numpy as np

    try:
        itemsize = np.dtype(str(variable.dtype)).itemsize
    except TypeError:
        itemsize = 8
    return int(np.prod(variable.shape, dtype=np.int64)) * itemsize


def saved_size(model, optimizer=True):
    """At most the bytes that one file of `model`'s variables (and, with `optimizer`, its optimizer's) takes."""
    variables = list(model.variables)
    if optimizer and getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    return int(MARGIN * sum(map(_value_bytes, variables))) + PER_VARIABLE * len(variables) + PER_FILE


def mebibytes(count):
    return f"{count / 2 ** 20:.1f} MiB"


def require_room(folder, needed, what, largest=None):
    """Refuses in one line to write `what` (`needed` bytes, `largest` in its biggest file) into `folder`
    when the disk has not that much free, or the file size limit (`ulimit -f`) is lower."""
    place = Path(folder)
    while not place.exists() and place != place.parent:
        place = place.parent
    free = shutil.disk_usage(place).free
    if free < needed:
        raise NlpkitError(f"{folder}: not enough free disk space to write {what}: it needs about "
                          f"{mebibytes(needed)}, {mebibytes(free)} are free; free some space or choose "
                          "another --out.")
    limit = _file_size_limit()
    biggest = needed if largest is None else largest
    if limit is not None and limit < biggest:
        raise NlpkitError(f"{folder}: the file size limit (ulimit -f) is {mebibytes(limit)}, and {what} "
                          f"needs files of about {mebibytes(biggest)}; raise the limit.")


def _file_size_limit():
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def write_error(error, place, what):
    """The one-line NlpkitError for an OSError met while writing `what` at `place`, or None if `error`
    is not a write failure (then it is a bug, and keeps its traceback)."""
    if not isinstance(error, OSError) or error.errno not in WRITE_ERRNOS:
        return None
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        advice = "free some space or choose another --out"
    else:
        advice = "choose a --out where you may write"
    return NlpkitError(f"{place}: cannot write {what} ({os.strerror(error.errno)}); {advice}.")  # h5py's are long


@contextlib.contextmanager
def write_errors(place, what):
    """Turns the write failures of the block into one NlpkitError line (see `write_error`)."""
    try:
        yield
    except OSError as error:
        problem = write_error(error, place, what)
        if problem is None:
            raise
        raise problem from None


# --- the writer ----------------------------------------------------------------------------------------


def _make_private_folder_public(folder):
    """`mkdtemp` makes 0700 folders; a committed run gets the permissions the umask allows."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


class RunWriter:
    """Collects a run's files in a temporary folder, then swaps it into place.

        with RunWriter("models/sentiment") as run:
            model.save(run.path(MODEL_FILE))
            run.commit()

    Leaving the block without `commit()` (an exception, Ctrl-C) deletes the
    temporary folder and leaves any existing run untouched; a write failure
    inside the block becomes one NlpkitError line. The destination must be
    empty, missing, or an earlier nlpkit run: nothing else is ever replaced.
    The writer locks the destination for the block, unless given the `lock`
    its caller took (see `lock_destination`). `check(destination)` refuses a
    destination this writer may not replace (by default `runs.check_destination`;
    an export, which is no run, checks its own way).
    """

    def __init__(self, destination, lock=None, check=None):
        from nlpkit.runtime.runs import check_destination  # late: runs re-exports this class

        self.destination = Path(destination)
        (check or check_destination)(self.destination)
        self.lock = lock
        self.own_lock = None
        self.folder = None

    def __enter__(self):
        if self.lock is None:
            self.own_lock = self.lock = lock_destination(self.destination)
        try:
            with write_errors(self.destination, "the run"):
                self.folder = Path(tempfile.mkdtemp(prefix=f".{self.destination.name}.tmp-",
                                                    dir=self.destination.parent))
                _make_private_folder_public(self.folder)
        except BaseException:
            self._close()
            raise
        return self

    def path(self, name):
        return str(self.folder / name)

    def require_room(self, needed, what="the run"):
        """Refuses in one line to go on when there is no room for `needed` bytes (see `require_room`)."""
        require_room(self.folder, needed, what)

    def commit(self):
        """Moves the finished run into place, replacing the previous one."""
        with write_errors(self.destination, "the run"):
            swap_into_place(self.folder, self.destination)
        self.folder = None

    def _close(self):
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        if self.own_lock is not None:
            self.own_lock.release()
            self.own_lock = self.lock = None

    def __exit__(self, kind, error, traceback):
        self._close()
        problem = write_error(error, self.destination, "the run")
        if problem is not None:
            raise problem from None
        return False
