"""MLflow: one run per refresh, the registered calibrated model, and the champion promotion gate.

What is registered as `school_readiness_risk` is a pyfunc model (`CalibratedRiskModel`) whose artifacts
are the LightGBM booster (text format), the category vocabularies and the Platt calibrator (JSON): its
`predict` takes the FEATURES columns and returns the calibrated `risk`, exactly what `score_children`
computes. The bare booster is logged too, with `mlflow.lightgbm` (name `booster`, signature and input
example on the encoded feature matrix), for tools that want the LightGBM flavour; it returns uncalibrated
scores and is not registered.

Nothing identifying reaches MLflow: the input examples hold feature values only (no person_id, no dates),
artifacts are aggregates (curves, subgroup tables of counts and metrics, plots, the model card).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import polars as pl
from mlflow.entities import Metric, Param
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from ed_pipeline.modelling.calibration import Calibrator
from ed_pipeline.modelling.card import model_card
from ed_pipeline.modelling.features import CATEGORICAL, FEATURES, Encoding
from ed_pipeline.modelling.metrics import SUBGROUP_SCHEMA, ece, metric_key, roc_auc
from ed_pipeline.modelling.plots import calibration_plot, pr_plot, roc_plot, shap_summary_plot
from ed_pipeline.modelling.train import Cohorts, RiskScorer, TrainedModel, TrainingConfig, rebuilt
from ed_pipeline.settings import is_within, local_path, under_artifact_root

EXPERIMENT = "school-readiness"
MODEL_NAME = "school_readiness_risk"
CHAMPION = "champion"
REFRESH_KIND_TAG = "refresh_kind"  # on every refresh run: `trained` (a new model) or `scoring_only` (the champion)
TRAINED, SCORING_ONLY = "trained", "scoring_only"
CHAMPION_RUN_TAG = "champion_run_id"  # on a scoring-only run: the run that trained the champion it scored with
BOOSTER_TAG = "booster_sha256"  # on every model version: which booster it holds (a local copy is checked by it)
SUBGROUP_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "precision_top10", "recall_top10", "outcome_rate",
                    "mean_risk")
PIP_REQUIREMENTS = [f"lightgbm=={lgb.__version__}", f"mlflow=={mlflow.__version__}", f"polars=={pl.__version__}",
                    f"pandas=={pd.__version__}", f"numpy=={np.__version__}"]


# --- the registered model --------------------------------------------------------------------------------

def model_input(frame: pl.DataFrame, features: tuple[str, ...] = FEATURES) -> pd.DataFrame:
    """The features only (by default FEATURES), as the registered model takes them: categories as strings,
    everything else float (booleans 0/1, null as NaN). No key, date or outcome column."""
    cols = [pl.col(c).cast(pl.Utf8) if c in CATEGORICAL else pl.col(c).cast(pl.Float64).fill_null(float("nan"))
            for c in features]
    return frame.select(cols).to_pandas()


class CalibratedRiskModel(mlflow.pyfunc.PythonModel):
    """pyfunc: the features it was trained on in (`scorer.json`'s; see `model_input`), a one-column frame `risk`
    (calibrated) out."""

    def load_context(self, context) -> None:
        spec = json.loads(Path(context.artifacts["scorer"]).read_text())
        booster = lgb.Booster(model_file=context.artifacts["booster"])
        self.scorer = RiskScorer(booster, Encoding.from_dict(spec["encoding"]), Calibrator(**spec["calibrator"]),
                                 tuple(spec.get("features", FEATURES)))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        frame = pl.from_pandas(pd.DataFrame(model_input)[list(self.scorer.features)])
        return pd.DataFrame({"risk": self.scorer.risk(frame)})


def _save_scorer(scorer: RiskScorer, folder: Path) -> dict[str, str]:
    booster = folder / "booster.txt"
    scorer.booster.save_model(str(booster))
    spec = folder / "scorer.json"
    spec.write_text(json.dumps({"encoding": scorer.encoding.to_dict(), "calibrator": scorer.calibrator.to_dict(),
                                "features": list(scorer.features)}, indent=2))
    return {"booster": str(booster), "scorer": str(spec)}


# --- MLflow plumbing -------------------------------------------------------------------------------------

@contextmanager
def _mlflow_at(tracking_uri: str) -> Iterator[MlflowClient]:
    """Point MLflow's fluent API at tracking_uri (registry too) for the block, then restore what was there."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri,
             os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI"))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved[0], saved[1]
        for var, value in (("MLFLOW_TRACKING_URI", saved[2]), ("MLFLOW_REGISTRY_URI", saved[3])):
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def ensure_experiment(client: MlflowClient, artifact_root: Path, name: str = EXPERIMENT) -> str:
    """The id of experiment `name` with its artifacts under artifact_root/<name>, made if missing.

    MLflow fixes an experiment's artifact location when it makes it: in a data directory moved or copied since
    (`cp -r data /srv/ed_data`), the store's experiment still names the old one, and a run would write its
    artifacts there, out of the new directory and of its privacy audit. Such an experiment is renamed
    (`earlier_experiment_name`: its runs, their artifacts and the models registered from them stay as they were)
    and a new one made under artifact_root."""
    root = Path(artifact_root).resolve()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if is_within(existing.artifact_location, root):
            return existing.experiment_id
        client.rename_experiment(existing.experiment_id, earlier_experiment_name(name, existing.experiment_id))
    location = root / name
    location.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=location.as_uri())


