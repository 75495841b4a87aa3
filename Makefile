# Quick start:  make demo  (set up; on the built-in synthetic world train the fusion model next to the baselines,
#                           print the leaderboard, then one user's recommendations with their explanation)
#               make test  (set up, run the tests)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch 2.13.0's CPU wheel lies on the development machines; elsewhere pip fetches the build for yours.
TORCH  ?= torch==2.13.0
EXTRAS ?= dev,text

.PHONY: setup demo test bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" "$(TORCH)"  # the pin keeps extras from pulling another torch
	touch $@

DEMO   ?= runs/demo

demo: setup
	$(VENV)/bin/fusionrec leaderboard --dataset synthetic --models pop,itemknn,ease,als,fusion --save $(DEMO)
	$(VENV)/bin/fusionrec explain --run $(DEMO)/fusion --k 5

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests

# rows go to benchmarks/results/<suite>.jsonl (datasets from $FUSIONREC_DATA; a missing one is skipped),
# then the tables of BENCHMARKS.md are regenerated from them
# the headline figures (hours on 2 cores): every model, 3 seeds, on both MovieLens sets; fusion vs the rest
bench: setup
	$(VENV)/bin/fusionrec bench models --dataset ml-100k --seed 0,1,2 --threads 1
	$(VENV)/bin/fusionrec bench models --dataset ml-latest-small --seed 0,1,2 --threads 1
	$(VENV)/bin/fusionrec bench compare --dataset ml-100k
	$(VENV)/bin/fusionrec bench compare --dataset ml-latest-small
	$(VENV)/bin/fusionrec bench report

clean:
	rm -rf $(VENV) bench-out .pytest_cache
