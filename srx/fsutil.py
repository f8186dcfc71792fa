"""File-system helpers: atomic writes and friendly output-folder checks."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from srx.errors import SrxError
from srx.signals import stop_deferred

log = logging.getLogger("srx")


class WriteError(SrxError):
    """A file srx could not write (`path`, the name the user knows, never the temporary one): the
    OSError's reason in words, the disk being full said as such (`disk_full`)."""

    def __init__(self, path: Path, exc: OSError, written: Path | None = None) -> None:
        self.path, self.errno = Path(path), exc.errno
        # the file an OSError names where that is not the one written (a copy's source), except for a full
        # disk, which is the written file's (shutil's copies name their source first)
        names = {str(name) for name in (exc.filename, exc.filename2) if name is not None}
        other = exc.filename if names and not names & {str(written), str(path)} and exc.errno not in _FULL else None
        super().__init__(f"cannot write {path}: " + (f"{other}: " if other else "") + write_failure(exc))

    @property
    def disk_full(self) -> bool:
        return self.errno in _FULL


#: a write that failed for want of room: ENOSPC, or a quota (EDQUOT)
_FULL = {errno.ENOSPC, errno.EDQUOT}


def disk_full_errno(number: int | None) -> bool:
    """Whether an OSError's errno says the write failed for want of room (a full disk, a quota)."""
    return number in _FULL


def write_failure(exc: OSError) -> str:
    """Why a write failed, in words: a full disk says so (strerror's "No space left on device" alone
    is read past in a long line)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device (the disk is full)"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded (the disk is full for this user)"
    return exc.strerror or str(exc)


def ensure_dir(path: Path) -> Path:
    """Create `path` (and parents) or explain why it can't be a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SrxError(f"output folder {path} exists as a file; expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SrxError(f"cannot create output folder {path}: {exc.strerror or exc}") from None
    _probe_writable(path, f"output folder {path}")
    return path


def _probe_writable(folder: Path, what: str) -> None:
    """Create and remove a file in `folder` for real: permission bits say nothing for root, /proc or
    a read-only mount, and this is what every later write will need."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SrxError(f"{what} is not writable: creating a file there fails ({exc.strerror or exc})") from None


def check_output_file(path: Path, option: str, *, in_place: bool = False) -> Path:
    """Fail now, before any work, if `path` cannot be written as a file later: it must not be a
    folder, and its nearest existing ancestor must be a folder where a file can be created.
    `in_place`: `path` is written as `write_report` writes it, so an existing device, FIFO or socket
    (after links) need only open for writing, and a link's target is replaced, in the target's
    folder, not the link's own."""
    path = Path(path)
    if path.is_dir():
        raise SrxError(f"{option} {path} is a folder; expected a file name")
    if in_place:
        try:
            special = not stat.S_ISREG(path.stat().st_mode)  # through links: /dev/stdout -> /proc/self/fd/1
        except OSError:  # not there (yet), or a link to nowhere yet
            special = False
        if special:  # written to as it is: no file is created beside it
            if not os.access(path, os.W_OK):
                raise SrxError(f"cannot write {option} {path}: it cannot be opened for writing (permission denied)")
            return path
        if path.is_symlink():  # the target is replaced where it lies (write_report)
            target = path.resolve()
            check_nearest_folder(target.parent, path, option, "write")
            return path
    check_nearest_folder(path.parent, path, option, "write")
    return path


def check_output_dir(path: Path, option: str) -> Path:
    """Like ensure_dir, but creates nothing: for checking an output folder before the work starts."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SrxError(f"output folder {path} exists as a file; expected a folder")
    check_nearest_folder(path, path, option, "create")
    return path


def nearest_existing(path: Path) -> Path:
    """`path` itself where it exists, else its nearest ancestor that does."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_nearest_folder(start: Path, path: Path | str, option: str, verb: str) -> None:
    """The nearest existing ancestor of `start` (itself included) must be a folder where a file can
    be created; `verb` ("write" or "create") words the error about `path` when it is a file."""
    probe = nearest_existing(start)
    if not probe.is_dir():
        raise SrxError(f"cannot {verb} {option} {path}: {probe} is a file, expected a folder")
    _probe_writable(probe, f"cannot write {option} {path}: folder {probe}")


