"""Name pools built once with Faker, then sampled with numpy; nicknames; street names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faker import Faker

# name groups: where a household's names come from (by its ethnicity)
NAME_LOCALES = ("en_GB", "pl_PL", "en_IN", "en_NG", "tr_TR")
POOL_DRAWS = 4_000  # Faker draws per pool: frequencies follow Faker's own weights

MODERN_BOYS = (
    "Oliver", "Jack", "Harry", "Jacob", "Charlie", "Thomas", "George", "Oscar", "James", "William", "Noah", "Alfie",
    "Joshua", "Leo", "Archie", "Ethan", "Joseph", "Freddie", "Samuel", "Alexander", "Logan", "Daniel", "Isaac",
    "Max", "Benjamin", "Mason", "Lucas", "Edward", "Harrison", "Jake", "Dylan", "Riley", "Finley", "Theo",
    "Sebastian", "Adam", "Zachary", "Arthur", "Toby", "Jayden", "Luke", "Harley", "Lewis", "Tyler", "Harvey",
    "Matthew", "David", "Reuben", "Michael", "Elijah", "Kian", "Tommy", "Blake", "Luca", "Theodore", "Stanley",
    "Jenson", "Nathan", "Charles", "Frankie", "Jude", "Teddy", "Louie", "Louis", "Ryan", "Hugo", "Bobby", "Elliott",
    "Dexter", "Ollie", "Alex", "Liam", "Kai", "Gabriel", "Connor", "Aaron", "Frederick", "Callum", "Elliot",
    "Albert", "Leon", "Ronnie", "Rory", "Jamie", "Austin", "Seth", "Owen", "Caleb", "Ellis", "Sonny", "Robert",
    "Joey", "Felix", "Finlay", "Jackson",
)
MODERN_GIRLS = (
    "Amelia", "Olivia", "Isla", "Emily", "Poppy", "Ava", "Isabella", "Jessica", "Lily", "Sophie", "Grace", "Sophia",
    "Mia", "Evie", "Ruby", "Ella", "Scarlett", "Isabelle", "Chloe", "Sienna", "Freya", "Phoebe", "Charlotte",
    "Daisy", "Alice", "Florence", "Eva", "Sofia", "Millie", "Lucy", "Evelyn", "Elsie", "Rosie", "Imogen", "Lola",
    "Matilda", "Elizabeth", "Layla", "Holly", "Lilly", "Molly", "Erin", "Ellie", "Maisie", "Maya", "Abigail",
    "Eliza", "Georgia", "Jasmine", "Esme", "Willow", "Bella", "Annabelle", "Ivy", "Amber", "Emilia", "Emma",
    "Summer", "Hannah", "Eleanor", "Harriet", "Rose", "Amelie", "Lexi", "Megan", "Gracie", "Zara", "Lacey",
    "Martha", "Anna", "Violet", "Darcey", "Maria", "Brooke", "Katie", "Leah", "Thea", "Darcie", "Hollie", "Amy",
    "Mollie", "Heidi", "Lottie", "Bethany", "Francesca", "Faith", "Harper", "Nancy", "Beatrice", "Isabel", "Lydia",
    "Sarah", "Victoria", "Zoe", "Robyn",
)

NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Bill", "Will", "Billy"), "Robert": ("Bob", "Rob", "Bobby"), "Richard": ("Dick", "Rich", "Ricky"),
    "James": ("Jim", "Jimmy", "Jamie"), "Thomas": ("Tom", "Tommy"), "Charles": ("Charlie", "Chas"),
    "Edward": ("Ed", "Ted", "Eddie"), "Michael": ("Mike", "Mick"), "Christopher": ("Chris", "Kit"),
    "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",), "Anthony": ("Tony", "Ant"), "Joseph": ("Joe", "Joey"),
    "Samuel": ("Sam", "Sammy"), "Benjamin": ("Ben", "Benny"), "Alexander": ("Alex", "Sandy"),
    "Jonathan": ("Jon", "Jonny"), "Nicholas": ("Nick", "Nicky"), "Andrew": ("Andy", "Drew"),
    "Stephen": ("Steve",), "Steven": ("Steve",), "David": ("Dave", "Davy"), "Peter": ("Pete",),
    "Patrick": ("Pat", "Paddy"), "Henry": ("Harry", "Hal"), "Frederick": ("Fred", "Freddie"),
    "Kenneth": ("Ken", "Kenny"), "Ronald": ("Ron", "Ronnie"), "Donald": ("Don",), "Leonard": ("Len", "Lenny"),
    "Terence": ("Terry",), "Timothy": ("Tim",), "Philip": ("Phil",), "Gregory": ("Greg",), "Raymond": ("Ray",),
    "Geoffrey": ("Geoff",), "Gerald": ("Gerry",), "Lawrence": ("Larry", "Laurie"), "Oliver": ("Ollie",),
    "Joshua": ("Josh",), "Jacob": ("Jake",), "Zachary": ("Zach",), "Nathan": ("Nate",), "Theodore": ("Theo", "Teddy"),
    "Elizabeth": ("Liz", "Beth", "Lizzie", "Betty"), "Margaret": ("Maggie", "Peggy", "Meg"),
    "Katherine": ("Kate", "Katie", "Kath"), "Catherine": ("Cathy", "Kate", "Cath"), "Rebecca": ("Becky", "Becca"),
    "Victoria": ("Vicky", "Tori"), "Jessica": ("Jess", "Jessie"), "Samantha": ("Sam", "Sammy"),
    "Alexandra": ("Alex", "Lexi"), "Susan": ("Sue", "Susie"), "Deborah": ("Debbie", "Deb"), "Abigail": ("Abbie",),
    "Eleanor": ("Ellie", "Nell"), "Charlotte": ("Lottie", "Charlie"), "Olivia": ("Liv", "Livvy"),
    "Amelia": ("Millie",), "Isabella": ("Izzy", "Bella"), "Isabelle": ("Izzy",), "Jennifer": ("Jen", "Jenny"),
    "Jacqueline": ("Jackie",), "Pamela": ("Pam",), "Patricia": ("Pat", "Trish"), "Dorothy": ("Dot", "Dotty"),
    "Christine": ("Chris", "Chrissie"), "Josephine": ("Jo", "Josie"), "Joanne": ("Jo",), "Natalie": ("Nat",),
    "Kimberley": ("Kim",), "Jane": ("Janey",), "Valerie": ("Val",), "Barbara": ("Barbie", "Babs"),
    "Gillian": ("Gill", "Jill"), "Frances": ("Fran",), "Helen": ("Nell",), "Sarah": ("Sally",), "Emily": ("Em",),
    "Sophie": ("Soph",), "Florence": ("Flo",), "Matilda": ("Tilly",), "Harriet": ("Hattie",), "Gregor": ("Greg",),
    "Aleksander": ("Olek",), "Krzysztof": ("Krzys",), "Katarzyna": ("Kasia",), "Małgorzata": ("Gosia",),
    "Wojciech": ("Wojtek",), "Jakub": ("Kuba",), "Aleksandra": ("Ola",), "Mohammed": ("Mo",), "Muhammad": ("Mo",),
}


@dataclass
class NamePools:
    given: np.ndarray  # every given name (str), one global pool
    surnames: np.ndarray  # every surname (str)
    # per (group, sex, era) the indices into `given` and cumulative weights; era 0 adult, 1 modern (born 2000+)
    given_choice: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]]
    surname_choice: dict[int, tuple[np.ndarray, np.ndarray]]
    nickname_of: np.ndarray  # given index -> index of a nickname in `given` (-1: none); first choice
    nickname_alt: np.ndarray  # a second nickname (or the first again)
    street_names: np.ndarray

    def sample_given(self, rng: np.random.Generator, group: np.ndarray, sex: np.ndarray,
                     modern: np.ndarray) -> np.ndarray:
        out = np.empty(len(group), dtype=np.int64)
        for key, (idx, cum) in self.given_choice.items():
            mask = (group == key[0]) & (sex == key[1]) & (modern == key[2])
            if mask.any():
                out[mask] = idx[np.searchsorted(cum, rng.random(mask.sum()) * cum[-1], side="right")]
        return out

    def sample_surname(self, rng: np.random.Generator, group: np.ndarray) -> np.ndarray:
        out = np.empty(len(group), dtype=np.int64)
        for g, (idx, cum) in self.surname_choice.items():
            mask = group == g
            if mask.any():
                out[mask] = idx[np.searchsorted(cum, rng.random(mask.sum()) * cum[-1], side="right")]
        return out


def _pool(draws: list[str]) -> tuple[list[str], np.ndarray]:
    names, counts = np.unique(np.asarray(draws), return_counts=True)
    return [str(n) for n in names], counts.astype(float)


def build_name_pools(seed: int) -> NamePools:
    given: dict[str, int] = {}
    surnames: dict[str, int] = {}

    def add(table: dict[str, int], names: list[str]) -> np.ndarray:
        return np.array([table.setdefault(n, len(table)) for n in names], dtype=np.int64)

    given_choice: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
    surname_choice: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for g, locale in enumerate(NAME_LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 7919 + g)
        male, wm = _pool([fake.first_name_male() for _ in range(POOL_DRAWS)])
        female, wf = _pool([fake.first_name_female() for _ in range(POOL_DRAWS)])
        last, wl = _pool([fake.last_name() for _ in range(POOL_DRAWS)])
        for sex, (names, w) in enumerate(((male, wm), (female, wf))):
            idx = add(given, names)
            given_choice[(g, sex, 0)] = (idx, np.cumsum(w))
            given_choice[(g, sex, 1)] = (idx, np.cumsum(w))
        surname_choice[g] = (add(surnames, last), np.cumsum(wl))
        if g == 0:
            streets = sorted({n.split()[0] for n in last} | {fake.street_name().split()[0] for _ in range(400)})
    # children born since 2000 in en_GB households mostly have today's names
    for sex, names in enumerate((MODERN_BOYS, MODERN_GIRLS)):
        w = 1.0 / np.arange(1, len(names) + 1) ** 0.7
        modern = add(given, list(names))
        old_idx, old_cum = given_choice[(0, sex, 0)]
        old_w = np.diff(np.concatenate([[0.0], old_cum]))
        idx = np.concatenate([modern, old_idx])
        weights = np.concatenate([w / w.sum() * 0.8, old_w / old_w.sum() * 0.2])
        given_choice[(0, sex, 1)] = (idx, np.cumsum(weights))
    for nicks in NICKNAMES.values():
        add(given, list(nicks))
    given_arr = np.array(list(given), dtype=object)
    nick1 = np.full(len(given_arr), -1, dtype=np.int64)
    nick2 = np.full(len(given_arr), -1, dtype=np.int64)
    for formal, nicks in NICKNAMES.items():
        if formal in given:
            nick1[given[formal]] = given[nicks[0]]
            nick2[given[formal]] = given[nicks[-1]]
    return NamePools(
        given=given_arr,
        surnames=np.array(list(surnames), dtype=object),
        given_choice=given_choice,
        surname_choice=surname_choice,
        nickname_of=nick1,
        nickname_alt=nick2,
        street_names=np.array(streets, dtype=object),
    )
