# Compressed-domain material recognition: see README.md. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

Q ?= 8
DATA ?= data/minc-2500
OUT ?= data/shards
WORKERS ?=
CODEC_WEIGHTS ?=
SPLIT ?= 1

PREP_ARGS := --quality $(Q) --data $(DATA) --out $(OUT) --split $(SPLIT) \
	$(if $(WORKERS),--workers $(WORKERS)) $(if $(CODEC_WEIGHTS),--codec-weights $(CODEC_WEIGHTS))

.PHONY: help setup test lint prep data synthetic demo codec train ui bench bench-prep bench-train clean

# the embedded default: built-in synthetic textures coded by the project's own demo codecs
DEMO_DATA ?= data/synthetic-demo
DEMO_OUT ?= data/demo-shards
DEMO_QUALITIES ?= 1 4 8
CODECS ?= codecs/demo
INIT ?= none
STEPS ?= 20000

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo "  variables: Q=$(Q) DATA=$(DATA) OUT=$(OUT) WORKERS=<n> CODEC_WEIGHTS=<file> SPLIT=$(SPLIT)"

$(PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(PY)

setup: $(PY)  ## create .venv with everything (once; again when pyproject.toml changes)

test: $(PY)  ## run the test suite
	$(PY) -m pytest -q

lint: $(PY)  ## ruff
	$(VENV)/bin/ruff check .

data: $(PY)  ## download MINC-2500 to data/ (needs a network)
	$(PY) -m prep.download --dest $(dir $(DATA))

synthetic: $(PY)  ## write the built-in synthetic texture set to data/synthetic-textures
	$(PY) -m prep.synthetic --out data/synthetic-textures

prep: $(PY)  ## encode DATA at quality Q into WebDataset shards under OUT
	$(PY) -m prep $(PREP_ARGS)

demo: $(PY)  ## synthetic textures -> the demo codecs -> shards for each of DEMO_QUALITIES
	$(PY) -m prep.synthetic --out $(DEMO_DATA) --classes 10 --per-class 40
	set -e; for q in $(DEMO_QUALITIES); do \
	  $(PY) -m prep --data $(DEMO_DATA) --out $(DEMO_OUT) -q $$q --shard-size 50 \
	    --codec-weights $(CODECS)/codec-q$$q.pth $(if $(WORKERS),--workers $(WORKERS)); \
	done
	@echo "shards: $(DEMO_OUT)/synthetic-demo/ (original/ and q<Q>/ for Q in $(DEMO_QUALITIES))"

codec: $(PY)  ## train the codec of quality Q on DATA [INIT=pretrained|file SIZES=N,M STEPS=n]
	$(PY) -m prep.train_codec -q $(Q) --data $(DATA) --out runs/codecs/q$(Q) --init $(INIT) \
	  --steps $(STEPS) $(if $(SIZES),--sizes $(SIZES))

DOMAIN ?= latent
NPROC ?= 2
SHARDS ?= $(OUT)/minc-2500
train: $(PY)  ## train DOMAIN (original|decoded|latent) at quality Q on SHARDS with NPROC processes
	$(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) trainer/main.py --domain $(DOMAIN) \
	  --shards $(SHARDS) $(if $(filter-out original,$(DOMAIN)),--quality $(Q))

ui: $(PY)  ## MLflow UI on http://127.0.0.1:5000 (the runs in mlflow.db)
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

bench-prep: $(PY)  ## prep throughput, scaling, worker memory and bytes per member
	$(PY) -m benchmarks.bench_prep

bench-train: $(PY)  ## per domain: bare model step vs the trainer's loop vs the loader alone
	$(PY) -m benchmarks.bench_train

bench: bench-prep bench-train  ## all benchmarks

clean:  ## remove generated data (keeps .venv)
	rm -rf data/shards data/synthetic-textures
