"""The identifier-leak scan: find agency-zone identifiers wherever they should not be.

`identifiers_from_records` (or `identifiers_from_duckdb` over the agency zone's
validated tables) collects the direct identifiers of the people in the
extracts; `scan_duckdb`, `scan_texts` and `scan_files` look for them in every
column of every table of a database, in text blobs (Dagster metadata, MLflow
params and tags) and in files (MLflow artifacts). A `Leak` says where and which
kind of identifier, never the value.

How values are matched
----------------------
Text is folded to a *scan form*: lower case, accents folded, other scripts
transliterated ("Ольга" is "olga"), every run of characters other than a-z and
0-9 a single space. Identifiers are turned into
the same form (with variants: "o brien" and "obrien", "ss16 4ab" and
"ss164ab", "943 476 5919" and "9434765919"), so an identifier is found as a
whole run of tokens, case-insensitively, never inside a longer word. Each cell
is split into tokens in DuckDB; runs of tokens starting with the first token of
some identifier are joined against the identifier table: one hash join, not a
loop over cells times identifiers. Cells longer than any one-token identifier
and without a separator (hex tokens, hashes) are skipped up front.

What is looked for, and what is not (to avoid false positives)
--------------------------------------------------------------
- names: each name, each word of a name and the full name in both orders, when
  at least 4 letters long and not a common word (`STOPWORDS`, plus the words of
  the registry's codes, roles and Basildon's places). Initials are not scanned.
- NHS numbers, UPNs, full postcodes (with and without the space), UPRNs of 6
  digits or more, addresses (whole, without the town, and each comma-separated
  line that starts with a house number, when 3 words or more).
- dates of birth, in ISO, dd/mm/yyyy, dd-mm-yyyy, dd.mm.yyyy, yyyymmdd, ddmmyyyy
  and d/m/yyyy forms. In a population every calendar day is somebody's birthday,
  so a date alone proves nothing (an event date would match). A date of birth
  is reported only (a) in a table with `source` and `record_id` columns, where a
  column equals the row's own record's date of birth in at least
  `aligned_dob_rate` of the rows; (b) in a DATE column named like a date of
  birth ("dob", "date_of_birth", "birth_date"); (c) in text, next to a word
  saying so ("dob", "birth", "born") or in the same cell/text as another
  identifier of a person born that day.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import io
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import duckdb
import polars as pl

from ed_pipeline.privacy import normalise as nz
from ed_pipeline.privacy.pseudonymise import BLOOM_COLUMNS
from ed_pipeline.sources import SOURCES

KINDS = ("name", "date_of_birth", "nhs_number", "upn", "postcode", "uprn", "address")
MIN_NAME_LETTERS = 4
MIN_UPRN_DIGITS = 6
MAX_PHRASE_TOKENS = 12
DOB_CONTEXT_WORDS = ("dob", "birth", "born", "birthdate", "dateofbirth", "birthday", "d o b")
_DOB_COLUMN_RE = re.compile(r"(^|_)(dob|birth_?date|date_?of_?birth|birthday)($|_)", re.IGNORECASE)
_DATE_LIKE_SQL = r"^\s*\d{1,4}[-/. ]\d{1,2}[-/. ]\d{1,4}|^\s*\d{8}\s*$"
_JSON_ESCAPE_RE = re.compile(r"\\u([0-9a-fA-F]{4})")
# the escapes Python's repr and JSON write for line breaks, tabs and control characters ("...\\nOkonkwo"): read
# as the separators they stand for, or the word after one is read as "nokonkwo" and never matched
_SEPARATOR_ESCAPE_RE = re.compile(r"\\(?:[nrtfv]|x[0-9a-fA-F]{2})")
_DATA_URI_RE = re.compile(r"data:([\w.+/-]+);base64,([A-Za-z0-9+/=\s]+)")
MAX_FILE_BYTES = 256 * 1024 * 1024

_COMMON_WORDS_TEXT = """
able about above after again against all also always among and another any area army baby back bank base
basic been before being best better between bird birth black blue body book both bottom boy bright brown
build burn burns business call came can care carter case cause centre chance change charge child children
church city class clear close cold come common cook cooper count country court cover cross current cut
daily data date dawn day days dead deal dear death deep dev development does done down draw drive during
each early earth east easy either else end english enough even evening event every face fact fair faith
fall family far farm fast father field fields file final fine first fisher fish five floor follow food
force forest form forward four fox frank free fresh friend from front full game garden general gift girl
give glass gold golden good grace grant gray great green grey ground group grove grow guard hall hand hard
harm hart have head health hear heart heath help here high hill hills hold hole holy home hope horse hour
house hunt hunter husband idea index into island issue joy just keep kind king knight know lake land lane
large last late later lead learn learning least leave left less level life light like line link list little
live local long look lord lost love low made main major make many mark market marsh mass match matter may
mean meet mill miller mills miles mind model money month moon more morning most mother move much must name
near need never new news next nice night noble none north note number often old once only open order other
over page paper park parker part partner party pass path peace people person piece place plan plant play
point police poor pope porter power present price prince pool public pull quick race rain range rate rather
read ready real reason record red reed rice rich right ring rise river road rock role room rose round row
rows rule run rush sale salt same sand save say school score sea season second see seed self sell send
service set shape sharp ship shop short show side sign silver simple single small smart snow some son song
soon sort sound south space speed spring square staff stage stand star start state station step still stone
store storm story street strong style such summer sun sure sweet table take tall target team test than that
their them then there these they thing think this those three time today top total town train tree true
turn turner type under union until upon used user valid value very view wait walk walker wall ward warm
water wave way weather week well wells west what when where which while white whole wide wild will wind
winter with within without wood woods word work world would year years yellow young your
names fuzzy exact swapped similar district given initials postcode address street agree differ parts
household size incidents moves claim benefit offending treatment accommodation overcrowded register
referrals protection need abuse domestic born sex lsoa risk band factors high medium low linkage
fold folds fitted cross platt scaling trees stopping cohort cohorts calibration calibrated
baseline brier contribution ever expected feature flagged gain intercept iteration lower noise observed offset
parent precision predicted recall sibling slope splits upper validation rank weight card zone parses
marker warn json characters check digit domain extract float format future length required unique uprn
parser lang flex
incremental audit rescan scanned scanning parts texts files rules changed since last state version days asked
identifiers mode leaks none could read more than full events dagster mlflow champion retrain retrained trained
scoring scored assessed promote promoted nothing stays bring copy booster reasons reason kind candidate tested
config features param refresh training warehouse
accepted anywhere arrived asian assessments chinese columns combination community crosswalk dates decision
expectations false gate history households intermediate kept known leak linked member membership metrics mixed
months negative null outputs pair prediction promotion pseudonymised quarantine quarantined readable recent
reconciled relation review scan share stable staging unknown validate validated values window across
already audited cached identifier hash
assessment changes chart cluster column decisions distribution docs duration execution failed failures fingerprint
invocation landed location metric pairs persons preview previously probability problems query ranking records
refreshed schema seconds seen sizes sources subgroup unreadable wards warnings weights
adapter advantage agency analyse application arguments asset assetcheckevaluation assetcheckevaluationplanned
assetcheckevaluationtargetmaterializationdata assetcheckseverity assetkey assetmaterialization
assetmaterializationplanneddata backend bagging bigint binary bins blocking boolean boolmetadatavalue capturing
cast code command commit complete computelogscapturedata concurrency constraints copying core created crossfit
dataframe datetime dbiomanager dbtcli default defs description double duckdb duckdbresource encoding
engineeventdata episode error executing external finished flag floatmetadatavalue forename found fraction fspath
gender handle handled handledoutputdata header hours html https ingest init initial initialization input integer
intmetadatavalue jsonmetadatavalue keys label lambda leaf leaves lineage linking loaded loadedinputdata logs
macros manager mapping markdownmetadatavalue materialization materialized matplotlib merge metadata minutes models
module monotone msgpack ncast newly nullable nullmetadatavalue nysiis output parse parsing partial partition
partitionkeyrange partitions passed pathmetadatavalue performed pickledobjectfilesystemiomanager pipeline pointer
process project pseudo pseudonymisationkey pythonartifactmetadatavalue relationship resource resources result
reviewer rounds runname running select selection sensitive severity shell shown skip smoothing software soundex
sqlite started starting stderr stdout stepinputdata stepmaterializationdata stepoutputdata stepoutputhandle steps
stepsuccessdata storage string subset subsetted success successfully superseded suppressed surname tablecolumn
tablecolumnconstraints tableconstraints tableschema tableschemametadatavalue tags tests text textmetadatavalue
threads timestamp timewindowpartitionssubset token trend typecheckdata ubigint unit upstream urlmetadatavalue
using varchar yielded
adapted additional adjusted adjustment adjustments advanced agencies alone alpha altair amongst anchor anonymous
appendchild article artifact artifacts async attached automated average axis bands bayes because begin below benchmarks
bias bind birthday bloom boost boosting boundaries built bundle bynode bytes calculation calibratedriskmodel
calibrator candidates carries catch categorical cegb charset charts checked chose clip cloudpickle coalesce
collections color comparison comparisons completed components concurrent conda condition console const construct
contact context continuousheight continuouswidth contri convergence coupled createelement crossorigin
currentscript customcomparison dart dataset datum decay decreasing dedupe define delete delta depth descending
details deterministic device dialect differences differs direct discreteheight discretewidth display displaychart
doctype document drawn drives drop dtype earlier edges educational embed embedopt enable encodings equal
equivalent errors eval evidence example extra extrapolated factor fairness families fell figures filename filter
flavors follows forcedbins forcedsplits foundation freq frequency function gamma gbdt gdpr generate getelementbyid
github grad gridcolor griddash gridwidth groups height hessian hint hints histogram ignore importance importances
independent individuals info informs infos inputs integrities integrity intended interaction internal interpolate
interval iterations itself javascript jsdelivr judgement labelalign labelanchor labelangle labellimit labels
lambdarank latest lazy learner levels lgbmclassifier lgbmregressor lightgbm likely limitations linear linker
listen lite load loader loading loads logistic logloss machine machines matches matching maxextent maybeloadscript
meals measure median message meta method middle minimum missed missing modelling modulename mouse mousewheel multi
needs node noext nominal norm normal nullif objective offer offering onehot onerror onload onnodecreated opens
ordereddict ordinal orient outputdiv outside overall pandas parameters params paths penalty pending perfectly
phonetic platform poisson port position practitioner precise predict predictions prefix previouselementsibling
prior professional profile promise prompts provenance purpose pyfunc python quant quantitative quantized random
ranks reaching refit reflect regression regularization reject renew repaired requirejs resolve retain reviewed
roughly rounding sample sampling saved scale scales scorer scores script separate serial serialization services
serving settings shift shifted showerror shrinkage sigmoid signature similarity sklearn skops smooth sooner sparse
spec special splink splinkchartloads splinkchartrequire splinkrequire split sqrt stochastic stop strategy
streamable strongest subgroups subtitle summary support teams template temporal tensor term textcontent third
threshold ticks times timings title titlealign titleangle titlefontweight tooltip tracking tradeoff transform
triggers truncated truncation trusted tweedie typehints typeof types ubsb unbalance uniform universal unrecorded
uses utils uuid variance vconcat vector vega vegaembed verbosity virtualenv whose width windows wise withholds
words xgboost yaml zero zoom
agreed byte cannot comma crlf decoded delimited empty encoded endings export ignored latin looks semicolon
splitting stripped unexpected worker wrong
detected killed marking
cancel canceled canceling exceeded exceeding grpc longer maximum monitoredrunlauncher request runtime sending taking
termination timed unable
"""  # the last lines: words of the pipeline's own labels (comparison levels, feature, metric and rule names,
# the model card, the agency zone, a malformed file's reading problems, Dagster's event fields, LightGBM's model
# text and Splink's chart HTML; a run whose worker died: `defs/run_worker.py`, Dagster's run monitoring; a run
# stopped, past its maximum runtime or by Terminate: Dagster's messages and the launcher's), and the
# words of everything the audit reads of Dagster's runs and of MLflow (Dagster's messages, event classes and
# fields; LightGBM's parameters and model text; the model card; Splink's Vega-Lite charts; MLmodel files), which
# a typo'd surname spells at Essex scale
# (1.5M residents: "Gain", "Zone", "Parses"; 500k: "Share", "Dates", "Leak", "Across", from asset, check, step
# and dbt model names, metadata keys and Splink's chart); ed_pipeline_tests/privacy/test_vocabulary.py keeps it
# complete: the metadata keys and table headers of a refresh's events, and every word the audit reads of them
# and of MLflow's artifacts

_COMMON_WORDS = _COMMON_WORDS_TEXT.split()


def _registry_words() -> set[str]:
    words: set[str] = set()
    texts: list[str] = ["Basildon Essex Pitsea Laindon Wickford Billericay Vange Fryerns Crouch Burstead Nethermayne",
                        "Langdon Hills Lee Chapel North Castledon Martin Chelmsford Colchester Braintree Brentwood",
                        "Castle Point Epping Forest Harlow Maldon Rochford Tendring Uttlesford Southend Thurrock"]
    for s in SOURCES:
        texts += [s.name, s.agency, s.description, *(s.role_domain or ()), *(p.role or "" for p in s.people)]
        texts += [f.name for f in s.event_fields] + [c for f in s.event_fields for c in (f.domain or ())]
    for text in texts:
        words.update(w for w in re.split(r"[^a-z0-9]+", text.lower()) if w)
    return words


STOPWORDS: frozenset[str] = frozenset(_COMMON_WORDS) | frozenset(_registry_words())


@dataclass(frozen=True)
class Leak:
    """One kind of identifier found in one place. Never holds the identifier itself."""

    location: str  # "schema.table.column", a text's location, or a file path
    kind: str  # one of KINDS
    count: int  # cells (distinct values of a column), rows (row-aligned), or texts
    how: str = "value"  # value | row-aligned | dob-named column | dob in context | dob with other identifier

    def __str__(self) -> str:
        return f"{self.kind} in {self.location} ({self.count}, {self.how})"


@dataclass(frozen=True)
class IdentifierSet:
    """Direct identifiers of the agency zone in scan form. Holds identifiable data: keep it in the agency zone.
    Frozen, so that what is derived from its phrases is made once (each scan asked again: at 1.7M phrases,
    half a second a time, six times an audit)."""

    phrases: pl.DataFrame  # phrase (scan form), kind, dob (Date, set for date_of_birth phrases only)
    people: pl.DataFrame  # pid, source, record_id, dob of each record
    # (pid, phrase): each record's own (for date-of-birth checks); or a function giving those of the pids it is
    # given, for a set whose records' phrases stay where they are kept (the audit's cache, in the agency zone)
    record_phrases: pl.DataFrame | Callable[[pl.Series], pl.DataFrame] | None = None

    def __len__(self) -> int:
        return self.phrases.height

    def phrases_of(self, pids: pl.Series) -> pl.DataFrame:
        """(pid, phrase) of the records `pids` names."""
        own = self.record_phrases
        if own is None:
            return pl.DataFrame(schema={"pid": pl.UInt32, "phrase": pl.String})
        if callable(own):
            return own(pids)
        return own.filter(pl.col("pid").is_in(pids.implode()))

    def __repr__(self) -> str:  # never print the values
        counts = dict(self.phrases.group_by("kind").len().iter_rows()) if self.phrases.height else {}
        return f"IdentifierSet({counts}, people={self.people.height})"

    @cached_property
    def starts(self) -> pl.DataFrame:
        """(tok, n): first token and length in tokens of every phrase."""
        toks = self.phrases.select(pl.col("phrase").str.split(" ").alias("t"))
        return toks.select(tok=pl.col("t").list.first(), n=pl.col("t").list.len().cast(pl.Int64)).unique()

    @cached_property
    def key_tokens(self) -> pl.DataFrame:
        """(tok): one token of every phrase other than a date of birth, the one least likely elsewhere (a word
        that is not a common one, then the longest): a cell without any of them holds none of those phrases."""
        toks = pl.col("phrase").str.split(" ")
        rare = toks.list.eval(pl.element().filter(~pl.element().is_in(list(STOPWORDS))
                                                  & pl.element().str.contains("[a-z]")))
        pool = pl.when(rare.list.len() > 0).then(rare).otherwise(toks)  # else the longest ("10 church road")
        longest = pool.list.eval(pl.element().sort_by(pl.element().str.len_chars(), descending=True,
                                                      maintain_order=True).first()).list.first()
        return self.phrases.filter(pl.col("kind") != "date_of_birth").select(tok=longest).unique()

    @cached_property
    def max_single_token_chars(self) -> int:
        single = self.phrases.filter(~pl.col("phrase").str.contains(" ", literal=True))
        return int(single["phrase"].str.len_chars().max() or 0)


def scan_form(e: pl.Expr) -> pl.Expr:
    """Lower-case ASCII tokens separated by single spaces (the form both cells and identifiers are matched in)."""
    return nz.fold_text(e.cast(pl.String)).str.replace_all(r"[^a-z0-9]+", " ").str.strip_chars()


_SCAN_FORM_SQL = "ed_scan_form"  # `scan_form` as a DuckDB function, for text outside ASCII (see `_fold_sql`)


def _fold_sql(v: str) -> str:
    """`scan_form` in SQL, with "1t2" read as "1 2" (a timestamp's date and time). ASCII text needs only lower
    case; other text is folded by `scan_form` itself (registered by `_register_scan_form`): DuckDB can strip
    accents but not transliterate, and one function on both sides cannot fold a name two ways."""
    spaced = (f"regexp_replace(CASE WHEN strlen({v}) = length({v}) THEN lower({v}) ELSE {_SCAN_FORM_SQL}({v}) END, "
              "'[^a-z0-9]+', ' ', 'g')")
    return f"trim(regexp_replace({spaced}, '([0-9])t([0-9])', '\\1 \\2', 'g'))"


def _scan_form_arrow(values):  # pyarrow in, pyarrow out: one polars pass over the batch
    return pl.select(scan_form(pl.lit(pl.from_arrow(values)))).to_series().to_arrow()


def _register_scan_form(conn: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.NotImplementedException, duckdb.CatalogException):  # registered already
        conn.create_function(_SCAN_FORM_SQL, _scan_form_arrow, ["VARCHAR"], "VARCHAR", type="arrow")


# --- building the identifier set -------------------------------------------------------------------------------


def _name_phrases(raw: pl.Series) -> pl.DataFrame:
    """Scan-form phrases of names: the whole name, its compact form, and each word, filtered for length/commonness."""
    unique = raw.drop_nulls().unique()
    df = pl.DataFrame({"raw": unique}).with_columns(
        sf=scan_form(pl.col("raw")),
        compact=scan_form(pl.col("raw").str.replace_all(r"['’‘`´]", "")),
    )
    variants = df.select(raw="raw", phrase=pl.concat_list(
        "sf", pl.col("compact"), pl.col("sf").str.replace_all(" ", "", literal=True), pl.col("sf").str.split(" ")
    )).explode("phrase")
    return variants.filter(_keep_name(pl.col("phrase"))).unique()


def _keep_name(p: pl.Expr) -> pl.Expr:
    letters = p.str.replace_all(r"[^a-z]", "").str.len_chars()
    return (letters >= MIN_NAME_LETTERS) & ~p.is_in(list(STOPWORDS)) & p.str.contains(r"^[a-z ]+$")


def _dob_variants(dob: pl.Expr) -> pl.Expr:
    y, m, d = dob.dt.strftime("%Y"), dob.dt.strftime("%m"), dob.dt.strftime("%d")
    m1, d1 = dob.dt.month().cast(pl.String), dob.dt.day().cast(pl.String)
    return pl.concat_list(
        pl.concat_str([y, m, d], separator=" "),
        pl.concat_str([d, m, y], separator=" "),
        pl.concat_str([y, m, d]),
        pl.concat_str([d, m, y]),
        pl.concat_str([d1, m1, y], separator=" "),
    ).list.unique()


def _record_phrases(records: pl.DataFrame) -> pl.DataFrame:
    """(pid, phrase, kind) for every non-date identifier of every record (pid: the record's row number)."""
    def col(name: str) -> pl.Expr:
        return pl.col(name).cast(pl.String) if name in records.columns else pl.lit(None, dtype=pl.String)

    base = records.select(
        pid=pl.int_range(pl.len(), dtype=pl.UInt32),
        given=col("given_name"),
        family=col("family_name"),
        nhs=nz.normalise_digits(col("nhs_number")),
        upn=nz.normalise_code(col("upn")).str.to_lowercase(),
        postcode=nz.normalise_postcode(col("postcode")),
        uprn_raw=nz.normalise_digits(col("uprn")),
        address=col("address"),
    )
    parts: list[pl.DataFrame] = []
    for name_col in ("given", "family"):
        names = _name_phrases(base[name_col])
        parts.append(base.select("pid", raw=name_col).join(names, on="raw").select("pid", "phrase",
                                                                                      kind=pl.lit("name")))
    g, f = scan_form(pl.col("given")), scan_form(pl.col("family"))
    full = base.select("pid", phrase=pl.concat_list(pl.concat_str([g, f], separator=" "),
                                                      pl.concat_str([f, g], separator=" "))).explode("phrase")
    both_long = base.select("pid", ok=(g.str.len_chars() >= 2) & (f.str.len_chars() >= 2))
    full = full.join(both_long, on="pid").filter("ok").drop("ok")
    parts.append(full.filter(pl.col("phrase").str.len_chars() >= 5).with_columns(kind=pl.lit("name")))
    nhs = base.select("pid", phrase=pl.concat_list(
        "nhs", pl.concat_str([pl.col("nhs").str.slice(0, 3), pl.col("nhs").str.slice(3, 3), pl.col("nhs").str.slice(6)],
                             separator=" "))).explode("phrase")
    parts.append(nhs.filter(pl.col("phrase").str.len_chars() >= 10).with_columns(kind=pl.lit("nhs_number")))
    parts.append(base.select("pid", phrase="upn").filter(pl.col("phrase").str.len_chars() >= 8)
                 .with_columns(kind=pl.lit("upn")))
    pc = base.filter(nz.postcode_is_full(pl.col("postcode"))).select(
        "pid", phrase=pl.concat_list(pl.col("postcode").str.to_lowercase(),
                                     pl.col("postcode").str.to_lowercase().str.replace(" ", "", literal=True)))
    parts.append(pc.explode("phrase").with_columns(kind=pl.lit("postcode")))
    uprn = base.select("pid", phrase=pl.concat_list("uprn_raw", pl.col("uprn_raw").str.strip_chars_start("0")))
    parts.append(uprn.explode("phrase").filter(pl.col("phrase").str.len_chars() >= MIN_UPRN_DIGITS)
                 .with_columns(kind=pl.lit("uprn")))
    addr_parts = pl.col("address").str.split(",")
    addr = base.select("pid", phrase=pl.concat_list(
        scan_form(pl.col("address")),
        pl.when(addr_parts.list.len() > 1).then(scan_form(addr_parts.list.slice(0, addr_parts.list.len() - 1)
                                                           .list.join(" "))),
    )).explode("phrase")
    lines = base.select("pid", phrase=addr_parts).explode("phrase").with_columns(scan_form(pl.col("phrase")))
    lines = lines.filter(pl.col("phrase").str.contains(r"^[0-9]+[a-z]? [a-z]"))  # "4 honeysuckle close"
    addr = pl.concat([addr, lines]).filter(pl.col("phrase").str.split(" ").list.len() >= 3)
    parts.append(addr.with_columns(kind=pl.lit("address")))
    out = pl.concat([p.select("pid", "phrase", "kind") for p in parts])
    return out.filter(pl.col("phrase").is_not_null() & (pl.col("phrase").str.len_chars() >= 4)).unique()


def identifiers_from_records(records: pl.DataFrame) -> IdentifierSet:
    """The identifier set of validated canonical records (names, dates of birth, NHS numbers, UPNs, postcodes,
    UPRNs, addresses)."""
    return assemble_identifiers(*record_identifiers(records))[0]


def record_identifiers(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What an identifier set is made of, record by record (so it can be kept per partition): people (pid, source,
    record_id, dob) and phrases (pid, phrase, kind) of every non-date identifier; pid: the record's row number."""
    dob = (nz.parse_date(pl.col("date_of_birth"), records.schema["date_of_birth"])
           if "date_of_birth" in records.columns else pl.lit(None, dtype=pl.Date))
    people = records.select(
        pid=pl.int_range(pl.len(), dtype=pl.UInt32),
        source=pl.col("source").cast(pl.String) if "source" in records.columns else pl.lit(None, dtype=pl.String),
        record_id=(pl.col("record_id").cast(pl.String) if "record_id" in records.columns
                   else pl.lit(None, dtype=pl.String)),
        dob=dob,
    )
    phrases = _record_phrases(records) if records.height else pl.DataFrame(
        schema={"pid": pl.UInt32, "phrase": pl.String, "kind": pl.String})
    return people, phrases


def assemble_identifiers(people: pl.DataFrame, phrases: pl.DataFrame, new: pl.Series | None = None
                         ) -> tuple[IdentifierSet, IdentifierSet]:
    """The identifier set of the records of `record_identifiers` (pids unique across `people`), and its part that is
    new: the phrases of the people where `new` (one value per row of `people`) is true that no other record
    yields, and every date of birth of those people (so that a date of birth beside a new name is reported as
    such). What has been scanned against the identifiers of the other records needs scanning against the new
    part only. Without `new`, every identifier is new."""
    if new is not None and new.len() != people.height:
        raise ValueError("`new` must have one value per person")
    fresh = None if new is None else new.fill_null(True).cast(pl.Boolean)
    new_phrases = None
    if fresh is not None and fresh.any() and not fresh.all():
        is_new = pl.DataFrame({"pid": people["pid"], "new": fresh})
        flagged = phrases.join(is_new, on="pid")
        old_phrases = flagged.filter(~pl.col("new")).select("phrase").unique()
        new_phrases = (flagged.filter(pl.col("new")).select("phrase", "kind").unique()
                       .join(old_phrases, on="phrase", how="anti"))
    return identifier_sets_of(people, phrases.select("phrase", "kind").unique(), new_phrases, fresh,
                              phrases.select("pid", "phrase"))


def identifier_sets_of(people: pl.DataFrame, phrases: pl.DataFrame, new_phrases: pl.DataFrame | None,
                       new: pl.Series | None, record_phrases: pl.DataFrame | Callable[[pl.Series], pl.DataFrame]
                       ) -> tuple[IdentifierSet, IdentifierSet]:
    """`assemble_identifiers`' two sets from what it computes: the distinct (phrase, kind) of every record's
    non-date identifiers, those that only the records where `new` is true yield (`new_phrases`; needed unless
    `new` is all true, all false or None), and each record's own phrases (see `IdentifierSet.record_phrases`)."""
    dobs = people.select("dob").drop_nulls().unique()
    dob_phrases = dobs.select("dob", phrase=_dob_variants(pl.col("dob"))).explode("phrase")
    everything = IdentifierSet(
        phrases=pl.concat([
            phrases.select("phrase", "kind").with_columns(dob=pl.lit(None, dtype=pl.Date)),
            dob_phrases.select("phrase", kind=pl.lit("date_of_birth"), dob="dob"),
        ]),
        people=people.select("pid", "source", "record_id", "dob"),
        record_phrases=record_phrases,
    )
    if new is None or new.all():
        return everything, everything
    if not new.any():
        return everything, identifiers_from_records(pl.DataFrame())
    if new_phrases is None:
        raise ValueError("the new phrases are needed when only some records are new")
    new_people = everything.people.filter(new)
    new_dobs = new_people.select("dob").drop_nulls().unique()
    dob_phrases = everything.phrases.filter(pl.col("kind") == "date_of_birth").join(new_dobs, on="dob", how="semi")
    return everything, IdentifierSet(
        phrases=pl.concat([new_phrases.select("phrase", "kind").with_columns(dob=pl.lit(None, dtype=pl.Date)),
                           dob_phrases]),
        people=new_people, record_phrases=record_phrases)


def identifier_sets(records: pl.DataFrame, new: pl.Series) -> tuple[IdentifierSet, IdentifierSet]:
    """The identifier set of all `records`, and its part that is new (see `assemble_identifiers`): that of the
    records where `new` is true."""
    if new.len() != records.height:
        raise ValueError("`new` must have one value per record")
    return assemble_identifiers(*record_identifiers(records), new)


def identifiers_from_duckdb(conn: duckdb.DuckDBPyConnection, schema: str = "validated") -> IdentifierSet:
    """The identifier set of every table in `schema` of an agency-zone connection."""
    return identifiers_from_records(identifier_records(conn, schema))


IDENTIFIER_COLUMNS = ("source", "record_id", "given_name", "family_name", "date_of_birth", "nhs_number", "address",
                      "postcode", "uprn", "upn")


def identifier_records(conn: duckdb.DuckDBPyConnection, schema: str = "validated",
                       where: Mapping[str, str] | None = None) -> pl.DataFrame:
    """The identifier columns of every table in `schema` (an agency-zone connection), one frame, with the table
    each row came from (`__table`) and its `extract_month` where the table has one (else null); `where`
    ("schema.table" -> SQL condition) reads only the tables it names, and only their rows that meet it."""
    tables = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name", [schema]
    ).fetchall()
    frames = []
    for (table,) in tables:
        cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [schema, table]).fetchall()}
        select = ", ".join(f'"{c}"' for c in IDENTIFIER_COLUMNS if c in cols)
        if not select or (where is not None and f"{schema}.{table}" not in where):
            continue
        condition = where[f"{schema}.{table}"] if where is not None else "TRUE"
        month = "CAST(extract_month AS VARCHAR)" if "extract_month" in cols else "CAST(NULL AS VARCHAR)"
        df = conn.sql(f'SELECT {select}, {month} AS extract_month FROM "{schema}"."{table}" WHERE {condition}').pl()
        if "source" not in df.columns:
            df = df.with_columns(source=pl.lit(table))
        if "date_of_birth" in df.columns:
            df = df.with_columns(nz.parse_date(pl.col("date_of_birth"), df.schema["date_of_birth"]))
        frames.append(df.with_columns(pl.exclude("date_of_birth").cast(pl.String),
                                      __table=pl.lit(f"{schema}.{table}")))
    if not frames:
        return pl.DataFrame(schema={"source": pl.String, "record_id": pl.String, "extract_month": pl.String,
                                    "__table": pl.String})
    return pl.concat(frames, how="diagonal_relaxed")


