# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench-promoter bench-transformer bench-dream bench-dream-scale bench-context bench-attributions bench-variants promoter-data clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the local CPU build; anything else would pull CUDA packages
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/helixlab demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -q

HELIXLAB_DATA ?= ../shared/data
promoter-data: data/prom_300_all_train.csv

# GUE prom_300_all train: reconstructed positives + one negative each (12 of 20 chunks random, as in GUE)
data/prom_300_all_train.csv: $(STAMP)
	mkdir -p data
	$(VENV)/bin/helixlab negatives $(HELIXLAB_DATA)/promoter_gue_human/prom_300_all/train_positives_reconstructed.csv.gz \
		-o $@ --mode random --include-positives --seed 0

bench-promoter: $(STAMP)
	$(PY) benchmarks/promoter.py

bench-transformer: $(STAMP)
	$(PY) benchmarks/transformer.py

bench-dream: $(STAMP)
	$(PY) benchmarks/dream.py

bench-dream-scale: $(STAMP)
	$(PY) benchmarks/dream_scale.py

bench-context: $(STAMP)
	$(PY) benchmarks/context.py

bench-attributions: $(STAMP)
	$(PY) benchmarks/attributions.py

bench-variants: $(STAMP)
	$(PY) benchmarks/variants.py

clean:
	rm -rf demo_out runs .pytest_cache
