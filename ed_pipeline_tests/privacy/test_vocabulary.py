"""The leak scan's vocabulary keeps up with the pipeline's own labels.

At Essex scale (1.5M residents, with typos) the agency zone holds a surname for almost any short word, so
every word the pipeline itself writes into the warehouse, Dagster's events or MLflow (metric, feature and rule
names, the model's tables) must be in `STOPWORDS`, or the privacy audit fails on its own vocabulary.
"""

from __future__ import annotations

import re

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
