"""Which ``tune`` holds a running trial, and whether it is still alive.

A trial records the driver that asked it: host name, machine id, boot id, process id and the
process's start time. A driver closes another's running trial as dead only when it can tell:
the trial's driver ran on this machine (the same machine id; the same host name for a record
without one) and either the machine has booted since (another boot id) or no process with that id
and start time is alive. Host names alone do not tell machines apart (cloned virtual machines and
containers often share one), and a process id does not outlive its process: after a reboot, or
once ids wrap, another process may hold it. A trial of a driver that ran on another machine is
left to that driver, unless the user says it is dead (``tune --retry-running``).

Machine id, boot id and start time are read from Linux's ``/etc/machine-id`` and ``/proc``; where
they cannot be read the record holds None and the host name and process id decide, as before.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def current_owner() -> dict[str, Any]:
    """This process, as a running trial records its driver."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "machine": machine_id(),
        "boot": boot_id(),
        "pid": pid,
        "started": process_start(pid),
    }


def machine_id() -> str | None:
    """The id systemd gives this installation (kept across reboots), or None where there is none."""
    for path in MACHINE_ID_FILES:
        text = _read(path)
        if text:
            return text
    return None


def boot_id() -> str | None:
    """The kernel's id of the current boot, or None off Linux."""
    return _read(BOOT_ID_FILE) or None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22), or
    None where that cannot be read (no such process, or no ``/proc``)."""
    text = _read(Path(f"/proc/{pid}/stat"))
    if not text:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def runs_here(owner: Mapping[str, Any]) -> bool:
    """Whether the trial's driver ran on this machine."""
    recorded, here = owner.get("machine"), machine_id()
    if recorded is not None and here is not None:
        return recorded == here
    return owner.get("host") == socket.gethostname()


def is_alive(owner: Mapping[str, Any]) -> bool:
    """Whether the driver ``owner`` describes, which ran on this machine, is still running."""
    recorded_boot, this_boot = owner.get("boot"), boot_id()
    if recorded_boot is not None and this_boot is not None and recorded_boot != this_boot:
        return False  # the machine has booted since: every process of that boot is gone
    pid = owner.get("pid")
    if not isinstance(pid, int) or not _pid_exists(pid):
        return False
    started = owner.get("started")
    now = process_start(pid)
    return started is None or now is None or started == now  # else another process took the id


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
