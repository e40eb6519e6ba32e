"""Turn true rows into each agency's monthly CSV, with realistic errors, and record the truth.

Driven by the registry (`ed_pipeline.sources`): the header, the key, where each person's
identifiers sit, the date formats, sex codes and name style all come from the `Source`.
Errors change the emitted values only; `person_records` keeps who each record really is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ed_pipeline.sources import Source
from ed_pipeline.synth.config import ErrorRates
from ed_pipeline.synth.files import csv_bytes, remove_all_but, write_if_changed
from ed_pipeline.synth.names import NamePools
from ed_pipeline.synth.population import Population
from ed_pipeline.synth.timeutil import Calendar, days_from_ymd, ymd

# how each source numbers its rows: prefix and digits of the first key column
KEY_FORMATS: dict[str, tuple[str, int]] = {
    "social_care": ("SC", 8),
    "school_readiness": ("EY", 7),
    "youth_offending": ("YOT", 6),
    "drugs_alcohol": ("DA", 7),
    "housing": ("H", 7),
    "benefits": ("B", 7),
    "police_incidents": ("INC", 8),
}
UPPER_SURNAME = {"police_incidents"}  # police systems hold surnames in capitals
ADDRESS_WITH_TOWN = {"housing", "benefits", "police_incidents"}
UPPER_ADDRESS = {"police_incidents"}
LETTERS = "abcdefghijklmnopqrstuvwxyz"
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


@dataclass
class Rendered:
    months: dict[int, pl.DataFrame]  # month index -> the CSV's rows, registry columns, all strings
    truth: pl.DataFrame  # source, record_id, person_id


def _col(rows: pl.DataFrame, name: str, default) -> np.ndarray:
    if name in rows.columns:
        return rows[name].to_numpy()
    return np.full(rows.height, default)


def _batch_draw(rng: np.random.Generator, key: np.ndarray) -> np.ndarray:
    """One uniform draw per distinct key, spread to every row with that key."""
    _, inv = np.unique(key, return_inverse=True)
    return rng.random(inv.max() + 1 if len(inv) else 0)[inv]


def prepare_rows(source: Source, rows: pl.DataFrame, cal: Calendar, err: ErrorRates,
                 rng: np.random.Generator) -> pl.DataFrame:
    """File months, keys, lateness, duplicates and corrections: the rows as they will be sent."""
    n_months = len(cal.months)
    file_day = _col(rows, "_file_day", None)
    day = rows["_day"].to_numpy()
    if "_file_day" not in rows.columns:
        file_day = day
    month = cal.month_of(file_day)
    keep = (month >= 0) & (month < n_months) & (day < cal.end_day)
    rows = rows.filter(pl.Series(keep))
    month, day = month[keep], day[keep]
    n = rows.height
    updates = _col(rows, "_updates", False).astype(bool)
    # groups (a claim, an application, an incident) numbered in order of their first event
    if "_gid" in rows.columns:
        g = rows["_gid"].to_numpy()
        first = np.full(g.max() + 1 if n else 0, np.iinfo(np.int64).max)
        np.minimum.at(first, g, np.where(updates, np.iinfo(np.int64).max, day * 1_000_000 + np.arange(n) % 1_000_000))
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        gid = rank[g]
        sub = _col(rows, "_sub", 1).astype(np.int64)
    else:
        order = np.lexsort((np.arange(n), day))
        gid = np.empty(n, dtype=np.int64)
        gid[order] = np.arange(n)
        sub = np.ones(n, dtype=np.int64)
    gid = gid + 1
    multi_key = len(source.key) > 1
    landing_only = source.landing_month is not None
    # late: a batch (same group, same day) arrives one or two months after its month
    if not landing_only and err.late > 0 and n:
        u = _batch_draw(rng, gid * 100_000 + (day - day.min()))
        shift = np.where(u < err.late, np.where(u < err.late / 2, 2, 1), 0)
        month = np.minimum(month + shift, n_months - 1)
    frame = rows.with_columns(
        _month=pl.Series(month.astype(np.int32)), _gid=pl.Series(gid.astype(np.int64)),
        _sub=pl.Series(sub.astype(np.int64)), _updates=pl.Series(updates),
        _dup=pl.lit(False), _clean=pl.lit(False), _force=pl.lit(False),
    )
    # duplicates: the same row again under a new key (a new sub-number where the key has two parts)
    if err.duplicate > 0 and n:
        d = np.nonzero((rng.random(n) < err.duplicate) & ~updates)[0]
        dup = frame[d]
        if multi_key:
            max_sub = np.zeros(gid.max() + 1, dtype=np.int64)
            np.maximum.at(max_sub, gid, sub)
            new_sub = max_sub[gid[d]] + 1 + _rank_within(gid[d])
            dup = dup.with_columns(_sub=pl.Series(new_sub))
        else:
            dup = dup.with_columns(_gid=pl.Series(gid.max() + 1 + np.arange(len(d), dtype=np.int64)))
        later = rng.random(len(d)) < (0 if landing_only else 0.3)
        dup = dup.with_columns(_month=pl.Series(np.minimum(month[d] + later, n_months - 1).astype(np.int32)),
                               _dup=pl.lit(True))
        frame = pl.concat([frame, dup])
    # corrections: sent with an error, re-sent fixed one to three months later under the same key
    if err.correction > 0 and not landing_only and n:
        c = np.nonzero((rng.random(n) < err.correction) & ~updates & (month < n_months - 1))[0]
        force = np.zeros(frame.height, bool)
        force[c] = True
        fix = frame[c].with_columns(
            _month=pl.Series(np.minimum(month[c] + rng.integers(1, 4, len(c)), n_months - 1).astype(np.int32)),
            _clean=pl.lit(True))
        frame = pl.concat([frame.with_columns(_force=pl.Series(force)), fix])
    # a key appears once in a month's file: where an application changed twice (or a fix meets an update)
    # in the same month, the file carries the latest state
    frame = frame.sort(["_month", "_gid", "_sub", "_day", "_clean"], maintain_order=True)
    return frame.unique(subset=["_month", "_gid", "_sub"], keep="last", maintain_order=True)


def _rank_within(g: np.ndarray) -> np.ndarray:
    order = np.lexsort((np.arange(len(g)), g))
    s = g[order]
    start = np.searchsorted(s, s, side="left")
    out = np.empty(len(g), dtype=np.int64)
    out[order] = np.arange(len(g)) - start
    return out


def key_exprs(source: Source) -> list[pl.Expr]:
    prefix, width = KEY_FORMATS[source.name]
    exprs = [pl.concat_str([pl.lit(prefix), pl.col("_gid").cast(pl.String).str.zfill(width)]).alias(source.key[0])]
    if len(source.key) > 1:
        exprs.append(pl.col("_sub").cast(pl.String).alias(source.key[1]))
    return exprs


def _date_expr(fmt: str, y: pl.Expr, m: pl.Expr, d: pl.Expr, hh: pl.Expr | None = None,
               mi: pl.Expr | None = None) -> pl.Expr:
    parts: list[pl.Expr] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            code = fmt[i + 1]
            src = {"Y": (y, 4), "m": (m, 2), "d": (d, 2), "H": (hh, 2), "M": (mi, 2)}[code]
            parts.append(src[0].cast(pl.String).str.zfill(src[1]))
            i += 2
        else:
            parts.append(pl.lit(fmt[i]))
            i += 1
    return pl.concat_str(parts)


def _typo(s: pl.Expr, u_pos: pl.Expr, u_op: pl.Expr, u_chr: pl.Expr) -> pl.Expr:
    """One keyboard slip: substitute, drop, insert or transpose a character (always a change)."""
    n = s.str.len_chars()
    p = (u_pos * n).floor().cast(pl.Int64).clip(0, pl.max_horizontal(n - 1, 0))
    cur = s.str.slice(p, 1)
    nxt = s.str.slice(p + 1, 1)
    letter_i = (u_chr * 26).floor().cast(pl.Int64).clip(0, 25)
    c1 = pl.lit(LETTERS).str.slice(letter_i, 1)
    c2 = pl.lit(LETTERS).str.slice((letter_i + 1) % 26, 1)
    c = pl.when(c1 == cur.str.to_lowercase()).then(c2).otherwise(c1)
    c = pl.when(p == 0).then(c.str.to_uppercase()).otherwise(c)
    left = s.str.slice(0, p)
    sub = pl.concat_str([left, c, s.str.slice(p + 1)])
    dele = pl.concat_str([left, s.str.slice(p + 1)])
    ins = pl.concat_str([left, c, s.str.slice(p)])
    tra = pl.concat_str([left, nxt, cur, s.str.slice(p + 2)])
    op = (u_op * 4).floor()
    return (pl.when(op == 1, n > 3).then(dele)
            .when(op == 2).then(ins)
            .when(op == 3, nxt != cur, nxt != "", p > 0).then(tra)
            .otherwise(sub))


def _postcode_typo(s: pl.Expr, u_op: pl.Expr, u_chr: pl.Expr) -> pl.Expr:
    outward = s.str.split(" ").list.first()
    inward = s.str.split(" ").list.last()
    digit = inward.str.slice(0, 1)
    l1, l2 = inward.str.slice(1, 1), inward.str.slice(2, 1)
    new_digit = ((digit.cast(pl.Int64, strict=False).fill_null(0) + 1 + (u_chr * 8).floor().cast(pl.Int64)) % 10)
    new_letter = pl.lit(UNIT_LETTERS).str.slice((u_chr * 20).floor().cast(pl.Int64).clip(0, 19), 1)
    new_letter = pl.when(new_letter == l2).then(pl.lit(UNIT_LETTERS).str.slice(0, 1)).otherwise(new_letter)
    new_letter = pl.when(new_letter == l2).then(pl.lit(UNIT_LETTERS).str.slice(1, 1)).otherwise(new_letter)
    op = (u_op * 4).floor()
    return (pl.when(op == 0).then(pl.concat_str([outward, pl.lit(" "), new_digit.cast(pl.String), l1, l2]))
            .when(op == 1, l1 != l2).then(pl.concat_str([outward, pl.lit(" "), digit, l2, l1]))
            .when(op == 2).then(pl.concat_str([outward, inward]))
            .otherwise(pl.concat_str([outward, pl.lit(" "), digit, l1, new_letter])))


def render(source: Source, frame: pl.DataFrame, pop: Population, names: NamePools, cal: Calendar,
           err: ErrorRates, rng: np.random.Generator) -> Rendered:
    n = frame.height
    clean = frame["_clean"].to_numpy()
    force = frame["_force"].to_numpy()
    month = frame["_month"].to_numpy()
    month_end = cal.month_end_day(month)
    out: dict[str, pl.Series | np.ndarray] = {}
    truth = []
    key_cols = frame.select(key_exprs(source))
    row_key = key_cols.select(source.row_key()).to_series()
    for k in source.key:
        out[k] = key_cols[k]
    inverse_sex = {}
    for raw, canon in source.sex_codes.items():
        inverse_sex.setdefault(canon, raw)
    given_pool = pl.Series(names.given.tolist(), dtype=pl.String)
    surname_pool = pl.Series(names.surnames.tolist(), dtype=pl.String)
    for i, person in enumerate(source.people):
        pid = frame[f"_p{i}"].to_numpy() if f"_p{i}" in frame.columns else np.full(n, -1)
        has = pid >= 0
        p = np.where(has, pid, 0)
        live = ~clean
        # identity as the world knows it
        given_idx = pop.given[p]
        nick = live & pop.nick_user[p] & (rng.random(n) < err.nickname_use)
        alt = rng.random(n) < 0.5
        nick_idx = np.where(alt, names.nickname_alt[given_idx], names.nickname_of[given_idx])
        given_idx = np.where(nick & (nick_idx >= 0), nick_idx, given_idx)
        y, m, d = ymd(pop.dob[p])
        swap_dm = live & (rng.random(n) < err.dob_swap) & (d != m)
        swapped_valid = (d <= 12)
        # a swapped but valid date of birth must not fall after the end of the file's month
        sw_day = days_from_ymd(y, np.where(swapped_valid, d, 1), np.where(swapped_valid, m, 1))
        swap_dm &= ~swapped_valid | (sw_day <= month_end)
        typo_g = live & (rng.random(n) < err.name_typo)
        typo_f = live & ((rng.random(n) < err.name_typo) | force)
        swap_names = live & (rng.random(n) < err.name_swap)
        sex = pop.sex[p]
        unknown = live & (rng.random(n) < err.sex_unknown) & ("U" in inverse_sex)
        tmp = pl.DataFrame({
            "g": given_pool.gather(given_idx),
            "f": surname_pool.gather(pop.family[p]),
            "tg": typo_g, "tf": typo_f, "sw": swap_names,
            "u1": rng.random(n), "u2": rng.random(n), "u3": rng.random(n),
            "u4": rng.random(n), "u5": rng.random(n), "u6": rng.random(n),
            "y": y, "m": np.where(swap_dm, d, m), "d": np.where(swap_dm, m, d),
            "sex": np.where(unknown, "U", np.where(sex == 0, "M", "F")),
            "has": has,
        })
        g = pl.when(pl.col("tg")).then(_typo(pl.col("g"), pl.col("u1"), pl.col("u2"), pl.col("u3"))).otherwise(
            pl.col("g"))
        f = pl.when(pl.col("tf")).then(_typo(pl.col("f"), pl.col("u4"), pl.col("u5"), pl.col("u6"))).otherwise(
            pl.col("f"))
        tmp = tmp.with_columns(g2=pl.when(pl.col("sw")).then(f).otherwise(g),
                               f2=pl.when(pl.col("sw")).then(g).otherwise(f))
        blank = ~pl.col("has")
        exprs = {}
        if source.name_style == "separate":
            fam = pl.col("f2").str.to_uppercase() if source.name in UPPER_SURNAME else pl.col("f2")
            exprs[person.given_name] = pl.col("g2")
            exprs[person.family_name] = fam
        elif source.name_style == "surname_comma_forename":
            exprs[person.full_name] = pl.concat_str([pl.col("f2").str.to_uppercase(), pl.lit(", "), pl.col("g2")])
        else:  # initials
            exprs[person.full_name] = pl.concat_str([pl.col("g2").str.slice(0, 1), pl.col("f2").str.slice(0, 1)]
                                                    ).str.to_uppercase()
        exprs[person.date_of_birth] = _date_expr(source.date_format, pl.col("y"), pl.col("m"), pl.col("d"))
        if person.sex:
            exprs[person.sex] = pl.col("sex").replace_strict(inverse_sex, default=inverse_sex.get("U", "M"))
        rendered = tmp.select([pl.when(blank).then(None).otherwise(e).alias(k) for k, e in exprs.items()])
        for k in rendered.columns:
            out[k] = rendered[k]
        if source.nhs_number and i == 0:
            missing = ~has | (live & (rng.random(n) < err.nhs_missing))
            typo = live & (rng.random(n) < err.nhs_typo)
            nd = pl.DataFrame({"s": pop.nhs[p], "t": typo, "miss": missing, "p": rng.integers(0, 10, n),
                               "k": rng.integers(1, 10, n)}).with_columns(pl.col("s").cast(pl.String))
            old = pl.col("s").str.slice(pl.col("p"), 1).cast(pl.Int64)
            mistyped = pl.concat_str([pl.col("s").str.slice(0, pl.col("p")), ((old + pl.col("k")) % 10).cast(pl.String),
                                      pl.col("s").str.slice(pl.col("p") + 1)])
            out[source.nhs_number] = nd.select(
                pl.when(pl.col("miss")).then(None).when(pl.col("t")).then(mistyped).otherwise(pl.col("s"))
            ).to_series()
        truth.append(pl.DataFrame({
            "record_id": (row_key + person.suffix).filter(pl.Series(has)),
            "person_id": pid[has].astype(np.int64),
        }))
    # address, postcode, UPRN at the time
    addr = frame["_addr"].to_numpy() if "_addr" in frame.columns else np.full(n, -1)
    has_a = addr >= 0
    a = pop.addresses[np.where(has_a, addr, 0)]
    if source.address:
        line = a["line"]
        if source.name in ADDRESS_WITH_TOWN:
            line = pl.concat_str([line, pl.lit(", "), a["town"]], ignore_nulls=True)
        if source.name in UPPER_ADDRESS:
            line = line.str.to_uppercase()
        out[source.address] = pl.select(pl.when(pl.Series(has_a)).then(line)).to_series()
    if source.postcode:
        if source.postcode_granularity == "district":
            pc = a["postcode_district"]
        else:
            bad = ~clean & (rng.random(n) < err.postcode_typo)
            pc = pl.DataFrame({"pc": a["postcode"], "bad": bad, "u1": rng.random(n), "u2": rng.random(n)}).select(
                pl.when(pl.col("bad")).then(_postcode_typo(pl.col("pc"), pl.col("u1"), pl.col("u2")))
                .otherwise(pl.col("pc"))).to_series()
        out[source.postcode] = pl.select(pl.when(pl.Series(has_a)).then(pc)).to_series()
    if source.uprn:
        out[source.uprn] = pl.select(pl.when(pl.Series(has_a)).then(a["uprn"].cast(pl.String))).to_series()
    # the event date (and time)
    ey, em, ed = ymd(frame["_day"].to_numpy())
    minute = frame["_minute"].to_numpy() if "_minute" in frame.columns else np.zeros(n, dtype=np.int64)
    ev = pl.DataFrame({"y": ey, "m": em, "d": ed, "h": minute // 60, "mi": minute % 60}).select(
        _date_expr(source.event_format, pl.col("y"), pl.col("m"), pl.col("d"), pl.col("h"), pl.col("mi")))
    out[source.event_date] = ev.to_series()
    for c in source.columns:
        if c not in out:
            if c not in frame.columns:
                raise KeyError(f"{source.name}: no value for column {c!r}")
            out[c] = frame[c].cast(pl.String)
    table = pl.DataFrame({c: pl.Series(c, out[c], dtype=pl.String) for c in source.columns}).with_columns(
        _month=pl.Series(month))
    months = {int(k[0]): v.drop("_month") for k, v in
              table.partition_by("_month", as_dict=True, maintain_order=True).items()}
    t = pl.concat(truth).with_columns(source=pl.lit(source.name)).select("source", "record_id", "person_id")
    t = t.unique(subset=["source", "record_id"], keep="first", maintain_order=True)
    return Rendered(months=months, truth=t)


def write_months(source: Source, rendered: Rendered, cal: Calendar, landing_dir: Path) -> tuple[int, int, int]:
    """One CSV per month (only the landing month where the source has one); anything else in the source's folder
    is removed. A file already holding the same bytes is left as it was. Returns (files, files written, rows)."""
    folder = landing_dir / source.name
    folder.mkdir(parents=True, exist_ok=True)
    empty = pl.DataFrame({c: pl.Series(c, [], dtype=pl.String) for c in source.columns})
    names: set[str] = set()
    written = rows = 0
    for i, month in enumerate(cal.months):
        if source.landing_month is not None and int(month[5:]) != source.landing_month:
            continue
        df = rendered.months.get(i, empty)
        name = f"{month}.csv"
        written += write_if_changed(folder / name, csv_bytes(df))
        names.add(name)
        rows += df.height
    remove_all_but(folder, names)
    return len(names), written, rows
