"""The two code locations of a split deployment (`workspace-split.yaml`): one module each, so that each location's
process loads its own `defs` (ed_pipeline.definitions builds both)."""
