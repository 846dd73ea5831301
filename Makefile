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
# Pillow qualities of the classical anchors (jpeg<P>, webp<P> sets): empty = the preset's
# (demo: JPEG 5 60, no WebP; table2: JPEG 5 20 50 80, no WebP), `none` = no such sets
JPEG ?=
WEBP ?=
ANCHOR_ARGS := $(if $(JPEG),--jpeg-qualities $(filter-out none,$(JPEG))) \
	$(if $(WEBP),--webp-qualities $(filter-out none,$(WEBP)))

PREP_ARGS := --quality $(Q) --data $(DATA) --out $(OUT) --split $(SPLIT) \
	$(if $(WORKERS),--workers $(WORKERS)) $(if $(CODEC_WEIGHTS),--codec-weights $(CODEC_WEIGHTS)) \
	$(if $(filter-out none,$(JPEG)),--jpeg $(JPEG)) $(if $(filter-out none,$(WEBP)),--webp $(WEBP))

.PHONY: help setup browser test test-fast lint docs prep data synthetic demo demo-codecs pretrain pretrain-latent latent-hint minc-codecs codec train ui tracking-server table2 cluster-experiment evaluate \
	report minc-subset demo-selection minc-selection bench bench-prep bench-train bench-eval bench-gpu clean
comma := ,

# the embedded default: built-in synthetic textures coded by the project's own demo codecs
DEMO_DATA ?= data/demo-textures
DEMO_OUT ?= data/demo-shards
DEMO_QUALITIES ?= 1 4 8
# 6 texture families, 100 images each at 256 px, weak distractors; 60/10/30 split (180 test);
# seed 1: the demo codecs were trained on seed 0's images, so they never saw these
DEMO_TEXTURES ?= --classes 6 --per-class 100 --size 256 --max-mix 0.2 --fractions 0.6 0.1 0.3 \
	--seed 1
CODECS ?= codecs/demo
INIT ?= none
STEPS ?= 20000

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo "  variables: Q=$(Q) DATA=$(DATA) OUT=$(OUT) WORKERS=<n> CODEC_WEIGHTS=<file> SPLIT=$(SPLIT)"
	@echo "             JPEG=\"<P> ...\"|none WEBP=\"<P> ...\"|none (classical anchors: prep, demo, table2)"
	@echo "             EXPERIMENT=<name in experiments/ or a TOML file> (table2), PIPELINE_ARGS=\"--flag v ...\" (demo, table2)"