def earlier_experiment_name(name: str, experiment_id: str) -> str:
    """The name an experiment whose artifacts lie out of the current data directory is given (its id: unique)."""
    return f"{name} (artifacts at an earlier data path, {experiment_id})"


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def run_metrics(result: TrainedModel) -> dict[str, float]:
    """Every metric a refresh run logs: the overall ones and, per subgroup value, `test_<metric>__<group>_<value>`
    and `test_n__<group>_<value>` (group sizes)."""
    out = dict(result.metrics)
    for r in result.subgroups.iter_rows(named=True):
        out[metric_key("test_n", r["group"], r["value"])] = r["n"]
        for k in SUBGROUP_METRICS:
            out[metric_key(f"test_{k}", r["group"], r["value"])] = r[k]
    return _finite(out)


def _log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], model_ids: tuple[str, ...] = (),
                 model_metrics: dict[str, float] | None = None) -> None:
    """Log `metrics` to the run, and `model_metrics` (default: the same) once more for each of `model_ids` (the
    run's logged models) so that MLflow shows them on each model too."""
    now = int(time.time() * 1000)
    finite = _finite(metrics)
    on_models = finite if model_metrics is None else _finite(model_metrics)
    items = [Metric(k, v, now, 0) for k, v in finite.items()]
    items += [Metric(k, v, now, 0, model_id=model_id) for model_id in model_ids for k, v in on_models.items()]
    for i in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[i:i + 1000])


def log_refresh_run(result: TrainedModel, tracking_uri: str, artifact_root: Path, tags: dict | None = None,
                    params: dict | None = None, extra_artifacts: list[Path] | None = None,
                    model_name: str = MODEL_NAME) -> str:
    """Log one refresh as one MLflow run in experiment `school-readiness` and register the calibrated model.

    tags: provenance from the caller (Dagster run id, months covered, git commit, input-table hash);
    params: extra parameters (the training config is logged as well); extra_artifacts: files attached under
    `inputs/` (e.g. the linkage model's match weights). Returns the run id; the new model version carries
    the tag `run_id` and is found with `model_version_for_run`.
    """
    tags = {str(k): str(v) for k, v in (tags or {}).items()}
    all_params = {**result.config.as_params(), **{str(k): str(v) for k, v in (params or {}).items()},
                  "train_cohorts": ",".join(map(str, result.cohorts.train)),
                  "validation_cohort": str(result.cohorts.validation), "test_cohort": str(result.cohorts.test),
                  "features": ",".join(FEATURES)}
    with _mlflow_at(tracking_uri) as client:
        experiment_id = ensure_experiment(client, artifact_root)
        run_tags = {**tags, "test_cohort": str(result.cohorts.test), "model_name": model_name,
                    REFRESH_KIND_TAG: TRAINED}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"refresh-test-{result.cohorts.test}",
                              tags=run_tags) as run, _scratch(run.info.run_id) as tmp:
            run_id = run.info.run_id
            client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in all_params.items()])
            for path in _write_artifacts(result, tmp, tags, model_name):
                client.log_artifact(run_id, str(path), artifact_path="evaluation")
            for path in extra_artifacts or []:
                client.log_artifact(run_id, str(path), artifact_path="inputs")
            # Metrics after the models, each linked to them in one batch: logged before, every `log_model`
            # read back each metric's history to link it itself, some 300 queries a model (5 s a refresh).
            # The models carry the overall metrics; the ~1,300 of the subgroups are the run's (three copies of
            # them were ~3,900 rows written a refresh)
            model_ids = _log_models(result, tmp, model_name, run_id)
            _log_metrics(client, run_id, run_metrics(result), model_ids, model_metrics=result.metrics)
        return run_id


