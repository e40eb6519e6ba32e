"""The synthetic world: households and people of Basildon (and Essex), their agencies' monthly
extracts with realistic errors, and the ground truth to measure linkage and prediction against.

    from ed_pipeline.synth import SynthConfig, ErrorRates, generate
    summary = generate(SynthConfig(people=100_000, seed=42), landing_dir, truth_dir)

Never imported by `ed_pipeline.defs`; imports nothing from Dagster.
"""

from ed_pipeline.synth.config import ErrorRates, SynthConfig
from ed_pipeline.synth.world import TRUTH_FILES, SynthSummary, generate

__all__ = ["TRUTH_FILES", "ErrorRates", "SynthConfig", "SynthSummary", "generate"]
