"""Safe file output shared by every module that writes results (one implementation).

Three rules, so that nothing a user has is lost:

* **Atomic**: the content is serialised in memory, written to a temporary sibling, fsync'ed and
  renamed over the target (:func:`atomic_write`). A reader, or a process killed at any moment,
  sees the old file or the complete new one. Serialising first means a library that cannot
  cope with a failing disk (HDF5 crashes on ENOSPC) never touches the disk; a full disk or a
  file-size limit ends in one :class:`~landscape.errors.LandscapeError` with the previous file
  intact.
* **Through links**: a symbolic link given as the output is followed; the file it points to is
  replaced and the link stays (:func:`resolve_target`).
* **One writer at a time**: :func:`output_lock` holds an exclusive ``flock`` on a lock file
  beside the output (``.<name>.lock``, removed when released), so a second process writing the
  same file fails with a clear message instead of losing an update. Locks are re-entrant
  within a process. The kernel releases an ``flock`` when its holder dies; a forked child
  (a data-loader worker) closes its copy of the lock at the fork, so it cannot keep the lock
  of a killed parent, and a lock file that records ``<pid> <machine>`` of a writer that died
  on this machine is stale: it is removed and the lock taken anew.

Temporary files are named ``.<name>.<pid>-<machine>.<random>.tmp`` so that a later writer can
tell the leftovers of a killed writer (SIGKILL, OOM killer, power loss) from the file a live
one is still writing; ``<machine>`` is a checksum of the host name and PID namespace, so pids
are only compared on the machine (and container) that wrote them.
"""

from __future__ import annotations

import errno
import functools
import inspect
import io
import os
import re
import socket
import stat
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import LandscapeError

__all__ = [
    "file_mode",
    "atomic_write",
    "write_bytes",
    "resolve_target",
    "check_regular",
    "output_lock",
    "holds_output",
    "machine_tag",
    "remove_stale_temps",
]

PathLike = str | os.PathLike

#: errno values that mean "the disk (or a quota / file-size limit) is full".
_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def file_mode(path: Path) -> int:
    """Permissions for an atomically written file: those of the file it replaces, else 0o666
    less the umask, as ``open()`` would give (``mkstemp`` creates 0o600, which would hide
    results from everyone else on a shared machine)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def resolve_target(path: PathLike) -> Path:
    """The file a write of ``path`` must replace: symbolic links followed (a dangling link
    gives the path it points to), so the link itself survives the write."""
    p = Path(path)
    if p.is_symlink():
        return Path(os.path.realpath(p))
    return p


_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def check_regular(path: PathLike, *, what: str = "file") -> bool:
    """Refuse anything but a regular file before it is opened (a FIFO would hang the open).

    Returns ``False`` if ``path`` does not exist, ``True`` for a regular file (links followed).

    Raises
    ------
    LandscapeError
        For a directory, FIFO, socket or device, or a path that cannot be inspected.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):  # (a path under a regular file)
        return False
    except OSError as exc:
        raise LandscapeError(f"cannot access '{p}': {exc.strerror}") from exc
    if stat.S_ISREG(st.st_mode):
        return True
    if stat.S_ISDIR(st.st_mode):
        raise LandscapeError(f"'{p}' is a directory, not a {what}")
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
    raise LandscapeError(f"'{p}' is {kind}, not a regular {what}; give the path of a file")


def machine_tag() -> str:
    """Checksum of the host name and PID namespace (pids mean something only there)."""
    try:
        pidns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pidns = 0
    return f"{zlib.crc32(f'{socket.gethostname()}:{pidns}'.encode()):08x}"


def _tmp_prefix(p: Path) -> str:
    return f".{p.name}.{os.getpid()}-{machine_tag()}."


_TMP_OWNER = re.compile(r"(\d+)-([0-9a-f]{8})\.[^.]+\.tmp")


def _pid_alive(pid: int) -> bool:
    if os.name != "posix" or pid <= 0:  # on Windows os.kill(pid, 0) terminates the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def remove_stale_temps(p: Path) -> None:
    """Delete temporary files of ``p`` whose writer died on this machine (best effort).

    Files of live writers, of other machines and of other naming schemes are left alone;
    errors are ignored.
    """
    parent = p.parent if str(p.parent) else Path(".")
    prefix = f".{p.name}."
    tag = machine_tag()
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        m = _TMP_OWNER.fullmatch(name[len(prefix):])
        if m is None or m.group(2) != tag:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            os.unlink(parent / name)
        except OSError:
            pass


def _write_error(p: Path, exc: OSError, existed: bool) -> LandscapeError:
    kept = "the previous file is intact" if existed else "nothing was written"
    if exc.errno in _FULL:
        why = "file size limit exceeded" if exc.errno == errno.EFBIG else "no space left on device"
        return LandscapeError(f"cannot write '{p}': {why}; {kept} (free space and run again)")
    return LandscapeError(f"cannot write '{p}': {exc.strerror or exc}; {kept}")


