"""The leak scan's vocabulary keeps up with the pipeline's own labels.

At Essex scale (1.5M residents, with typos) the agency zone holds a surname for almost any short word, so
every word the pipeline itself writes into the warehouse, Dagster's events or MLflow (metric, feature and rule
names, the model's tables) must be in `STOPWORDS`, or the privacy audit fails on its own vocabulary.
"""

from __future__ import annotations

import re

from ed_pipeline.defs.privacy_audit import RANDOM_ID
from ed_pipeline.modelling import FEATURES, SUBGROUPS, TrainingConfig, train_and_evaluate
from ed_pipeline.modelling.synthetic import synthetic_features
from ed_pipeline.privacy.leak_scan import MIN_NAME_LETTERS, STOPWORDS
from ed_pipeline.quality.rules import plan_for
from ed_pipeline.sources import SOURCES


def _words(labels) -> set[str]:
    return {w for label in labels for w in re.split(r"[^a-z0-9]+", str(label).lower())
            if len(w) >= MIN_NAME_LETTERS and w.isalpha()}  # a name has letters only


def test_every_word_of_the_pipelines_own_labels_is_vocabulary():
    model = train_and_evaluate(synthetic_features(4_200, seed=1), TrainingConfig(max_rounds=50))
    labels = [*model.metrics, *FEATURES, *SUBGROUPS, *model.importance.columns, *model.subgroups.columns,
              *model.calibration.columns, *model.band_thresholds]
    labels += [check.rule for source in SOURCES for check in plan_for(source).checks]
    missing = _words(labels) - STOPWORDS
    assert not missing, f"add to leak_scan's vocabulary: {sorted(missing)}"


def test_the_audits_and_the_models_own_labels_are_vocabulary(tmp_path):
    """What the incremental audit and a scoring-only refresh write into Dagster's events and MLflow (modes,
    metadata keys, reasons, tags): were a word of it somebody's surname, the next audit would fail on it."""
    from datetime import UTC, datetime, timedelta

    import ed_pipeline.defs.model as model_defs
    import ed_pipeline.privacy.audit as audit
    from ed_pipeline.modelling import tracking
    from ed_pipeline.modelling.train import Cohorts

    labels = [tracking.REFRESH_KIND_TAG, tracking.TRAINED, tracking.SCORING_ONLY, tracking.CHAMPION_RUN_TAG,
              tracking.BOOSTER_TAG]
    path = tmp_path / "state.json"
    labels.append(audit.load_state(path)[1])
    path.write_text("{not json")
    labels.append(audit.load_state(path)[1])
    state = audit.AuditState(audited_at=(datetime.now(UTC) - timedelta(days=40)).isoformat(), rules="r")
    audit.save_state(path, state)
    labels += [audit.load_state(path)[1], audit.load_state(path, rules="other")[1],
               audit.load_state(path, max_age_days=100, rules="r")[1]]
    path.write_text(state.to_json().replace('"version": 1', '"version": 0'))
    labels.append(audit.load_state(path)[1])
    cohorts = Cohorts(train=(2016,), validation=2017, test=2018, rates={}, sizes={}, median_history={})
    champion = tracking.ChampionInfo("1", "run", (2015,), 2016, 2017, ("x",), None)
    labels += [tracking.retrain_reason(cohorts, champion, retrain=True), tracking.retrain_reason(cohorts, None),
               tracking.retrain_reason(cohorts, champion)]
    champion = tracking.ChampionInfo("1", "run", (2015,), 2016, 2017, tuple(tracking.FEATURES), None)
    labels.append(tracking.retrain_reason(cohorts, champion))
    champion = tracking.ChampionInfo("1", "run", (2015,), 2016, 2018, tuple(tracking.FEATURES), None)
    labels.append(tracking.retrain_reason(cohorts, champion))
    labels += [model_defs.SCORING_REASON, model_defs.NOTHING_TO_PROMOTE, "scored with the champion"]
    # metadata keys of the audit and of the model step, the audit's text locations
    labels += ["mode", "identifiers", "identifiers_new_since_last_audit", "dagster_texts_scanned", "mlflow_texts",
               "leaks", "none", *(f"{kind}_parts_{which}_identifiers" for kind in ("warehouse", "texts", "files")
                                  for which in ("all", "new")),
               "warehouse_rows_all_identifiers", "warehouse_rows_already_audited", "identifier_parts_made",
               "identifier_parts_cached", "warehouse_columns_new_identifiers", "all",
               "refresh_kind", "scoring_reason", "retrain_reason", "model_version", "champion_run_id",
               "champion_version", "promoted", "reasons", "candidate_auc", "champion_auc",
               "dagster run", "mlflow run param tag", "mlflow model"]
    missing = _words(labels) - STOPWORDS
    assert not missing, f"add to leak_scan's vocabulary: {sorted(missing)}"


