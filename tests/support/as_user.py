"""Running plinth as another user: root reads any file whatever its mode, so a test of
"the server cannot read this file" runs the server (or the reading code) as ``nobody``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")


def nobody_can_run_plinth() -> str | None:
    """Why plinth cannot be run as ``nobody`` here (a skip reason), or None if it can."""
    if os.geteuid() != 0:
        return (
            "not root: switching to the user nobody needs root, and without another user no file can be made unreadable "
            "to this process in a way root could not read (the root-only half of the check)"
        )
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed: cannot run plinth as the user nobody"
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import plinth.userfiles"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"the user nobody cannot import plinth with {sys.executable}: {probe.stderr.strip()[-300:]}"
    return None