@contextmanager
def _scratch(run_id: str) -> Iterator[Path]:
    """A scratch folder for a run's files, named after the run: MLflow records where a model's artifacts were
    logged from (the `uri`s of its MLmodel file), and tempfile's random eight letters and digits, all letters in
    about one run of seventeen, are a word the privacy audit reads (and a surname, at long odds)."""
    folder = Path(tempfile.gettempdir()) / f"ed_mlflow_{run_id}"
    folder.mkdir(mode=0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_artifacts(result: TrainedModel, folder: Path, tags: dict, model_name: str) -> list[Path]:
    y = result.test_predictions["not_gld"].cast(pl.Int64).to_numpy()
    risk = result.test_predictions["risk"].to_numpy()
    curves = {"LightGBM (calibrated)": risk, "baseline": result.test_predictions["baseline_risk"].to_numpy()}
    title = f"test cohort {result.cohorts.test}"
    paths = [
        roc_plot(y, curves, folder / "roc.png", f"ROC, {title}"),
        pr_plot(y, curves, folder / "pr.png", f"Precision-recall, {title}"),
        calibration_plot({"LightGBM (calibrated)": result.calibration, "baseline": result.baseline_calibration},
                         folder / "calibration.png", f"Calibration, {title}"),
        shap_summary_plot(result.extra["test_contributions"], folder / "shap_summary.png"),
    ]
    for name, frame in (("subgroups.csv", result.subgroups), ("importance.csv", result.importance),
                        ("calibration_curve.csv", result.calibration)):
        frame.write_csv(folder / name)
        paths.append(folder / name)
    (folder / "model_card.md").write_text(model_card(result, tags, model_name))
    paths.append(folder / "model_card.md")
    return paths


def _log_models(result: TrainedModel, folder: Path, model_name: str, run_id: str) -> tuple[str, str]:
    """Log the booster and the calibrated pyfunc model (registered as `model_name`); their logged-model ids.

    Their signatures (column names and types) are inferred from a few test rows here; no input example is logged:
    it would be those children's rows (birth month, ethnicity, FSM, SEN, agency contacts), which nothing published
    shows row by row."""
    example_frame = result.test_frame.head(5)
    example = model_input(example_frame)
    signature = infer_signature(example, pd.DataFrame({"risk": result.scorer.risk(example_frame)}))
    encoded = pd.DataFrame(result.scorer.encoding.matrix(example_frame), columns=list(FEATURES))
    with _without_mlflow_advice():
        booster = mlflow.lightgbm.log_model(
            result.booster, name="booster", pip_requirements=PIP_REQUIREMENTS,
            signature=infer_signature(encoded, result.booster.predict(encoded.to_numpy(), raw_score=True)),
        )
        artifacts = _save_scorer(result.scorer, folder)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=CalibratedRiskModel(), artifacts=artifacts, signature=signature,
            pip_requirements=PIP_REQUIREMENTS, registered_model_name=model_name,
        )
    client = MlflowClient(tracking_uri=mlflow.get_tracking_uri(), registry_uri=mlflow.get_registry_uri())
    version = str(info.registered_model_version)
    for k, v in {"run_id": run_id, "test_cohort": str(result.cohorts.test),
                 "test_roc_auc": f"{result.metrics['test_roc_auc']:.4f}",
                 "test_ece": f"{result.metrics['test_ece']:.4f}",
                 BOOSTER_TAG: booster_sha256(result.booster)}.items():
        client.set_model_version_tag(model_name, version, k, v)
    return booster.model_id, info.model_id