def write_bytes(path: PathLike, data: bytes | memoryview) -> Path:
    """Atomically replace ``path`` (links followed) with ``data``; returns the path written.

    Raises
    ------
    LandscapeError
        If the directory is missing or unwritable, or the disk is full; the previous file is
        then unchanged and no temporary file is left behind.
    """
    p = resolve_target(path)
    parent = p.parent if str(p.parent) else Path(".")
    existed = check_regular(p)
    mode = file_mode(p)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=_tmp_prefix(p), suffix=".tmp")
    except OSError as exc:
        raise _write_error(p, exc, existed) from exc
    try:
        try:
            os.chmod(tmp, mode)
        except OSError:  # a file system without permissions: keep mkstemp's
            pass
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _write_error(p, exc, existed) from exc
        raise
    try:  # make the rename itself durable (POSIX); harmless where unsupported
        dir_fd = os.open(parent, os.O_RDONLY)
    except OSError:
        dir_fd = None
    if dir_fd is not None:
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)
    key = os.path.abspath(p)
    if key not in _CLEANED:  # leftovers come from earlier processes: once per process is enough
        _CLEANED.add(key)
        remove_stale_temps(p)
    return p


#: Targets whose directory this process has already cleaned (a flush every point then costs no
#: directory listing in a big folder).
_CLEANED: set[str] = set()


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically: ``write(f)`` into memory, then :func:`write_bytes`.

    A reader (or a process killed halfway) sees either the old file or the complete new one,
    never a partial one. The parent directory is created if needed; links are followed.
    """
    buf = io.BytesIO()
    write(buf)
    return write_bytes(path, buf.getbuffer())


# --- one writer at a time ------------------------------------------------------------------


#: errno values of ``flock`` on file systems that do not support it: writes go on unlocked.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, getattr(errno, "ENOTSUP", -1)}


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _lock_path(p: Path) -> Path:
    return p.with_name(f".{p.name}.lock")


def _lock_record() -> str:
    """What a lock file records of its holder: ``"<pid> <machine tag>"``."""
    return f"{os.getpid()} {machine_tag()}"


def _read_holder(lock: Path) -> tuple[int, str | None] | None:
    """``(pid, machine tag)`` recorded in ``lock`` (tag ``None`` in files written before it was
    recorded), or ``None`` if it records nothing readable."""
    try:
        fields = lock.read_text().split()
    except OSError:
        return None
    if not fields or not fields[0].isdigit() or len(fields) > 2:
        return None
    return int(fields[0]), fields[1] if len(fields) == 2 else None


def _holder(lock: Path) -> str:
    rec = _read_holder(lock)
    if rec is None:
        return ""
    pid, tag = rec
    return f" (pid {pid})" if tag in (None, machine_tag()) else f" (pid {pid} on another machine)"


def _stale(lock: Path) -> bool:
    """Whether the busy ``lock`` records a holder that died on this machine.

    Someone still holds the ``flock`` (a process the dead writer forked before this module
    closed lock copies at forks, or one that inherited the descriptor otherwise), but the
    writer it records is gone. The record is read twice, 0.1 s apart, so that a writer that
    has just taken the lock and not yet written its own record is not mistaken for stale.
    """
    first = _read_holder(lock)
    if first is None or first[1] != machine_tag() or _pid_alive(first[0]):
        return False
    time.sleep(0.1)
    return _read_holder(lock) == first and not _pid_alive(first[0])


@contextmanager
def output_lock(path: PathLike, *, wait: float = 0.0) -> Iterator[Path]:
    """Hold an exclusive lock on the output ``path`` for the ``with`` block.

    Yields the resolved target path. Re-entrant within a process (a writer that holds the
    lock for a whole run may call functions that take it again for each flush).

    Parameters
    ----------
    path : path
        The output file (links followed).
    wait : float, default=0.0
        Seconds to wait for another process to release the lock before giving up.

    Raises
    ------
    LandscapeError
        If another process holds the lock (after ``wait`` seconds).

    Notes
    -----
    On a file system without ``flock`` (``ENOLCK``/``EOPNOTSUPP``: some NFS and Lustre mounts)
    the block runs unlocked rather than refusing to write.
    """
    held = _HELD
    p = resolve_target(path)
    key = os.path.abspath(p)
    if key in held:
        entry = held[key]
        entry[1] += 1
        try:
            yield p
        finally:
            entry[1] -= 1
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield p
        return
    lock = _lock_path(p)
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except (FileNotFoundError, NotADirectoryError):  # no such directory: nothing to guard
            yield p
            return
        except OSError as exc:
            raise LandscapeError(f"cannot write '{p}': {exc.strerror} ('{lock}')") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _NO_LOCKS:  # a file system without flock (some NFS/Lustre setups)
                _remove_quietly(lock)
                yield p
                return
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LandscapeError(f"cannot lock '{p}': {exc.strerror}") from exc
            if _stale(lock):  # its writer died: a new lock file, locked below (inode check)
                try:
                    os.unlink(lock)
                    continue
                except FileNotFoundError:
                    continue
                except OSError:  # cannot remove it: refused below like a live lock
                    pass
            if time.monotonic() >= deadline:
                raise LandscapeError(
                    f"'{p}' is being written by another landscape process{_holder(lock)}; "
                    "wait for it to finish, or write to another file"
                ) from None
            time.sleep(0.05)
            continue
        try:  # the holder before us may have removed the file we locked: then lock anew
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, _lock_record().encode())
    except OSError:
        pass
    held[key] = entry = [fd, 1]
    try:
        yield p
    finally:
        if held.get(key) is entry:  # not in a forked child (it closed its copy at the fork)
            del held[key]
            _remove_quietly(lock)
            os.close(fd)


def _writer_rank() -> int:
    """This process's rank under ``torch.distributed`` (0 outside it): only rank 0 writes."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch without distributed support
        return 0
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def _argument(sig: inspect.Signature, arguments: dict, param: str) -> object:
    """The value of ``param``: given by name, among the ``**`` keyword arguments, or as the
    field of a run-options object given as ``run`` (:class:`landscape.inputs.RunOptions`)."""
    if arguments.get(param) is not None:
        return arguments[param]
    for name, value in arguments.items():
        if sig.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            if value.get(param) is not None:
                return value[param]
        elif name == "run" and getattr(value, param, None) is not None:
            return getattr(value, param)
    return None


