# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
.PHONY: setup demo test lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/gdml benchmark

test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check src tests bench scripts

bench: setup
	.venv/bin/python bench/run_all.py