def test_the_names_dagster_and_dbt_write_into_events_are_vocabulary():
    """Asset keys, check names and step keys (dbt's models and tests among them) are in every run's events and in
    dbt's output; the ingest steps' metadata keys too. At 500k residents "Share" and "Dates" are surnames."""
    from ed_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    labels = [part for key in graph.get_all_asset_keys() for part in key.path]
    labels += [check.name for check in graph.asset_check_keys]
    labels += [node.name for job in [defs.resolve_job_def("ingest"), defs.resolve_job_def("analyse")]
               for node in job.graph.nodes]
    labels += ["kept_share", "quarantined_share", "ward_known_share", "leak scan"]
    missing = _words(labels) - STOPWORDS
    assert not missing, f"add to leak_scan's vocabulary: {sorted(missing)}"


def test_every_word_of_a_malformed_files_problems_and_warnings_is_vocabulary():
    """What reading a malformed file says (the blocking check's description, the step's metadata) is in the
    events the audit reads: "Latin", "Byte" or "Wrong" as somebody's surname would stop every refresh after."""
    from ed_pipeline.quality import read_extract
    from ed_pipeline.sources import get_source
    from ed_pipeline_tests.quality.corpus import CASES, MONTH

    texts = []
    for case in CASES:
        extract = read_extract(case.path, get_source(case.source), MONTH)
        texts += [t for p in extract.problems for t in (p.problem, p.remedy)] + extract.warnings
    assert len(texts) > 10
    missing = _words(texts) - STOPWORDS
    assert not missing, f"add to leak_scan's vocabulary: {sorted(missing)}"


def test_every_metadata_key_and_table_header_a_refresh_writes_is_vocabulary(month_added_world):
    """Read back from Dagster's event log of a full refresh and a month's: every metadata key of every
    materialisation and check result (ours, dagster-dbt's and Dagster's), and the header of every Markdown table
    in them (charts, previews). A list kept by hand missed some ("records", "persons", "sources")."""
    import os
    from unittest import mock

    import dagster as dg

    labels: set[str] = set()
    with mock.patch.dict(os.environ, {"DAGSTER_HOME": str(month_added_world / "dagster")}), \
            dg.DagsterInstance.get() as instance:
        kinds = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
        for run in instance.get_runs():
            for record in instance.get_records_for_run(run.run_id, of_type=kinds).records:
                event = record.event_log_entry.dagster_event
                data = event.event_specific_data
                materialised = event.event_type is dg.DagsterEventType.ASSET_MATERIALIZATION
                metadata = data.materialization.metadata if materialised else data.metadata
                for key, value in metadata.items():
                    labels.add(key)
                    if isinstance(value, dg.MarkdownMetadataValue) and value.value.startswith("|"):
                        labels.add(value.value.splitlines()[0])
    assert {"cluster_sizes", "preview", "mode"} <= labels  # linked, a preview, the audit's: both refreshes read
    missing = _words(labels) - STOPWORDS
    assert not missing, f"add to leak_scan's vocabulary: {sorted(missing)}"