# --- scanning ----------------------------------------------------------------------------------------------------


class _Scanner:
    """Runs the token-join scan on one DuckDB connection with the identifier tables registered on it."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, ids: IdentifierSet, prefilter: bool = False,
                 token_index: list[pl.DataFrame] | None = None):
        self.conn = conn
        self.ids = ids
        # prefilter, for content already scanned clean against every identifier outside `ids` (an incremental
        # audit's old content against the new identifiers): match only the cells holding the key token
        # (`IdentifierSet.key_tokens`) of a phrase other than a date of birth, or a word saying "date of birth".
        # The leaks are those of a full
        # match: a date of birth is reported only in context or beside another identifier of that person, and
        # that identifier, clean before, must be one of `ids` (dates alone start with every day and year
        # number: they would make nearly every cell a candidate)
        self.prefilter = prefilter
        self.token_index = token_index  # when given, (loc, tok) of the values scanned are appended to it
        self.max_n = int(min(MAX_PHRASE_TOKENS, ids.starts["n"].max() or 1))
        self.max_single = ids.max_single_token_chars
        self._names = {"ids": "__leak_scan_ids", "starts": "__leak_scan_starts", "people": "__leak_scan_people",
                       "locs": "__leak_scan_locs", "values": "__leak_scan_values", "cells": "__leak_scan_cells",
                       "matches": "__leak_scan_matches", "pairs": "__leak_scan_pairs", "keys": "__leak_scan_keys"}

    def __enter__(self) -> _Scanner:
        _register_scan_form(self.conn)
        self.conn.register(self._names["ids"], self.ids.phrases)
        self.conn.register(self._names["starts"], self.ids.starts)
        if self.prefilter:
            self.conn.register(self._names["keys"], self.ids.key_tokens)
        self.conn.register(self._names["people"], self.ids.people.select("source", "record_id", "dob"))
        return self

    def __exit__(self, *exc: object) -> None:
        for key in ("ids", "starts", "people", "keys"):
            with contextlib.suppress(duckdb.Error):
                self.conn.unregister(self._names[key])

    def _matches_sql(self, cells_sql: str) -> str:
        """Matches (loc, cell_id, kind, phrase, dob, ctx) of the cells given by `cells_sql` (loc, cell_id, v)."""
        ids, starts, keys = self._names["ids"], self._names["starts"], self._names["keys"]
        ctx = "[" + ", ".join(f"'{w}'" for w in DOB_CONTEXT_WORDS if " " not in w) + "]"
        folded = f"SELECT loc, cell_id, {_fold_sql('v')} AS s FROM ({cells_sql})"
        ctx_words = "(" + ", ".join(f"'{w}'" for w in DOB_CONTEXT_WORDS if " " not in w) + ")"
        if self.prefilter:
            cells = f"""folded AS MATERIALIZED ({folded}),
        cand AS (SELECT DISTINCT loc, cell_id FROM (SELECT loc, cell_id, unnest(string_split(s, ' ')) AS tok
                                                    FROM folded)
                 WHERE tok IN (SELECT tok FROM {keys}) OR tok IN {ctx_words}),
        cells AS (SELECT f.* FROM folded f SEMI JOIN cand c ON f.loc = c.loc AND f.cell_id = c.cell_id)"""
        else:
            cells = f"cells AS ({folded})"
        return f"""
        WITH {cells},
        single AS (SELECT loc, cell_id, s AS phrase, false AS ctx FROM cells
                   WHERE s <> '' AND NOT contains(s, ' ')),
        split AS (SELECT loc, cell_id, string_split(s, ' ') AS t FROM cells WHERE contains(s, ' ')),
        toks AS (SELECT loc, cell_id, unnest(t) AS tok, generate_subscripts(t, 1) AS i FROM split),
        win AS (SELECT loc, cell_id, tok,
                list(tok) OVER (PARTITION BY loc, cell_id ORDER BY i
                                ROWS BETWEEN CURRENT ROW AND {self.max_n - 1} FOLLOWING) AS nxt,
                list(tok) OVER (PARTITION BY loc, cell_id ORDER BY i ROWS BETWEEN 3 PRECEDING AND 1 PRECEDING) AS prv
                FROM toks),
        grams AS (SELECT loc, cell_id, array_to_string(nxt[1:st.n], ' ') AS phrase,
                         coalesce(list_has_any(prv, {ctx}), false) AS ctx
                  FROM win JOIN {starts} st ON win.tok = st.tok WHERE len(nxt) >= st.n
                  UNION ALL SELECT * FROM single)
        SELECT g.loc, g.cell_id, i.kind, i.phrase, i.dob, g.ctx FROM grams g JOIN {ids} i USING (phrase)
        """

    def scan_cells(self, cells_sql: str, how_value: str = "value") -> list[Leak]:
        """Leaks in the cells of `cells_sql` (columns loc, cell_id, v): values, and dates of birth in context."""
        return self._leaks(self._matches_sql(cells_sql), how_value)

    def scan_columns(self, columns: list[tuple[str, str]]) -> list[Leak]:
        """Leaks in many columns at once, given as (loc, SQL of its distinct values `v`): the same result as
        scan_cells per column (a cell is a distinct value of a column), but each distinct value of the whole
        database is tokenised and matched once and its matches attributed to every column holding it (ids
        such as record_id are repeated in many tables)."""
        union = " UNION ALL ".join(f"SELECT {i} AS loc_id, v FROM ({sql})" for i, (_, sql) in enumerate(columns))
        return self.scan_pairs([loc for loc, _ in columns], union) if columns else []

    def scan_pairs(self, locs: list[str], pairs_sql: str) -> list[Leak]:
        """Leaks in the distinct (loc_id, v) pairs of `pairs_sql` (loc_id: an index into `locs`), gathered once
        into a temporary table; each distinct value matched once, as in `scan_columns`."""
        if not locs:
            return []
        names = self._names
        frame = pl.DataFrame({"loc_id": range(len(locs)), "loc": locs}, schema={"loc_id": pl.Int64, "loc": pl.String})
        self.conn.register(names["locs"], frame)
        try:
            self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {names['pairs']} AS {pairs_sql}")
            self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {names['values']} AS "
                              f"SELECT row_number() OVER () AS vid, v FROM (SELECT DISTINCT v FROM {names['pairs']})")
            self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {names['cells']} AS SELECT DISTINCT c.loc_id, u.vid "
                              f"FROM {names['pairs']} c JOIN {names['values']} u USING (v)")
            self.conn.execute(f"DROP TABLE {names['pairs']}")
            if self.token_index is not None:
                self.token_index.append(self.conn.execute(f"""
                    SELECT DISTINCT l.loc, hash(t.tok) AS tok
                    FROM (SELECT vid, unnest(string_split({_fold_sql('v')}, ' ')) AS tok FROM {names['values']}) t
                    JOIN {names['cells']} c USING (vid) JOIN {names['locs']} l USING (loc_id)
                    WHERE t.tok <> ''""").pl())
            by_value = self._matches_sql(f"SELECT 0 AS loc, vid AS cell_id, v FROM {names['values']}")
            self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {names['matches']} AS {by_value}")
            matches = (f"SELECT l.loc, c.vid AS cell_id, m.kind, m.phrase, m.dob, m.ctx FROM {names['matches']} m "
                       f"JOIN {names['cells']} c ON c.vid = m.cell_id JOIN {names['locs']} l USING (loc_id)")
            return self._leaks(matches, "value")
        finally:
            for table in ("pairs", "values", "cells", "matches"):
                self.conn.execute(f"DROP TABLE IF EXISTS {names[table]}")
            with contextlib.suppress(duckdb.Error):
                self.conn.unregister(names["locs"])

    def _leaks(self, matches: str, how_value: str) -> list[Leak]:
        rows = self.conn.execute(f"""
            WITH m AS ({matches}),
            other AS (SELECT DISTINCT loc, cell_id FROM m WHERE kind <> 'date_of_birth')
            SELECT loc, kind, count(DISTINCT cell_id) FILTER (WHERE kind <> 'date_of_birth') AS n_value,
                   count(DISTINCT cell_id) FILTER (WHERE kind = 'date_of_birth' AND ctx) AS n_ctx,
                   count(DISTINCT cell_id) FILTER (WHERE kind = 'date_of_birth' AND NOT ctx
                       AND (loc, cell_id) IN (SELECT (loc, cell_id) FROM other)) AS n_pair
            FROM m GROUP BY loc, kind ORDER BY loc, kind""").fetchall()
        leaks: list[Leak] = []
        pair_locs: list[str] = []
        for loc, kind, n_value, n_ctx, n_pair in rows:
            if kind != "date_of_birth" and n_value:
                leaks.append(Leak(loc, kind, n_value, how_value))
            if kind == "date_of_birth" and n_ctx:
                leaks.append(Leak(loc, kind, n_ctx, "dob in context"))
            if kind == "date_of_birth" and n_pair:
                pair_locs.append(loc)
        if pair_locs:
            leaks += self._dob_pairs(matches, pair_locs)
        return leaks

    def _dob_pairs(self, matches: str, locs: list[str]) -> list[Leak]:
        """Dates of birth in the same cell as another identifier of a person born that day."""
        found = self.conn.execute(f"""
            WITH m AS ({matches}),
            d AS (SELECT DISTINCT loc, cell_id, dob FROM m WHERE kind = 'date_of_birth' AND loc IN ?),
            o AS (SELECT loc, cell_id, list(DISTINCT phrase) AS other FROM m WHERE kind <> 'date_of_birth'
                  GROUP BY loc, cell_id)
            SELECT d.loc, d.cell_id, d.dob, o.other FROM d JOIN o USING (loc, cell_id) LIMIT 100000""",
            [locs]).pl()
        if found.height == 0:
            return []
        people = self.ids.people.filter(pl.col("dob").is_in(found["dob"].unique().implode())).select("pid", "dob")
        own = self.ids.phrases_of(people["pid"])
        people = people.join(own.group_by("pid").agg("phrase"), on="pid", how="left").drop("pid")
        joined = (found.join(people, on="dob").filter(pl.col("phrase").is_not_null())
                  .filter(pl.col("phrase").list.set_intersection(pl.col("other")).list.len() > 0))
        counts = joined.group_by("loc").agg(pl.col("cell_id").n_unique().alias("n")).sort("loc")
        return [Leak(loc, "date_of_birth", int(n), "dob with other identifier") for loc, n in counts.iter_rows()]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def scan_duckdb(
    path_or_conn: str | Path | duckdb.DuckDBPyConnection,
    identifiers: IdentifierSet,
    *,
    schemas: Iterable[str] | None = None,
    aligned_dob_rate: float = 0.2,
    where: Mapping[str, str] | None = None,
    prefilter: bool = False,
    columns: Collection[str] | None = None,
    aligned: bool | pl.DataFrame = True,
    token_index: list[pl.DataFrame] | None = None,
) -> list[Leak]:
    """Leaks in every column of every table (and view) of a DuckDB database.

    A path is opened read-only. Identifier tables are registered on the connection (in memory, never written
    to the database) for the scan and unregistered after it. `where` ("schema.table" -> SQL condition on its
    rows) scans only the tables it names, and only their rows that meet the condition (an incremental audit:
    the new partitions); `prefilter` finds the same leaks faster when the identifier set is small (see
    `_Scanner`).
    `columns` ("schema.table.column") reads only those columns' values (the checks of dates of birth by column
    name still run on every table); `aligned=False` leaves out the row-aligned date-of-birth check, and a frame
    (source, record_id, dob) asks it about those records only; a `token_index` list gets the (loc, tok:
    DuckDB's hash) of every token of the values scanned appended.
    """
    own = not isinstance(path_or_conn, duckdb.DuckDBPyConnection)
    conn = duckdb.connect(str(path_or_conn), read_only=True) if own else path_or_conn
    try:
        if where is not None and not where or len(identifiers) == 0:
            return []
        with _Scanner(conn, identifiers, prefilter, token_index) as scanner:
            only = aligned if isinstance(aligned, pl.DataFrame) else None
            check = only is not None or aligned
            return _scan_database(conn, scanner, schemas, aligned_dob_rate if check else None, where,
                                  set(columns) if columns is not None else None, only)
    finally:
        if own:
            conn.close()


def scan_frame(frame: pl.DataFrame, identifiers: IdentifierSet, name: str = "frame") -> list[Leak]:
    """Leaks in every column of one in-memory frame (scanned as table `name` of a throwaway database)."""
    arrow = frame.to_arrow()  # noqa: F841 (read by DuckDB by name)
    with duckdb.connect() as conn:
        conn.execute(f"create table {_quote(name)} as select * from arrow")
        return scan_duckdb(conn, identifiers)


def table_columns(conn: duckdb.DuckDBPyConnection, schemas: Iterable[str] | None = None
                  ) -> dict[tuple[str, str, str], dict[str, str]]:
    """(catalog, schema, table) -> {column: upper-case type} of every table and view a scan looks at."""
    wanted = set(schemas) if schemas is not None else None
    columns = conn.execute("""
        SELECT c.table_catalog, c.table_schema, c.table_name, c.column_name, c.data_type
        FROM information_schema.columns c
        WHERE c.table_schema NOT IN ('information_schema', 'pg_catalog')
          AND c.table_catalog NOT IN ('system', 'temp')
          AND c.table_name NOT LIKE '__leak_scan_%'
        ORDER BY 1, 2, 3, c.ordinal_position""").fetchall()
    tables: dict[tuple[str, str, str], dict[str, str]] = {}
    for catalog, schema, table, column, dtype in columns:
        if wanted is not None and schema not in wanted:
            continue
        tables.setdefault((catalog, schema, table), {})[column] = dtype.upper()
    return tables


def table_fingerprints(conn: duckdb.DuckDBPyConnection, schemas: Iterable[str] | None = None,
                       row_hashes: list[pl.DataFrame] | None = None) -> dict[str, dict[str, str]]:
    """A content fingerprint per table (and view) and per partition: "schema.table" -> {extract_month: "rows:hash"}
    for a table with an `extract_month` column (null months under ""), {"*": "rows:hash"} for any other (the
    hash: an order-independent sum of DuckDB's row hashes). What changed since an earlier audit, without
    keeping any of the content. `row_hashes`, a list, gets (unit, h, rid) appended for each table: DuckDB's hash
    of every row (which rows an audit has scanned), from the same pass, and its `rowid` (null in a view, or in a
    table with a column of that name), by which the audit reads the new ones again."""
    out: dict[str, dict[str, str]] = {}
    based = {tuple(r) for r in conn.execute(
        "SELECT database_name, schema_name, table_name FROM duckdb_tables()").fetchall()} if row_hashes is not None \
        else set()
    for (catalog, schema, table), cols in table_columns(conn, schemas).items():
        fq = f"{_quote(catalog)}.{_quote(schema)}.{_quote(table)}"
        part = "coalesce(CAST(extract_month AS VARCHAR), '')" if "extract_month" in cols else "'*'"
        if row_hashes is None:
            rows = conn.execute(f"SELECT {part} AS p, count(*), coalesce(sum(hash(t)), 0) FROM {fq} t GROUP BY 1"
                                ).fetchall()
        else:
            rid = "rowid" if (catalog, schema, table) in based and "rowid" not in map(str.lower, cols) else "NULL"
            hashes = conn.execute(f"SELECT {part} AS p, hash(t) AS h, CAST({rid} AS BIGINT) AS rid FROM {fq} t").pl()
            row_hashes.append(hashes.select(unit=pl.lit(f"{schema}.{table}"), h=pl.col("h").cast(pl.UInt64),
                                            rid=pl.col("rid").cast(pl.Int64)))
            rows = _hash_sums(hashes)
        out[f"{schema}.{table}"] = {p: f"{n}:{int(h) & 0xFFFFFFFFFFFFFFFF:016x}" for p, n, h in rows}
    return out


def _hash_sums(hashes: pl.DataFrame) -> list[tuple[str, int, int]]:
    """(p, rows, sum of h) per p, as DuckDB's `sum(hash(t))` gives it modulo 2^64 (summed in two halves:
    polars would overflow a sum of unsigned 64-bit values)."""
    sums = hashes.group_by("p").agg(n=pl.len(), hi=(pl.col("h") // 2**32).sum(), lo=(pl.col("h") % 2**32).sum())
    return [(p, n, (int(hi) << 32) + int(lo)) for p, n, hi, lo in sums.iter_rows()]


def partition_condition(parts: Iterable[str]) -> str:
    """The SQL condition selecting the rows of these partitions (keys as `table_fingerprints` gives them)."""
    parts = sorted(set(parts))
    if "*" in parts:
        return "TRUE"
    months = [p for p in parts if p]
    conds = [f"CAST(extract_month AS VARCHAR) IN ({', '.join(_sql_str(m) for m in months)})"] if months else []
    if "" in parts:
        conds.append("extract_month IS NULL")
    return " OR ".join(conds) or "FALSE"


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _scan_database(conn: duckdb.DuckDBPyConnection, scanner: _Scanner, schemas: Iterable[str] | None,
                   aligned_dob_rate: float | None, where: Mapping[str, str] | None = None,
                   columns: set[str] | None = None, aligned_people: pl.DataFrame | None = None) -> list[Leak]:
    selected: list[str] = []  # temporary tables of the rows a condition selects, read once (warehouse rows only)
    try:
        return _scan_tables(conn, scanner, schemas, aligned_dob_rate, where, selected, columns, aligned_people)
    finally:
        for name in selected:
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def _scan_tables(conn: duckdb.DuckDBPyConnection, scanner: _Scanner, schemas: Iterable[str] | None,
                 aligned_dob_rate: float | None, where: Mapping[str, str] | None, selected: list[str],
                 columns: set[str] | None, aligned_people: pl.DataFrame | None = None) -> list[Leak]:
    tables = table_columns(conn, schemas)
    leaks: list[Leak] = []
    locs: list[str] = []  # the columns scanned, and per table the SQL of its distinct (loc_id, value) pairs
    pairs: list[str] = []
    keyed: list[tuple[str, str, str, dict[str, str]]] = []  # tables keyed by source and record_id
    keep = f"length(v) <= {scanner.max_single} OR regexp_matches(v, '[^A-Za-z0-9]')"
    for (catalog, schema, table), cols in tables.items():
        fq = f"{_quote(catalog)}.{_quote(schema)}.{_quote(table)}"
        if where is not None:
            if f"{schema}.{table}" not in where:
                continue
            if columns is not None and aligned_dob_rate is None and not any(
                    f"{schema}.{table}.{c}" in columns or _DOB_COLUMN_RE.search(c) for c in cols):
                continue  # nothing of it to read
            condition = where[f"{schema}.{table}"]
            if condition.strip().upper() != "TRUE":  # the condition may name the row as `__t` (hash(__t))
                selected.append(f"__leak_scan_selected_{len(selected)}")
                conn.execute(f"CREATE TEMP TABLE {selected[-1]} AS SELECT * FROM {fq} AS __t WHERE {condition}")
                fq = selected[-1]
        plain: list[str] = []  # struct_pack(loc_id, v) of each scalar column: the table is read once for them all
        for column, dtype in cols.items():
            loc = f"{schema}.{table}.{column}"
            qc = _quote(column)
            text_like = dtype.startswith(("VARCHAR", "JSON", "CHAR", "TEXT")) or dtype.endswith("[]") or \
                dtype.startswith(("STRUCT", "MAP", "UNION", "ENUM"))
            integer = dtype in {"BIGINT", "HUGEINT", "UBIGINT", "INTEGER", "UINTEGER", "DECIMAL"} or \
                dtype.startswith("DECIMAL")
            # an identifier kept as a number in floating point (an NHS number or UPRN read as DOUBLE) is whole
            # and long; a risk, a rate or a weight is not, and stays unread (floats are many distinct values)
            floating = dtype in {"DOUBLE", "FLOAT", "REAL"}
            # bytes: text kept as bytes is read; the pipeline's own Bloom filters (random bytes) are not
            blob = dtype == "BLOB" and column not in BLOOM_COLUMNS
            # a list's elements are cells of their own: a name never spans two of them (["ward", "summer_born"]
            # is not "Ward Summer")
            if (text_like or integer or floating or blob) and (columns is None or loc in columns):
                locs.append(loc)
                if dtype.endswith("[]"):
                    pairs.append(f"SELECT DISTINCT {len(locs) - 1} AS loc_id, CAST(e AS VARCHAR) AS v FROM "
                                 f"(SELECT unnest({qc}) AS e FROM {fq}) WHERE e IS NOT NULL")
                elif floating:
                    plain.append(f"struct_pack(loc_id := {len(locs) - 1}, v := CASE WHEN isfinite({qc}) AND "
                                 f"{qc} = trunc({qc}) AND abs({qc}) >= 100000 THEN "
                                 f"CAST(CAST({qc} AS HUGEINT) AS VARCHAR) END)")
                elif blob:  # bytes that are ASCII text (DuckDB writes any other byte as an escape, \xNN)
                    plain.append(f"struct_pack(loc_id := {len(locs) - 1}, v := CASE WHEN NOT contains("
                                 f"CAST({qc} AS VARCHAR), '\\x') THEN CAST({qc} AS VARCHAR) END)")
                else:
                    plain.append(f"struct_pack(loc_id := {len(locs) - 1}, v := CAST({qc} AS VARCHAR))")
            if dtype in {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"} and _DOB_COLUMN_RE.search(column):
                n = conn.execute(f"SELECT count(*) FROM {fq} WHERE CAST({qc} AS DATE) IN (SELECT dob FROM "
                                 f"{scanner._names['people']})").fetchone()[0]
                if n:
                    leaks.append(Leak(loc, "date_of_birth", int(n), "dob-named column"))
        if plain:
            pairs.append(f"SELECT DISTINCT loc_id, v FROM (SELECT unnest([{', '.join(plain)}], recursive := true) "
                         f"FROM {fq}) WHERE v IS NOT NULL")
        if "source" in cols and "record_id" in cols and aligned_dob_rate is not None:
            keyed.append((fq, schema, table, cols))
    leaks += _aligned_dobs_of_tables(conn, scanner, keyed, set(selected), aligned_dob_rate, aligned_people)
    union = " UNION ALL ".join(f"SELECT loc_id, v FROM ({sql}) WHERE {keep}" for sql in pairs)
    return scanner.scan_pairs(locs, union) + leaks


def _aligned_dobs_of_tables(conn: duckdb.DuckDBPyConnection, scanner: _Scanner,
                            keyed: list[tuple[str, str, str, dict[str, str]]], selected: set[str], rate: float,
                            only: pl.DataFrame | None = None) -> list[Leak]:
    """`_aligned_dobs` of each table keyed by source and record_id. The selected rows (an incremental audit's
    new rows) are checked against only the people whose records they name: joining a few rows against every
    person, table after table, would cost the reading of every person each time. `only` (source, record_id,
    dob): every table is checked against those records alone, its rows read by their keys (`_key_filter`)."""
    leaks: list[Leak] = []
    few = [k for k in keyed if k[0] in selected]
    name, named_people, keys = "__leak_scan_people_named", None, None
    if only is not None:
        named_people = only.select(pl.col("source").cast(pl.String), pl.col("record_id").cast(pl.String),
                                   pl.col("dob").cast(pl.Date))
        keys = _key_filter(named_people)
    elif few:
        named = pl.concat([conn.execute(f"SELECT DISTINCT CAST(source AS VARCHAR) AS source, "
                                        f"CAST(record_id AS VARCHAR) AS record_id FROM {fq}").pl()
                           for fq, *_ in few]).unique()
        named_people = scanner.ids.people.select("source", "record_id", "dob").join(
            named, on=["source", "record_id"], how="semi")
    with registered(conn, name, named_people):
        for fq, schema, table, cols in keyed:
            people = name if only is not None or fq in selected else scanner._names["people"]
            leaks += _aligned_dobs(conn, scanner, fq, schema, table, cols, rate, people,
                                   keys if only is not None else None)
    return leaks


MAX_KEY_LITERALS = 1000  # records whose keys `_key_filter` writes into the query as constants


def _key_filter(people: pl.DataFrame) -> str | None:
    """A condition on a keyed table's rows (`t`) that every row naming one of `people` (source, record_id) meets:
    their sources and record ids as constants, which DuckDB tests as it reads the record_id column, reading the
    other columns only for the rows that pass. A month's audit asks about the few re-sent records with another
    date of birth in every keyed table; joining each whole table (every date and text column) against them was
    0.9 s of it at 500k residents, this 0.1 s. None (no condition) for no records, or more than
    MAX_KEY_LITERALS."""
    keys = people.select("source", "record_id").drop_nulls().unique()
    if not 0 < keys.height <= MAX_KEY_LITERALS:
        return None
    ids = ", ".join(_sql_str(v) for v in sorted(keys["record_id"].unique()))
    sources = ", ".join(_sql_str(v) for v in sorted(keys["source"].unique()))
    return f"CAST(t.record_id AS VARCHAR) IN ({ids}) AND CAST(t.source AS VARCHAR) IN ({sources})"


@contextlib.contextmanager
def registered(conn: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame | None):
    """`frame` readable by name on `conn` (in memory, never written to its database) for the block; nothing
    when it is None."""
    if frame is None:
        yield
        return
    conn.register(name, frame)
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            conn.unregister(name)


def _aligned_dobs(conn: duckdb.DuckDBPyConnection, scanner: _Scanner, fq: str, schema: str, table: str,
                  cols: dict[str, str], rate: float, people: str, keys: str | None = None) -> list[Leak]:
    """Columns that equal the row's own record's date of birth (rows keyed by source and record_id; `people`:
    the registered (source, record_id, dob) to look them up in; `keys`: a condition every row of those people
    meets, `_key_filter`'s)."""
    leaks: list[Leak] = []
    dated = [c for c, t in cols.items() if c not in ("source", "record_id") and (
        t in {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"} or t.startswith("VARCHAR"))]
    if not dated:
        return leaks
    # the rows that are some person's record, read once (a view is computed once, not once per column)
    rows = "__leak_scan_rows"
    keep = ", ".join(_quote(c) for c in ("source", "record_id", *dated))
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {rows} AS SELECT {keep} FROM {fq} t WHERE EXISTS (SELECT 1 FROM "
                 f"{people} p WHERE CAST(t.source AS VARCHAR) = p.source "
                 f"AND CAST(t.record_id AS VARCHAR) = p.record_id)" + (f" AND {keys}" if keys else ""))
    try:
        if conn.execute(f"SELECT count(*) FROM {rows}").fetchone()[0]:  # none: e.g. old rows, new people
            leaks += _aligned_columns(conn, scanner, rows, schema, table, {c: cols[c] for c in dated}, rate,
                                      people)
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {rows}")
    return leaks


DATE_LIKE_SAMPLE = 100_000  # a text column is checked for dates of birth if one of this many values looks like a date


def _aligned_columns(conn: duckdb.DuckDBPyConnection, scanner: _Scanner, fq: str, schema: str, table: str,
                     cols: dict[str, str], rate: float, people: str) -> list[Leak]:
    """`_aligned_dobs`' check of each column of `fq` (the rows that are some person's record), in one query for
    them all: a month's audit checks a few new rows of each of some thirty tables, and one query per column (two
    for a text column) was most of it."""
    ids = scanner._names["ids"]
    dates = [c for c, t in cols.items() if t in {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"}]
    texts = _date_like_columns(conn, fq, [c for c, t in cols.items() if t.startswith("VARCHAR")])
    hits = {c: f"CAST(t.{_quote(c)} AS DATE) = p.dob" if c in dates else
            f"EXISTS (SELECT 1 FROM {ids} i WHERE i.dob = p.dob AND i.phrase = {_fold_sql(f't.{_quote(c)}')})"
            for c in cols if c in dates or c in texts}
    if not hits:
        return []
    counts = ", ".join(f"count(t.{_quote(c)}), count(*) FILTER (WHERE t.{_quote(c)} IS NOT NULL AND {hit})"
                       for c, hit in hits.items())
    row = conn.execute(f"""
        SELECT {counts}
        FROM {fq} t JOIN {people} p ON CAST(t.source AS VARCHAR) = p.source
                                  AND CAST(t.record_id AS VARCHAR) = p.record_id""").fetchone()
    leaks: list[Leak] = []
    for i, column in enumerate(hits):
        total, n = row[2 * i], row[2 * i + 1]
        if n and n >= rate * total:
            leaks.append(Leak(f"{schema}.{table}.{column}", "date_of_birth", int(n), "row-aligned"))
    return leaks


def _date_like_columns(conn: duckdb.DuckDBPyConnection, fq: str, columns: list[str]) -> set[str]:
    """The text `columns` of `fq` of which one of DATE_LIKE_SAMPLE non-null values looks like a date: all of them
    in one pass when `fq` holds no more rows than that (its values are then the whole sample), else per column."""
    if not columns:
        return set()

    def looks(value: str) -> str:
        return f"regexp_matches({value}, '{_DATE_LIKE_SQL}')"

    if conn.execute(f"SELECT count(*) FROM {fq}").fetchone()[0] <= DATE_LIKE_SAMPLE:
        flags = conn.execute("SELECT " + ", ".join(f"coalesce(bool_or({looks(_quote(c))}), false)" for c in columns)
                             + f" FROM {fq}").fetchone()
        return {c for c, flag in zip(columns, flags, strict=True) if flag}
    return {c for c in columns if conn.execute(
        f"SELECT count(*) FROM (SELECT {_quote(c)} AS v FROM {fq} WHERE {_quote(c)} IS NOT NULL LIMIT "
        f"{DATE_LIKE_SAMPLE}) WHERE {looks('v')}").fetchone()[0]}


def _prepare_text(text: str) -> str:
    """JSON \\uXXXX escapes decoded ("Zo\\u00eb" is "Zoë"), escaped line breaks and control characters made
    spaces, base64 data URIs replaced by what they carry, NUL characters (binary files) made spaces."""
    if "\\u" in text:
        text = _JSON_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    if "\\" in text:
        text = _SEPARATOR_ESCAPE_RE.sub(" ", text)
    if "base64," in text:
        text = _DATA_URI_RE.sub(lambda m: f" {_data_uri_text(m.group(1), m.group(2))} ", text)
    return text.replace("\x00", " ")


def _data_uri_text(mime: str, payload: str) -> str:
    """The text inside an embedded file (a chart in Dagster metadata): an image's text chunks, other bytes as text.
    Scanning the base64 letters themselves would only find names by chance ("...+Fliz/...")."""
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return payload
    if mime.startswith("image/"):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                return "\n".join(f"{k} {v}" for k, v in image.info.items() if isinstance(v, str))
        except (UnidentifiedImageError, OSError):
            pass
    return data.decode("utf-8", errors="replace")


def scan_texts(texts: Iterable[tuple[str, str]], identifiers: IdentifierSet, prefilter: bool = False) -> list[Leak]:
    """Leaks in text blobs given as (location, text): Dagster metadata, MLflow params and tags, JSON."""
    rows = [(loc, i, _prepare_text(text)) for i, (loc, text) in enumerate(texts) if text]
    if rows and prefilter and len(identifiers):
        rows = _candidate_texts(rows, identifiers)
    if not rows or len(identifiers) == 0:
        return []
    frame = pl.DataFrame(rows, schema={"loc": pl.String, "cell_id": pl.Int64, "v": pl.String}, orient="row")
    conn = duckdb.connect()
    try:
        conn.register("__leak_scan_texts", frame)
        with _Scanner(conn, identifiers, prefilter) as scanner:
            return scanner.scan_cells("SELECT loc, cell_id, v FROM __leak_scan_texts")
    finally:
        conn.close()


_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_DIGIT_T_DIGIT_SQL = re.compile(r"([0-9])t([0-9])")  # as `_fold_sql`: non-overlapping, left to right
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def _candidate_texts(rows: list[tuple[str, int, str]], ids: IdentifierSet) -> list[tuple[str, int, str]]:
    """The texts the prefiltered match could find anything in, chosen in Python, cheaply (see `_Scanner`): those
    holding every token of some phrase other than a date of birth, or one of `ids`' dates of birth within three
    tokens after a date-of-birth word. The scan form is made as `scan_form` makes it (accents stripped by NFD,
    marks dropped, `normalise`'s letters folded); a text still holding a letter or digit outside ASCII (another
    script, which `scan_form` transliterates) is kept for the exact match."""
    by_token: dict[str, list[frozenset[str]]] = {}
    for toks in ids.phrases.filter(pl.col("kind") != "date_of_birth")["phrase"].str.split(" ").to_list():
        need = frozenset(toks)
        by_token.setdefault(max(need, key=len), []).append(need)
    dobs = {tuple(p.split(" ")) for p in ids.phrases.filter(pl.col("kind") == "date_of_birth")["phrase"]}
    lengths = sorted({len(d) for d in dobs})
    kept = []
    for row in rows:
        toks = _scan_tokens(row[2])
        if toks is None:
            kept.append(row)
            continue
        present = set(toks)
        if any(need <= present for tok in present & by_token.keys() for need in by_token[tok]):
            kept.append(row)
            continue
        if present & _CONTEXT and any(tuple(toks[j:j + n]) in dobs for i, tok in enumerate(toks) if tok in _CONTEXT
                                      for j in range(i + 1, i + 4) for n in lengths):
            kept.append(row)
    return kept


_CONTEXT = frozenset(w for w in DOB_CONTEXT_WORDS if " " not in w)
_FOLD = str.maketrans(dict(zip(nz._FOLD_FROM, nz._FOLD_TO, strict=True)))


def _scan_tokens(prepared: str) -> list[str] | None:
    """A prepared text's tokens in scan form, as `_candidate_texts` reads them; None for a text still holding a
    letter or digit outside ASCII once folded (kept for the exact match, whatever the identifiers)."""
    text = prepared.lower()
    if not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFD", text)).translate(_FOLD)
        if any(unicodedata.category(c)[0] in "LN" for c in set(_NON_ASCII.findall(text))):
            return None
    return _DIGIT_T_DIGIT_SQL.sub(r"\1 \2", _NON_ALNUM.sub(" ", text).strip()).split(" ")


# --- what a text holds, for the audit's index of the texts it scanned -------------------------------------------
TEXT_DOB_TOKENS = 4  # dates of birth of up to this many tokens are indexed after a date-of-birth word
TEXT_ALWAYS = "\x00always"  # the index entry of a text `_candidate_texts` keeps whatever the identifiers
TEXT_DOB = "\x00dob "  # prefixes a run of tokens one to three tokens after a date-of-birth word


def text_index_entries(texts: Iterable[str]) -> set[str]:
    """What the prefiltered scan could find in these texts, as strings: each token, each two tokens that follow
    one another ("a b": the scan matches a phrase as consecutive tokens of one text, so a phrase needs all of its
    pairs), each run of up to TEXT_DOB_TOKENS tokens starting one to three tokens after a date-of-birth word
    (prefixed TEXT_DOB), and TEXT_ALWAYS if one of them is always kept. Texts whose entries do not cover an
    identifier set (`text_entries_needed`) hold none of it as the prefiltered scan finds it."""
    out: set[str] = set()
    for text in texts:
        toks = _scan_tokens(_prepare_text(text)) if text else []
        if toks is None:
            out.add(TEXT_ALWAYS)
            continue
        out.update(toks)
        out.update(f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False))
        for i, tok in enumerate(toks):
            if tok in _CONTEXT:
                out.update(TEXT_DOB + " ".join(toks[j:j + n]) for j in range(i + 1, min(i + 4, len(toks)))
                           for n in range(1, TEXT_DOB_TOKENS + 1) if j + n <= len(toks))
    return out


def text_entries_needed(ids: IdentifierSet) -> tuple[list[list[str]], list[str]] | None:
    """For `ids`: each phrase other than a date of birth as the entries it needs all of (its token, or each pair of
    its tokens that follow one another: a name's two words anywhere in a run's events no longer make the run
    read again), and the date-of-birth entries of which any one will do (with TEXT_ALWAYS); None when a date of
    birth is longer than the index keeps (every text must then be read)."""
    dobs = ids.phrases.filter(pl.col("kind") == "date_of_birth")["phrase"].to_list()
    if any(len(d.split(" ")) > TEXT_DOB_TOKENS for d in dobs):
        return None
    phrases = [toks if len(toks) == 1 else [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)]
               for toks in ids.phrases.filter(pl.col("kind") != "date_of_birth")["phrase"].str.split(" ").to_list()]
    return phrases, [TEXT_ALWAYS, *(TEXT_DOB + d for d in dobs)]


Local = tuple[str | re.Pattern[str], ...]  # the deployment's own directories, and patterns of paths of its own


def scan_files(paths: Iterable[str | Path], identifiers: IdentifierSet, prefilter: bool = False,
               local: Local = ()) -> list[Leak]:
    """Leaks in files (directories are walked): DuckDB files are scanned table by table, Parquet files column by
    column, images by their embedded text (a PNG's pixels hold no text to find), CSV files field by field, and
    anything else line by line as text (binary files as Latin-1, so that ASCII runs inside them are seen), the
    `local` directories left out of it (`without_local`).
    Fields and lines are separate cells: a name never spans two of them, so none is made up across a boundary
    (the label "ward" before the value "Lee Chapel North" is not the name "Ward Lee")."""
    leaks: list[Leak] = []
    for path in _walk(paths):
        suffix = path.suffix.lower()
        if suffix in (".duckdb", ".ddb"):
            leaks += [Leak(f"{path}:{leak.location}", leak.kind, leak.count, leak.how)
                      for leak in scan_duckdb(path, identifiers, prefilter=prefilter)]
        elif suffix == ".parquet":
            conn = duckdb.connect()
            try:
                conn.execute(f"CREATE VIEW file AS SELECT * FROM read_parquet('{str(path).replace(chr(39), '')}')")
                leaks += [Leak(f"{path}:{leak.location.split('.', 2)[-1]}", leak.kind, leak.count, leak.how)
                          for leak in scan_duckdb(conn, identifiers, prefilter=prefilter)]
            finally:
                conn.close()
    return leaks + scan_texts(file_texts(paths, local), identifiers, prefilter)


TABLE_SUFFIXES = (".duckdb", ".ddb", ".parquet")  # files `scan_files` reads as tables, not as text
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def file_texts(paths: Iterable[str | Path], local: Local = ()) -> list[tuple[str, str]]:
    """(location, text) of the text cells of the files that are not tables, as `scan_files` reads them: an
    image's embedded text, a CSV file's fields, any other file's lines; the `local` directories left out."""
    texts: list[tuple[str, str]] = []
    for path in _walk(paths):
        suffix = path.suffix.lower()
        if suffix not in TABLE_SUFFIXES:
            cells = _image_texts(path) if suffix in IMAGE_SUFFIXES else _file_cells(path)
            texts += [(str(path), without_local(cell, local)) for cell in cells]
    return texts


LOCAL = "<local>"  # what a directory of the deployment's own is replaced by in the texts scanned


def without_local(text: str, local: Local) -> str:
    """`text` with each of the `local` directories (the deployment's own: its data directory, the project, the
    Python environment; longest first) and each match of its patterns (paths it had before) replaced by `LOCAL`.
    Events and MLflow's files name them ("file:///home/john/..."): configuration, not data, and at Essex scale
    some resident has any common first name or word, so a login or a folder would be found in every run and the
    blocking audit would stop every refresh."""
    for directory in local:
        text = directory.sub(LOCAL, text) if isinstance(directory, re.Pattern) else text.replace(directory, LOCAL)
    return text


def _image_texts(path: Path) -> list[str]:
    """The text an image carries (PNG tEXt/iTXt chunks, EXIF-like info), not its pixels."""
    from PIL import Image

    with Image.open(path) as image:
        return [f"{k} {v}" for k, v in image.info.items() if isinstance(v, str)]


def _file_cells(path: Path) -> list[str]:
    data = path.read_bytes()[:MAX_FILE_BYTES]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if path.suffix.lower() in (".csv", ".tsv"):
        dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
        return [field for row in csv.reader(io.StringIO(text), dialect) for field in row if field]
    return [line for line in text.splitlines() if line.strip()]


def _walk(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file())
        elif p.is_file():
            out.append(p)
    return out
