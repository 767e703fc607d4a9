"""`mycase-sync sandbox serve`: run both emulators locally and say how to point the tool at them."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import tempfile
import threading

import click

from mycase_sync.signals import Interrupted

from .core import FaultPlan
from .server import ALTERNATIVES, Sandbox, SandboxConfig

DEFAULT_PORT = 8770


def _one_latency(value: str) -> tuple[float, float] | None:
    """'A' or 'A-B' milliseconds -> (a, b) seconds; '0' means none."""
    try:
        low, _, high = value.partition("-")
        a, b = float(low), float(high or low)
    except ValueError:
        raise click.BadParameter(f"expected A or A-B milliseconds, got {value!r}", param_hint="--latency-ms")
    if a < 0 or b < a:
        raise click.BadParameter(f"expected 0 <= A <= B, got {value!r}", param_hint="--latency-ms")
    return (a / 1000, b / 1000) if b > 0 else None


def _latencies(value: str | None) -> tuple[tuple | None, tuple | None]:
    """'MYCASE[,CASESTATUS]'; one value applies to both services."""
    if not value:
        return None, None
    parts = value.split(",")
    if len(parts) > 2:
        raise click.BadParameter(f"expected MYCASE[,CASESTATUS], got {value!r}", param_hint="--latency-ms")
    mycase = _one_latency(parts[0])
    return mycase, _one_latency(parts[1]) if len(parts) > 1 else mycase


def _fault(spec: str) -> tuple[str, str, str, str, int, int]:
    """'SERVICE:METHOD:PATH_REGEX:KIND[:NTH[:TIMES]]' -> the arguments of FaultPlan.add."""
    parts = spec.split(":")
    kinds = [i for i, p in enumerate(parts) if i >= 3 and p in FaultPlan.KINDS]
    if len(parts) < 4 or parts[0] not in ("mycase", "casestatus") or not kinds:
        raise click.BadParameter(f"expected SERVICE:METHOD:PATH_REGEX:KIND[:NTH[:TIMES]] with SERVICE mycase or "
                                 f"casestatus and KIND one of {sorted(FaultPlan.KINDS)}, got {spec!r}",
                                 param_hint="--fault")
    at = kinds[-1]
    numbers = parts[at + 1:]
    if len(numbers) > 2 or not all(n.isdigit() and int(n) > 0 for n in numbers):
        raise click.BadParameter(f"NTH and TIMES must be positive integers in {spec!r}", param_hint="--fault")
    nth, times = (list(map(int, numbers)) + [1, 1])[:2]
    return parts[0], parts[1].upper(), ":".join(parts[2:at]), parts[at], nth, times


def _rate_limits(value: str | None, default: SandboxConfig) -> tuple[float | None, float | None]:
    """'MYCASE[,CASESTATUS]' requests per second; 0 turns a limit off."""
    if not value:
        return default.mycase_rate_limit, default.casestatus_rate_limit
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(parts) > 2 or not numbers or any(n < 0 for n in numbers):
        raise click.BadParameter(f"expected MYCASE[,CASESTATUS] requests per second, got {value!r}",
                                 param_hint="--rate-limit")
    mycase = numbers[0] or None
    casestatus = (numbers[1] or None) if len(numbers) > 1 else default.casestatus_rate_limit
    return mycase, casestatus


def _alternative_flags(command):
    """One --FLAG per alternative of API-NOTES Part 3 (sandbox.server.ALTERNATIVES)."""
    for name, (_, _, what) in reversed(ALTERNATIVES.items()):
        command = click.option(f"--{name.replace('_', '-')}", name, is_flag=True, help=f"Alternative: {what}.")(command)
    return command


@click.group("sandbox")
def sandbox_group():
    """Run the built-in emulator of MyCase and Case Status (for trying things out)."""


@sandbox_group.command("serve")
@click.option("--port", type=click.IntRange(0, 65534), default=DEFAULT_PORT, show_default=True,
              help="MyCase port; Case Status listens on the next one. 0 picks free ports.")
@click.option("--matters", type=click.IntRange(0), default=300, show_default=True, help="Cases in the generated firm.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generated firm.")
@click.option("--latency-ms", help="Added latency per request in ms, fixed (A) or random (A-B); "
                                   "MYCASE[,CASESTATUS], one value for both. [default: none]")
@click.option("--rate-limit", help="Requests per second: MYCASE[,CASESTATUS]; 0 turns a limit off. "
                                   "[default: 25 for MyCase (its documented limit), none for Case Status]")
@click.option("--access-token-lifetime", type=click.IntRange(1), default=86400, show_default=True,
              help="Seconds a MyCase access token lives.")
@click.option("--refresh-token-lifetime", type=click.IntRange(1), default=14 * 86400, show_default=True,
              help="Seconds a MyCase refresh token lives.")
@click.option("--retry-after", type=click.IntRange(0), help="Seconds MyCase's 429 answers carry in Retry-After. "
              "[default: none, as live]")
@click.option("--fault", "faults", multiple=True, metavar="SERVICE:METHOD:PATH_REGEX:KIND[:NTH[:TIMES]]",
              help="Planned failure, repeatable, e.g. mycase:POST:/v1/cases/\\d+/notes:drop:3 "
                   "(KIND: 500, 502, 503, 504, 429, drop, timeout, drop_before; 502_late, 503_late, 504_late: "
                   "carried out, then answered with that status): the NTH matching request "
                   "and the TIMES-1 after it fail. [default: NTH 1, TIMES 1; no failure planned]")
@_alternative_flags
def serve(port, matters, seed, latency_ms, rate_limit, access_token_lifetime, refresh_token_lifetime,
          retry_after, faults, **alternatives):
    """Serve both services on 127.0.0.1 until Ctrl-C, after printing the environment for the tool.

    Paste the printed lines into your shell (or eval them), then run `mycase-sync auth`:
    the sandbox consents at once and redirects to MYCASE_REDIRECT_URI. They also set
    MYCASE_SYNC_DB to a throw-away state store (removed when the sandbox stops), so the
    sandbox's tokens never reach your real one. Each --alternative flag is off by default:
    the services then behave as documented.
    """
    mycase_latency, casestatus_latency = _latencies(latency_ms)
    plans = [_fault(spec) for spec in faults]
    config = SandboxConfig(seed=seed, matters=matters, mycase_latency=mycase_latency,
                           casestatus_latency=casestatus_latency,
                           access_token_lifetime=access_token_lifetime,
                           refresh_token_lifetime=refresh_token_lifetime, mycase_port=port, **alternatives)
    config.mycase_rate_limit, config.casestatus_rate_limit = _rate_limits(rate_limit, config)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scratch = tempfile.mkdtemp(prefix="mycase-sync-sandbox-")  # 0700: the state store for these runs
    try:
        with Sandbox(config) as sandbox:
            try:
                sandbox.mycase.retry_after = retry_after
                for service, *plan in plans:
                    getattr(sandbox, service).faults.add(*plan)
                for name, value in {**sandbox.env(), "MYCASE_SYNC_DB": os.path.join(scratch, "state.db")}.items():
                    click.echo(f"export {name}={shlex.quote(value)}")
                click.echo(f"# MyCase {sandbox.mycase_url} ({matters} matters, seed {seed}); "
                           f"Case Status {sandbox.casestatus_url}. Ctrl-C stops.", err=True)
                while not stop.wait(0.5):
                    pass
            except (KeyboardInterrupt, Interrupted):  # Ctrl-C is how a person stops it, at any moment
                pass
    except OSError as exc:
        raise click.ClickException(f"cannot serve on port {port}: {exc}")
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(scratch, ignore_errors=True)
    click.echo(f"# sandbox stopped; its state store {scratch} is removed", err=True)


if __name__ == "__main__":
    sandbox_group()
