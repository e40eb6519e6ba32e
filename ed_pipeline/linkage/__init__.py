"""Linking pseudonymised person records into persons and households (Splink 5 on DuckDB; no Dagster here).

    model = train_model(tokens)                      # Fellegi-Sunter: u by random sampling, m by EM
    result = link(tokens, model, previous=ids)       # scored pairs, clusters, stable person ids, crosswalk
    link_people(tokens) -> source, record_id, person_id
    evaluate_links(predicted, labelled) -> pairwise precision / recall / F1 (+ household accuracy)
"""

from ed_pipeline.linkage.evaluation import evaluate_links, pairwise_metrics
from ed_pipeline.linkage.ids import assign_stable_ids, id_stability
from ed_pipeline.linkage.link import LinkResult, link, link_people
from ed_pipeline.linkage.model import LinkageModel, TrainingConfig, train_model
from ed_pipeline.linkage.spec import TokenColumns

__all__ = [
    "LinkResult",
    "LinkageModel",
    "TokenColumns",
    "TrainingConfig",
    "assign_stable_ids",
    "evaluate_links",
    "id_stability",
    "link",
    "link_people",
    "pairwise_metrics",
    "train_model",
]
