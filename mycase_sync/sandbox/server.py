"""The whole sandbox: both emulated services on two local ports, one seeded firm and one clock."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from .casestatus import CaseStatusService
from .core import Clock, ServiceServer
from .data import generate_firm
from .mycase import MyCaseService


# The alternatives of API-NOTES Part 3 the sandbox can play: SandboxConfig field -> (service,
# the service's knob, what it does). All off by default: the contract as written.
ALTERNATIVES: dict[str, tuple[str, str, str]] = {
    "casestatus_fixed_page_size": ("casestatus", "ignore_page_size",
                                   "Case Status serves a fixed 10 a page (ignores page[size])"),
    "casestatus_ignores_page_number": ("casestatus", "ignore_page_number",
                                       "Case Status ignores page[number] (every page is page 1)"),
    "casestatus_ignores_integration_filter": ("casestatus", "ignore_integration_filter",
                                              "Case Status ignores GET /v1/api/cases?integration_id= (lists all cases)"),
    "casestatus_no_conflict": ("casestatus", "no_conflict",
                               "Case Status creates a second case for a repeated integration_id (no 409)"),
    "mycase_cases_open_only": ("mycase", "cases_open_only",
                               "MyCase GET /v1/cases without filter[status] lists open cases only"),
    "mycase_staff_active_only": ("mycase", "staff_active_only",
                                 "MyCase GET /v1/staff without filter[status] lists active staff only"),
    "mycase_bare_next_links": ("mycase", "bare_next_links",
                               "MyCase next-page links carry page_token alone (no field[client], no filters)"),
    "mycase_client_edits_keep_case_dates": ("mycase", "client_edits_keep_case_dates",
                                            "MyCase client edits leave the updated_at of the client's cases alone"),
}


@dataclass
class SandboxConfig:
    """Sizes, seed and knobs; `mycase_port` 0 picks a free port, Case Status then takes any free port
    (with a fixed MyCase port, Case Status gets the next one)."""

    seed: int = 1
    matters: int = 300
    now: datetime | None = None
    mycase_latency: tuple | None = None
    casestatus_latency: tuple | None = None
    mycase_rate_limit: float | None = 25
    casestatus_rate_limit: float | None = None
    access_token_lifetime: int = 86400
    refresh_token_lifetime: int = 14 * 86400
    client_id: str = "sandbox-client"
    client_secret: str = field(default_factory=lambda: f"sandbox-secret-{secrets.token_hex(8)}")
    api_key: str = field(default_factory=lambda: f"sandbox-key-{secrets.token_hex(8)}")
    redirect_uri: str = "http://127.0.0.1:8765/callback"
    with_activity: bool = True
    mycase_port: int = 0
    # the alternatives (ALTERNATIVES above)
    casestatus_fixed_page_size: bool = False
    casestatus_ignores_page_number: bool = False
    casestatus_ignores_integration_filter: bool = False
    casestatus_no_conflict: bool = False
    mycase_cases_open_only: bool = False
    mycase_staff_active_only: bool = False
    mycase_bare_next_links: bool = False
    mycase_client_edits_keep_case_dates: bool = False


class Sandbox:
    """Context manager running MyCase and Case Status emulators; `.mycase`, `.casestatus`, `.clock`."""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        self.clock = Clock()
        self.mycase: MyCaseService | None = None
        self.casestatus: CaseStatusService | None = None
        self.firm = None
        self._servers: list[ServiceServer] = []

    def start(self) -> "Sandbox":
        cfg = self.config
        if cfg.now is not None:  # the services' clock starts where the generated history ends
            self.clock.offset = (cfg.now - self.clock.now()).total_seconds()
        self.firm = generate_firm(cfg.seed, cfg.matters, self.clock.now(), activity=cfg.with_activity)
        self.mycase = MyCaseService(
            self.clock, self.firm, seed=cfg.seed, client_id=cfg.client_id, client_secret=cfg.client_secret,
            redirect_uri=cfg.redirect_uri, access_token_lifetime=cfg.access_token_lifetime,
            refresh_token_lifetime=cfg.refresh_token_lifetime)
        self.mycase.latency = cfg.mycase_latency
        self.mycase.rate_limit = cfg.mycase_rate_limit
        self.casestatus = CaseStatusService(self.clock, cfg.api_key)
        self.casestatus.load_seed(self.firm.casestatus_users, self.firm.messages, self.firm.files)
        self.casestatus.latency = cfg.casestatus_latency
        self.casestatus.rate_limit = cfg.casestatus_rate_limit
        for name, (service, knob, _) in ALTERNATIVES.items():
            setattr(getattr(self, service), knob, bool(getattr(cfg, name)))
        try:
            self._servers.append(ServiceServer(self.mycase, cfg.mycase_port))
            self._servers.append(ServiceServer(self.casestatus, cfg.mycase_port + 1 if cfg.mycase_port else 0))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._servers:
            self._servers.pop().stop()

    def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Wait until neither service has a connection open: after a client was killed, every
        request it had sent has then landed or been dropped, and what was committed stays put."""
        for server in self._servers:
            if not server.wait_until_idle(timeout):
                raise TimeoutError(f"the sandbox's {server.service.name} still has a connection open after {timeout} s")

    @property
    def mycase_url(self) -> str:
        return self._servers[0].url

    @property
    def casestatus_url(self) -> str:
        return self._servers[1].url

    def env(self) -> dict[str, str]:
        """The environment that points mycase-sync at this sandbox."""
        cfg = self.config
        return {
            "MYCASE_AUTH_URL": self.mycase_url,
            "MYCASE_API_URL": f"{self.mycase_url}/v1",
            "MYCASE_CLIENT_ID": cfg.client_id,
            "MYCASE_CLIENT_SECRET": cfg.client_secret,
            "MYCASE_REDIRECT_URI": cfg.redirect_uri,
            "CASESTATUS_API_URL": self.casestatus_url,
            "CASESTATUS_API_KEY": cfg.api_key,
        }

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
