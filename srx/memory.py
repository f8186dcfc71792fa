"""Memory: whether an exception is a failed allocation, and how much this process may still take.

numpy raises MemoryError, OpenCV a cv2.error with code -4 ("Insufficient memory"), ONNX Runtime its
own Fail / RuntimeException saying it "Failed to allocate memory", PyTorch a RuntimeError from its
CPU allocator. The places where the work happens (a runner, the Upscaler, the patch extraction) turn
them into `srx.errors.OutOfMemory` with what was being done and what helps."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

#: what the libraries srx calls say when an allocation of host memory fails (not a GPU's: there a
#: smaller tile is the answer, and those errors keep their own words)
_HOST_ALLOCATION_FAILED = (
    "Insufficient memory",  # OpenCV's StsNoMem (-4)
    "Failed to allocate memory",  # ONNX Runtime's BFCArena and CPU allocator (compared in any case)
    "DefaultCPUAllocator: can't allocate memory",  # PyTorch
    "std::bad_alloc",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says an allocation of host memory failed (MemoryError, OpenCV's -4, ONNX
    Runtime's and PyTorch's CPU allocators); srx's own OutOfMemory too."""
    from srx.errors import OutOfMemory

    if isinstance(exc, (MemoryError, OutOfMemory)):
        return True
    if type(exc).__module__ == "cv2" and getattr(exc, "code", None) == -4:
        return True
    text = str(exc)
    if "CUDA" in text or "cuda" in type(exc).__module__:
        return False
    return any(words.lower() in text.lower() for words in _HOST_ALLOCATION_FAILED)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux's VmRSS), or None where unknown."""
    return _status_kb("VmRSS")


def available_memory() -> int | None:
    """Bytes this process can still take: the machine's MemAvailable, or less where the process has
    an address-space limit (RLIMIT_AS, `prlimit --as`, `ulimit -v`) with less room left under it.
    None where neither is known."""
    room: list[int] = []
    free = _meminfo_available()
    if free is not None:
        room.append(free)
    limit = address_space_limit()
    if limit is not None:
        room.append(max(0, limit - (_status_kb("VmSize") or 0)))
    return min(room) if room else None


def _meminfo_available() -> int | None:
    """Linux's MemAvailable, else free pages (os.sysconf), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def gb(nbytes: float) -> str:
    """'1.4 GB' (GiB, one decimal; '0.3 GB' below one)."""
    return f"{nbytes / 2**30:.1f} GB"


def library_words(exc: BaseException) -> str:
    """The first line of what the library said ("Unable to allocate 1016. KiB ...", "Failed to allocate
    786432 bytes"), short: the size that failed."""
    why = (str(exc).strip().splitlines() or [""])[0]
    for start in ("Failed to allocate", "failed to allocate"):  # OpenCV's and ONNX Runtime's, without the source path
        if start in why:
            why = why[why.index(start):].split(" in function ")[0]
            break
    what = why or type(exc).__name__
    return what if len(what) <= 200 else what[:200] + "..."


@contextlib.contextmanager
def memory_errors(doing: str, helps: str = "") -> Iterator[None]:
    """Around a stage's work (training, tuning): an allocation that fails in it is one OutOfMemory,
    "out of memory DOING (the library's words); free some memory or use a machine with more, or
    HELPS". An OutOfMemory raised inside (the patch extraction's) passes as it is."""
    from srx.errors import OutOfMemory

    try:
        yield
    except OutOfMemory:
        raise
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        raise OutOfMemory(f"out of memory {doing} ({library_words(exc)}); free some memory or use a machine with "
                          f"more{', or ' + helps if helps else ''}") from None


def address_space_limit() -> int | None:
    """This process's address-space limit (RLIMIT_AS: `ulimit -v`, `prlimit --as`), or None."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else int(soft)


def limit_words() -> str:
    """'; srx runs under an address-space limit of 1.0 GB (...)' where it does, else ''."""
    limit = address_space_limit()
    if limit is None:
        return ""
    return (f"; this process runs under an address-space limit of {gb(limit)} (ulimit -v, prlimit --as), which "
            "counts the libraries' reserved memory too")
