"""Every setting, its default and what it means, for `mycase-sync --help`.

An installed package carries no README, so the help itself lists the settings. The README's
"Configuration" table says the same (tests/test_readme_reference.py compares the two).
"""

from __future__ import annotations

SETTINGS: tuple[tuple[str, str, str], ...] = (  # name, default, meaning
    ("MYCASE_CLIENT_ID", "(required)", "from MyCase support"),
    ("MYCASE_CLIENT_SECRET", "(required)", "from MyCase support"),
    ("MYCASE_REDIRECT_URI", "http://127.0.0.1:8765/callback", "must match the registered one exactly"),
    ("MYCASE_AUTH_URL", "https://auth.mycase.com", ""),
    ("MYCASE_API_URL", "https://external-integrations.mycase.com/v1", ""),
    ("CASESTATUS_API_URL", "https://app.casestatus.com", ""),
    ("CASESTATUS_API_KEY", "(required)", "from Case Status"),
    ("MYCASE_SYNC_DB", "$XDG_STATE_HOME/mycase-sync/state.db (~/.local/state/...)", "the state store"),
    ("MYCASE_SYNC_LOG", "(none)", "append one line per event to this file (same as --log-file)"),
    ("MYCASE_RATE_LIMIT", "25", "the most requests per second toward MyCase (a ceiling: the tool finds the pace"
                                " your account allows below it); above MyCase's documented 25 it is lowered to 25,"
                                " with a warning"),
    ("CASESTATUS_RATE_LIMIT", "500", "the most requests per second toward Case Status (a ceiling; Case Status"
                                     " publishes no limit, the tool finds the pace)"),
    ("MYCASE_SYNC_WORKERS", "highest rate limit ÷ 4, 8 to 64", "parallel requests per job; the default reaches the"
                                                               " ceiling while answers take up to 0.25 s"),
    ("MYCASE_SYNC_TIMEOUT", "60", "read timeout in seconds (MyCase can take 20 s to answer)"),
    ("MYCASE_SYNC_BACKOFF", "1", "seconds before the first retry of a failed request; doubles each retry (with"
                                 " jitter, at most 30 s; five retries)"),
    ("MYCASE_SYNC_PHONE_REGION", "US", "region for mobile numbers written without a country code (a region code "
     "the phonenumbers library knows: US, CA, GB...)"),
    ("MYCASE_SYNC_CREATE_STAFF", "0", "1: create a Case Status user for a lead attorney who has none (yes-or-no "
     "settings take 1/0, true/false, yes/no, on/off)"),
    ("MYCASE_DOCUMENTS_FOLDER", "(root folder)", "file pushed documents under this folder of the matter"),
)

INTRO = """\b
Environment variables, or NAME=value lines in ./.env or in the --env-file (the
environment wins; cron runs in $HOME: give --env-file). A missing or malformed
one stops the command with one line naming it (exit 2).
`mycase-sync config` shows the ones in effect and where each came from."""


def rows() -> list[tuple[str, str]]:
    """(name, "meaning [default: ...]") for click's definition list."""
    return [(name, f"{meaning}{' ' if meaning else ''}[default: {default}]") for name, default, meaning in SETTINGS]
