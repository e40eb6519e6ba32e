"""End to end through Dagster: landing files -> raw -> validated + quarantine, on a tiny world."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ed_pipeline.defs.automation import half_loaded_months, raw_writes
from ed_pipeline.defs.pseudonymised import pseudonymised_assets
from ed_pipeline.defs.raw import ingest_fingerprint, raw_assets
from ed_pipeline.defs.resources import all_resources, zone_resources
from ed_pipeline.defs.validated import validated_assets
from ed_pipeline.quality import rules, validation
from ed_pipeline.resilience import table_digests
from ed_pipeline.sources import SOURCES
from ed_pipeline_tests.conftest import release_held_back, run_cli


def test_definitions_load_with_every_layer_and_check():
    from ed_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    for source in SOURCES:
        assert {f"raw/{source.name}", f"validated/{source.name}", f"quarantine/{source.name}"} <= keys
    check_names = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert ("raw/housing", "extract_readable") in check_names
    assert ("validated/housing", "reconciled") in check_names


def test_loading_the_definitions_leaves_the_model_libraries_to_the_steps_that_use_them():
    """sklearn, LightGBM and MLflow (some 3 s of a 6.6 s load) are imported by the model and output steps, not by
    every process that loads the definitions (each refresh's ingest, the UI's code server, each run's worker)."""
    loaded = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import sys, ed_pipeline.definitions; "
         "print(' '.join(m for m in ('sklearn', 'lightgbm', 'mlflow', 'great_expectations') if m in sys.modules))"],
        capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split() == []


def reconciliation(path, source: str) -> tuple[int, int, int]:
    with duckdb.connect(str(path), read_only=True) as conn:
        raw = conn.execute(f"select count(*) from raw.{source}").fetchone()[0]
        passed = conn.execute(
            f"select count(distinct (_source_file, _row_number)) from validated.{source}").fetchone()[0]
        quarantined = conn.execute(f"select count(*) from quarantine.{source}").fetchone()[0]
    return raw, passed, quarantined


def landed_rows_in(path) -> int:
    """Data rows in a landing CSV, counted independently of the pipeline's reader."""
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def landed_rows(settings, source: str) -> int:
    return sum(landed_rows_in(path) for path in (settings.landing_dir / source).glob("*.csv"))


def test_refresh_loads_every_landed_row(refreshed_world):
    """Every landed row is in raw, and each is validated or quarantined (a --full refresh that changes nothing:
    test_a_refresh_ingests_only_the_months_new_or_changed_and_a_full_one_changes_nothing)."""
    landing = refreshed_world / "landing"
    assert sum(landed_rows_in(path) for path in landing.glob("*/*.csv")) > 500
    for source in SOURCES:
        raw, passed, quarantined = reconciliation(refreshed_world / "agency_zone.duckdb", source.name)
        assert raw == sum(landed_rows_in(path) for path in (landing / source.name).glob("*.csv")), \
            f"{source.name}: raw does not hold every landed row"
        assert raw == passed + quarantined, f"{source.name}: rows lost"


def test_a_refresh_from_scratch_dates_every_row_by_its_extract_month(refreshed_world):
    """Every month lands once: each row arrived with its own extract month, through to the features' arrived_on
    (the first day after it), exactly as before deliveries were told apart."""
    with duckdb.connect(str(refreshed_world / "warehouse.duckdb"), read_only=True) as conn:
        for source in SOURCES:
            rows, dated = conn.execute(f"select count(*), count(*) filter (_arrived_month = extract_month) "
                                       f"from pseudonymised.{source.name}").fetchone()
            staged, first_day_after = conn.execute(
                f"select count(*), count(*) filter (arrived_on = cast(extract_month || '-01' as date) "
                f"+ interval 1 month) from staging.stg_{source.name}").fetchone()
            assert rows == dated > 0 and staged == first_day_after > 0, source.name


def raw_reads(settings) -> dict[str, dict[str, int]]:
    """{source: {month: storage id of raw's latest write of it}} in the data directory's Dagster instance."""
    with dg.DagsterInstance.from_config(str(settings.data_dir / "dagster")) as instance:
        return raw_writes(instance)


