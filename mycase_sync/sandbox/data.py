"""A seeded, synthetic law firm for the sandbox: staff, clients, cases and Case Status activity.

Why: the sync must be tested against firms from a few hundred to 100,000 matters that hold the
awkward records real MyCase data has (cases without a lead attorney, malformed fields, phone numbers
in every format, files with hostile names), identical for a given seed and clock so that a failing
test can be replayed. Records are plain dicts in MyCase's own field names (see API-NOTES and the
OpenAPI files); the services render them. Everything comes from one `random.Random(seed)`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

__all__ = [
    "Firm", "generate_firm", "STAGES", "PRACTICE_AREAS", "UNUSABLE_PHONES", "MALFORMED_OPENED_DATE",
    "BIG_FILE_NAME", "BIG_FILE_SIZE", "TRAVERSAL_FILE_NAME", "NON_ASCII_FILE_NAME", "BLANK_FILE_NAME",
    "DUPLICATE_FILE_NAME",
]

STAGES = ["Intake", "Investigation", "Pre-Litigation", "Discovery", "Negotiation", "Mediation",
          "Litigation", "Trial", "Settlement", "Closed"]

# (name, weight, minimum days open, mean extra days open, billing types, statute-of-limitations years)
_AREAS = [
    ("Personal Injury", 24, 60, 420, ("contingency",), 2),
    ("Family Law", 17, 30, 240, ("hourly", "hourly", "flat"), None),
    ("Criminal Defense", 14, 20, 150, ("flat", "flat", "hourly"), None),
    ("Estate Planning", 10, 10, 60, ("flat",), None),
    ("Immigration", 8, 60, 400, ("flat", "flat", "hourly"), None),
    ("Bankruptcy", 6, 60, 500, ("flat",), None),
    ("Employment", 6, 45, 330, ("contingency", "hourly"), 3),
    ("Real Estate", 5, 15, 60, ("flat", "hourly"), None),
    ("Workers' Compensation", 5, 60, 360, ("contingency",), 2),
    ("Business Law", 3, 20, 200, ("hourly", "mixed"), None),
    ("Probate", 2, 90, 300, ("hourly", "flat"), None),
]
PRACTICE_AREAS = [a[0] for a in _AREAS]

_CASE_NAMES = {
    "Personal Injury": ["{last} v. {company}", "{first} {last} - Auto Accident", "{last}, {first} - Slip and Fall",
                        "{last} v. {other}", "{first} {last} - Dog Bite"],
    "Family Law": ["{last} Divorce", "In re Marriage of {last}", "{last} - Custody Modification",
                   "{first} {last} - Child Support", "{last} v. {other} (Divorce)"],
    "Criminal Defense": ["State v. {first} {last}", "People v. {last}", "{last} - DUI", "{first} {last} - Expungement"],
    "Estate Planning": ["{first} {last} - Estate Plan", "{last} Family Trust", "{first} {last} - Will and POA"],
    "Immigration": ["{first} {last} - I-130 Petition", "{last} - Asylum", "{first} {last} - Naturalization (N-400)",
                    "{last} - Adjustment of Status"],
    "Bankruptcy": ["{first} {last} - Chapter 7", "In re {last} (Ch. 13)", "{last} - Debt Review"],
    "Employment": ["{last} v. {company}", "{first} {last} - Wrongful Termination", "{last} - Wage Claim"],
    "Real Estate": ["{last} - Purchase of {num} {street}", "{last} Closing - {num} {street}", "{last} - Lease Dispute"],
    "Workers' Compensation": ["{last} - Workers' Comp Claim", "{last} v. {company} (WC)"],
    "Business Law": ["{company} - Formation", "{company} - Contract Review", "{last} / {company} Partnership"],
    "Probate": ["Estate of {first} {last}", "In re Estate of {last}"],
}
_DESCRIPTIONS = {
    "Personal Injury": ["Rear-end collision; client treated for neck and back injuries.",
                        "Slip and fall at a grocery store, fractured wrist. Surveillance video requested.",
                        "T-bone collision at an intersection, police report pending.\nPIP claim opened.",
                        "Client bitten by a neighbour's dog; medical bills about $4,800."],
    "Family Law": ["Uncontested divorce, two minor children.", "Contested custody; mediation ordered.",
                   "Modification of child support after job change.", "Prenuptial agreement review."],
    "Criminal Defense": ["First-offense DUI, BAC 0.09.", "Misdemeanor shoplifting; diversion possible.",
                         "Felony possession charge; suppression motion to be filed.", "Expungement of a 2012 conviction."],
    "Estate Planning": ["Revocable living trust, pour-over will, POAs.", "Simple wills for a married couple.",
                        "Trust amendment after the birth of a grandchild."],
    "Immigration": ["Spousal petition, consular processing.", "Affirmative asylum application.",
                    "N-400; client has lived in the U.S. since 2009.", "Adjustment of status, employment based."],
    "Bankruptcy": ["Chapter 7, no assets, means test passed.", "Chapter 13 plan to save the house.",
                   "Creditor harassment; evaluating Chapter 7 vs. 13."],
    "Employment": ["Wrongful termination after FMLA leave.", "Unpaid overtime, about 300 hours.",
                   "Hostile work environment; EEOC charge filed."],
    "Real Estate": ["Residential purchase, closing in 30 days.", "Commercial lease review.",
                    "Boundary dispute with neighbour (fence line)."],
    "Workers' Compensation": ["Back injury lifting boxes at the warehouse.", "Repetitive strain, carpal tunnel.",
                              "Fall from ladder on a job site; TTD benefits."],
    "Business Law": ["LLC formation and operating agreement.", "Vendor contract review.",
                     "Buy-sell agreement between two members."],
    "Probate": ["Intestate estate; petition for letters of administration.", "Small estate affidavit.",
                "Will contest by a nephew — Rücksprache mit dem Testamentsvollstrecker."],
}

_FIRST = ("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan "
          "Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Sandra "
          "Mark Margaret Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol "
          "Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald Rebecca Jason Laura Edward Sharon "
          "Jeffrey Cynthia Ryan Kathleen Jacob Amy Gary Angela Nicholas Shirley Eric Anna Jonathan Brenda "
          "Stephen Pamela Larry Emma Justin Nicole Scott Helen Brandon Samantha Benjamin Katherine Samuel "
          "Christine Gregory Debra Alexander Rachel Frank Carolyn Patrick Janet Raymond Catherine Jack Maria "
          "Dennis Heather Jerry Diane Tyler Ruth Aaron Julie Jose Olivia Adam Joyce Nathan Virginia Henry "
          "Victoria Zachary Kelly Douglas Lauren Peter Christina Kyle Joan Noah Evelyn Ethan Judith Jeremy "
          "Megan Walter Andrea Christian Cheryl Keith Hannah Roger Jacqueline Terry Martha Austin Gloria Sean "
          "Teresa Gerald Ann Carl Sara Harold Madison Dylan Frances Arthur Kathryn Lawrence Janice Jordan Jean "
          "Jesse Abigail Bryan Alice Billy Judy Bruce Sophia Gabriel Grace Joe Denise Logan Amber Alan Doris "
          "Juan Marilyn Wayne Danielle Roy Beverly Ralph Isabella Randy Theresa Eugene Diana Vincent Natalie "
          "Russell Brittany Elijah Charlotte Louis Marie Bobby Kayla Philip Alexis Johnny Lori").split()
_PLAIN_FIRST = len(_FIRST)   # staff get plain names; clients draw from the whole pool
_FIRST += ["José", "Zoë", "Renée", "Björn", "Siobhán", "Nguyễn Văn", "Chloé", "Ana María", "Jean-Luc", "Mei"]
_LAST = ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
         "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
         "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
         "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker "
         "Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper "
         "Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James "
         "Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez "
         "Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez "
         "Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole "
         "Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens "
         "Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker "
         "Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon").split()
_PLAIN_LAST = len(_LAST)
_LAST += ["O'Brien", "García", "Müller", "Nguyễn", "Smith-Jones", "D'Angelo", "Núñez", "van der Berg", "MacLeod"]
_COMPANIES = ["Northgate Logistics", "Bayview Property Management", "Summit Freight Lines", "Crescent Foods Inc.",
              "Metro Transit Authority", "Lakeside Medical Group", "Pinecrest Apartments LLC",
              "Harbor Point Construction", "Redline Delivery Co.", "Evergreen Home Health", "Blue Mesa Roofing",
              "Granite State Warehousing", "Silverline Staffing", "Oak Hollow Nursing Center"]
_STREETS = ["Maple Ave", "Oak St", "Elm Dr", "Cedar Ln", "Lakeview Blvd", "Washington St", "Park Pl",
            "Sunset Rd", "Hillcrest Ct", "River Rd", "2nd Ave", "Magnolia Way"]
_EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com", "inbox.example.net"]

# Area codes that `phonenumbers` accepts as valid US numbers with any exchange 200-999.
_AREA_CODES = ["212", "312", "415", "617", "713", "305", "404", "206", "303", "602", "214", "718", "646",
               "773", "512", "619", "702", "503", "215", "313", "504", "615", "704", "816", "919"]
_EXCHANGES = [f"{x}" for x in range(200, 1000) if x != 555 and x % 100 != 11]
_PHONE_FORMATS = ["(%s) %s-%s", "%s.%s.%s", "+1 %s %s %s", "%s%s%s", "%s-%s-%s", "+1%s%s%s", "1 (%s) %s-%s"]
UNUSABLE_PHONES = ["n/a", "123", "N/A", "000-000-0000", "none"]

MALFORMED_OPENED_DATE = "2019-13-45"
BIG_FILE_NAME = "Medical_Records_Complete.pdf"
BIG_FILE_SIZE = 5 * 1024 * 1024 + 123
TRAVERSAL_FILE_NAME = "../../etc/passwd.txt"
NON_ASCII_FILE_NAME = "Déclaration_Müller_日本.pdf"
BLANK_FILE_NAME = " .pdf"
DUPLICATE_FILE_NAME = "scan.pdf"

_INCOMING = [
    "Hi, just checking in on my case. Any updates?", "I got a letter from the insurance company. Should I sign it?",
    "Can we move Thursday's meeting to the afternoon?", "Thank you so much for your help!",
    "I uploaded the documents you asked for.", "When is my next court date?",
    "¿Hay alguna novedad sobre mi caso?", "The adjuster called me again today, what do I tell them?",
    "I have a new address: 41 Cedar Ln, Apt 3.", "👍 got it, thanks", "Is there anything else you need from me?",
    "My doctor says I need another MRI. Is that covered?",
]
_OUTGOING = [
    "Hi {first}, we filed the motion today. We'll let you know when the hearing is set.",
    "Reminder: your appointment with our office is next Tuesday at 10 am.",
    "We received the documents, thank you.", "Please call us when you have a moment.",
    "Good news: the other side made an offer. Let's talk this week.",
    "Your case has moved to the next stage. No action is needed from you.",
    "Could you send us a copy of your driver's license?",
]
_FILE_KINDS = [  # (name stem, extension, content type)
    ("Police_Report", "pdf", "application/pdf"), ("Medical_Bills", "pdf", "application/pdf"),
    ("Photo", "jpg", "image/jpeg"), ("Pay_Stub", "pdf", "application/pdf"),
    ("Drivers_License", "jpg", "image/jpeg"), ("Lease_Agreement", "docx",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("notes", "txt", "text/plain"), ("Insurance_Card", "png", "image/png"), ("Signed_Retainer", "pdf", "application/pdf"),
]
_MAGIC = {"pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "png": b"\x89PNG\r\n\x1a\n",
          "docx": b"PK\x03\x04\x14\x00\x06\x00", "txt": b""}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_fromtimestamp = datetime.fromtimestamp
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
DAY_MS = 86_400_000
_YEAR_MS = int(365.25 * DAY_MS)
SPAN_MS = 11 * _YEAR_MS            # cases are created over the 11 years before `now`
ACTIVITY_WINDOW_MS = 30 * DAY_MS   # messages and files are sent within the last 30 days
ACTIVITY_CASES_MS = 365 * DAY_MS   # ...on cases updated within the last year (caps 100k firms)
MESSAGES_CAP = 20_000
FILES_CAP = 2_000


@dataclass
class Firm:
    """The whole seeded firm. `malformed` and `edge_cases` say where the traps are, for tests."""

    firm: dict
    staff: list[dict]
    clients: dict[int, dict]
    case_stages: list[dict]
    practice_areas: list[dict]
    cases: list[dict]
    me_staff_id: int
    casestatus_users: list[dict]
    messages: list[dict]
    files: list[dict]
    malformed: dict[int, str] = field(default_factory=dict)        # int case id -> reason
    edge_cases: dict[str, list[int]] = field(default_factory=dict)  # kind -> case ids (valid but awkward)


def _dt(ms: int) -> datetime:
    """Millisecond epoch -> aware UTC datetime (exact: a float of ms/1000 rounds back to the same ms)."""
    return _fromtimestamp(ms / 1000, timezone.utc)


def _day(ms: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + ms // DAY_MS).isoformat()


def _ascii(name: str) -> str:
    """Email-safe lowercase form of a name: accents dropped, spaces and punctuation removed."""
    import unicodedata
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


_FIRST_SLUG = [_ascii(n) for n in _FIRST]
_LAST_SLUG = [_ascii(n) for n in _LAST]
_LAST_INDEX = {n: i for i, n in enumerate(_LAST)}


def _to_ms(now: datetime) -> int:
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return (now - _EPOCH) // timedelta(milliseconds=1)


def _make_staff(rng: random.Random, matters: int, now_ms: int, domain: str):
    """Attorneys, paralegals and other staff sized to the firm; returns (staff, attorney tenures, no-CS ids)."""
    n_att = min(20, max(3, 4 + matters // 150))
    n_para = max(2, n_att // 2 + 1)
    n_other = max(1, n_att // 3)
    founded = now_ms - SPAN_MS - 180 * DAY_MS
    names, seen = [], set()
    while len(names) < n_att + n_para + n_other:
        fi, li = rng.randrange(_PLAIN_FIRST), rng.randrange(_PLAIN_LAST)
        if (fi, li) not in seen and li not in {x[1] for x in seen}:
            seen.add((fi, li))
            names.append((fi, li))
    att_titles = ["Managing Partner", "Partner"] + ["Senior Associate", "Associate", "Associate", "Of Counsel"] * 5
    other_titles = ["Office Manager", "Legal Assistant", "Receptionist", "Intake Specialist", "Billing Coordinator"] * 2
    staff, tenures = [], []   # tenures: (staff id, hired_ms, left_ms) for attorneys
    sid = 9_400_000 + rng.randrange(1000)
    for k, (fi, li) in enumerate(names):
        if k < n_att:
            kind, title = "Attorney", att_titles[k]
        elif k < n_att + n_para:
            kind, title = "Paralegal", "Senior Paralegal" if k == n_att else "Paralegal"
        else:
            kind, title = "Staff", other_titles[k - n_att - n_para]
        hired = founded if k in (0, 1, n_att, n_att + n_para) else founded + int(rng.random() * (SPAN_MS - _YEAR_MS))
        sid += 1 + rng.randrange(40)
        staff.append({
            "id": sid, "email": f"{_FIRST_SLUG[fi]}.{_LAST_SLUG[li]}@{domain}",
            "first_name": _FIRST[fi], "middle_initial": rng.choice("ABCDEFGHJKLMNPRSTW") if rng.random() < 0.6 else "",
            "last_name": _LAST[li], "type": kind, "title": title, "active": True,
            "default_hourly_rate": float(150 + 25 * rng.randrange(13)) if kind == "Attorney" else 95.0,
            "created_at": _dt(hired), "updated_at": _dt(hired + int(rng.random() * (now_ms - hired))),
        })
        if kind == "Attorney":
            tenures.append([sid, hired, now_ms + DAY_MS])
    # One or two attorneys left years ago (inactive); they still lead old cases.
    for t in tenures[2:2 + (1 if n_att < 12 else 2)]:
        t[2] = now_ms - int((2 + 4 * rng.random()) * _YEAR_MS)
        t[1] = min(t[1], t[2] - 3 * _YEAR_MS)
        rec = next(s for s in staff if s["id"] == t[0])
        rec.update(active=False, created_at=_dt(t[1]), updated_at=_dt(t[2]))
    # One or two recently hired attorneys have no Case Status user yet.
    no_cs = []
    for t in tenures[-(1 if n_att < 8 else 2):]:
        t[1] = now_ms - int((0.6 + rng.random()) * _YEAR_MS)
        rec = next(s for s in staff if s["id"] == t[0])
        rec.update(created_at=_dt(t[1]), updated_at=_dt(t[1] + int(rng.random() * (now_ms - t[1]))))
        no_cs.append(t[0])
    return staff, tenures, set(no_cs)


def _casestatus_users(staff: list[dict], no_cs: set[int]) -> list[dict]:
    """Case Status users for the active attorneys and paralegals (minus `no_cs`), plus the office manager."""
    users = []
    for s in staff:
        role = {"Attorney": "attorney", "Paralegal": "paralegal"}.get(s["type"])
        if s["title"] == "Office Manager":
            role = "admin"
        if role and s["active"] and s["id"] not in no_cs:
            users.append({"email": s["email"], "first_name": s["first_name"], "last_name": s["last_name"], "role": role})
    return users


def generate_firm(seed: int, matters: int, now: datetime, activity: bool = True) -> Firm:
    """Build the firm: deterministic for (seed, matters, now, activity); 100,000 matters in a few seconds."""
    rng = random.Random(seed)
    rnd = rng.random
    now_ms = _to_ms(now)
    partners = rng.sample(range(_PLAIN_LAST), 2)
    firm_name = f"{_LAST[partners[0]]} & {_LAST[partners[1]]} LLP"
    slug = _LAST_SLUG[partners[0]] + _LAST_SLUG[partners[1]]
    domain = f"{slug}.example.com"
    staff, tenures, no_cs = _make_staff(rng, matters, now_ms, domain)
    staff_by_id = {s["id"]: s for s in staff}
    me_id = tenures[0][0]
    attorneys = [s["id"] for s in staff if s["type"] == "Attorney"]
    paralegals = [s["id"] for s in staff if s["type"] == "Paralegal"]
    others = [s["id"] for s in staff if s["type"] == "Staff"]
    setup_ms = now_ms - SPAN_MS - 170 * DAY_MS
    practice_areas = [{"id": 7100 + k, "name": n, "created_at": _dt(setup_ms + k * 1000),
                       "updated_at": _dt(setup_ms + k * 1000)} for k, n in enumerate(PRACTICE_AREAS)]
    case_stages = [{"id": 8200 + k, "name": n, "created_at": _dt(setup_ms + k * 1000),
                    "updated_at": _dt(setup_ms + k * 1000)} for k, n in enumerate(STAGES)]

    cum, total = [], 0
    for a in _AREAS:
        total += a[1]
        cum.append(total)
    area_of = []   # a precomputed lookup table replaces a bisect per case
    for k in range(1000):
        x = (k + 0.5) / 1000 * total
        area_of.append(next(i for i, c in enumerate(cum) if x < c))

    n_first, n_last, n_ex, n_ac = len(_FIRST), len(_LAST), len(_EXCHANGES), len(_AREA_CODES)
    n_att, n_para, n_other = len(attorneys), len(paralegals), len(others)
    created = sorted(now_ms - int(rnd() * SPAN_MS) for _ in range(matters))
    clients: dict[int, dict] = {}
    client_ids: list[int] = []
    cases: list[dict] = []
    names_taken: set[str] = set()
    seq_by_year: dict[int, int] = {}
    no_usable_phone: list[int] = []
    case_id = 20_400_000 + rng.randrange(10_000)
    client_id = 31_700_000 + rng.randrange(10_000)
    log = math.log

    def pick_attorney(at_ms: int) -> int:
        for _ in range(6):
            t = tenures[int(rnd() * n_att)]
            if t[1] <= at_ms < t[2]:
                return t[0]
        return me_id

    def new_client(at_ms: int, last_i: int | None) -> dict:
        nonlocal client_id
        client_id += 1 + (rnd() < 0.1) * int(rnd() * 5)
        fi = int(rnd() * n_first)
        li = last_i if last_i is not None else int(rnd() * n_last)
        r = rnd()
        if r < 0.05:
            email = None
        else:
            f, l = _FIRST_SLUG[fi], _LAST_SLUG[li]
            local = (f"{f}.{l}" if r < 0.45 else f"{f}{l}{int(rnd() * 99)}" if r < 0.7
                     else f"{f[0]}.{l}" if r < 0.85 else f"{l}.{f}{int(rnd() * 30) + 70}")
            email = f"{local}@{_EMAIL_DOMAINS[int(rnd() * 5)]}"
        r = rnd()
        if r < 0.03:
            phone = None
        elif r < 0.05:
            phone = UNUSABLE_PHONES[int(rnd() * len(UNUSABLE_PHONES))]
        else:
            phone = _PHONE_FORMATS[int(rnd() * 7)] % (
                _AREA_CODES[int(rnd() * n_ac)], _EXCHANGES[int(rnd() * n_ex)], "%04d" % int(rnd() * 10000))
        c_ms = max(at_ms - int(rnd() * 3 * DAY_MS), now_ms - SPAN_MS - DAY_MS)
        rec = {"id": client_id, "first_name": _FIRST[fi], "last_name": _LAST[li], "email": email,
               "cell_phone_number": phone, "created_at": _dt(c_ms),
               "updated_at": _dt(c_ms + int(rnd() * min(now_ms - c_ms, 90 * DAY_MS)))}
        clients[client_id] = rec
        client_ids.append(client_id)
        return rec

    for c_ms in created:
        case_id += 1 + (rnd() < 0.05) * int(rnd() * 20)   # deleted cases leave gaps
        area = _AREAS[area_of[int(rnd() * 1000)]]
        pa_name = area[0]
        age = now_ms - c_ms
        # Clients: one usually, sometimes a repeat client, family members share the last name.
        if client_ids and rnd() < 0.08:
            first_client = clients[client_ids[int(rnd() * len(client_ids))]]
        else:
            first_client = new_client(c_ms, None)
        case_clients = [first_client]
        r = rnd()
        for _ in range(2 if r < 0.07 else 1 if r < 0.3 else 0):
            li = _LAST_INDEX[first_client["last_name"]] if rnd() < 0.6 else None
            case_clients.append(new_client(c_ms, li))
        if not any(cl["cell_phone_number"] not in (None, *UNUSABLE_PHONES) for cl in case_clients):
            no_usable_phone.append(case_id)
        # Life of the case: open for a while, then closed; a few are forgotten and stay open.
        duration = int((area[2] + area[3] * -log(1.0 - rnd())) * DAY_MS)
        stale = rnd() < 0.03
        if not stale and duration < age - DAY_MS:
            closed_ms = c_ms + duration
            upd = closed_ms + int(-log(1.0 - rnd()) * 10 * DAY_MS)
            if rnd() < 0.02:
                upd = closed_ms + int(rnd() * (now_ms - closed_ms))   # someone touched it later
            status, closed_date = "closed", _day(closed_ms)
            stage = "Closed" if rnd() < 0.85 else ("Settlement" if rnd() < 0.6 else None)
        else:
            status, closed_date = "open", None
            if stale:
                upd = c_ms + int(rnd() * min(age, 400 * DAY_MS))
            else:
                upd = now_ms - int(-log(1.0 - rnd()) * 400 * DAY_MS)
            step = int(age / (120 * DAY_MS) + rnd() * 2.5)
            stage = STAGES[min(step, 8)] if rnd() > 0.01 else None
        upd = min(max(upd, c_ms), now_ms)
        # Identity: unique name, case number "YYYY-NNNNN" mostly.
        created_at = _dt(c_ms)
        year = created_at.year
        seq_by_year[year] = seq_by_year.get(year, 0) + 1
        case_number = None if rnd() < 0.08 else f"{year}-{seq_by_year[year]:05d}"
        templates = _CASE_NAMES[pa_name]
        name = templates[int(rnd() * len(templates))].format(
            first=first_client["first_name"], last=first_client["last_name"],
            other=_LAST[int(rnd() * n_last)], company=_COMPANIES[int(rnd() * len(_COMPANIES))],
            num=100 + int(rnd() * 9900), street=_STREETS[int(rnd() * len(_STREETS))])
        if name in names_taken:
            name = f"{name} ({year})"
            k = 2
            while name in names_taken:
                name = f"{name.rsplit(' #', 1)[0]} #{k}"
                k += 1
        names_taken.add(name)
        descs = _DESCRIPTIONS[pa_name]
        description = None if rnd() < 0.25 else descs[int(rnd() * len(descs))]
        open_ms = c_ms - int(rnd() * 60 * DAY_MS) if rnd() < 0.1 else c_ms
        opened_date = None if rnd() < 0.01 else _day(open_ms)
        sol_date = _day(open_ms + area[5] * _YEAR_MS) if area[5] and rnd() < 0.8 else None
        # Staff: one lead attorney, sometimes more attorneys, paralegals and other staff.
        lead = pick_attorney(c_ms)
        r = rnd()
        staff_entries = [{"id": lead, "lead_lawyer": True, "originating_lawyer": r < 0.7,
                          "case_rate": float(200 + 25 * int(rnd() * 10)) if rnd() < 0.1 else None}]
        taken = {lead}
        extra = (1 if r >= 0.7 and r < 0.9 else 0) + (rnd() < 0.25) + (rnd() < 0.05)
        for e in range(extra):
            a = pick_attorney(c_ms)
            if a not in taken:
                taken.add(a)
                staff_entries.append({"id": a, "lead_lawyer": False, "originating_lawyer": e == 0 and 0.7 <= r < 0.9,
                                      "case_rate": None})
        r = rnd()
        for pid in ([paralegals[int(rnd() * n_para)]] if r < 0.85 else []) + (
                [paralegals[int(rnd() * n_para)]] if r < 0.1 else []) + (
                [others[int(rnd() * n_other)]] if rnd() < 0.25 else []):
            if pid not in taken:
                taken.add(pid)
                staff_entries.append({"id": pid, "lead_lawyer": False, "originating_lawyer": False, "case_rate": None})
        billing = area[4][int(rnd() * len(area[4]))] if rnd() > 0.03 else ("" if rnd() < 0.5 else "pro_bono")
        balance = 0.0 if status == "closed" or rnd() < 0.4 else round(rnd() * 15000, 2)
        cases.append({
            "id": case_id, "name": name, "case_number": case_number, "description": description,
            "opened_date": opened_date, "closed_date": closed_date, "sol_date": sol_date,
            "practice_area": pa_name, "case_stage": stage, "status": status,
            "clients": [cl["id"] for cl in case_clients], "companies": [], "staff": staff_entries,
            "custom_field_values": [], "office": None, "billing_type": billing,
            "billing_contact": {"id": first_client["id"]}, "outstanding_balance": balance,
            "created_at": created_at, "updated_at": _dt(upd),
        })

    # Editing a client touches its cases (API-NOTES Part 3, as the contract is written): no client was
    # updated after the last update of every case it is on.
    last_touch: dict[int, datetime] = {}
    for case in cases:
        for cid in case["clients"]:
            last_touch[cid] = max(last_touch.get(cid, case["updated_at"]), case["updated_at"])
    for cid, touched in last_touch.items():
        clients[cid]["updated_at"] = max(clients[cid]["created_at"], min(clients[cid]["updated_at"], touched))

    year_cut = _dt(now_ms - ACTIVITY_CASES_MS)
    recent = [c for c in cases if c["updated_at"] >= year_cut]
    pool = recent if len(recent) >= 30 or len(recent) == len(cases) else recent + [
        c for c in cases if c["updated_at"] < year_cut][: 30 - len(recent)]
    malformed = _break_some(rng, pool, matters, staff_by_id)
    edge = _awkward_staffing(rng, [c for c in pool if int(c["id"]) not in malformed], matters, paralegals, tenures, now_ms)
    edge["no_usable_phone"] = no_usable_phone
    edge["lead_not_casestatus_user"] = [c["id"] for c in cases if int(c["id"]) not in malformed and any(
        e["lead_lawyer"] and e["id"] in no_cs for e in c["staff"])]
    led = set(edge["lead_not_casestatus_user"])
    if not any(c["id"] in led for c in recent):
        _give_lead(rng, recent, malformed, edge, sorted(no_cs))

    messages, files = [], []
    if activity:
        bad = set(malformed)
        targets = [c for c in recent if int(c["id"]) not in bad] or [c for c in cases if int(c["id"]) not in bad]
        plain = set().union(*edge.values())
        normal = [c for c in targets if c["id"] not in plain] or targets
        messages, files = _activity(rng, targets, normal, matters, now_ms, clients, staff_by_id, me_id)

    return Firm(firm={"name": firm_name, "url": f"https://{slug}.mycase.com"}, staff=staff, clients=clients,
                case_stages=case_stages, practice_areas=practice_areas, cases=cases, me_staff_id=me_id,
                casestatus_users=_casestatus_users(staff, no_cs), messages=messages, files=files,
                malformed=malformed, edge_cases=edge)


def _break_some(rng: random.Random, pool: list[dict], matters: int, staff_by_id: dict) -> dict[int, str]:
    """Corrupt about 1 case in 500 the ways real MyCase data is broken: one of each kind from 100 matters,
    fewer in tiny firms so that a small sandbox stays mostly clean."""
    count = min(len(pool) // 3, max(5, matters // 500) if matters >= 100 else matters // 20)
    unknown = max(staff_by_id) + 7_777
    malformed = {}
    for k, case in enumerate(rng.sample(pool, count)):
        kind = k % 5
        if kind == 0:
            case["name"] = None
            malformed[case["id"]] = "name is null"
        elif kind == 1:
            # the lead: other staff unknown even by id are left off a matter, an unknown lead fails it
            case["staff"].append({"id": unknown + k, "lead_lawyer": True, "originating_lawyer": False,
                                  "case_rate": None})
            malformed[case["id"]] = f"staff entry (the lead) refers to unknown staff id {unknown + k}"
        elif kind == 2:
            case["practice_area"] = None
            malformed[case["id"]] = "practice_area is null"
        elif kind == 3:
            case["opened_date"] = MALFORMED_OPENED_DATE
            malformed[case["id"]] = f"opened_date {MALFORMED_OPENED_DATE!r} is not a date"
        else:
            malformed[case["id"]] = "id is a string"
            case["id"] = str(case["id"])
    return malformed


def _awkward_staffing(rng, pool, matters, paralegals, tenures, now_ms) -> dict[str, list[int]]:
    """Valid but awkward staffing on a few recent cases: no lead flag, two leads, no attorney at all."""
    per_kind = max(2, matters // 500) if matters >= 60 else matters // 30
    chosen = rng.sample(pool, min(len(pool), 3 * per_kind))
    active_att = [t[0] for t in tenures if t[2] > now_ms]
    all_att = {t[0] for t in tenures}
    edge = {"no_lead": [], "two_leads": [], "no_attorney": [], "no_staff": []}
    for k, case in enumerate(chosen):
        kind = k % 3
        if kind == 0:
            for e in case["staff"]:
                e["lead_lawyer"] = False
            edge["no_lead"].append(case["id"])
        elif kind == 1:
            second = next((e for e in case["staff"] if not e["lead_lawyer"] and e["id"] in active_att), None)
            if second is None:
                lead = next(e["id"] for e in case["staff"] if e["lead_lawyer"])
                second = {"id": next(a for a in active_att if a != lead), "lead_lawyer": False,
                          "originating_lawyer": False, "case_rate": None}
                case["staff"].insert(1, second)
            second["lead_lawyer"] = True
            edge["two_leads"].append(case["id"])
        else:
            kept = [e for e in case["staff"] if e["id"] not in all_att]
            if k == 2:
                kept = []   # the very first one has nobody at all
                edge["no_staff"].append(case["id"])
            elif not kept:
                kept = [{"id": paralegals[0], "lead_lawyer": False, "originating_lawyer": False, "case_rate": None}]
            case["staff"] = kept
            edge["no_attorney"].append(case["id"])
    return edge


def _give_lead(rng, recent, malformed, edge, no_cs_ids) -> None:
    """Make sure a recent case is led by an attorney who has no Case Status user."""
    plain = set().union(*edge.values())
    candidates = [c for c in recent if int(c["id"]) not in malformed and c["id"] not in plain]
    if not candidates or not no_cs_ids:
        return
    case = candidates[int(rng.random() * len(candidates))]
    case["staff"] = [e for e in case["staff"] if e["id"] not in no_cs_ids]
    for e in case["staff"]:
        e["lead_lawyer"] = False
    case["staff"].insert(0, {"id": no_cs_ids[0], "lead_lawyer": True, "originating_lawyer": False, "case_rate": None})
    edge["lead_not_casestatus_user"].append(case["id"])


def _activity(rng, targets, normal, matters, now_ms, clients, staff_by_id, me_id):
    """Client/firm messages and shared files in the last 30 days, about 1 message per 2 and 1 file per 10 matters."""
    rnd = rng.random
    me = staff_by_id[me_id]

    def when(case) -> int:
        start = max(now_ms - ACTIVITY_WINDOW_MS, _to_ms(case["created_at"]))
        return start + int(rnd() * (now_ms - start))

    messages = []
    for _ in range(min(matters // 2, MESSAGES_CAP) if targets else 0):
        case = targets[int(rnd() * len(targets))]
        if rnd() < 0.6:
            cl = clients[case["clients"][int(rnd() * len(case["clients"]))]]
            kind, sender, text = "incoming", f"{cl['first_name']} {cl['last_name']}", _INCOMING[int(rnd() * len(_INCOMING))]
        else:
            members = [staff_by_id[e["id"]] for e in case["staff"] if e["id"] in staff_by_id] or [me]
            s = members[int(rnd() * len(members))]
            cl = clients[case["clients"][0]]
            kind, sender = "outgoing", f"{s['first_name']} {s['last_name']}"
            text = _OUTGOING[int(rnd() * len(_OUTGOING))].format(first=cl["first_name"])
        messages.append({"integration_id": str(case["id"]), "type": kind, "content": text,
                         "sent_at": _dt(when(case)), "sender_name": sender})
    messages.sort(key=lambda m: m["sent_at"])

    def make(case, file_name, ext, content_type, size) -> dict:
        if ext == "txt":
            data = (b"Notes from client call.\n" * (size // 24 + 1))[:size]
        else:
            magic = _MAGIC[ext]
            data = magic + rng.randbytes(max(0, size - len(magic)))
        return {"integration_id": str(case["id"]), "file_name": file_name, "content_type": content_type,
                "created_at": _dt(when(case)), "data": data}

    files = []
    for _ in range(min(matters // 10, FILES_CAP) if targets else 0):
        case = targets[int(rnd() * len(targets))]
        stem, ext, ctype = _FILE_KINDS[int(rnd() * len(_FILE_KINDS))]
        name = f"{stem}.{ext}" if rnd() < 0.5 else f"{stem}_{1 + int(rnd() * 12)}.{ext}"
        files.append(make(case, name, ext, ctype, 300 + int(rnd() * 6000)))
    if normal:
        picks = [normal[int(rnd() * len(normal))] for _ in range(5)]
        files.append(make(picks[0], BIG_FILE_NAME, "pdf", "application/pdf", BIG_FILE_SIZE))
        files.append(make(picks[1], TRAVERSAL_FILE_NAME, "txt", "text/plain", 420))
        files.append(make(picks[2], NON_ASCII_FILE_NAME, "pdf", "application/pdf", 2048))
        files.append(make(picks[3], BLANK_FILE_NAME, "pdf", "application/pdf", 1500))
        files.append(make(picks[4], DUPLICATE_FILE_NAME, "pdf", "application/pdf", 900))
        files.append(make(picks[4], DUPLICATE_FILE_NAME, "pdf", "application/pdf", 1100))
    files.sort(key=lambda f: f["created_at"])
    return messages, files
