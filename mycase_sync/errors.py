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


class SettingRefused(ConfigError):
    """A service refused a setting at first contact (a key it does not know, a URL with nothing behind
    it): no record is to blame, and every later run would fail alike until the setting is fixed."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


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
    """A service answered one request with an error; the job records it against that record.

    `repeated`: the HTTP layer sent the request again (after backing off) and still got this answer,
    so it is the service's state for now, not one passing failure."""

    def __init__(self, service: str, method: str, path: str, status: int | None, detail: str, *,
                 repeated: bool = False):
        self.service = service
        self.repeated = repeated
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


# --- local faults: the disk, the file system, the state store ---------------------------------
RESTORE_HINT = ("restore it from a backup (mycase-sync backup FILE): while no job runs, copy the backup in its place "
                "and remove the -wal and -shm files beside it")


class LocalFault(TemporaryError):
    """The machine, not the data: a full disk, an I/O error, a locked store (exit 75, nothing counted)."""


class LocalPermission(ConfigError):
    """A state path that cannot be written: a permissions problem, not corruption (exit 2)."""


class StoreUnusable(ConfigError):
    """The state store file is not a usable SQLite database (exit 2): restore it from a backup."""


_DISK_FULL = {28, 122}  # ENOSPC, EDQUOT
_IO_ERROR = {5}  # EIO
_NO_PERMISSION = {1, 13, 30}  # EPERM, EACCES, EROFS


def os_fault(exc: BaseException, path=None) -> SyncError | None:
    """A local OSError as the one line it deserves, or None when it is not a fault of the machine."""
    if not isinstance(exc, OSError):
        return None
    where = exc.filename or path or "?"
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_FULL:
        return LocalFault(f"the disk is full ({reason}) writing {where}; nothing lost and nothing counted against any "
                          "item: free some space, the next run continues")
    if exc.errno in _IO_ERROR:
        return LocalFault(f"disk I/O error ({reason}) on {where}; nothing lost and nothing counted against any item: "
                          "check the disk, the next run continues")
    if exc.errno in _NO_PERMISSION:
        return LocalPermission(f"cannot write {where}: {reason}: a permissions problem (read-only file, directory "
                               "or file system), not corruption: make it writable by the user cron runs as")
    return None


# SQLite's primary result codes (sqlite3 errors carry them as sqlite_errorcode, extended: & 0xff).
_SQLITE_FULL, _SQLITE_IOERR, _SQLITE_BUSY, _SQLITE_LOCKED = 13, 10, 5, 6
_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_CANTOPEN = 8, 3, 14
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_SQLITE_BY_TEXT = (("disk is full", _SQLITE_FULL), ("disk i/o error", _SQLITE_IOERR), ("locked", _SQLITE_BUSY),
                   ("readonly", _SQLITE_READONLY), ("unable to open", _SQLITE_CANTOPEN),
                   ("malformed", _SQLITE_CORRUPT), ("not a database", _SQLITE_NOTADB))


def store_fault(exc: BaseException, path) -> SyncError | None:
    """What an sqlite3 error on the state store at `path` means, as one line and its exit code:
    full disk, I/O error or lock: temporary (75); read-only: permissions (2); a file that is not a
    database (or a damaged one): restore from a backup (2). None for any other error (a bug of ours)."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    if code is None:
        code = next((c for words, c in _SQLITE_BY_TEXT if words in text.lower()), None)
    code = code & 0xFF if isinstance(code, int) else None
    if code == _SQLITE_FULL:
        return LocalFault(f"the disk is full ({text}) writing state store {path}; nothing lost and nothing counted "
                          "against any item: free some space, the next run continues")
    if code == _SQLITE_IOERR:
        return LocalFault(f"disk I/O error ({text}) on state store {path}; nothing lost and nothing counted against "
                          "any item: check the disk, the next run continues")
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return LocalFault(f"state store {path} is locked by another process ({text}); nothing lost, the next run "
                          "continues")
    if code in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_CANTOPEN):
        return LocalPermission(f"state store {path} cannot be written ({text}): a permissions problem (read-only "
                               "file, directory or file system), not corruption: make the file and its directory "
                               "writable by the user cron runs as")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StoreUnusable(f"state store {path} is not a usable SQLite database ({text}): {RESTORE_HINT} (README, "
                             "\"The state store\")")
    return None