$(PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(PY)

setup: $(PY)  ## create .venv with everything (once; again when pyproject.toml changes)

browser:  ## Debian's Chromium for the MLflow UI test (needs root and apt; the test skips without)
	command -v chromium >/dev/null || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# two pytest workers, a test file each: one's subprocesses start up (imports, Ray, torchrun)
# while the other's compute
test: $(PY)  ## run the test suite (first tries to install Chromium for the MLflow UI test)
	@$(MAKE) --no-print-directory browser || echo "Chromium could not be installed: the MLflow UI test will skip"
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

test-fast: $(PY)  ## the edit-test loop: every test not marked slow (unit and small integration)
	$(PY) -m pytest -q -m "not slow"

lint: $(PY)  ## ruff
	$(VENV)/bin/ruff check .

docs: $(PY)  ## rewrite the result blocks of README.md and docs/ from the committed data
	$(PY) -m evaluation.doc_blocks

data: $(PY)  ## download MINC-2500 to data/ (needs a network)
	$(PY) -m prep.datasets.download --dest $(dir $(DATA))

synthetic: $(PY)  ## write the built-in synthetic texture set to data/synthetic-textures
	$(PY) -m prep.datasets.synthetic --out data/synthetic-textures

prep: $(PY)  ## encode DATA at quality Q (and JPEG/WEBP qualities) into WebDataset shards under OUT
	$(PY) -m prep $(PREP_ARGS)

demo: $(PY)  ## the whole paper on synthetic textures: codecs -> shards -> classifiers -> report
	$(PY) -m prep.datasets.synthetic --out $(DEMO_DATA) $(DEMO_TEXTURES)
	$(if $(filter train,$(CODECS)),$(MAKE) demo-codecs,)
	$(PY) -m pipeline --experiment demo --data $(DEMO_DATA) --out $(DEMO_OUT) \
	  --qualities $(DEMO_QUALITIES) $(if $(filter train,$(CODECS)),--codecs runs/codecs/demo,--codecs $(CODECS)) \
	  $(if $(WORKERS),--prep-workers $(WORKERS)) $(ANCHOR_ARGS) $(PIPELINE_ARGS)

demo-codecs: $(PY)  ## retrain the demo codecs as codecs/demo/README.md says (hours on a CPU)
	$(PY) -m prep.datasets.synthetic --out data/synthetic-textures
	set -e; T="$(PY) -m prep.codec.train --data data/synthetic-textures --sizes 64,96 \
	  --batch-size 8 --crop 192 --val-every 500 --val-images 16"; \
	$$T -q 4 --out runs/codecs/q4 --steps 4000 --lr 2e-4; \
	$$T -q 1 --out runs/codecs/q1 --steps 2500 --init runs/codecs/q4/codec-q4.pth; \
	$$T -q 8 --out runs/codecs/q8 --steps 2500 --init runs/codecs/q4/codec-q4.pth; \
	$$T -q 4 --out runs/codecs/q4-ft --steps 1500 --init runs/codecs/q1/codec-q1.pth; \
	$$T -q 8 --out runs/codecs/q8-ft --steps 3000 --init runs/codecs/q8/codec-q8.pth
	mkdir -p runs/codecs/demo
	cp runs/codecs/q1/codec-q1.pth runs/codecs/q4-ft/codec-q4.pth runs/codecs/q8-ft/codec-q8.pth \
	  runs/codecs/demo/

# The offline stand-in for ImageNet (backbones/procedural/README.md): a procedural corpus with no
# family in common with any evaluated set -> its original/ shards -> a deep-stem ResNet-50
# lr divided by 10 after 5/8 and 7/8 of the epochs (32: after 20 and 28); a run folder per length
PRETRAIN_EPOCHS ?= 32
PRETRAIN_RUN := runs/pretrain/procedural-$(PRETRAIN_EPOCHS)
pretrain: $(PY)  ## pretrain the offline starting point -> backbones/procedural (resumes)
	$(PY) -m prep.datasets.procedural --out data/procedural --per-class 160 --size 96
	$(PY) -m prep --data data/procedural --out data/pretrain-shards --original-only
	$(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) trainer/main.py --domain original \
	  --shards data/pretrain-shards/procedural --init none --epochs $(PRETRAIN_EPOCHS) \
	  --batch-size 64 --lr 0.025 --lr-steps $$(( $(PRETRAIN_EPOCHS) * 5 / 8 )) \
	  $$(( $(PRETRAIN_EPOCHS) * 7 / 8 )) --resize 96 --crop 64 \
	  --out $(PRETRAIN_RUN) --resume --experiment pretraining
	$(PY) -m classifier.backbone $(PRETRAIN_RUN)/checkpoint.pth backbones/procedural/resnet50.pth

# The compressed domain's own start (docs/comp-study, row latent-start): the procedural corpus at
# 256 px (32 a class), coded by the demo codec q4, and cResNet-39 pretrained on its latents from
# the procedural trunk; the file the study reads
LATENT_START ?= runs/study/demo-textures/latent-start-q4.pth
pretrain-latent: $(PY)  ## pretrain cResNet-39 on the procedural corpus's q4 latents -> LATENT_START
	$(PY) -m prep.datasets.procedural --out data/procedural-256 --per-class 32 --size 256
	$(PY) -m prep --data data/procedural-256 --out data/latent-pretrain-shards --quality 4 \
	  --codec-weights codecs/demo/codec-q4.pth --shard-size 64
	$(VENV)/bin/torchrun --standalone --nproc_per_node=1 trainer/main.py --domain latent \
	  --shards data/latent-pretrain-shards/procedural-256 --quality 4 --init procedural --epochs 8 \
	  --lr 0.02 --lr-steps 6 --latent-resize 16 --latent-crop 14 --out runs/latent-pretrain \
	  --resume --experiment pretraining
	$(PY) -m classifier.backbone runs/latent-pretrain/checkpoint.pth $(LATENT_START)

# The latent branches fitted to the pixel start's conv_2x on the corpus's latents of CODECS's
# q1, q4 and q8 (16 images a class), without labels (trainer/latent_start.py; docs/comp-study,
# row latent-hint). Other codecs: make latent-hint CODECS=dir LATENT_HINT=file
LATENT_HINT ?= backbones/latent-hint-demo/branches.pth
HINT_STEPS ?= 1000
HINT_SHARDS = data/latent-hint-shards/$(notdir $(CODECS))
latent-hint: $(PY)  ## fit cResNet-39's latent branches to the procedural stem -> LATENT_HINT
	$(PY) -m prep.datasets.procedural --out data/procedural-256-16 --per-class 16 --size 256
	set -e; for q in 1 4 8; do $(PY) -m prep --data data/procedural-256-16 \
	  --out $(HINT_SHARDS) --quality $$q --codec-weights $(CODECS)/codec-q$$q.pth \
	  --shard-size 64; done
	$(PY) -m trainer.latent_start $(HINT_SHARDS)/procedural-256-16 --rates 1 4 8 \
	  --steps $(HINT_STEPS) --out $(LATENT_HINT)

SUBSET ?= ../shared/data/minc-2500-subset/minc-2500
minc-codecs: $(PY)  ## retrain codecs/minc-subset on the real photographs, as its model card says
	set -e; T="$(PY) -m prep.codec.train --data $(SUBSET) --batch-size 8 --crop 192 --threads 1 \
	  --val-every 500 --val-images 16"; R=runs/codecs/minc-subset; \
	$$T -q 4 --out $$R/q4 --steps 3000 --init codecs/demo/codec-q4.pth; \
	$$T -q 1 --out $$R/q1 --steps 1500 --init $$R/q4/codec-q4.pth & Q1=$$!; \
	$$T -q 8 --out $$R/q8 --steps 2000 --init $$R/q4/codec-q4.pth; wait $$Q1; \
	mkdir -p codecs/minc-subset; \
	cp $$R/q1/codec-q1.pth $$R/q4/codec-q4.pth $$R/q8/codec-q8.pth codecs/minc-subset/

codec: $(PY)  ## train the codec of quality Q on DATA [INIT=pretrained|file SIZES=N,M STEPS=n]
	$(PY) -m prep.codec.train -q $(Q) --data $(DATA) --out runs/codecs/q$(Q) --init $(INIT) \
	  --steps $(STEPS) $(if $(SIZES),--sizes $(SIZES))

DOMAIN ?= latent
NPROC ?= 2
SHARDS ?= $(OUT)/minc-2500
TRAIN_ARGS = --domain $(DOMAIN) --shards $(SHARDS) $(if $(filter-out original,$(DOMAIN)),--quality $(Q))
train: $(PY)  ## train DOMAIN (original|decoded|latent) at quality Q on SHARDS with NPROC processes
	$(PY) -m trainer.check $(TRAIN_ARGS)
	$(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) trainer/main.py $(TRAIN_ARGS)

# the demo's recipe chosen by the selection rule (docs/comp-study/selection.md): 300 textures a
# class of another seed, all test, that no run trains on; the incumbent against its runners-up
SELECTION_DATA ?= data/demo-selection
SELECTION_RUNS ?= runs/study-selection
demo-selection: $(PY)  ## choose the demo's Comp. recipe on a selection set (docs/comp-study/selection.md)
	$(PY) -m prep.datasets.synthetic --out $(SELECTION_DATA) --classes 6 --per-class 300 --size 256 \
	  --max-mix 0.2 --fractions 0 0 1 --seed 2
	$(PY) -m research.study --experiment demo --data $(DEMO_DATA) --seeds 3 \
	  --selection $(SELECTION_DATA) --runs $(SELECTION_RUNS) \
	  --rows anchor2 transplant-res-lr-0.001 transplant-res transplant-anchor2-seed
	$(PY) -m research.selection $(SELECTION_RUNS)/demo-textures \
	  --incumbent transplant-res-lr-0.001 --challengers transplant-res transplant-anchor2-seed

# the photographs' recipe chosen by the same rule where no image is spare: k-fold cross-validation
# over split 1's train and validation images (prep.datasets.folds), a study a fold (its held-out
# images its test split; neither the real test split nor the evaluation-only set read), then the
# rule on the folds' held-out images together (docs/comp-study/selection.md)
MINC_SUBSET ?= ../shared/data/minc-2500-subset/minc-2500
FOLDS_DATA ?= data/minc-subset-folds
FOLDS_RUNS ?= runs/study-folds
FOLDS_K ?= 3
FOLDS = $(shell seq 1 $(FOLDS_K))
minc-selection: $(PY)  ## choose the photographs' Comp. recipe by k-fold cross-validation (docs/comp-study/selection.md)
	$(PY) -m prep.datasets.folds $(MINC_SUBSET) --split 1 --k $(FOLDS_K) --seed 0 --out $(FOLDS_DATA)
	for f in $(FOLDS); do \
	  $(PY) -m research.study --experiment minc-subset --data $(FOLDS_DATA) --split $$f --seeds 1 \
	    --extra-test "" --runs $(FOLDS_RUNS) --rows anchor2 transplant-res transplant-res-up \
	    || exit 1; \
	done
	$(PY) -m research.selection $(foreach f,$(FOLDS),$(FOLDS_RUNS)/split$(f)/$(notdir $(FOLDS_DATA))) \
	  --incumbent transplant-res --challengers transplant-res-up

ui: $(PY)  ## MLflow UI on http://127.0.0.1:5000 (the runs in mlflow.db)
	@echo "open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (model training view)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

# TRACKING_HOST: the address to listen on (on a cluster, the head's private IP); AUTH_CONFIG: MLflow's
# basic_auth.ini, outside the repository (default $MLFLOW_AUTH_CONFIG_PATH, else ~/.cdmr/mlflow-auth.ini)
TRACKING_HOST ?= 127.0.0.1
TRACKING_PORT ?= 5000
AUTH_CONFIG ?=
tracking-server: $(PY)  ## MLflow server (mlflow.db) that asks each client for a user and password
	$(PY) -m foundation.tracking_server --host $(TRACKING_HOST) --port $(TRACKING_PORT) \
		--store sqlite:///$(CURDIR)/mlflow.db $(if $(AUTH_CONFIG),--auth-config $(AUTH_CONFIG))

# SEEDS=N: every classifier trained N times (seeds 0..N-1; seed k>0 in <run folder>-seed<k>)
SEEDS ?=
# EXTRA_TEST=dir: an evaluation-only set (MINC layout, test only) evaluated beside the test split
EXTRA_TEST ?=
# ABLATIONS=1: also Comp. (y) and Comp. (sigma); EVERY_RATE=1: also one Comp. for every rate;
# DISTILL=1: each Comp. taught by, and started from, the Anchor 2 of its set and seed
PIPELINE_EXTRAS = $(if $(SEEDS),--seeds $(SEEDS)) $(if $(EXTRA_TEST),--extra-test $(EXTRA_TEST)) \
	$(if $(ABLATIONS),--ablations) $(if $(EVERY_RATE),--every-rate) $(if $(DISTILL),--distill)
# PIPELINE_ARGS="--flag value ...": any `python -m pipeline` flag, last (demo and table2)
PIPELINE_ARGS ?=
# make table2 EXPERIMENT=<name in experiments/ or a TOML file>: the file decides; a variable given
# on make's command line (or in the environment) overrides its key, the others leave it alone
EXPERIMENT ?= paper
given = $(if $(filter command line environment,$(origin $(1))),$(2) $(subst $(comma), ,$($(1))))
TABLE2_ARGS = $(call given,DATA,--data) $(call given,OUT,--out) $(call given,QUALITIES,--qualities) \
	$(call given,EPOCHS,--epochs) $(call given,NPROC,--nproc) $(call given,SPLITS,--splits) \
	$(call given,LANES,--lanes) $(call given,INIT,--init) $(call given,CODECS_DIR,--codecs) \
	$(call given,WORKERS,--prep-workers) $(call given,DEVICE,--device)
table2: $(PY)  ## EXPERIMENT's matrix (default paper): prep, every classifier, evaluation, report (resumes)
	$(PY) -m pipeline --experiment $(EXPERIMENT) $(TABLE2_ARGS) $(PIPELINE_EXTRAS) $(ANCHOR_ARGS) \
	  $(PIPELINE_ARGS)

# make cluster-experiment RUNS=/mnt/shared/runs OUT=s3://<bucket>/shards DATA=/home/ray/data/minc-2500:
# EXPERIMENT as one Ray job on the cluster (`ray dashboard cluster/config.yaml` open), every step a
# Ray task there; RUNS and REPORTS (default: beside RUNS) on a filesystem every node mounts; JOB_ENV:
# the jobs' environment (MLFLOW_TRACKING_URI and its user, docs/paper.md), outside the repository
RAY_DASHBOARD ?= http://127.0.0.1:8265
JOB_ENV ?= $(HOME)/.cdmr/job-env.yaml
RUNS ?=
REPORTS ?= $(dir $(RUNS))reports
cluster-experiment: $(PY)  ## EXPERIMENT on the Ray cluster: RUNS=<shared folder> [OUT= DATA= JOB_ENV=]
	$(if $(RUNS),,$(error give RUNS=<a folder every node mounts>, e.g. RUNS=/mnt/shared/runs))
	$(VENV)/bin/ray job submit --address $(RAY_DASHBOARD) \
	  $(if $(wildcard $(JOB_ENV)),--runtime-env $(JOB_ENV)) --working-dir . -- \
	  python -m pipeline --experiment $(EXPERIMENT) --runs $(RUNS) --reports $(REPORTS) \
	  $(TABLE2_ARGS) $(PIPELINE_EXTRAS) $(PIPELINE_ARGS)

minc-subset: $(PY)  ## make table2 EXPERIMENT=minc-subset: the real MINC-2500 photographs of ../shared
	$(MAKE) --no-print-directory table2 EXPERIMENT=minc-subset

evaluate: $(PY)  ## every trained classifier of SHARDS on every prepared set -> reports/<dataset>
	$(PY) -m evaluation.evaluate --shards $(SHARDS)

report: $(PY)  ## evaluate, then Table 2, figures, efficiency -> reports/<dataset> and MLflow
	$(PY) -m evaluation.report --shards $(SHARDS) $(if $(DEVICE),--device $(DEVICE))

bench-prep: $(PY)  ## prep throughput, scaling, worker memory and bytes per member
	$(PY) -m benchmarks.bench_prep

bench-train: $(PY)  ## the GEMM peak, FLOPs, the bare step by precision and layout, the trainer, the loader
	$(PY) -m benchmarks.bench_train

bench-eval: $(PY)  ## cost of a prediction from the bitstream: compressed domain vs pixels
	$(PY) -m benchmarks.bench_eval

bench-gpu: $(PY)  ## on a CUDA node: prep transforms, the prep job, the bitstream paths, a train step per domain
	$(PY) -m benchmarks.bench_gpu

bench: bench-prep bench-train bench-eval  ## all benchmarks (CPU); bench-gpu on a GPU node

clean:  ## remove generated data (keeps .venv)
	rm -rf data/shards data/synthetic-textures
