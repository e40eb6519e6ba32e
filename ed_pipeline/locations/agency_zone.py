"""The agency zone's code location: ingestion and the privacy audit, with the key and the agency zone."""

from ed_pipeline.definitions import agency_zone_location

defs = agency_zone_location()
