"""Settings from the environment and an optional .env file, validated once.

Real environment variables win over the file. Nothing else depends on the working
directory: cron runs us from $HOME, so the state store path is absolute by default.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mycase_sync.errors import ConfigError
from mycase_sync.netaddr import is_loopback
from mycase_sync.redact import register_secret

DEFAULTS = {
    "MYCASE_REDIRECT_URI": "http://127.0.0.1:8765/callback",
    "MYCASE_AUTH_URL": "https://auth.mycase.com",
    "MYCASE_API_URL": "https://external-integrations.mycase.com/v1",
    "CASESTATUS_API_URL": "https://app.casestatus.com",
    "MYCASE_RATE_LIMIT": "25",  # ceilings of the pace the tool finds (pacing.py); MyCase's documented limit
    "CASESTATUS_RATE_LIMIT": "500",  # Case Status publishes none: generous, the tool finds the account's pace
    "MYCASE_SYNC_TIMEOUT": "60",
    "MYCASE_SYNC_PHONE_REGION": "US",
}


# Every setting, in the order `mycase-sync config` shows them; the secrets are shown as set or not set.
NAMES = ("MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET", "MYCASE_REDIRECT_URI", "MYCASE_AUTH_URL", "MYCASE_API_URL",
         "CASESTATUS_API_URL", "CASESTATUS_API_KEY", "MYCASE_SYNC_DB", "MYCASE_SYNC_LOG", "MYCASE_RATE_LIMIT",
         "CASESTATUS_RATE_LIMIT", "MYCASE_SYNC_WORKERS", "MYCASE_SYNC_TIMEOUT", "MYCASE_SYNC_BACKOFF",
         "MYCASE_SYNC_PHONE_REGION", "MYCASE_SYNC_CREATE_STAFF", "MYCASE_DOCUMENTS_FOLDER")
SECRETS = ("MYCASE_CLIENT_SECRET", "CASESTATUS_API_KEY")
COMPUTED = ("MYCASE_SYNC_DB", "MYCASE_SYNC_WORKERS", "MYCASE_SYNC_BACKOFF", "MYCASE_SYNC_CREATE_STAFF")  # defaults in code


MYCASE_DOCUMENTED_LIMIT = 25.0  # requests/s, per API client [doc]

# Default worker pool: enough writers to reach the ceiling of the pace when answers take this long.
ANSWER_SECONDS = 0.25
MIN_WORKERS, MAX_WORKERS = 8, 64


def default_workers(*rates: float) -> int:
    """Little's law: a pool of n writers waiting `latency` each sends at most n / latency requests/s.

    A fixed 8 capped an import at 80 requests/s against a service answering in 0.1 s, below a
    Case Status limit of 100/s; the pool now grows with the highest ceiling of the pace.
    """
    return max(MIN_WORKERS, min(MAX_WORKERS, math.ceil(max(rates) * ANSWER_SECONDS)))


def default_db_path(environ: dict[str, str]) -> Path:
    """~/.local/state/mycase-sync/state.db, or under $XDG_STATE_HOME when it is set.

    A relative XDG_STATE_HOME is ignored, as the XDG spec says: it would depend on the directory cron runs us from.
    """
    base = environ.get("XDG_STATE_HOME") or ""
    if not os.path.isabs(base):
        base = os.path.join(environ.get("HOME") or str(Path.home()), ".local", "state")
    return Path(base) / "mycase-sync" / "state.db"


def check_url(name: str, value: str) -> str:
    """An https URL, or http on a loopback host only (the sandbox, a local redirect listener)."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port out of range raises here rather than deep inside requests
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL, got {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"{name} must use https (plain http is allowed only for 127.0.0.1/localhost)")
    return value.rstrip("/")


def _positive_number(name: str, value: str, kind=float) -> float | int:
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:  # "nan" and "inf" parse as floats
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return number


FLAG_WORDS = "1/0, true/false, yes/no, on/off"  # what every yes-or-no setting accepts


