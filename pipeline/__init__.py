"""The experiment start to end: prep, every classifier, the report (`python -m pipeline`, `make
demo`, `make table2`), experiments read from TOML files (experiments/). It runs the stages below
it: prep, trainer and evaluation, which import nothing from it; the research tools above it
(research/: the compressed-domain study) run it in turn."""