def test_a_refresh_ingests_only_the_months_new_or_changed_and_a_full_one_changes_nothing(refreshed_copy):
    """`ed-pipeline refresh` again ingests nothing: every source is up to date. Then a month lands and an earlier
    housing file is sent again corrected (a row withdrawn): those months alone are ingested, and the agency zone
    and the warehouse's pseudonymised tables are then what loading every month again (`--full`) makes of them,
    a --full run over which a housing file has gone (its month is kept and named) and files named for months the
    partitions do not have have landed (left out and said, stopping nothing)."""
    settings = refreshed_copy
    before = raw_reads(settings)
    again = run_cli("refresh", "--only", "ingest", data_dir=settings.data_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(f"ok {source.name}: up to date" in again.stderr for source in SOURCES), again.stderr[-3000:]
    assert raw_reads(settings) == before, "a month loaded as it is was ingested again"

    new_month = release_held_back(settings)[0].stem
    corrected_month = settings.landed_months("housing")[3]
    corrected = settings.landing_file("housing", corrected_month)
    lines = corrected.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) > 2, "the corrected file needs a row to withdraw"
    corrected.write_text("".join(lines[:-1]), encoding="utf-8")
    dry = run_cli("refresh", "--dry-run", data_dir=settings.data_dir)
    assert dry.returncode == 0, dry.stderr[-3000:]
    housing = next(line for line in dry.stdout.splitlines() if "housing" in line)
    assert corrected_month in housing and new_month in housing and "1 replaced, 1 new" in housing, dry.stdout
    assert raw_reads(settings) == before, "a dry run ingested"
    result = run_cli("refresh", "--only", "ingest", data_dir=settings.data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    after = raw_reads(settings)
    ingested = {(source, month) for source, months in after.items() for month, storage_id in months.items()
                if storage_id != before.get(source, {}).get(month)}
    expected = {(s.name, new_month) for s in SOURCES if settings.landing_file(s.name, new_month).exists()}
    assert ingested == expected | {("housing", corrected_month)}
    assert "ok housing (2 months: 1 replaced, 1 new;" in result.stderr, result.stderr[-3000:]
    assert f"ok benefits ({new_month}: new;" in result.stderr, result.stderr[-3000:]

    def tables() -> dict:  # the whole agency zone, and the warehouse's layers the ingest writes
        return {settings.agency_zone_path: table_digests(settings.agency_zone_path),
                settings.warehouse_path: table_digests(settings.warehouse_path, ("pseudonymised",))}

    incremental = tables()
    assert incremental[settings.agency_zone_path]["raw.housing"][0] == landed_rows(settings, "housing")
    months = settings.landed_months("housing")
    gone = months[len(months) // 2]
    assert gone not in (corrected_month, new_month)
    settings.landing_file("housing", gone).unlink()
    for source, month in (("housing", "2012-12"), ("benefits", "2062-11")):
        shutil.copy(corrected, settings.landing_file(source, month))
    full = run_cli("refresh", "--only", "ingest", "--full", data_dir=settings.data_dir)
    assert full.returncode == 0, full.stderr[-3000:]
    assert "7/7 steps succeeded" in full.stderr, full.stderr[-3000:]
    assert "left out" in full.stderr and "benefits/2062-11.csv" in full.stderr, full.stderr[-3000:]
    assert f"housing: no file in landing/ for {gone}: kept as loaded before" in full.stderr, full.stderr[-3000:]
    assert tables() == incremental, "loading every month again changed the tables"


def test_a_refresh_ingests_again_what_other_ingest_code_or_a_dropped_table_left(refreshed_copy):
    """Months loaded by other ingest code (`ingest_fingerprint`: the registry, the reading, validation and
    pseudonymisation rules), and every month of a source whose pseudonymised table was dropped (a new key,
    docs/privacy.md), are ingested again; the rest stay as they are."""
    from ed_pipeline.refresh import OTHER_CODE, TABLE_MISSING, ingest_ranges, months_to_ingest

    settings = refreshed_copy
    every = ingest_ranges(settings, settings.landed_months())
    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME of the refreshed copy
        assert months_to_ingest(instance, settings, every) == {source.name: {} for source in SOURCES}
        with duckdb.connect(str(settings.warehouse_path)) as conn:
            conn.execute("drop table pseudonymised.benefits")
        dropped = dict.fromkeys(every["benefits"], TABLE_MISSING)
        assert months_to_ingest(instance, settings, every) == {
            source.name: dropped if source.name == "benefits" else {} for source in SOURCES}

        ingest_fingerprint.cache_clear()
        try:
            with pytest.MonkeyPatch.context() as patch:  # the code of validation changed
                patch.setattr(validation, "__file__", str(Path(rules.__file__)))
                assert months_to_ingest(instance, settings, every) == {
                    source.name: dropped if source.name == "benefits" else
                    dict.fromkeys(settings.landed_months(source.name), OTHER_CODE) for source in SOURCES}
        finally:
            ingest_fingerprint.cache_clear()


def test_broken_file_stops_only_its_own_source(refreshed_copy):
    """A new month lands with housing's file broken: the sources whose files landed are ingested in one run, as
    the landing sensor's; the others take the month, housing does not."""
    from ed_pipeline.refresh import RANGE_START_TAG, TRIGGER_TAG

    settings = refreshed_copy
    new_month = release_held_back(settings)[0].stem
    landed = {source.name for source in SOURCES if settings.landing_file(source.name, new_month).exists()}
    assert "housing" in landed and len(landed) > 2
    settings.landing_file("housing", new_month).write_bytes(b"")
    with dg.DagsterInstance.from_config(str(settings.data_dir / "dagster")) as instance:
        runs_before = {run.run_id for run in instance.get_runs()}
    result = run_cli("refresh", "--only", "ingest", data_dir=settings.data_dir)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "FAILED housing" in result.stderr and "extract_readable" in result.stderr, result.stderr[-3000:]
    assert "6/7 steps succeeded" in result.stderr, result.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(settings.data_dir / "dagster")) as instance:
        [run] = [run for run in instance.get_runs() if run.run_id not in runs_before]
    assert run.job_name == "ingest" and run.tags[TRIGGER_TAG] == "refresh" and run.tags[RANGE_START_TAG] == new_month
    assert {key.path[1] for key in run.asset_selection} == landed
    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as conn:
        for source in SOURCES:
            months = {m for (m,) in conn.execute(
                f"select distinct extract_month from validated.{source.name}").fetchall()}
            landed = settings.landing_file(source.name, new_month).exists()
            if source.name == "housing":
                assert new_month not in months, "a blocked source must not validate the broken month"
            elif landed and landed_rows_in(settings.landing_file(source.name, new_month)):
                assert new_month in months, f"{source.name} should carry on"


def test_sources_sent_the_same_months_share_a_run_and_an_unreadable_file_holds_back_only_its_own(refreshed_copy):
    """Housing and benefits re-send three months (their files touched), benefits' middle one unreadable: the two
    are ingested in one run over the three months, where housing's go through and benefits' stop at its blocking
    check; benefits' other two months are then run again, each alone, without the unreadable one, which keeps what
    was loaded. The other sources are up to date and run nothing."""
    from ed_pipeline.refresh import RANGE_END_TAG, RANGE_START_TAG

    settings = refreshed_copy
    months = settings.landed_months("benefits")[4:7]
    assert months == settings.landed_months("housing")[4:7]
    for source in ("housing", "benefits"):
        for month in months:
            path = settings.landing_file(source, month)
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # sent again as it was
    settings.landing_file("benefits", months[1]).write_bytes("ref,name\n\xff\xfe\n".encode("latin-1"))
    before, kept = raw_reads(settings), _raw_rows(settings, "benefits", months[1])
    with dg.DagsterInstance.from_config(str(settings.data_dir / "dagster")) as instance:
        runs_before = {run.run_id for run in instance.get_runs()}

    result = run_cli("refresh", "--only", "ingest", data_dir=settings.data_dir)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "FAILED benefits" in result.stderr and "raw/benefits:extract_readable" in result.stderr, \
        result.stderr[-3000:]
    assert f"benefits: unreadable file(s) for {months[1]} left out" in result.stderr, result.stderr[-3000:]
    assert "ok housing (3 months: 3 replaced;" in result.stderr, result.stderr[-3000:]
    assert "ok social_care: up to date" in result.stderr and "6/7 steps succeeded" in result.stderr

    with dg.DagsterInstance.from_config(str(settings.data_dir / "dagster")) as instance:
        runs = sorted((run for run in instance.get_runs() if run.run_id not in runs_before),
                      key=lambda run: instance.get_run_record_by_id(run.run_id).create_timestamp)
        # every layer of both sources written after raw: nothing left half loaded by the shared run
        assert half_loaded_months(instance, raw_writes(instance)) == {}
    assert [({key.path[1] for key in run.asset_selection}, run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG])
            for run in runs] == [({"housing", "benefits"}, months[0], months[2]),
                                 ({"benefits"}, months[0], months[0]), ({"benefits"}, months[2], months[2])]
    after = raw_reads(settings)
    rewritten = {(source, month) for source in ("housing", "benefits") for month in months
                 if after[source][month] != before[source][month]}
    assert rewritten == {(source, month) for source in ("housing", "benefits") for month in months} - {
        ("benefits", months[1])}
    assert after["social_care"] == before["social_care"]
    assert _raw_rows(settings, "benefits", months[1]) == kept > 0, "the unreadable month lost what was loaded"
    assert reconciliation(settings.agency_zone_path, "housing")[0] == landed_rows(settings, "housing")
    for source in ("housing", "benefits"):
        raw, passed, quarantined = reconciliation(settings.agency_zone_path, source)
        assert raw == passed + quarantined, f"{source}: rows lost between raw and validated"


