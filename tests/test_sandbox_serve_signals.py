"""`mycase-sync sandbox serve` stops on Ctrl-C as a person expects: exit 0, "sandbox stopped"."""

from __future__ import annotations

import signal
import subprocess
import sys


def test_ctrl_c_stops_mycase_sync_sandbox_serve_cleanly():
    proc = subprocess.Popen([sys.executable, "-m", "mycase_sync", "sandbox", "serve", "--port", "0", "--matters", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("export ")  # serving
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    err = proc.stderr.read()
    assert code == 0, err
    assert "sandbox stopped" in err and "interrupted" not in err