def _flag(name: str, value: str | None) -> bool:
    if value is None or value == "":
        return False
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be one of {FLAG_WORDS}, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where it talks to and where it keeps state."""

    mycase_client_id: str | None
    mycase_client_secret: str | None = field(repr=False)
    mycase_redirect_uri: str
    mycase_auth_url: str
    mycase_api_url: str
    casestatus_api_url: str
    casestatus_api_key: str | None = field(repr=False)
    db_path: Path
    mycase_rate_limit: float
    casestatus_rate_limit: float
    workers: int
    timeout: float
    phone_region: str
    create_staff: bool
    documents_folder: str | None
    log_file: str | None
    backoff_base: float
    # Where each setting's value came from: "environment", "env file PATH", "default" or "not set".
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    env_file: Path | None = None  # the env file read (--env-file, or ./.env when there is one)
    warnings: tuple[tuple[str, str], ...] = ()  # (key, line): said on a terminal, and once in the log

    def check_phone_region(self) -> None:
        """MYCASE_SYNC_PHONE_REGION must be a region phonenumbers knows (else every number is misread).
        Asked by the commands that read numbers: phonenumbers takes a while to import."""
        from phonenumbers import SUPPORTED_REGIONS

        if self.phone_region not in SUPPORTED_REGIONS:
            raise ConfigError(f"MYCASE_SYNC_PHONE_REGION must be a region code phonenumbers knows (as US, CA, GB),"
                              f" got {self.phone_region!r}")
    # A rate limit set in the environment or the env file is the account's known limit: the pace
    # starts there instead of at pacing.START_RATE (it is still cut on a 429).
    mycase_rate_given: bool = False
    casestatus_rate_given: bool = False

    def require(self, *names: str) -> None:
        """Fail with exit 2 naming the first missing variable (commands call this for what they use)."""
        attrs = {
            "MYCASE_CLIENT_ID": self.mycase_client_id,
            "MYCASE_CLIENT_SECRET": self.mycase_client_secret,
            "CASESTATUS_API_KEY": self.casestatus_api_key,
        }
        for name in names:
            if not attrs.get(name):
                raise ConfigError(f"{name} is not set (put it in the environment or in the .env file)")


def load_settings(env_file: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Merge defaults < .env file < real environment, then validate every value once."""
    from dotenv import dotenv_values

    real = dict(os.environ if environ is None else environ)
    if env_file is not None:
        path: Path | None = Path(env_file).absolute()
        if not path.is_file():
            raise ConfigError(f"--env-file {env_file}: no such file")
    else:
        path = Path.cwd() / ".env"
        path = path if path.is_file() else None
    from_file = dotenv_values(path) if path is not None else {}
    env: dict[str, str] = dict(DEFAULTS)
    env.update({k: v for k, v in from_file.items() if v is not None})
    env.update(real)

    def get(name: str) -> str | None:
        value = env.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    secret = get("MYCASE_CLIENT_SECRET")
    api_key = get("CASESTATUS_API_KEY")
    for value in (secret, api_key):
        if value:
            register_secret(value)

    redirect = check_url("MYCASE_REDIRECT_URI", get("MYCASE_REDIRECT_URI") or "")
    db = get("MYCASE_SYNC_DB")
    region = (get("MYCASE_SYNC_PHONE_REGION") or "US").upper()
    if len(region) != 2 or not region.isalpha():
        raise ConfigError(f"MYCASE_SYNC_PHONE_REGION must be a two-letter country code, got {region!r}")
    folder = get("MYCASE_DOCUMENTS_FOLDER")
    if folder and (".." in folder.split("/") or folder.startswith("/")):
        raise ConfigError("MYCASE_DOCUMENTS_FOLDER must be a relative folder path without '..'")
    mycase_api_url = check_url("MYCASE_API_URL", get("MYCASE_API_URL") or "")
    mycase_rate = _positive_number("MYCASE_RATE_LIMIT", env["MYCASE_RATE_LIMIT"])
    casestatus_rate = _positive_number("CASESTATUS_RATE_LIMIT", env["CASESTATUS_RATE_LIMIT"])
    warnings = []
    # MyCase's documented limit is MyCase's: a loopback API is the sandbox, whose limit is its own.
    if mycase_rate > MYCASE_DOCUMENTED_LIMIT and not is_loopback(urlsplit(mycase_api_url).hostname or ""):
        warnings.append((f"rate-clamped:MYCASE_RATE_LIMIT:{mycase_rate:g}",
                         f"MYCASE_RATE_LIMIT={mycase_rate:g} is above MyCase's documented limit of "
                         f"{MYCASE_DOCUMENTED_LIMIT:g} requests/s: using {MYCASE_DOCUMENTED_LIMIT:g}"))
        mycase_rate = MYCASE_DOCUMENTED_LIMIT
    given = {name for name in ("MYCASE_RATE_LIMIT", "CASESTATUS_RATE_LIMIT")
             if (real.get(name) or from_file.get(name) or "").strip()}
    workers = (int(_positive_number("MYCASE_SYNC_WORKERS", env["MYCASE_SYNC_WORKERS"], int))
               if "MYCASE_SYNC_WORKERS" in env else default_workers(mycase_rate, casestatus_rate))
    return Settings(
        mycase_client_id=get("MYCASE_CLIENT_ID"),
        mycase_client_secret=secret,
        mycase_redirect_uri=redirect,
        mycase_auth_url=check_url("MYCASE_AUTH_URL", get("MYCASE_AUTH_URL") or ""),
        mycase_api_url=mycase_api_url,
        casestatus_api_url=check_url("CASESTATUS_API_URL", get("CASESTATUS_API_URL") or ""),
        casestatus_api_key=api_key,
        db_path=Path(db).expanduser() if db else default_db_path(env),
        mycase_rate_limit=mycase_rate,
        casestatus_rate_limit=casestatus_rate,
        workers=workers,
        timeout=_positive_number("MYCASE_SYNC_TIMEOUT", env["MYCASE_SYNC_TIMEOUT"]),
        phone_region=region,
        create_staff=_flag("MYCASE_SYNC_CREATE_STAFF", get("MYCASE_SYNC_CREATE_STAFF")),
        documents_folder=folder.strip("/") if folder else None,
        log_file=get("MYCASE_SYNC_LOG"),
        backoff_base=_positive_number("MYCASE_SYNC_BACKOFF", get("MYCASE_SYNC_BACKOFF") or "1"),
        sources={name: _source(name, real, from_file, path) for name in NAMES},
        env_file=path,
        warnings=_file_warnings(path, from_file) + tuple(warnings),
        mycase_rate_given="MYCASE_RATE_LIMIT" in given,
        casestatus_rate_given="CASESTATUS_RATE_LIMIT" in given,
    )


