"""Shared by the experiments: machine information and marked page sections (a block of a markdown page that
one experiment owns, between `<!-- NAME:start -->` and `<!-- NAME:end -->`)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def machine() -> str:
    """CPU model, logical CPUs, torch version and threads, Python version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}{gpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
        f"thread(s), Python {platform.python_version()}"
    )


def load_average() -> str:
    """The 1/5/15-minute load averages ("n/a" where the OS has none)."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def marked_block(path: Path, name: str) -> str | None:
    """The text between the `name` markers of an existing page, if any."""
    start, end = markers(name)
    old = path.read_text() if path.exists() else ""
    if start not in old or end not in old:
        return None
    return old.split(start, 1)[1].split(end, 1)[0].strip("\n")


def write_marked(path: Path, name: str, md: str) -> None:
    """Replace (or append) the text between the `name` markers of `path`."""
    start, end = markers(name)
    text = path.read_text() if path.exists() else ""
    block = f"{start}\n{md}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)
