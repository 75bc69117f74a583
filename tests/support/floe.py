"""Running the `floe` binary from tests.

The binary comes from `FLOE_BIN` (set by scripts/test.sh); by default the
debug build under target/. Every call has a timeout so a hung run fails the
test instead of the suite.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("FLOE_BIN", str(ROOT / "target" / "debug" / "floe"))
TIMEOUT = 300
# The fail points of src/failpoint.rs, in commit order.
FAIL_POINTS = ["after-data-files", "after-manifests", "after-metadata-file", "after-catalog-swap", "before-positions-advance"]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("FLOE_")}
    out.update({"FLOE_LOG": "warn", "FLOE_PROGRESS": "never"})
    out.update(extra)
    return out


def run(*args: str, check: bool = True, stdin: bytes | None = None, **extra_env: str) -> subprocess.CompletedProcess:
    """Runs `floe ARGS...` and returns the completed process (text output)."""
    proc = subprocess.run(
        [BIN, *args],
        input=stdin,
        capture_output=True,
        env=env(**extra_env),
        timeout=TIMEOUT,
    )
    result = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    if check and result.returncode != 0:
        raise AssertionError(f"floe {' '.join(args)} exited {result.returncode}:\n{result.stderr}\n{result.stdout}")
    return result


def start(*args: str, **extra_env: str) -> subprocess.Popen:
    """Starts `floe ARGS...` in the background (caller waits or kills)."""
    return subprocess.Popen([BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(**extra_env))


def generate(path: Path, events: int, seed: int, **options: float) -> Path:
    """`floe generate` into `path`; options are passed as --dup-rate etc."""
    args = ["generate", "--events", str(events), "--seed", str(seed), "--out", str(path)]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    run(*args)
    return path


def summary_value(stdout: str, label: str) -> int:
    """A number from the run summary, e.g. summary_value(out, "rows written")."""
    match = re.search(rf"^\s*{re.escape(label)}\s+([\d,]+)\s*$", stdout, re.MULTILINE)
    if not match:
        raise AssertionError(f"no '{label}' in summary:\n{stdout}")
    return int(match.group(1).replace(",", ""))


def wait_for(condition, timeout: float, what, interval: float = 0.02) -> None:
    """Polls `condition` until true; fails after `timeout` seconds, saying
    what was awaited (`what`: text, or a function giving it then)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def exited(proc: subprocess.Popen) -> bool:
    """False while `proc` runs; raises with its stderr once it has exited
    (for conditions of `wait_for` that a dead Floe can never meet)."""
    if proc.poll() is None:
        return False
    _, err = proc.communicate()
    raise AssertionError(f"floe exited {proc.returncode}:\n{err.decode()}")


def wait_stopped(proc: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    """Waits until `proc` froze itself at a `stop` fail point (state T)."""
    stat = Path(f"/proc/{proc.pid}/stat")
    # The state follows the parenthesised command name.
    wait_for(
        lambda: not exited(proc) and stat.read_text().rsplit(")", 1)[1].split()[0] == "T",
        timeout,
        "floe to reach its fail point",
    )


@contextlib.contextmanager
def frozen_at(point: str, *args: str, **extra_env: str) -> Iterator[subprocess.Popen]:
    """Starts `floe ARGS...` with fail point `point` armed to stop, yields the
    process once it froze there, and lets it go on (SIGCONT) on leaving;
    collect it with `finished`."""
    proc = start(*args, FLOE_FAILPOINT=f"{point}:stop", **extra_env)
    try:
        wait_stopped(proc)
        yield proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def finished(proc: subprocess.Popen) -> str:
    """Waits for a background floe, which must exit 0: its stdout."""
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err.decode()
    return out.decode()
