"""Configuration of a synthetic world: its size, seed, months and error rates."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ed_pipeline.settings import DEFAULT_LAST_MONTH, FIRST_MONTH, month_range


@dataclass(frozen=True)
class ErrorRates:
    """Rates of the data-quality problems injected into the extracts (never into the truth).

    Defaults are at or above the project's minimums. `ErrorRates.none()` gives a clean world.
    """

    name_typo: float = 0.03  # per name field: one character substituted, dropped, inserted or transposed
    nickname: float = 0.02  # share of people who go by a nickname (Bill for William)...
    nickname_use: float = 0.7  # ...and the chance that a given record of theirs shows it
    name_swap: float = 0.01  # per person record: given and family names swapped
    dob_swap: float = 0.01  # per date of birth: day and month swapped (may give an impossible date)
    nhs_missing: float = 0.80  # per council record that has an NHS number column: left blank
    nhs_typo: float = 0.005  # per NHS number shown: one digit mistyped (usually fails modulus 11)
    postcode_typo: float = 0.02  # per full postcode: a character changed, the inward letters swapped, or no space
    sex_unknown: float = 0.005  # per record whose source has a 'not known' code
    duplicate: float = 0.02  # per row: sent again under a new key, with its own small variations
    late: float = 0.05  # per row: arrives one or two months after the month of its event
    correction: float = 0.01  # per row: first sent with an error, re-sent later under the same key, fixed

    @classmethod
    def none(cls) -> ErrorRates:
        """No errors, no duplicates, nothing late: every value as the world knows it."""
        return cls(**{f.name: 0.0 for f in fields(cls)})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class SynthConfig:
    people: int = 100_000  # residents at the start of the first month
    seed: int = 42
    first_month: str = FIRST_MONTH
    last_month: str = DEFAULT_LAST_MONTH
    errors: ErrorRates = field(default_factory=ErrorRates)

    def __post_init__(self) -> None:
        if self.people < 500:
            raise ValueError(f"people must be at least 500, got {self.people}")
        if not month_range(self.first_month, self.last_month):
            raise ValueError(f"empty month range {self.first_month}..{self.last_month}")

    @property
    def months(self) -> list[str]:
        return month_range(self.first_month, self.last_month)
