# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test setup pcscd clean

demo: setup pcscd
	$(VENV)/bin/printstation demo --cards 20

test: setup pcscd
	$(VENV)/bin/pytest -q

setup: $(STAMP)

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
