"""Research tools above the pipeline, off the product path: the compressed-domain study (its rows
in rows/, `python -m research.study`), the selection rule, the starts before fine-tuning, the
latent probe and the equivariance check. They may import every package below; nothing below
imports them (tests/test_layers.py)."""
