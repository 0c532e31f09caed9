# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCHES := bench-promoter bench-transformer bench-dream bench-dream-scale bench-context bench-attributions bench-variants \
	bench-reproduce bench-throughput bench-precision bench-tune bench-ism bench-motifs bench-design bench-marginalize bench-search bench-intervals

.PHONY: install demo test $(BENCHES) readme-tables promoter-data clean

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
	$(VENV)/bin/lint-imports --no-logo --no-cache   # the one-way layers of pyproject.toml
	$(PY) -m pytest -q

HELIXLAB_DATA ?= ../shared/data
promoter-data: data/prom_300_all_train.csv data/prom_300_all_train_kl.csv

# GUE prom_300_all train: reconstructed positives + one negative each (12 of 20 chunks random, as in GUE)
data/prom_300_all_train.csv: $(STAMP)
	mkdir -p data
	$(VENV)/bin/helixlab negatives $(HELIXLAB_DATA)/promoter_gue_human/prom_300_all/train_positives_reconstructed.csv.gz \
		-o $@ --mode random --include-positives --seed 0

# the same with the last chunk never chosen, as in GUE's negatives (configs/promoter_300_flatten_kl.toml)
data/prom_300_all_train_kl.csv: $(STAMP)
	mkdir -p data
	$(VENV)/bin/helixlab negatives $(HELIXLAB_DATA)/promoter_gue_human/prom_300_all/train_positives_reconstructed.csv.gz \
		-o $@ --mode random --include-positives --seed 0 --keep-last

# bench-NAME runs benchmarks/NAME.py (a dash in NAME is an underscore in the file name)
$(BENCHES): bench-%: $(STAMP)
	$(PY) benchmarks/$(subst -,_,$*).py

# copy the results tables into README.md's marked blocks (make test fails while one is out of date)
readme-tables: $(STAMP)
	$(PY) benchmarks/readme_tables.py

clean:
	rm -rf demo_out runs .pytest_cache
