"""The failures a run can end with, each tied to the exit code cron and the README document.

Exit codes: 0 success; 1 some records failed (recorded, retried next run); 2 usage or
configuration error; 3 MyCase authorization missing, expired or revoked; 75 temporary
(lock held, service unreachable): nothing lost, the next run continues.
"""

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_CONFIG = 2
EXIT_AUTH = 3
EXIT_TEMPORARY = 75

REAUTH_MESSAGE = "MyCase authorization expired or revoked: run `mycase-sync auth`"


class SyncError(Exception):
    """Base class: a message meant for the sysadmin, and the exit code that goes with it."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(str(self.message).split())


class ConfigError(SyncError):
    """A missing or malformed setting, or bad command-line input."""

    exit_code = EXIT_CONFIG


class AuthorizationError(SyncError):
    """MyCase refused our credentials for good: a person has to run `mycase-sync auth`."""

    exit_code = EXIT_AUTH

    def __init__(self, message: str = REAUTH_MESSAGE):
        super().__init__(message)


class TemporaryError(SyncError):
    """Try again later: nothing was lost (lock held, service unreachable, 5xx from /tokens)."""

    exit_code = EXIT_TEMPORARY


class LockHeld(TemporaryError):
    """Another run of the same job holds its lock."""


class ServiceError(SyncError):
    """A service answered one request with an error; the job records it against that record."""

    def __init__(self, service: str, method: str, path: str, status: int | None, detail: str):
        self.service = service
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        where = f"{service} {method} {path}"
        what = f"HTTP {status}" if status else "no answer"
        super().__init__(f"{where}: {what}: {detail}" if detail else f"{where}: {what}")


class OutcomeUnknown(ServiceError):
    """A write was sent but no answer came back (timeout, dropped connection): it may have landed."""


class ServiceUnavailable(ServiceError, TemporaryError):
    """Still 429/502/503/504 after the HTTP layer's retries: the service is down, not the record (exit 75)."""


class RefusedURL(ServiceError):
    """A URL a service handed us that we will not follow (not https, internal, loopback, another host).

    Told apart by its class, not by its service name; the name stays "security" so the message reads
    `security GET /path: no answer: refusing ...` as before.
    """

    SERVICE = "security"

    def __init__(self, path: str, detail: str):
        super().__init__(self.SERVICE, "GET", path, None, detail)
