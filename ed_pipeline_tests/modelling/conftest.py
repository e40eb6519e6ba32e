"""A synthetic feature frame (the mart's contract, a known signal) and one model trained on it, per session."""

from __future__ import annotations

import polars as pl
import pytest

from ed_pipeline.modelling import TrainedModel, TrainingConfig, train_and_evaluate
from ed_pipeline.modelling.synthetic import synthetic_features

CHILDREN = 8_400  # six assessed cohorts of 1,400, like the default world


@pytest.fixture(scope="session")
def feature_frame() -> pl.DataFrame:
    return synthetic_features(CHILDREN, seed=0, unassessed_cohorts=(2019,))


@pytest.fixture(scope="session")
def trained(feature_frame: pl.DataFrame) -> TrainedModel:
    return train_and_evaluate(feature_frame, TrainingConfig())
