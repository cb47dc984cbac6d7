# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint setup pcscd clean soak bench

demo: setup pcscd
	$(VENV)/bin/printstation demo --cards 20

# As root the suite runs as $(SHARDS) shards at once, each with a pcscd of its own in private
# namespaces (scripts/private-pcscd.sh, scripts/test-shards.py), so it may restart pcscd and bind
# vpcd ports without touching the machine's or another shard's; otherwise it runs in one piece on
# the running pcscd. `make test SHARDS=1` runs one shard.
SHARDS ?= 4
test: setup pcscd lint
	@if [ "$$(id -u)" = 0 ]; then $(PY) scripts/test-shards.py --shards $(SHARDS) --python $(PY); else $(VENV)/bin/pytest -q; fi

# Linters that would have caught a shadowed definition or a wrong type before a test did, and the
# import contracts (pyproject.toml [tool.importlinter]): the layers, and no cycles.
lint: setup
	$(VENV)/bin/ruff check agent drivers simulators tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) scripts/make-catalogs.py --check

# The crash suite's random kills, longer: 40 cards, 12 agent kills, every 3rd also a power cut of the printer.
soak: setup pcscd
	CRASH_CARDS=40 CRASH_KILLS=12 CRASH_POWER_CUT_EVERY=3 scripts/private-pcscd.sh $(VENV)/bin/pytest -q -s tests/test_crash_random.py

# The figures in docs/BENCHMARKS.md: about 30 minutes on two cores; stdout is one JSON object.
bench: setup pcscd
	$(VENV)/bin/printstation bench --json

# The sources byte-compiled at every setup, not only at install (0.05 s when nothing changed): the
# machine may set PYTHONDONTWRITEBYTECODE, and a daemon that compiled a changed module at each
# start would be measured, and would start, compiling.
setup: $(STAMP)
	$(PY) -m compileall -q agent drivers simulators

$(STAMP): pyproject.toml scripts/install-system-packages.sh
	scripts/install-system-packages.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

pcscd: setup
	scripts/setup-vpcd-slots.sh
	scripts/start-pcscd.sh $(PY)

clean:
	rm -rf $(VENV) build *.egg-info
