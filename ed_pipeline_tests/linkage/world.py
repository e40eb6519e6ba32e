"""A small labelled world of canonical person records, with the error types the real extracts have.

Independent of `ed_pipeline.synth` so the linkage tests are fast and self-contained:
people in households who move, seen by the seven sources with typos, nicknames,
swapped names, day/month swaps, postcode typos, duplicates, initials-only and
name+DOB-only sources. `truth` is (source, record_id, person_id).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

GIVEN_M = ["oliver", "george", "harry", "jack", "jacob", "noah", "charlie", "thomas", "oscar", "william",
           "james", "leo", "alfie", "henry", "joshua", "freddie", "archie", "ethan", "isaac", "alexander",
           "joseph", "edward", "samuel", "max", "logan", "lucas", "daniel", "theo", "arthur", "mohammed",
           "adam", "toby", "dylan", "riley", "finley", "harrison", "sebastian", "benjamin", "elliot", "reuben"]
GIVEN_F = ["olivia", "amelia", "isla", "ava", "emily", "isabella", "mia", "poppy", "ella", "lily", "sophie",
           "grace", "evie", "sophia", "ruby", "chloe", "jessica", "daisy", "freya", "alice", "florence",
           "charlotte", "sienna", "matilda", "evelyn", "eva", "millie", "phoebe", "scarlett", "harper", "elizabeth",
           "katherine", "rebecca", "hannah", "lucy", "megan", "holly", "amy", "laura", "zara"]
NICK = {"william": "bill", "thomas": "tom", "james": "jim", "joseph": "joe", "samuel": "sam", "daniel": "dan",
        "benjamin": "ben", "alexander": "alex", "edward": "ed", "elizabeth": "liz", "katherine": "kate",
        "rebecca": "becky", "jessica": "jess", "charlotte": "lottie", "isabella": "bella", "florence": "flo"}
FAMILY = ["smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "robinson", "wright",
          "thompson", "evans", "walker", "white", "roberts", "green", "hall", "wood", "jackson", "clarke",
          "patel", "khan", "lewis", "james", "phillips", "mason", "mitchell", "rose", "davis", "rodriguez",
          "cox", "alexander", "morgan", "moore", "martin", "price", "bell", "baker", "king", "turner",
          "harris", "cooper", "ward", "morris", "hughes", "edwards", "hill", "scott", "adams", "campbell"]
STREETS = ["high street", "station road", "church lane", "park avenue", "victoria road", "mill lane",
           "london road", "the green", "kings road", "queens road", "manor way", "school lane", "broadway",
           "church road", "north road", "south street", "west way", "east avenue", "elm close", "oak drive"]
DISTRICTS = ["SS13", "SS14", "SS15", "SS16", "SS11", "SS12", "CM11", "CM12"]


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 3:
        return s
    i = rng.randrange(1, len(s))
    op = rng.randrange(3)
    if op == 0:
        return s[:i] + s[i + 1:]
    if op == 1:
        return s[:i] + rng.choice("aeioulnrst") + s[i + 1:] if s[i] != "e" else s[:i] + "a" + s[i + 1:]
    return s[:i - 1] + s[i] + s[i - 1] + s[i + 1:] if s[i] != s[i - 1] else s + "e"


@dataclass
class Place:
    uprn: str
    address: str
    postcode: str


def _place(rng: random.Random, n: int) -> Place:
    d = rng.choice(DISTRICTS)
    pc = f"{d} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
    return Place(uprn=str(100000000 + n), address=f"{rng.randint(1, 200)} {rng.choice(STREETS)}, basildon",
                 postcode=pc)


def _nhs(rng: random.Random) -> str:
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def make_world(households: int = 600, seed: int = 1, months: tuple[str, ...] = ("2017-01", "2017-02", "2017-03"),
               records_per_person: float = 3.0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(records: canonical person records + group_ref/role, truth: source, record_id, person_id,
    truth_households: household_id, person_id, valid_from, valid_to)."""
    rng = random.Random(seed)
    people = []
    memberships = []
    n_place = 0
    for h in range(households):
        n_place += 1
        place = _place(rng, n_place)
        fam = rng.choice(FAMILY)
        adults = 1 + (rng.random() < 0.6)
        kids = rng.choice([0, 1, 1, 2, 2, 3])
        moved = rng.random() < 0.2
        new_place = None
        if moved:
            n_place += 1
            new_place = _place(rng, n_place)
        twins = kids >= 2 and rng.random() < 0.05
        kid_dob = None
        for i in range(adults + kids):
            is_kid = i >= adults
            sex = rng.choice("MF")
            given = rng.choice(GIVEN_M if sex == "M" else GIVEN_F)
            if is_kid:
                if twins and kid_dob is not None and i == adults + 1:
                    dob = kid_dob
                else:
                    dob = date(2011, 1, 1) + timedelta(days=rng.randrange(365 * 6))
                kid_dob = dob
            else:
                dob = date(1970, 1, 1) + timedelta(days=rng.randrange(365 * 25))
            pid = f"T{h:05d}-{i}"
            people.append({
                "person_id": pid, "household": h, "given": given, "family": fam if (is_kid or i == 0 or
                                                                                     rng.random() < 0.7)
                else rng.choice(FAMILY), "dob": dob, "sex": sex, "is_kid": is_kid, "place": place,
                "new_place": new_place, "nhs": _nhs(rng), "upn": f"A{rng.randrange(10**12):012d}",
                "nickname": NICK.get(given) if rng.random() < 0.3 else None,
            })
            move_date = date(2017, 2, 15)
            memberships.append({"household_id": f"H{h}", "person_id": pid, "valid_from": date(2016, 1, 1),
                                "valid_to": None})
            if moved:
                memberships[-1]["valid_to"] = move_date
                memberships.append({"household_id": f"H{h}", "person_id": pid, "valid_from": move_date,
                                    "valid_to": None})

    sources = ["social_care", "school_readiness", "youth_offending", "drugs_alcohol", "housing", "benefits",
               "police_incidents"]
    rows = []
    truth = []
    by_household: dict[int, list[dict]] = {}
    for p in people:
        by_household.setdefault(p["household"], []).append(p)
    rid = 0

    def emit(p: dict, source: str, group_ref: str, role: str, month: str) -> None:
        nonlocal rid
        rid += 1
        y, m = map(int, month.split("-"))
        event = date(y, m, rng.randint(1, 28))
        place = p["new_place"] if (p["new_place"] is not None and event >= date(2017, 2, 15)) else p["place"]
        given, family, dob = p["given"], p["family"], p["dob"]
        if p["nickname"] and rng.random() < 0.5:
            given = p["nickname"]
        if rng.random() < 0.03:
            given = _typo(rng, given)
        if rng.random() < 0.03:
            family = _typo(rng, family)
        if rng.random() < 0.01:
            given, family = family, given
        if rng.random() < 0.01 and dob.day <= 12:
            dob = date(dob.year, dob.day, dob.month)
        postcode = place.postcode
        if rng.random() < 0.02:
            postcode = postcode[:-1] + rng.choice("ABDEFGHJ")
        rec = {"source": source, "record_id": f"{source[:3]}-{rid}", "given_name": given, "family_name": family,
               "date_of_birth": dob, "sex": p["sex"], "nhs_number": None, "address": place.address,
               "postcode": postcode, "uprn": None, "event_date": event, "extract_month": month,
               "group_ref": group_ref, "role": role, "upn": None}
        if source == "social_care":
            rec["nhs_number"] = p["nhs"] if rng.random() < 0.2 else None
        if source == "school_readiness":
            rec["upn"] = p["upn"]
            rec["address"] = None
        if source == "youth_offending":
            rec["address"] = rec["postcode"] = None
            rec["sex"] = p["sex"]
        if source == "drugs_alcohol":
            rec["given_name"], rec["family_name"] = given[:1], family[:1]
            rec["address"] = None
            rec["postcode"] = postcode.split(" ")[0]
        if source in ("housing", "benefits"):
            rec["uprn"] = place.uprn
        if source == "police_incidents":
            rec["sex"] = None
        rows.append(rec)
        truth.append({"source": source, "record_id": rec["record_id"], "person_id": p["person_id"]})
        if rng.random() < 0.02:  # a duplicate record of the same event
            dup = dict(rec, record_id=f"{source[:3]}-{rid}-d", group_ref=f"{group_ref}-d")
            rows.append(dup)
            truth.append({"source": source, "record_id": dup["record_id"], "person_id": p["person_id"]})

    for h, members in by_household.items():
        n_events = max(1, int(rng.expovariate(1 / records_per_person)))
        for e in range(n_events):
            month = rng.choice(months)
            source = rng.choice(sources)
            group = f"{source[:3]}-g{h}-{e}"
            if source in ("housing", "benefits", "police_incidents"):
                for j, p in enumerate(members):
                    if j == 0 or rng.random() < 0.8:
                        emit(p, source, group, "Applicant" if j == 0 else "Member", month)
            elif source in ("school_readiness",):
                for p in members:
                    if p["is_kid"]:
                        emit(p, source, group + p["person_id"], "child", month)
            elif source == "social_care":
                kids = [p for p in members if p["is_kid"]] or members
                emit(rng.choice(kids), source, group, "child", month)
            else:
                adults = [p for p in members if not p["is_kid"]]
                emit(rng.choice(adults), source, group, "client", month)
    schema = {"source": pl.String, "record_id": pl.String, "given_name": pl.String, "family_name": pl.String,
              "date_of_birth": pl.Date, "sex": pl.String, "nhs_number": pl.String, "address": pl.String,
              "postcode": pl.String, "uprn": pl.String, "event_date": pl.Date, "extract_month": pl.String,
              "group_ref": pl.String, "role": pl.String, "upn": pl.String}
    records = pl.DataFrame(rows, schema=schema)
    truth_df = pl.DataFrame(truth)
    hh = pl.DataFrame(memberships, schema={"household_id": pl.String, "person_id": pl.String,
                                           "valid_from": pl.Date, "valid_to": pl.Date})
    return records, truth_df, hh


TEST_KEY = bytes(range(32))


def make_tokens(records: pl.DataFrame, key: bytes = TEST_KEY) -> pl.DataFrame:
    from ed_pipeline.privacy.pseudonymise import pseudonymise_people

    return pseudonymise_people(records, key)