@contextmanager
def _without_mlflow_advice() -> Iterator[None]:
    """MLflow's advice while it logs a model, about what is chosen here on purpose: no input example (it would be
    children's rows), a Python object as the model (`CalibratedRiskModel`, whose code is ours), pip's version
    (uv installs without pip), and the uv files it copies. On every refresh's console it read as faults."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


def log_reference_metrics(run_id: str, metrics: dict[str, float], tracking_uri: str) -> None:
    """Add metrics (e.g. `oracle_test_roc_auc`, `truelink_test_roc_auc`) to an existing refresh run."""
    _log_metrics(MlflowClient(tracking_uri=tracking_uri), run_id, metrics)


def model_version_for_run(client: MlflowClient, run_id: str, model_name: str = MODEL_NAME) -> str:
    versions = client.search_model_versions(f"name='{model_name}' and run_id='{run_id}'")
    if not versions:
        raise LookupError(f"no version of {model_name} was registered by run {run_id}")
    return str(max(int(v.version) for v in versions))


def load_model(tracking_uri: str, model_name: str = MODEL_NAME, alias: str = CHAMPION,
               artifact_root: Path | None = None):
    """The registered pyfunc for an alias (default the champion); predict(model_input(frame))['risk'].

    Read from where its artifacts are now (`artifacts_now`: under artifact_root when the data directory was
    moved since it was logged), into a copy in a scratch folder: loading a registered model from local
    artifacts in place writes a `registered_model_meta` file beside them, in the data directory the model was
    logged in, which need not be this one (it was moved or copied since). The model holds what it read
    (`CalibratedRiskModel.load_context`)."""
    with _mlflow_at(tracking_uri) as client, tempfile.TemporaryDirectory(prefix="ed_mlflow_model_") as scratch:
        version = client.get_model_version_by_alias(model_name, alias)
        logged_at = client.get_model_version_download_uri(model_name, version.version)
        return mlflow.pyfunc.load_model(artifacts_now(client, logged_at, version.run_id, artifact_root),
                                        dst_path=scratch)


def artifacts_now(client: MlflowClient, uri: str, run_id: str | None, artifact_root: Path | None) -> str:
    """Where the artifacts that run `run_id` (or a model it logged) keeps at `uri` are now: `uri`, unless that
    is a local folder no longer there and the same folder under `artifact_root` (the current data directory's)
    is. A data directory moved since (`mv data /srv/ed_data`) keeps its MLflow store, whose runs and models
    still name the old one; nothing in the store is rewritten. The old artifact root is the folder holding the
    run's experiment (`ensure_experiment` makes each at <artifact root>/<name>)."""
    path = local_path(uri)
    if artifact_root is None or run_id is None or path is None or path.exists():
        return uri
    experiment_at = client.get_experiment(client.get_run(run_id).info.experiment_id).artifact_location
    moved = under_artifact_root(uri, experiment_at, artifact_root)
    return moved.as_uri() if moved is not None and moved.exists() else uri


# --- the promotion gate ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    max_auc_drop: float = 0.005  # candidate AUC may be at most this much below the champion's, same cohort
    max_ece: float = 0.03  # candidate ECE bound (the goal is 0.02; chance alone gives ~0.015 on ~1.3k children)
    # ...widened on small cohorts, where chance alone exceeds it: never below this multiple of the ECE that a
    # perfectly calibrated model would show by chance on the same cohort (`test_ece_noise_floor`)
    noise_multiple: float = 2.0

    def ece_bound(self, metrics: dict[str, float]) -> float:
        floor = metrics.get("test_ece_noise_floor", math.nan)
        return max(self.max_ece, self.noise_multiple * floor) if math.isfinite(floor) else self.max_ece


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: tuple[str, ...]
    candidate_auc: float
    champion_auc: float | None = None
    candidate_ece: float | None = None
    champion_ece: float | None = None
    candidate_version: str | None = None
    champion_version: str | None = None
    promoted: bool = False
    extra: dict = field(default_factory=dict)


def promotion_decision(candidate_metrics: dict[str, float], champion_metrics_on_same_cohort: dict[str, float] | None,
                       gate: Gate = Gate()) -> Decision:
    """Pure gate. Metrics dicts use `test_roc_auc` and `test_ece`; champion None means there is no champion.
    Passes when the candidate's AUC is not below the champion's by more than gate.max_auc_drop and its ECE
    is within gate.ece_bound (max_ece, widened on cohorts so small that chance alone would exceed it)."""
    cand_auc, cand_ece = candidate_metrics["test_roc_auc"], candidate_metrics["test_ece"]
    reasons, passed = [], True
    if not (math.isfinite(cand_auc) and math.isfinite(cand_ece)):
        return Decision(False, ("candidate metrics are missing or not finite",), cand_auc, candidate_ece=cand_ece)
    bound = gate.ece_bound(candidate_metrics)
    if cand_ece <= bound:
        reasons.append(f"calibration ok: ECE {cand_ece:.4f} <= {bound:.4f}")
    else:
        passed = False
        reasons.append(f"calibration out of bound: ECE {cand_ece:.4f} > {bound:.4f}")
    champ_auc = champ_ece = None
    if champion_metrics_on_same_cohort is None:
        reasons.append("no champion yet")
    else:
        champ_auc = champion_metrics_on_same_cohort["test_roc_auc"]
        champ_ece = champion_metrics_on_same_cohort.get("test_ece")
        if cand_auc >= champ_auc - gate.max_auc_drop:
            reasons.append(f"AUC ok: {cand_auc:.4f} vs champion {champ_auc:.4f} on the same cohort "
                           f"(allowed drop {gate.max_auc_drop})")
        else:
            passed = False
            reasons.append(f"AUC worse than champion: {cand_auc:.4f} < {champ_auc:.4f} - {gate.max_auc_drop}")
    return Decision(passed, tuple(reasons), cand_auc, champ_auc, cand_ece, champ_ece)


def champion_metrics(tracking_uri: str, frame: pl.DataFrame, model_name: str = MODEL_NAME,
                     artifact_root: Path | None = None) -> tuple[str, dict | None] | None:
    """(version, {test_roc_auc, test_ece}) of the current champion scored on `frame` (a test cohort with
    `not_gld`), on the features it was trained on; (version, None) when `frame` lacks some of them (a feature
    since retired); None when no version holds the alias. artifact_root: see `load_model`."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    model = load_model(tracking_uri, model_name, artifact_root=artifact_root)
    features = model.unwrap_python_model().scorer.features
    if not set(features) <= set(frame.columns):
        return str(version.version), None
    risk = np.asarray(model.predict(model_input(frame, features))["risk"], dtype=np.float64)
    y = frame["not_gld"].cast(pl.Int64).to_numpy()
    return str(version.version), {"test_roc_auc": roc_auc(y, risk), "test_ece": ece(y, risk)}


def promote_if_better(tracking_uri: str, candidate: str, result: TrainedModel, gate: Gate = Gate(),
                      model_name: str = MODEL_NAME, artifact_root: Path | None = None) -> Decision:
    """Score the current champion on the candidate's test cohort, apply `promotion_decision`, and move the
    `champion` alias to the candidate only if the gate passes. `candidate` is the refresh run id (or a
    model version number). The decision is recorded on the candidate version (tags) and run (metrics).
    artifact_root: the data directory's, where the champion's artifacts are looked for after a move
    (`artifacts_now`)."""
    with _mlflow_at(tracking_uri) as client:
        version = candidate if str(candidate).isdigit() else model_version_for_run(client, candidate, model_name)
        run_id = client.get_model_version(model_name, version).run_id
        champion = champion_metrics(tracking_uri, result.test_frame, model_name, artifact_root)
        champion_version = champion[0] if champion else None
        info = champion_info(tracking_uri, model_name) if champion else None
        seen = info is not None and result.cohorts.test in (*info.train_cohorts, info.validation_cohort)
        if seen and champion_version != version:  # its score there is in-sample: no fair comparison
            decision = Decision(False, (f"the champion (version {champion_version}) was trained or validated on "
                                        f"the test cohort {result.cohorts.test}: no fair comparison, the champion "
                                        "stays",), result.metrics["test_roc_auc"],
                                candidate_ece=result.metrics["test_ece"])
        elif champion_version == version:
            decision = promotion_decision(result.metrics, champion[1], gate)
            decision = Decision(decision.passed, (*decision.reasons, "candidate is already the champion"),
                                decision.candidate_auc, decision.champion_auc, decision.candidate_ece,
                                decision.champion_ece)
        elif champion and champion[1] is None:  # nothing to compare with: the candidate stands on its own
            decision = promotion_decision(result.metrics, None, gate)
            decision = Decision(decision.passed, (*(r for r in decision.reasons if r != "no champion yet"),
                                                  f"the champion (version {champion_version}) uses features this "
                                                  "cohort no longer has: not compared"), decision.candidate_auc,
                                candidate_ece=decision.candidate_ece)
        else:
            decision = promotion_decision(result.metrics, champion[1] if champion else None, gate)
        promoted = decision.passed and champion_version != version
        if promoted:
            client.set_registered_model_alias(model_name, CHAMPION, version)
        client.set_model_version_tag(model_name, version, "promotion", "passed" if decision.passed else "refused")
        client.set_model_version_tag(model_name, version, "promotion_reasons", "; ".join(decision.reasons))
        gate_metrics = {"promotion_passed": float(decision.passed)}
        if decision.champion_auc is not None:
            gate_metrics |= {"champion_test_roc_auc": decision.champion_auc,
                             "champion_test_ece": decision.champion_ece}
        _log_metrics(client, run_id, gate_metrics)
    return Decision(decision.passed, decision.reasons, decision.candidate_auc, decision.champion_auc,
                    decision.candidate_ece, decision.champion_ece, version, champion_version, promoted)


# --- retrain or score with the champion ------------------------------------------------------------------

def booster_sha256(booster: lgb.Booster) -> str:
    """A fingerprint of a booster (its model text): which trees a model version holds."""
    return hashlib.sha256(booster.model_to_string().encode()).hexdigest()


@dataclass(frozen=True)
class ChampionInfo:
    """The registered champion: its version, the run that trained it, and what it was trained on."""

    version: str
    run_id: str
    train_cohorts: tuple[int, ...]
    validation_cohort: int | None
    test_cohort: int | None
    features: tuple[str, ...]
    booster_sha256: str | None


def champion_info(tracking_uri: str, model_name: str = MODEL_NAME) -> ChampionInfo | None:
    """What the `champion` alias points at (None when no version holds it): read from the registry and the
    params of the run that trained it."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    params = client.get_run(version.run_id).data.params

    def cohort(name: str) -> int | None:
        value = params.get(name, "")
        return int(value) if value.isdigit() else None

    train = tuple(int(y) for y in params.get("train_cohorts", "").split(",") if y.isdigit())
    features = tuple(f for f in params.get("features", "").split(",") if f)
    return ChampionInfo(str(version.version), version.run_id, train, cohort("validation_cohort"),
                        cohort("test_cohort"), features, version.tags.get(BOOSTER_TAG))


def retrain_reason(cohorts: Cohorts, champion: ChampionInfo | None, retrain: bool = False) -> str | None:
    """Why this refresh must train a new model, or None when it can score with the champion (`champion_model`).

    `cohorts`: the cohorts this refresh's data and config choose (`choose_cohorts`). A new model is trained when
    asked (`retrain`), when there is no champion, when the data bring a new assessed cohort or otherwise change
    the cohorts the champion was trained, validated and tested on, or when the features differ from the
    champion's. Which model the last refresh left (`data/models/latest.pkl`) is no reason: one that is not the
    champion (a refusal under an earlier version left it there) gives way to the champion from the registry.
    """
    if retrain:
        return "asked for (config retrain)"
    if champion is None:
        return "no champion yet"
    if champion.features != tuple(FEATURES):
        return "the champion was trained on other features"
    if champion.test_cohort != cohorts.test:
        return (f"a new assessed cohort: test cohort {cohorts.test}, the champion was tested on "
                f"{champion.test_cohort}")
    if (champion.train_cohorts, champion.validation_cohort) != (tuple(cohorts.train), cohorts.validation):
        return (f"the training cohorts changed: train {list(cohorts.train)}, validation {cohorts.validation} "
                f"(the champion: train {list(champion.train_cohorts)}, validation {champion.validation_cohort})")
    return None


def holds_champion(local: TrainedModel | None, champion: ChampionInfo) -> bool:
    """Whether `local` is the champion: its booster's fingerprint is the registered version's."""
    return (local is not None and champion.booster_sha256 is not None
            and booster_sha256(local.booster) == champion.booster_sha256)


def champion_model(tracking_uri: str, champion: ChampionInfo, local: TrainedModel | None, features: pl.DataFrame,
                   config: TrainingConfig, artifact_root: Path | None = None) -> TrainedModel:
    """The champion's model object to score with: `local` (the one the last refresh left) when it holds the
    champion, else the champion restored from the registry (`restore_champion`)."""
    if holds_champion(local, champion):
        return local
    return restore_champion(tracking_uri, features, config, artifact_root=artifact_root)


def restore_champion(tracking_uri: str, features: pl.DataFrame, config: TrainingConfig,
                     model_name: str = MODEL_NAME, artifact_root: Path | None = None) -> TrainedModel:
    """The champion as a model object (`train.rebuilt`) from the registry: the registered scorer, the metrics
    logged on the registered model (a version logged before models carried them: its run's overall metrics),
    and the subgroup figures and importance of the run that trained it. Its cohorts and band thresholds are set
    on `features`: call it only when `retrain_reason` is None (the champion's cohorts). artifact_root: the data
    directory's, where the artifacts are looked for after a move (`artifacts_now`).

    A version registered before versions carried their booster's fingerprint (`BOOSTER_TAG`) is given it here,
    from the booster just read from its artifacts: else no local copy could be recognised as the champion
    (`holds_champion`) and every refresh that scores would restore it again."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = client.get_model_version_by_alias(model_name, CHAMPION)
    model = load_model(tracking_uri, model_name, artifact_root=artifact_root)
    scorer = model.unwrap_python_model().scorer
    if BOOSTER_TAG not in version.tags and model.metadata.run_id == version.run_id:  # (the alias did not move)
        client.set_model_version_tag(model_name, version.version, BOOSTER_TAG, booster_sha256(scorer.booster))
    run = client.get_run(version.run_id)
    metrics = _model_metrics(client, version) or {k: v for k, v in run.data.metrics.items() if "__" not in k}
    run_artifacts = artifacts_now(client, run.info.artifact_uri, version.run_id, artifact_root)
    with tempfile.TemporaryDirectory() as folder:
        def evaluation(name: str, schema: dict | None = None) -> pl.DataFrame:
            path = mlflow.artifacts.download_artifacts(artifact_uri=f"{run_artifacts}/evaluation/{name}",
                                                       dst_path=folder, tracking_uri=tracking_uri)
            return pl.read_csv(path, schema_overrides=schema)

        subgroups, importance = evaluation("subgroups.csv", SUBGROUP_SCHEMA), evaluation("importance.csv")
    result = rebuilt(scorer, features, config, metrics, subgroups, importance)
    result.extra["trained_run_id"] = version.run_id
    return result


def _model_metrics(client: MlflowClient, version) -> dict[str, float]:
    """The metrics logged on a registered version's model (its source: `models:/<logged model id>`); none for a
    version registered from a run's files."""
    model_id = version.model_id or (version.source.removeprefix("models:/")
                                    if (version.source or "").startswith("models:/") else None)
    return {m.key: m.value for m in client.get_logged_model(model_id).metrics} if model_id else {}


def log_scoring_run(result: TrainedModel, champion: ChampionInfo, tracking_uri: str, artifact_root: Path,
                    tags: dict | None = None, params: dict | None = None,
                    extra_artifacts: list[Path] | None = None, model_name: str = MODEL_NAME) -> str:
    """Log a refresh that trained nothing and scored with the champion as one MLflow run of its own.

    Tagged `refresh_kind=scoring_only` with `champion_run_id` and `champion_version`; it carries the params of
    the champion's training run (config, cohorts, features: what `ed-pipeline evaluate` reads) and the
    champion's metrics from that run (the metrics of the model this refresh scored with, on the same test
    cohort), plus `extra_artifacts` under `inputs/`. No model is logged or registered. Returns the run id.
    """
    tags = {str(k): str(v) for k, v in (tags or {}).items()}
    with _mlflow_at(tracking_uri) as client:
        experiment_id = ensure_experiment(client, artifact_root)
        trained_params = client.get_run(champion.run_id).data.params
        all_params = {**trained_params, **{str(k): str(v) for k, v in (params or {}).items()}}
        run_tags = {**tags, "test_cohort": str(result.cohorts.test), "model_name": model_name,
                    REFRESH_KIND_TAG: SCORING_ONLY, CHAMPION_RUN_TAG: champion.run_id,
                    "champion_version": champion.version}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"refresh-score-{result.cohorts.test}",
                              tags=run_tags) as run:
            run_id = run.info.run_id
            client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in all_params.items()])
            _log_metrics(client, run_id, run_metrics(result))
            for path in extra_artifacts or []:
                client.log_artifact(run_id, str(path), artifact_path="inputs")
        return run_id
