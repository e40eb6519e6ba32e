"""NHS numbers (modulus 11) and Unique Pupil Numbers (check letter), vectorised."""

from __future__ import annotations

import numpy as np

NHS_WEIGHTS = np.arange(10, 1, -1)  # weights of the first nine digits
UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # 23 check letters: no I, O or S
ESSEX_LA = 881  # DfE local authority number of Essex


def nhs_check_digit(first_nine: np.ndarray) -> np.ndarray:
    """Check digit for 9-digit integers; 10 means no valid number exists with that stem."""
    digits = (np.asarray(first_nine, dtype=np.int64)[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    rem = 11 - (digits * NHS_WEIGHTS).sum(axis=1) % 11
    return np.where(rem == 11, 0, rem)


def is_valid_nhs_number(number: str) -> bool:
    """Modulus-11 validation of a 10-digit NHS number given as text."""
    if len(number) != 10 or not number.isdigit():
        return False
    check = int(nhs_check_digit(np.array([int(number[:9])]))[0])
    return check != 10 and check == int(number[9])


def make_nhs_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct valid NHS numbers (int64, 10 digits, in the 400-799 million ranges England issues)."""
    stems = np.empty(0, dtype=np.int64)
    while len(stems) < n:
        draw = rng.integers(400_000_000, 800_000_000, size=int((n - len(stems)) * 1.15) + 16, dtype=np.int64)
        stems = np.sort(np.concatenate([stems, draw[nhs_check_digit(draw) != 10]]))
        stems = stems[np.concatenate([[True], stems[1:] != stems[:-1]])]  # (np.unique is slow here)
    stems = rng.permutation(stems)[:n]
    return stems * 10 + nhs_check_digit(stems)


def upn_check_letter(body: list[str] | np.ndarray) -> np.ndarray:
    """DfE check letter for 12-digit UPN bodies: weights 2..13 on the digits, sum mod 23."""
    arr = np.asarray(body, dtype="U12")
    digits = arr.view("U1").reshape(len(arr), 12).astype(np.int64)
    idx = (digits * np.arange(2, 14)).sum(axis=1) % 23
    return np.asarray(list(UPN_LETTERS))[idx]


def is_valid_upn(upn: str) -> bool:
    if len(upn) != 13 or not upn[1:].isdigit() or upn[0] not in UPN_LETTERS:
        return False
    return upn[0] == str(upn_check_letter([upn[1:]])[0])


def make_upns(school_estab: np.ndarray, year_allocated: np.ndarray, serial: np.ndarray) -> np.ndarray:
    """UPNs: check letter + LA (3) + establishment (4) + year allocated (2) + serial (3)."""
    if len(serial) == 0:
        return np.zeros(0, dtype="U13")
    body = np.char.add(
        np.char.add(np.char.zfill(np.full(len(serial), ESSEX_LA).astype(str), 3),
                    np.char.zfill(np.asarray(school_estab).astype(str), 4)),
        np.char.add(np.char.zfill((np.asarray(year_allocated) % 100).astype(str), 2),
                    np.char.zfill((np.asarray(serial) % 1000).astype(str), 3)),
    )
    return np.char.add(upn_check_letter(body), body)