def new_file_mode(path: Path, folder: bool = False) -> int:
    """The permission bits a plain `open(path, "w")` (or `mkdir`, for a `folder`) would give: an
    existing file's own, else 0o666 (0o777) less the process umask (mkstemp makes 0o600 files and
    mkdtemp 0o700 folders, which nothing else could read)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    return (0o777 if folder else 0o666) & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask can only be read by
    setting it, which would briefly affect files other threads create)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def temporary_sibling(path: Path, suffix: str = ".tmp", prefix: str | None = None, folder: bool = False) -> Path:
    """An empty, new file (or `folder`) beside `path` with the mode `path` will have (see
    new_file_mode), made by srx under a name no one else had (O_EXCL: never through a link planted
    there, never over an earlier run's file); SrxError when the folder does not take new files."""
    path = Path(path)
    prefix = prefix or f".{path.name}."
    try:
        if folder:
            tmp = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent)
            fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        else:
            fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise WriteError(path, exc) from None
    try:
        os.fchmod(fd, new_file_mode(path, folder))
        os.fchown(fd, -1, os.stat(path).st_gid)  # the replaced one's group too (a 0640 file for a group)
    except OSError:
        pass  # a new file, a group srx's user is not in, or no permissions (FAT): the defaults stand
    finally:
        os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success it replaces `path` in one rename, so a
    crash at any moment leaves either the old file or the new one, never half of one. The file
    gets the mode a plain write would give (the umask, or the replaced file's own mode). An OSError
    while writing it (a full disk: ENOSPC) is a WriteError naming `path`; the temporary file is
    removed and the old file left as it was."""
    path = Path(path)
    ensure_dir(path.parent)
    tmp_path: Path | None = None
    try:
        with stop_deferred():  # a stop while the file is made is handled once its name is known here
            tmp_path = temporary_sibling(path)
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
        except OSError as exc:
            raise WriteError(path, exc, tmp_path) from None
    except BaseException:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_report(path: Path | str, text: str) -> Path:
    """A report the user named (`--json-summary`) written where the name leads: a file is replaced
    whole (atomic_write_text), a link's target is written and the link stays, and a device, FIFO or
    socket (/dev/stdout, a named pipe a monitor reads) is written to as it is, never replaced by a
    file. Returns what was written."""
    path = Path(path)
    try:
        special = not stat.S_ISREG(path.stat().st_mode)  # through links: /dev/stdout -> /proc/self/fd/1
    except OSError:  # not there yet (or a link to nowhere yet)
        special = False
    if special:
        try:
            _write_in_place(path, text)
        except OSError as exc:
            raise WriteError(path, exc) from None
        return path
    target = path.resolve() if path.is_symlink() else path
    atomic_write_text(target, text)
    return target


def _write_in_place(path: Path, text: str) -> None:
    """`text` written to an existing device, FIFO or socket as it is. A FIFO is opened without
    blocking, so one that no process reads is an error now (ENXIO), not a wait for a reader that may
    never come (a signal could not end it); once open it is written blocking, so a slow reader still
    gets all of it."""
    flags = os.O_WRONLY | os.O_NONBLOCK if stat.S_ISFIFO(path.stat().st_mode) else os.O_WRONLY
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO and flags & os.O_NONBLOCK:
            raise OSError(errno.ENXIO, "nothing reads the pipe (start its reader before the run ends, or name a "
                                       "file)") from None
        raise
    os.set_blocking(fd, True)
    with open(fd, "w", encoding="utf-8") as out:
        out.write(text)


class FolderInUse(SrxError):
    """A folder another live process has claimed (`claim_folder`); `pid` is that process's, where its
    lock file says it."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class FolderClaim:
    """What `claim_folder` holds: an exclusive flock on a lock file in `path`, until `release()` (or
    the process's end, whatever ends it: the OS lets go of the lock of a killed process)."""

    def __init__(self, path: Path, lock: Path, fd: int | None, created: list[Path], owner: str = "") -> None:
        self.path, self.lock, self._fd, self._created, self.owner = path, lock, fd, created, owner

    def keep(self) -> None:
        """The lock file at its name still this claim's: where it went (a clean-up, the folder deleted
        and made again), taken again, with a warning; where another process took the folder meanwhile,
        a warning naming it (this run goes on; the two now mix their files, as the warning says)."""
        if self._fd is None or holds_lock(self._fd, self.lock):
            return
        os.close(self._fd)
        self._fd = None
        try:
            ensure_dir(self.path)
            fd = lock_file(self.lock, new_file_mode(self.lock))
        except LockHeld as held:
            pid, holder = _lock_holder(held.text)
            log.warning("%s: its lock file %s was removed while this run used the folder, and %s%s holds it now: "
                        "the two runs write into one folder", self.path, self.lock.name,
                        holder or "another process", f" (pid {pid})" if pid else "")
            return
        except (OSError, SrxError) as exc:
            log.warning("%s: its lock file %s was removed while this run used the folder, and it cannot be made "
                        "again: %s", self.path, self.lock.name, getattr(exc, "strerror", None) or exc)
            return
        _write_holder(fd, self.owner)
        self._fd = fd
        log.warning("%s: its lock file %s was removed while this run used the folder; it holds it again",
                    self.path, self.lock.name)

    def release(self) -> None:
        """Let go of the folder: the lock file is removed (while still held, so no one can lock the
        file that is being removed; see claim_folder), and so are the folders the claim made if
        nothing else was written into them (a run refused before its work leaves no empty folder)."""
        if self._fd is None:
            return
        try:
            self.lock.unlink(missing_ok=True)
            for folder in self._created:  # deepest first
                folder.rmdir()  # OSError (not empty) ends it: the run wrote there
        except OSError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderClaim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class LockHeld(OSError):
    """`lock_file`: another live process holds the lock; `text` is what its lock file says (its pid)."""

    def __init__(self, text: str) -> None:
        super().__init__(errno.EWOULDBLOCK, "locked by another process")
        self.text = text


def lock_file(path: Path, mode: int = 0o644) -> int:
    """An open file descriptor of `path` (made if missing, never through a link) holding an exclusive,
    non-blocking flock on it: the lock the OS lets go of when the process ends. Its holder before may
    have removed the file as it let go: the lock is then taken on the file now at that name. LockHeld
    when a live process holds it; any other OSError as it is (no room, no locks on this file system)."""
    import fcntl

    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(20):
        fd = os.open(path, flags, mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                text = os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
            except OSError:
                text = ""
            os.close(fd)
            raise LockHeld(text) from None
        except OSError:
            os.close(fd)
            raise
        if holds_lock(fd, path):
            return fd
        os.close(fd)
    raise OSError(errno.EAGAIN, f"its lock file {path} keeps being replaced")


def holds_lock(fd: int, path: Path) -> bool:
    """Whether the file at `path` (not followed) is still the one open as `fd`: a lock file removed
    or replaced since (a clean-up, its holder letting go) is no longer what `fd` locks."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except OSError:
        return False


def _write_holder(fd: int, owner: str) -> None:
    """The lock file says who holds it, "PID OWNER"; a full disk leaves it empty (the lock holds
    without it, and a refused run cannot name the holder)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {owner}\n".encode())


def claim_folder(folder: Path, lock_name: str, owner: str, busy: str) -> FolderClaim:
    """Make `folder` (and its parents) and claim it for this process: an exclusive, non-blocking
    flock on `folder/lock_name`, which holds this process's pid and `owner` (a command, "srx train").
    FolderInUse when another live process holds it: "FOLDER is in use by OWNER (pid N), still
    running; " and `busy` (what to do). The lock is the OS's, so a killed run's folder is free again
    at once; the lock file it leaves is taken over. A file system without locks (some network ones)
    gets a warning and no claim."""
    folder = Path(folder)
    created, probe = [], folder
    while not probe.exists() and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    ensure_dir(folder)
    lock = folder / lock_name
    try:
        fd = lock_file(lock, new_file_mode(lock))
    except LockHeld as held:
        pid, holder = _lock_holder(held.text)
        raise FolderInUse(f"{folder} is in use by {holder or 'another process'} "
                          f"({f'pid {pid}' if pid else 'its pid unknown'}), still running; {busy}", pid) from None
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):  # no locks on this file system
            log.warning("cannot lock %s (%s): another run into this folder at the same time would go unnoticed",
                        folder, exc.strerror or exc)
            return FolderClaim(folder, lock, None, [])
        raise WriteError(lock, exc) from None
    _write_holder(fd, owner)
    return FolderClaim(folder, lock, fd, created, owner)


def _lock_holder(text: str) -> tuple[int | None, str]:
    """The pid and owner a lock file holds ("1234 srx train")."""
    pid, _, owner = text.partition(" ")
    return (int(pid), owner) if pid.isdigit() else (None, "")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
