"""The names in a runs folder that more than one stage spells: the trainer and the pipeline write
them, the pipeline, evaluation and research read them."""

TEST_RESULT = "test.json"  # written last: the run is complete
# its training's wall time, start-up and the fit of its start included (the pipeline writes it)
WALL_TIME = "wall_seconds.json"
TRANSPLANT = "transplant"  # the folder of a run's Comp. starts carried from its Anchor 2s
