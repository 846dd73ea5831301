"""The experiment start to end: prep, every classifier, the report (`python -m pipeline`, `make
demo`, `make table2`), experiments read from TOML files (experiments/), and the study of the
compressed-domain classifier (`python -m pipeline.study`). It runs the stages below it: prep,
trainer and evaluation, which import nothing from it."""
