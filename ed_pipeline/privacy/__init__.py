"""Privacy: keyed tokens, hardened Bloom-filter encodings, and the identifier-leak scan.

Dagster-free. The public entry points:

- `pseudonymise_people(records, key, postcode_lookup=None)`: validated canonical person
  records in, the same rows out with every direct identifier replaced by tokens and encodings.
- `load_key`, `generate_key_file`, `ensure_key_file`, `key_fingerprint`: key handling
  (custody and rotation are described in `ed_pipeline.privacy.keys` and docs/privacy.md).
- `dice`, `dice_series`, `dice_sql`, `splink_dice_sql`: Bloom-filter similarity in Python and DuckDB SQL.
- `identifiers_from_records`, `identifiers_from_duckdb`, `scan_duckdb`, `scan_texts`, `scan_files`:
  find direct identifiers of the agency zone wherever they should not be.
- `suppress_counts`, `mask_derived`, `display_suppressed`, `flag_column`: disclosure control of published counts
  (1-4 suppressed, others rounded to 5, secondary suppression; see `ed_pipeline.privacy.disclosure`).
"""

from ed_pipeline.privacy.bloom import (
    ADDRESS_BLOOM,
    FAMILY_NAME_BLOOM,
    GIVEN_NAME_BLOOM,
    NAME_BLOOM,
    BloomEncoder,
    BloomSpec,
    dice,
    dice_series,
    dice_sql,
    splink_dice_sql,
)
from ed_pipeline.privacy.disclosure import display_suppressed, flag_column, mask_derived, suppress_counts
from ed_pipeline.privacy.keys import (
    MIN_KEY_BYTES,
    InvalidKeyError,
    derive_key,
    ensure_key_file,
    generate_key_file,
    key_fingerprint,
    load_key,
    load_key_file,
)
from ed_pipeline.privacy.leak_scan import (
    IdentifierSet,
    Leak,
    identifiers_from_duckdb,
    identifiers_from_records,
    scan_duckdb,
    scan_files,
    scan_frame,
    scan_texts,
)
from ed_pipeline.privacy.pseudonymise import (
    BLOOM_COLUMNS,
    DIRECT_IDENTIFIER_COLUMNS,
    TOKEN_FIELDS,
    Tokeniser,
    output_schema,
    pseudonymise_people,
)

__all__ = [
    "ADDRESS_BLOOM",
    "BLOOM_COLUMNS",
    "DIRECT_IDENTIFIER_COLUMNS",
    "FAMILY_NAME_BLOOM",
    "GIVEN_NAME_BLOOM",
    "MIN_KEY_BYTES",
    "NAME_BLOOM",
    "TOKEN_FIELDS",
    "BloomEncoder",
    "BloomSpec",
    "IdentifierSet",
    "InvalidKeyError",
    "Leak",
    "Tokeniser",
    "derive_key",
    "dice",
    "dice_series",
    "dice_sql",
    "display_suppressed",
    "ensure_key_file",
    "flag_column",
    "generate_key_file",
    "identifiers_from_duckdb",
    "identifiers_from_records",
    "key_fingerprint",
    "load_key",
    "load_key_file",
    "mask_derived",
    "output_schema",
    "pseudonymise_people",
    "scan_duckdb",
    "scan_files",
    "scan_frame",
    "scan_texts",
    "splink_dice_sql",
    "suppress_counts",
]