# Random ids the audit reads (8 random letters spell a surname at odds of 1 in 26^8, negligible): UUIDs, Dagster's
# compute-log keys and run-id prefixes, Splink's linker id (letters and digits: all letters in 7% of refreshes)
RANDOM = re.compile(RANDOM_ID.pattern + r"|file_key='[a-z]+'|dagster run [0-9a-f]{8}|\"linker_uid\": \"[a-z0-9]+\"")


def _non_random_words(texts) -> set[str]:
    """`_words` of `texts` without the random ids, nor the pieces of hashes and ids that are all letters a-f."""
    return {w for w in _words(RANDOM.sub(" ", text) for text in texts) if not set(w) <= set("abcdef")}


def test_every_word_the_audit_reads_from_dagster_and_mlflow_is_vocabulary(refreshed_world, month_added_world):
    """Everything the audit reads of Dagster's runs (Dagster's own messages, event classes and fields, our
    metadata) and of MLflow's params and tags after a full refresh and a month, less the deployment's own
    directories and MLflow's machine tags: at Essex scale somebody is called almost any word, and one not in the
    vocabulary would make the blocking audit stop every refresh. Run ids and compute-log keys are random."""
    import os
    from unittest import mock

    import dagster as dg

    from ed_pipeline.defs.privacy_audit import dagster_texts, local_directories, mlflow_units
    from ed_pipeline.privacy.leak_scan import LOCAL, _prepare_text, without_local
    from ed_pipeline.settings import Settings

    settings = Settings(data_dir=month_added_world)
    with mock.patch.dict(os.environ, {"DAGSTER_HOME": str(month_added_world / "dagster")}), \
            dg.DagsterInstance.get() as instance:
        # the month's world is a copy of the refreshed one, whose directory its first runs' events name
        local = (*local_directories(settings), str(refreshed_world.resolve()))
        texts = dagster_texts(instance)
    texts += [t for items in mlflow_units(settings.mlflow_tracking_uri).values() for t in items]
    texts = [(loc, without_local(text, local)) for loc, text in texts]  # as the audit reads them
    assert any(LOCAL in text for _, text in texts)  # the directories were there, and left out
    words = _non_random_words(_prepare_text(f"{loc} {text}") for loc, text in texts)
    missing = words - STOPWORDS
    assert not missing, f"add to leak_scan's vocabulary: {sorted(missing)}"


def _artifact_words(root, local: tuple[str, ...]) -> set[str]:
    """The words of MLflow's artifact files as the audit reads them (the files MLflow writes to rebuild a model's
    environment are not read; Parquet and DuckDB files hold values, not labels)."""
    from ed_pipeline.privacy.audit import is_model_environment_file
    from ed_pipeline.privacy.leak_scan import _prepare_text, file_texts

    paths = sorted(p for p in root.rglob("*") if p.is_file() and not is_model_environment_file(p))
    return _non_random_words(_prepare_text(text) for _, text in file_texts(paths, local))


def test_every_word_of_mlflows_artifact_files_is_vocabulary(refreshed_world, month_added_world):
    """The model card, LightGBM's model text, Splink's charts and the rest of MLflow's artifacts after a full
    refresh and a month, as the audit reads them (the deployment's directories left out: an MLmodel file names
    its own path): our prose and the libraries' words, which a surname spells at Essex scale ("Prior", "Fell")."""
    from ed_pipeline.defs.privacy_audit import local_directories
    from ed_pipeline.settings import Settings

    settings = Settings(data_dir=month_added_world)
    words = _artifact_words(settings.mlflow_artifact_root,
                            (*local_directories(settings), str(refreshed_world.resolve())))
    assert {"calibration", "lightgbm"} <= words  # the model card and the model were read
    missing = words - STOPWORDS
    assert not missing, f"add to leak_scan's vocabulary: {sorted(missing)}"
