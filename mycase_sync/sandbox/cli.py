"""`mycase-sync sandbox serve`: run both emulators locally and say how to point the tool at them."""
from __future__ import annotations

import shlex
import signal
import threading

import click

from .server import Sandbox, SandboxConfig

DEFAULT_PORT = 8770


def _latency(value: str | None) -> tuple[float, float] | None:
    """'A' or 'A-B' milliseconds -> (a, b) seconds."""
    if not value:
        return None
    try:
        low, _, high = value.partition("-")
        a, b = float(low), float(high or low)
    except ValueError:
        raise click.BadParameter(f"expected A or A-B milliseconds, got {value!r}", param_hint="--latency-ms")
    if a < 0 or b < a:
        raise click.BadParameter(f"expected 0 <= A <= B, got {value!r}", param_hint="--latency-ms")
    return a / 1000, b / 1000


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


@click.group("sandbox")
def sandbox_group():
    """Run the built-in emulator of MyCase and Case Status (for trying things out)."""


@sandbox_group.command("serve")
@click.option("--port", type=click.IntRange(0, 65534), default=DEFAULT_PORT, show_default=True,
              help="MyCase port; Case Status listens on the next one. 0 picks free ports.")
@click.option("--matters", type=click.IntRange(0), default=300, show_default=True, help="Cases in the generated firm.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generated firm.")
@click.option("--latency-ms", help="Added latency per request, fixed (A) or random in a range (A-B).")
@click.option("--rate-limit", help="Requests per second: MYCASE[,CASESTATUS]; 0 turns a limit off. [default: 25]")
@click.option("--access-token-lifetime", type=click.IntRange(1), default=86400, show_default=True,
              help="Seconds a MyCase access token lives.")
@click.option("--refresh-token-lifetime", type=click.IntRange(1), default=14 * 86400, show_default=True,
              help="Seconds a MyCase refresh token lives.")
def serve(port, matters, seed, latency_ms, rate_limit, access_token_lifetime, refresh_token_lifetime):
    """Serve both services on 127.0.0.1 until Ctrl-C, after printing the environment for the tool.

    Paste the printed lines into your shell (or eval them), then run `mycase-sync auth`:
    the sandbox consents at once and redirects to MYCASE_REDIRECT_URI.
    """
    latency = _latency(latency_ms)
    config = SandboxConfig(seed=seed, matters=matters, mycase_latency=latency, casestatus_latency=latency,
                           access_token_lifetime=access_token_lifetime,
                           refresh_token_lifetime=refresh_token_lifetime, mycase_port=port)
    config.mycase_rate_limit, config.casestatus_rate_limit = _rate_limits(rate_limit, config)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with Sandbox(config) as sandbox:
            for name, value in sandbox.env().items():
                click.echo(f"export {name}={shlex.quote(value)}")
            click.echo(f"# MyCase {sandbox.mycase_url} ({matters} matters, seed {seed}); "
                       f"Case Status {sandbox.casestatus_url}. Ctrl-C stops.", err=True)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    except OSError as exc:
        raise click.ClickException(f"cannot serve on port {port}: {exc}")
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo("# sandbox stopped", err=True)


if __name__ == "__main__":
    sandbox_group()
