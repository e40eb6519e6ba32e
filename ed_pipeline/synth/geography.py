"""Places: Essex's districts, Basildon's 16 real wards, synthetic LSOAs, postcodes, streets and UPRNs.

A world of up to Basildon's size (~187k residents) lives in Basildon's wards alone, scaled down;
a larger one keeps Basildon whole and fills the other 11 districts of Essex County Council.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

BASILDON = "Basildon"
BASILDON_POPULATION = 187_600
LSOA_RESIDENTS = 1_500

# name, population (thousands, 2011-ish), postcode districts, town on the address, deprivation (z-ish)
BASILDON_WARDS: tuple[tuple[str, float, tuple[str, ...], str, float], ...] = (
    ("Billericay East", 11.5, ("CM12", "CM11"), "Billericay", -1.0),
    ("Billericay West", 10.9, ("CM12",), "Billericay", -1.1),
    ("Burstead", 11.5, ("CM11", "CM12"), "Billericay", -0.9),
    ("Crouch", 6.6, ("SS11", "CM11"), "Wickford", -0.5),
    ("Fryerns", 13.5, ("SS14",), "Basildon", 1.2),
    ("Laindon Park", 11.8, ("SS15",), "Laindon", 0.8),
    ("Langdon Hills", 9.5, ("SS16",), "Basildon", -0.4),
    ("Lee Chapel North", 13.0, ("SS15",), "Basildon", 1.1),
    ("Nethermayne", 12.0, ("SS16", "SS15"), "Basildon", 0.2),
    ("Pitsea North West", 12.6, ("SS13",), "Pitsea", 1.1),
    ("Pitsea South East", 12.2, ("SS13",), "Pitsea", 0.5),
    ("St Martin's", 7.8, ("SS14",), "Basildon", 0.8),
    ("Vange", 10.7, ("SS16",), "Basildon", 1.35),
    ("Wickford Castledon", 11.2, ("SS12",), "Wickford", -0.4),
    ("Wickford North", 12.3, ("SS11", "SS12"), "Wickford", -0.3),
    ("Wickford Park", 10.9, ("SS12",), "Wickford", -0.1),
)

# the other 11 districts of Essex County Council: population (thousands), postcode districts, deprivation
OTHER_DISTRICTS: tuple[tuple[str, float, tuple[str, ...], float], ...] = (
    ("Braintree", 155.0, ("CM7", "CM77", "CO9", "CM8"), -0.1),
    ("Brentwood", 77.0, ("CM13", "CM14", "CM15"), -0.6),
    ("Castle Point", 90.0, ("SS7", "SS8"), 0.1),
    ("Chelmsford", 181.0, ("CM1", "CM2", "CM3"), -0.4),
    ("Colchester", 193.0, ("CO1", "CO2", "CO3", "CO4", "CO5", "CO6"), 0.0),
    ("Epping Forest", 134.0, ("CM16", "IG10", "EN9", "CM5"), -0.3),
    ("Harlow", 94.0, ("CM17", "CM18", "CM19", "CM20"), 0.7),
    ("Maldon", 66.0, ("CM9",), -0.2),
    ("Rochford", 88.0, ("SS4", "SS5", "SS6"), -0.5),
    ("Tendring", 148.0, ("CO11", "CO12", "CO13", "CO14", "CO15", "CO16"), 0.5),
    ("Uttlesford", 92.0, ("CB10", "CB11", "CM22", "CM6"), -0.8),
)
WARD_RESIDENTS_OTHER = 8_000  # wards of the other districts, named "<District> ward N"

POSTCODE_UNIT_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))  # inward-code letters (no C I K M O V)
STREET_SUFFIXES = np.array(["Road", "Avenue", "Close", "Gardens", "Way", "Drive", "Lane", "Crescent", "Walk",
                            "Street", "Grove", "Chase", "Mead", "Rise"])
BLOCK_SUFFIXES = np.array(["House", "Court", "Lodge", "Tower"])
HOMES_PER_STREET = 60
HOMES_PER_POSTCODE = 15


@dataclass
class Geography:
    """Districts, wards and LSOAs of the world (small tables, one row each)."""

    wards: pl.DataFrame  # ward_idx, ward, district, district_idx, town, deprivation, population (target residents)
    lsoas: pl.DataFrame  # lsoa_idx, lsoa, ward_idx, deprivation, postcode_district, sector, weight

    @property
    def n_wards(self) -> int:
        return self.wards.height


def build_geography(rng: np.random.Generator, people: int) -> Geography:
    rows = []
    basildon_total = sum(w[1] for w in BASILDON_WARDS) * 1000
    basildon_scale = min(1.0, people / basildon_total)
    for name, pop, districts, town, dep in BASILDON_WARDS:
        rows.append((name, BASILDON, town, dep, pop * 1000, pop * 1000 * basildon_scale, districts))
    rest = people - basildon_total
    if rest > 0:
        others_total = sum(d[1] for d in OTHER_DISTRICTS) * 1000
        scale = rest / others_total
        for name, pop, districts, dep in OTHER_DISTRICTS:
            n_wards = max(1, round(pop * 1000 / WARD_RESIDENTS_OTHER))
            ward_dep = dep + rng.normal(0, 0.5, n_wards)
            ward_pop = rng.uniform(0.7, 1.3, n_wards)
            ward_pop = ward_pop / ward_pop.sum() * pop * 1000
            for i in range(n_wards):
                codes = (districts[i % len(districts)],)
                rows.append((f"{name} ward {i + 1}", name, name, float(ward_dep[i]), float(ward_pop[i]),
                             float(ward_pop[i] * scale), codes))
    district_names = [BASILDON] + [d[0] for d in OTHER_DISTRICTS]
    wards = pl.DataFrame(
        {
            "ward_idx": np.arange(len(rows), dtype=np.int32),
            "ward": [r[0] for r in rows],
            "district": [r[1] for r in rows],
            "district_idx": np.array([district_names.index(r[1]) for r in rows], dtype=np.int32),
            "town": [r[2] for r in rows],
            "deprivation": np.array([r[3] for r in rows]),
            "population": np.array([r[5] for r in rows]),
        }
    )
    lsoa_rows = []
    code = 21_200
    for w, r in enumerate(rows):
        n_lsoa = max(2, round(r[4] / LSOA_RESIDENTS))
        deps = r[3] + rng.normal(0, 0.35, n_lsoa)
        weights = rng.uniform(0.75, 1.25, n_lsoa)
        sectors = rng.choice(np.arange(1, 10), size=n_lsoa)
        for i in range(n_lsoa):
            lsoa_rows.append((f"E01{code:06d}", w, float(deps[i]), r[6][i % len(r[6])],
                              int(sectors[i]), float(weights[i] / weights.sum())))
            code += 1
    lsoas = pl.DataFrame(
        {
            "lsoa_idx": np.arange(len(lsoa_rows), dtype=np.int32),
            "lsoa": [r[0] for r in lsoa_rows],
            "ward_idx": np.array([r[1] for r in lsoa_rows], dtype=np.int32),
            "deprivation": np.array([r[2] for r in lsoa_rows]),
            "postcode_district": [r[3] for r in lsoa_rows],
            "sector": np.array([r[4] for r in lsoa_rows], dtype=np.int32),
            "weight": np.array([r[5] for r in lsoa_rows]),
        }
    )
    return Geography(wards=wards, lsoas=lsoas)


def pick_lsoa(rng: np.random.Generator, geo: Geography, ward_idx: np.ndarray) -> np.ndarray:
    """A random LSOA (by its weight) within each given ward."""
    lsoa_ward = geo.lsoas["ward_idx"].to_numpy()
    weight = geo.lsoas["weight"].to_numpy()
    order = np.lexsort((np.arange(len(lsoa_ward)), lsoa_ward))
    cum = np.cumsum(weight[order])
    # each ward's weights sum to 1, so the cumulative sum at the end of ward w is w + 1
    target = ward_idx + rng.random(len(ward_idx)) * 0.999999
    pos = np.searchsorted(cum, target, side="right")
    pos = np.minimum(pos, len(order) - 1)
    return order[pos]


def build_addresses(rng: np.random.Generator, geo: Geography, span_lsoa: np.ndarray,
                    street_names: np.ndarray) -> pl.DataFrame:
    """One distinct address per address span (a household living somewhere for a while).

    Addresses fill streets of 60 homes in each LSOA; a fifth of the streets are blocks of flats
    that share a parent UPRN. Returns addr_idx-aligned columns: line (no town), town, postcode,
    postcode_district, uprn, parent_uprn, lsoa_idx, ward_idx.
    """
    n = len(span_lsoa)
    order = np.lexsort((rng.random(n), span_lsoa))
    sorted_lsoa = span_lsoa[order]
    starts = np.searchsorted(sorted_lsoa, sorted_lsoa, side="left")
    rank_sorted = np.arange(n) - starts
    rank = np.empty(n, dtype=np.int64)
    rank[order] = rank_sorted
    street_local = rank // HOMES_PER_STREET
    j = rank % HOMES_PER_STREET
    # a street is identified by (lsoa, street_local); give each a name and a kind
    street_key = span_lsoa.astype(np.int64) * 10_000 + street_local
    ukeys, street_id = np.unique(street_key, return_inverse=True)
    n_streets = len(ukeys)
    is_block = rng.random(n_streets) < 0.2
    name_base = street_names[rng.integers(0, len(street_names), n_streets)]
    suffix = np.where(is_block, BLOCK_SUFFIXES[rng.integers(0, len(BLOCK_SUFFIXES), n_streets)],
                      STREET_SUFFIXES[rng.integers(0, len(STREET_SUFFIXES), n_streets)])
    street_name = np.char.add(np.char.add(name_base.astype(str), " "), suffix)
    house_no = 1 + (j * 41 + rng.integers(0, 7, n_streets)[street_id]) % 97  # distinct within a street
    block = is_block[street_id]
    # postcode units: a block has one, a street one per 15 homes
    segment = np.where(block, 0, j // HOMES_PER_POSTCODE)
    ukeys_pc, pc_id = np.unique(street_id.astype(np.int64) * 16 + segment, return_inverse=True)
    letters = POSTCODE_UNIT_LETTERS[rng.integers(0, len(POSTCODE_UNIT_LETTERS), (len(ukeys_pc), 2))]
    units = pl.Series(np.char.add(letters[:, 0], letters[:, 1]).tolist(), dtype=pl.String)
    lsoas = geo.lsoas
    ward_idx = lsoas["ward_idx"].to_numpy()[span_lsoa]
    uprn = 100_090_000_000 + rng.permutation(n).astype(np.int64) * 3 + rng.integers(0, 3, n)
    parent = np.where(block, 200_010_000_000 + street_id.astype(np.int64), -1)
    street = pl.Series(street_name.tolist(), dtype=pl.String).gather(street_id)
    frame = pl.DataFrame({
        "street": street, "block": block, "j": j + 1, "house_no": house_no,
        "unit": units.gather(pc_id),
        "pc_district": lsoas["postcode_district"].gather(span_lsoa),
        "sector": lsoas["sector"].gather(span_lsoa).cast(pl.String),
        "town": geo.wards["town"].gather(ward_idx),
    })
    return frame.select(
        line=pl.when(pl.col("block"))
        .then(pl.concat_str([pl.lit("Flat "), pl.col("j").cast(pl.String), pl.lit(", "), pl.col("street")]))
        .otherwise(pl.concat_str([pl.col("house_no").cast(pl.String), pl.lit(" "), pl.col("street")])),
        town=pl.col("town"),
        postcode=pl.concat_str([pl.col("pc_district"), pl.lit(" "), pl.col("sector"), pl.col("unit")]),
        postcode_district=pl.col("pc_district"),
        uprn=pl.lit(pl.Series(uprn)),
        parent_uprn=pl.lit(pl.Series(parent)).replace(-1, None),
        lsoa_idx=pl.lit(pl.Series(span_lsoa.astype(np.int32))),
        ward_idx=pl.lit(pl.Series(ward_idx.astype(np.int32))),
    )