def _raw_rows(settings, source: str, month: str) -> int:
    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as conn:
        return conn.execute(f"select count(*) from raw.{source} where extract_month = ?", [month]).fetchone()[0]


def test_an_unreadable_redelivery_keeps_the_month_as_it_was(world_copy):
    """A month loaded from a good file, then re-delivered unreadable (Excel's cp1252 instead of UTF-8): the blocking
    check fails and nothing is written, so the month's raw rows stay and still reconcile with its validated ones."""
    assets = [a for a in [*raw_assets, *validated_assets] if any("social_care" in k.path for k in a.keys)]
    resources = zone_resources(world_copy)
    assert dg.materialize(assets, partition_key="2017-06", resources=resources).success
    before = table_digests(world_copy.agency_zone_path)
    path = world_copy.landing_file("social_care", "2017-06")
    path.write_bytes(path.read_text(encoding="utf-8").replace("a", "\u00e9").encode("cp1252"))

    result = dg.materialize(assets, partition_key="2017-06", resources=resources, raise_on_error=False)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "extract_readable"]
    assert not check.passed and "UTF-8" in (check.description or "")
    assert not result.get_asset_materialization_events()
    assert table_digests(world_copy.agency_zone_path) == before
    raw, passed, quarantined = reconciliation(world_copy.agency_zone_path, "social_care")
    assert raw == passed + quarantined > 0


