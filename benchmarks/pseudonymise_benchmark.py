"""Benchmark of pseudonymise_people on synthetic canonical records.

    .venv/bin/python benchmarks/pseudonymise_benchmark.py --records 2000000

Builds a population (people drawn with realistic repetition: several records
per person, names and streets drawn from Zipf-like pools, typos in a few per
cent of names) and times pseudonymisation alone. Target: 2M records in 60 s or
less on two cores. The generator is self-contained (it does not use synth).
"""

from __future__ import annotations

import argparse
import os
import resource
import string
import time

import numpy as np
import polars as pl

from ed_pipeline.privacy import pseudonymise_people

SOURCES = ("social_care", "school_readiness", "youth_offending", "drugs_alcohol", "housing", "benefits",
           "police_incidents")
TOWNS = ("Basildon", "Pitsea", "Laindon", "Wickford", "Billericay", "Vange", "Langdon Hills")
STREET_TYPES = ("Road", "Close", "Avenue", "Drive", "Lane", "Gardens", "Way", "Crescent")


def _words(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[str]:
    letters = np.array(list(string.ascii_lowercase))
    lengths = rng.integers(lo, hi + 1, n)
    chars = letters[rng.integers(0, 26, lengths.sum())]
    out, pos = [], 0
    for length in lengths:
        out.append("".join(chars[pos : pos + length]).capitalize())
        pos += length
    return out


def _zipf_index(rng: np.random.Generator, pool: int, n: int, a: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, pool + 1) ** a
    return rng.choice(pool, size=n, p=weights / weights.sum())


def make_records(n_records: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n_people = max(1, n_records // 4)
    given_pool = pl.Series(_words(rng, 4000, 3, 9))
    family_pool = pl.Series(_words(rng, 25000, 4, 10))
    street_pool = _words(rng, 3000, 4, 10)
    n_addresses = max(1, n_people // 3)
    street = rng.integers(0, len(street_pool), n_addresses)
    addresses = pl.Series([
        f"{num} {street_pool[s]} {STREET_TYPES[s % len(STREET_TYPES)]}, {TOWNS[s % len(TOWNS)]}"
        for num, s in zip(rng.integers(1, 200, n_addresses), street, strict=True)
    ])
    sectors = rng.integers(11, 17, n_addresses)
    postcodes = pl.Series([
        f"SS{d} {u}{a}{b}" for d, u, a, b in zip(
            sectors, rng.integers(1, 10, n_addresses), rng.choice(list("ABDEFGHJLNPQRSTUWXYZ"), n_addresses),
            rng.choice(list("ABDEFGHJLNPQRSTUWXYZ"), n_addresses), strict=True)
    ])
    uprns = pl.Series((10_000_000_000 + rng.permutation(n_addresses * 3)[:n_addresses]).astype(str))

    person_given = _zipf_index(rng, len(given_pool), n_people)
    person_family = _zipf_index(rng, len(family_pool), n_people)
    person_address = rng.integers(0, n_addresses, n_people)
    person_dob = rng.integers(-7300, 17700, n_people)  # 1950 .. 2018, days since 1970
    person_nhs = (4_000_000_000 + rng.permutation(n_people * 4)[:n_people]).astype(str)

    who = rng.integers(0, n_people, n_records)
    source = rng.integers(0, len(SOURCES), n_records)
    df = pl.DataFrame({
        "source": pl.Series(SOURCES)[source],
        "record_id": pl.Series(np.arange(n_records).astype(str)),
        "given_name": given_pool[person_given[who]],
        "family_name": family_pool[person_family[who]],
        "date_of_birth": pl.Series(person_dob[who]).cast(pl.Date),
        "sex": pl.Series(["M", "F", "U"])[rng.choice(3, n_records, p=[0.49, 0.49, 0.02])],
        "nhs_number": pl.Series(person_nhs[who]),
        "address": addresses[person_address[who]],
        "postcode": postcodes[person_address[who]],
        "uprn": uprns[person_address[who]],
        "event_date": pl.Series(rng.integers(15700, 17800, n_records)).cast(pl.Date),
        "group_ref": pl.Series((np.arange(n_records) // 3).astype(str)),
        "role": pl.Series(["child", "Applicant", "Victim"])[rng.integers(0, 3, n_records)],
        "upn": pl.Series([f"A{x:012d}" for x in who]),
        "gld": pl.Series(rng.random(n_records) < 0.7),
        "_source_file": pl.Series(["landing/x.csv"] * n_records),
        "_row_number": pl.Series(np.arange(n_records)),
    })
    # Agencies' habits: upper case, typos, missing NHS numbers, initials and districts for drugs_alcohol.
    typo = pl.Series(rng.random(n_records) < 0.04)
    upper = pl.Series(rng.random(n_records) < 0.3)
    is_drugs = pl.col("source") == "drugs_alcohol"
    df = df.with_columns(
        extract_month=pl.col("event_date").dt.strftime("%Y-%m"),
        family_name=pl.when(typo).then(pl.col("family_name").str.slice(0, 3) + pl.col("family_name").str.slice(4))
        .when(upper).then(pl.col("family_name").str.to_uppercase()).otherwise(pl.col("family_name")),
        nhs_number=pl.when(pl.col("source").is_in(["social_care"])).then(pl.col("nhs_number")),
        upn=pl.when(pl.col("source") == "school_readiness").then(pl.col("upn")),
        uprn=pl.when(pl.col("source").is_in(["housing", "benefits"])).then(pl.col("uprn")),
        address=pl.when(pl.col("source").is_in(["housing", "benefits", "police_incidents", "social_care"]))
        .then(pl.col("address")),
    ).with_columns(
        given_name=pl.when(is_drugs).then(pl.col("given_name").str.slice(0, 1)).otherwise(pl.col("given_name")),
        family_name=pl.when(is_drugs).then(pl.col("family_name").str.slice(0, 1)).otherwise(pl.col("family_name")),
        postcode=pl.when(is_drugs).then(pl.col("postcode").str.split(" ").list.first())
        .when(pl.col("source") == "youth_offending").then(None).otherwise(pl.col("postcode")),
    )
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--target-seconds", type=float, default=60.0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    records = make_records(args.records, args.seed)
    t1 = time.perf_counter()
    uniques = {c: records[c].n_unique() for c in ("given_name", "family_name", "date_of_birth", "nhs_number",
                                                    "address", "postcode", "upn")}
    print(f"generated {records.height:,} records in {t1 - t0:.1f} s; distinct values: {uniques}")

    key = os.urandom(32)
    t2 = time.perf_counter()
    out = pseudonymise_people(records, key)
    elapsed = time.perf_counter() - t2
    assert out.height == records.height
    rate = records.height / elapsed
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pseudonymise_people: {records.height:,} records in {elapsed:.1f} s ({rate:,.0f} records/s), "
          f"{out.width} columns out, {out.estimated_size('mb'):,.0f} MB, peak RSS {peak_mib:,.0f} MiB, "
          f"{os.cpu_count()} CPUs")
    verdict = "PASS" if elapsed <= args.target_seconds * records.height / 2_000_000 else "SLOW"
    print(f"{verdict}: target {args.target_seconds:.0f} s per 2,000,000 records")


if __name__ == "__main__":
    main()
