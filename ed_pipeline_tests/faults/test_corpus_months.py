"""The whole malformed-file corpus lands at once, one file a month, beside good extracts: every good file is loaded,
every bad one is reported, and no row is lost."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import duckdb

from ed_pipeline.settings import Settings, month_range
from ed_pipeline.sources import SOURCES
from ed_pipeline_tests.conftest import TINY_SEED, run_cli
from ed_pipeline_tests.faults.support import events
from ed_pipeline_tests.quality.corpus import CASES, MONTH, Case

GOOD_MONTHS = ("2014-01", "2014-07")  # a small synthetic world: good files of every source (EYFSP in July)
MONTH_BOUND_RULES = {"date_of_birth_not_future", "event_date_not_future"}  # judged against the extract's month


def _place(cases: tuple[Case, ...]) -> dict[Path, Case]:
    """Each social-care case in its own month from the corpus's month on (the unreadable ones last: the refresh
    then loads the source's other months in one more run; cutting around bad months in the middle is
    test_resilience's); the other sources' cases in the corpus's month, replacing the good file there."""
    social = [c for c in cases if c.source == "social_care"]
    readable = sorted((c for c in social if not c.problem_kind), key=lambda c: c.name != "future_date_of_birth")
    ordered = readable + [c for c in social if c.problem_kind]
    placed = {Path("social_care") / f"{m}.csv": c
              for m, c in zip(month_range(MONTH, "2016-12"), ordered, strict=False)}
    placed |= {Path(c.source) / f"{MONTH}.csv": c for c in cases if c.source != "social_care"}
    return placed


def _expected_quarantine(case: Case, month: str) -> dict[int, str]:
    if month != MONTH and set(case.quarantined.values()) & MONTH_BOUND_RULES:
        return {}  # the corpus's 'future' date lies inside this later month: not in the future any more
    return case.quarantined


def _data_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def test_whole_corpus_across_months_beside_good_files(tmp_path: Path):
    from ed_pipeline.synth import SynthConfig, generate

    data = tmp_path / "data"
    generate(SynthConfig(people=1_500, seed=TINY_SEED, first_month=GOOD_MONTHS[0], last_month=GOOD_MONTHS[1]),
             data / "landing", tmp_path / "truth")
    settings = Settings(data_dir=data)
    placed = _place(CASES)
    assert len(placed) == len(CASES)
    for relative, case in placed.items():
        (data / "landing" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(case.path, data / "landing" / relative)
    landed = sorted(settings.landing_dir.glob("*/*.csv"))
    good = [p for p in landed if p.relative_to(settings.landing_dir) not in placed]
    assert {p.parent.name for p in good} == {s.name for s in SOURCES}
    unreadable = {data / "landing" / r: c for r, c in placed.items() if c.problem_kind}

    result = run_cli("refresh", "--only", "ingest", data_dir=data)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "FAILED social_care" in result.stderr and "raw/social_care:extract_readable" in result.stderr
    months = ", ".join(sorted(p.stem for p in unreadable))
    assert f"social_care: unreadable file(s) for {months} left out" in result.stderr, result.stderr[-3000:]
    assert "6/7 steps succeeded" in result.stderr, result.stderr[-3000:]

    checks = [json.loads(e)["dagster_event"]["event_specific_data"]
              for e in events(data, "ASSET_CHECK_EVALUATION", "raw__social_care")]
    failed = [c["description"] for c in checks if c["check_name"] == "extract_readable" and not c["success"]]
    assert len(failed) == 1, checks
    for path, case in unreadable.items():
        assert str(path) in failed[0], f"{case.name} is not named in the failed check: {failed[0]}"

    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as conn:
        def per_file(sql: str) -> dict[str, int]:
            return dict(conn.execute(sql).fetchall())

        def quarantined(source: str, file: str) -> dict[int, str]:
            return dict(conn.execute(f"select _row_number, rule from quarantine.{source} where _source_file = ?",
                                     [file]).fetchall())

        raw, passed, held = {}, {}, {}
        for source in SOURCES:
            raw |= per_file(f"select _source_file, count(*) from raw.{source.name} group by 1")
            passed |= per_file(f"select _source_file, count(distinct _row_number) from validated.{source.name} "
                               "group by 1")
            held |= per_file(f"select _source_file, count(*) from quarantine.{source.name} group by 1")

        for path in landed:
            file = f"{path.parent.name}/{path.name}"
            case = placed.get(path.relative_to(settings.landing_dir))
            if case and case.problem_kind:
                assert raw.get(file, 0) == passed.get(file, 0) == held.get(file, 0) == 0, file
                continue
            rows = case.rows if case else _data_rows(path)
            assert raw.get(file, 0) == rows, f"{file}: raw holds {raw.get(file, 0)} of its {rows} rows"
            assert passed.get(file, 0) + held.get(file, 0) == rows, f"{file}: rows lost between raw and validated"
            if case:
                assert quarantined(case.source, file) == _expected_quarantine(case, path.stem), file