def test_a_month_whose_file_is_gone_keeps_its_rows_until_a_file_with_only_its_header_empties_it(world_copy):
    """A month loaded, then its file moved away (or deleted once loaded) and the month run again (a re-run, the
    monthly schedule): a missing file is not a withdrawal, so every layer keeps the month as it was, and the run
    says so. Only a file with its header and no rows empties the month."""
    assets = [a for a in [*raw_assets, *validated_assets, *pseudonymised_assets]
              if any("social_care" in k.path for k in a.keys)]
    resources = all_resources(world_copy)
    assert dg.materialize(assets, partition_key="2017-06", resources=resources).success
    before = {path: table_digests(path) for path in (world_copy.agency_zone_path, world_copy.warehouse_path)}
    assert before[world_copy.agency_zone_path]["raw.social_care"][0] > 0
    path = world_copy.landing_file("social_care", "2017-06")
    header = path.read_text(encoding="utf-8").splitlines()[0]
    path.unlink()

    result = dg.materialize(assets, partition_key="2017-06", resources=resources)
    assert {path: table_digests(path) for path in before} == before
    [raw] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["raw", "social_care"]]
    metadata = raw.materialization.metadata
    assert metadata["months_kept_without_file"].value == 1 and metadata["files_not_landed"].value == 0
    assert "2017-06.csv: file not there any more" in metadata["warnings"].value

    path.write_text(header + "\n", encoding="utf-8")
    assert dg.materialize(assets, partition_key="2017-06", resources=resources).success
    assert reconciliation(world_copy.agency_zone_path, "social_care") == (0, 0, 0)


