# facedouble: the two commands of the README.
#   make demo   set up .venv and run the pipeline on the sample media (ends with workspace-demo/result.mp4)
#   make test   set up .venv and run the tests
PYTHON ?= python3
VENV_PY := .venv/bin/python

.PHONY: setup demo test test-slow bench clean-demo

setup:
	$(PYTHON) scripts/bootstrap.py --dev --web

demo: setup
	$(VENV_PY) scripts/demo.py

test: setup
	$(VENV_PY) -m pytest -q -p no:cacheprovider

test-slow: setup
	$(VENV_PY) -m pytest -q -p no:cacheprovider -m slow

bench: setup
	for b in benchmarks/*.py; do $(VENV_PY) $$b || exit 1; done

clean-demo:
	rm -rf workspace-demo
