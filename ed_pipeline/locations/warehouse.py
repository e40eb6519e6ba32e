"""The warehouse's code location: linking onwards, with neither the key nor the agency zone."""

from ed_pipeline.definitions import warehouse_location

defs = warehouse_location()