def _landed(settings, source: str) -> list[tuple[str, int]]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        return conn.execute("select extract_month, records from pseudonymised.landed_extract where source = ? "
                            "order by 1", [source]).fetchall()


def test_a_month_delivered_with_its_header_alone_is_recorded_as_delivered(world_copy):
    """The warehouse records the months a source delivered, rows or none (the data window reads it): a month
    loaded, run again (one record still), then sent with its header alone (delivered, no records), then its file
    moved away (still delivered: a missing file is no withdrawal)."""
    assets = [a for a in [*raw_assets, *validated_assets, *pseudonymised_assets]
              if any("social_care" in k.path for k in a.keys)]
    resources = all_resources(world_copy)
    for _ in range(2):
        assert dg.materialize(assets, partition_key="2017-06", resources=resources).success
    with duckdb.connect(str(world_copy.warehouse_path), read_only=True) as conn:
        records = conn.execute("select count(*) from pseudonymised.social_care").fetchone()[0]
    assert records > 0 and _landed(world_copy, "social_care") == [("2017-06", records)]

    path = world_copy.landing_file("social_care", "2017-06")
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    assert dg.materialize(assets, partition_key="2017-06", resources=resources).success
    assert _landed(world_copy, "social_care") == [("2017-06", 0)]
    path.unlink()
    assert dg.materialize(assets, partition_key="2017-06", resources=resources).success
    assert _landed(world_copy, "social_care") == [("2017-06", 0)]