def _source(name: str, real: dict, from_file: dict, path: Path | None) -> str:
    if name in real:  # even empty: it hides the file's value and the default
        return "environment"
    if (from_file.get(name) or "").strip():
        return f"env file {path}"
    return "default" if name in DEFAULTS or name in COMPUTED else "not set"


def _file_warnings(path: Path | None, from_file: dict) -> tuple[tuple[str, str], ...]:
    """A secrets file others can read: one line, keyed by the file's state (a chmod or edit says it again)."""
    if path is None or not any((from_file.get(name) or "").strip() for name in SECRETS):
        return ()
    info = path.stat()
    readers = [who for who, bits in (("its group", 0o040), ("others", 0o004)) if info.st_mode & bits]
    if not readers:
        return ()
    mode = info.st_mode & 0o777
    line = (f"{path} holds secrets and can be read by {' and '.join(readers)} (mode {mode:04o}):"
            f" run `chmod 600 {path}`")
    return ((f"env-file-readable:{path.resolve()}:{mode:o}:{info.st_ctime_ns}", line),)


def effective(settings: Settings) -> list[dict]:
    """Each setting as the tool uses it (`value`: a secret as "set" or "not set", never itself; None when
    unset), and where it came from (`from`), in the order of NAMES."""
    values = {
        "MYCASE_CLIENT_ID": settings.mycase_client_id,
        "MYCASE_CLIENT_SECRET": settings.mycase_client_secret,
        "MYCASE_REDIRECT_URI": settings.mycase_redirect_uri,
        "MYCASE_AUTH_URL": settings.mycase_auth_url,
        "MYCASE_API_URL": settings.mycase_api_url,
        "CASESTATUS_API_URL": settings.casestatus_api_url,
        "CASESTATUS_API_KEY": settings.casestatus_api_key,
        "MYCASE_SYNC_DB": str(settings.db_path),
        "MYCASE_SYNC_LOG": settings.log_file,
        "MYCASE_RATE_LIMIT": f"{settings.mycase_rate_limit:g}",
        "CASESTATUS_RATE_LIMIT": f"{settings.casestatus_rate_limit:g}",
        "MYCASE_SYNC_WORKERS": str(settings.workers),
        "MYCASE_SYNC_TIMEOUT": f"{settings.timeout:g}",
        "MYCASE_SYNC_BACKOFF": f"{settings.backoff_base:g}",
        "MYCASE_SYNC_PHONE_REGION": settings.phone_region,
        "MYCASE_SYNC_CREATE_STAFF": "1" if settings.create_staff else "0",
        "MYCASE_DOCUMENTS_FOLDER": settings.documents_folder,
    }
    return [{"name": name, "from": settings.sources.get(name, "default"),
             "value": ("set" if values[name] else "not set") if name in SECRETS else values[name]}
            for name in NAMES]
