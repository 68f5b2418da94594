"""The machine a benchmark ran on, in one line: CPU model, family and model numbers, the
cores this process may use, the vector extensions that change speed (AVX2, AVX-512, native
bf16, AMX) and the memory. Two machines that share a model name can differ in these."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def describe() -> str:
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    flags = set(fields.get("flags", "").split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    extensions = " ".join(flag for flag in FLAGS if flag in flags) or "no AVX2"
    return (f"{fields.get('model name', platform.processor())} (family {fields.get('cpu family', '?')}, model "
            f"{fields.get('model', '?')}), {cores} cores, {extensions}{memory}")


if __name__ == "__main__":
    print(describe())