def test_a_failure_between_the_validated_and_quarantine_writes_leaves_both_as_they_were(world_copy, monkeypatch):
    """A month loaded, then re-delivered with fewer rows and a broken one; the step fails after writing validated,
    before committing quarantine (as a kill there would): neither table has changed, so they still agree."""
    assets = [a for a in [*raw_assets, *validated_assets] if any("social_care" in k.path for k in a.keys)]
    resources = zone_resources(world_copy)
    assert dg.materialize(assets, partition_key="2017-06", resources=resources).success
    before = _validation_tables(world_copy, "social_care")
    path = world_copy.landing_file("social_care", "2017-06")
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([header, *rows[: len(rows) // 2], "R-broken,too,few,fields"]) + "\n", encoding="utf-8")

    def fail_at_quarantine(point: str) -> None:
        if point == "commit:quarantine.social_care":
            raise dg.Failure(description="injected failure", allow_retries=False)

    monkeypatch.setattr("ed_pipeline.defs.resources.fault_point", fail_at_quarantine)
    result = dg.materialize(assets, partition_key="2017-06", resources=resources, raise_on_error=False)
    assert not result.success
    assert _validation_tables(world_copy, "social_care") == before


def _validation_tables(settings, source: str) -> dict[str, tuple[int, int]]:
    tables = table_digests(settings.agency_zone_path)
    return {name: tables[name] for name in (f"validated.{source}", f"quarantine.{source}")}


@pytest.mark.parametrize("source_name", ["benefits", "police_incidents"])
def test_rematerialising_a_partition_replaces_it(world_copy, source_name):
    assets = [a for a in [*raw_assets, *validated_assets] if any(source_name in k.path for k in a.keys)]
    resources = zone_resources(world_copy)
    for _ in range(2):
        result = dg.materialize(assets, partition_key="2017-06", resources=resources)
        assert result.success
    raw, passed, quarantined = reconciliation(world_copy.agency_zone_path, source_name)
    with duckdb.connect(str(world_copy.agency_zone_path), read_only=True) as conn:
        months = conn.execute(f"select distinct extract_month from raw.{source_name}").fetchall()
        duplicated = conn.execute(
            f"select count(*) from (select record_id from validated.{source_name} "
            "group by record_id, extract_month having count(*) > 1)").fetchone()[0]
    assert months == [("2017-06",)]
    assert raw == passed + quarantined > 0
    assert duplicated == 0


def _arrivals(path, schema: str, source: str, month: str) -> dict[str, str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return dict(conn.execute(f"select record_id, _arrived_month from {schema}.{source} "
                                 "where extract_month = ?", [month]).fetchall())


def test_a_month_first_delivered_after_a_later_one_is_dated_by_its_delivery(world_copy):
    """Housing's 2016-03 loaded only after 2016-04 (skipped, or unreadable, when it landed): its rows arrived with
    that delivery (2017-09: every month to 2017-08 has landed here), through validated to the warehouse, so the
    features at past prediction dates do not see them. 2016-04, the newest when it came, keeps its month."""
    source, late, later = "housing", "2016-03", "2016-04"
    assets = [a for a in [*raw_assets, *validated_assets, *pseudonymised_assets]
              if any(source in k.path for k in a.keys)]
    resources = all_resources(world_copy)
    assert dg.materialize(assets, partition_key=later, resources=resources).success
    assert dg.materialize(assets, partition_key=late, resources=resources).success
    for path, schema in ((world_copy.agency_zone_path, "validated"), (world_copy.warehouse_path, "pseudonymised")):
        arrivals = _arrivals(path, schema, source, late)
        assert arrivals and set(arrivals.values()) == {"2017-09"}, schema
        assert set(_arrivals(path, schema, source, later).values()) == {later}, schema


def test_a_month_re_sent_to_correct_a_quarantined_row_dates_that_row_by_its_delivery(world_copy):
    """Social care's 2016-03 lands with a row quarantined (no category); it is sent again, corrected, when 2017-08
    is the newest month landed. The corrected row arrived in 2017-09 (`_arrived_month`, through validated to the
    warehouse: after 2017-08's files, which land at its end), not with 2016-03: features at past dates must not
    see it, nor those of 2017-09-01, before it came. Its other rows keep 2016-03. Running the same file again, even
    after another month has landed, changes no table."""
    source, month, newest = "social_care", "2016-03", max(world_copy.landed_months())
    assert newest == "2017-08"
    assets = [a for a in [*raw_assets, *validated_assets, *pseudonymised_assets]
              if any(source in k.path for k in a.keys)]
    resources = all_resources(world_copy)
    path = world_copy.landing_file(source, month)
    with path.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    corrected = rows[1][header.index("referral_id")]

    def deliver(lines: list[list[str]]) -> None:
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([header, *lines])
        assert dg.materialize(assets, partition_key=month, resources=resources).success

    deliver([rows[0], [*rows[1][:-2], "", rows[1][-1]], *rows[2:]])  # the category left blank: quarantined
    assert corrected not in _arrivals(world_copy.agency_zone_path, "validated", source, month)
    deliver(rows)
    for path_, schema in ((world_copy.agency_zone_path, "validated"), (world_copy.warehouse_path, "pseudonymised")):
        arrivals = _arrivals(path_, schema, source, month)
        assert arrivals.pop(corrected) == "2017-09", schema
        assert len(arrivals) == len(rows) - 1 and set(arrivals.values()) == {month}, schema

    before = {p: table_digests(p) for p in (world_copy.agency_zone_path, world_copy.warehouse_path)}
    # a newer month lands meanwhile
    shutil.copy(world_copy.landing_file("housing", newest), world_copy.landing_file("housing", "2017-09"))
    deliver(rows)
    assert {p: table_digests(p) for p in before} == before