def holds_output(param: str, fallback: str | None = None) -> Callable:
    """Decorator: the function holds :func:`output_lock` on its output for its whole run.

    ``param`` names the output-path argument (given by name, through ``**`` keyword
    arguments, or as a field of a ``run`` options object; ``fallback`` the argument used
    when it is ``None``); nothing is locked when both are ``None`` or on ranks other than 0 of a
    distributed job (rank 0 is the only writer). A second process that tries to write the
    same file while the run goes on fails at once with a clear message, instead of the two
    overwriting each other's updates.
    """

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind_partial(*args, **kwargs)
            path = _argument(sig, bound.arguments, param)
            if path is None and fallback is not None:
                path = _argument(sig, bound.arguments, fallback)
            if path is None or _writer_rank() != 0:
                return fn(*args, **kwargs)
            with output_lock(path):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


#: Locks this process holds: absolute target path -> [fd, depth]. Process state by nature
#: (an flock belongs to an open file of this process), kept private to this module.
_HELD: dict[str, list] = {}


def _drop_locks_in_child() -> None:
    """After a fork, in the child: close the copies of this process's lock descriptors.

    A forked child shares the parent's open lock files, so it would keep their ``flock``
    after the parent is killed (a data-loader worker outliving its run). Closing a copy does
    not release the parent's lock; the child holds no lock and takes its own if it writes.
    """
    for fd, _depth in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_locks_in_child)


def check_own_directory(out: Path, marker: str, what: str) -> None:
    """Refuse to write into ``out`` unless it is missing, empty or ``what`` (a directory
    holding ``marker``): a workflow that fills a directory never writes into someone else's
    (a training run, a model directory, ``.``).

    Raises
    ------
    LandscapeError
        If ``out`` is a file, or an existing non-empty directory without ``marker``.
    """
    from .errors import LandscapeError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LandscapeError(f"The 'out_dir' parameter must be a directory. Got '{out}', "
                             "which is a file.")
    if out.is_dir() and not (out / marker).exists():
        entries = sorted(e.name for e in out.iterdir())
        if entries:
            raise LandscapeError(
                f"The 'out_dir' parameter must be an empty directory or {what} (with "
                f"{marker}). Got '{out}', which holds {len(entries)} other entr"
                f"{'y' if len(entries) == 1 else 'ies'} (e.g. '{entries[0]}'); choose a new "
                "output directory"
            )


def make_output_dir(out: PathLike) -> Path:
    """Create the output directory ``out`` (and its parents) where missing; returns it.

    Raises
    ------
    LandscapeError
        If ``out`` is a file, or the directory cannot be created.
    """
    from .errors import LandscapeError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LandscapeError(
            f"The 'out_dir' parameter must be a directory. Got '{out}', which is a file.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LandscapeError(f"cannot create output directory '{out}': {exc.strerror}") from exc
    return out
