"""Resident memory of the current process, for the benchmarks' child processes."""


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_kib() -> int:
    """The current resident set size in KiB."""
    return _status_kib("VmRSS")


def peak_kib() -> int:
    """The peak resident set size of this process since it started its program, in KiB
    (VmHWM; getrusage's ru_maxrss would also count the parent's memory at the fork)."""
    return _status_kib("VmHWM")
