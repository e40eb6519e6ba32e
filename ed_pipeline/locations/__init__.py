"""The two code locations of a split deployment (`workspace-split.yaml`): a module each, so that each location's
process loads only its own `defs` (how each is made: `ed_pipeline.definitions`)."""
