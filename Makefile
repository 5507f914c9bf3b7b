# Papillon: `make run` serves the campaigns on this machine; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO := instance/demo-key
# The Chromium that `make chromium` checks for and the browser tests drive (tests/browser_support.py reads the same
# variable, with the same default): one setting, `make test PAPILLON_CHROMIUM=/path/to/chromium` or from the
# environment. Only Debian's own path is installed when missing.
DEBIAN_CHROMIUM := /usr/bin/chromium
PAPILLON_CHROMIUM ?= $(DEBIAN_CHROMIUM)
export PAPILLON_CHROMIUM
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint format chromium deploy-tools wrk bench bench-load clean messages translations offline-kit

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

instance/secret_key:
	mkdir -p instance
	umask 077 && $(PY) -c 'import secrets; print(secrets.token_hex(32))' > $@

# A demo key pair, only when keys/ holds no public key: its private half stays under
# instance/ with its passphrase beside it, which is fine for a demo and never for real use.
demo-key: $(VENV)/.installed
	@if ! ls keys/*.pub >/dev/null 2>&1; then \
	  mkdir -p $(DEMO) && umask 077 && \
	  echo 'demo passphrase, NOT SECRET, NOT FOR REAL USE' > $(DEMO)/passphrase.txt && \
	  $(PY) scripts/keygen.py --demo --out $(DEMO) --name demo-NOT-FOR-REAL-USE --passphrase-file $(DEMO)/passphrase.txt && \
	  cp $(DEMO)/demo-NOT-FOR-REAL-USE.pub keys/ && \
	  echo '*** DEMO KEY: its private half and passphrase are in $(DEMO)/. Replace it before real use (README). ***'; \
	fi

# The interface's words: `make messages` gathers them from the code into messages.pot and adds the new ones,
# empty, to every language's .po (a translator fills them in); `make translations` compiles the .po files.
# Drafts carry `#, fuzzy` in their header until a fluent speaker has checked them (docs/campaigns.md).
BABEL := $(VENV)/bin/pybabel
CATALOGS := app/translations

messages: $(VENV)/.installed
	$(BABEL) extract -F babel.cfg -k _l -k lazy_gettext -k N_ --no-wrap --sort-by-file --project Papillon \
	  --copyright-holder Papillon --msgid-bugs-address "" -o $(CATALOGS)/messages.pot .
	$(BABEL) update -i $(CATALOGS)/messages.pot -d $(CATALOGS) --no-wrap --no-fuzzy-matching --ignore-obsolete

translations: $(VENV)/.installed
	$(BABEL) compile -d $(CATALOGS) --use-fuzzy --statistics

# Only here may the app start with the demo key: anywhere else it refuses, and says how to replace it.
run: $(VENV)/.installed translations instance/secret_key demo-key
	PAPILLON_ALLOW_DEMO_KEY=true $(PY) -m flask --app wsgi db upgrade
	PAPILLON_ALLOW_DEMO_KEY=true $(PY) -m flask --app wsgi run --host 127.0.0.1 --port 5000

# axe-core for the accessibility tests, pinned by package-lock.json; never served to visitors.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The staff scripts and the wheels they need, for the offline laptop (docs/staff-guide.md): build it on a
# connected machine with the laptop's system and Python version, copy the folder over, follow INSTALL.txt.
# The wheels are the versions the dev environment runs; requirements.txt pins each by its SHA-256, so the
# laptop's pip (--require-hashes) installs exactly these files. The dev environment is made only if missing:
# a pyproject.toml newer than it does not make building a kit reinstall it.
KIT ?= offline-kit
KIT_PACKAGES := cryptography|pynacl|cffi|pycparser
offline-kit:
	@[ -f $(VENV)/.installed ] || $(MAKE) $(VENV)/.installed
	rm -rf $(KIT) && mkdir -p $(KIT)/wheels
	$(PY) -m pip download --quiet --only-binary=:all: --dest $(KIT)/wheels \
	  $$($(PY) -m pip freeze | grep -i -E '^($(KIT_PACKAGES))==')
	set -e; for wheel in $(KIT)/wheels/*.whl; do \
	  pin=$$(basename $$wheel | cut -d- -f1-2 | sed 's/-/==/'); \
	  echo "$$pin $$($(PY) -m pip hash --algorithm sha256 $$wheel | tail -n 1)"; \
	done > $(KIT)/requirements.txt
	mkdir -p $(KIT)/papillon $(KIT)/scripts
	cp papillon/*.py $(KIT)/papillon/ && cp scripts/*.py $(KIT)/scripts/
	cp docs/staff-guide.md $(KIT)/ && cp docs/offline-kit.txt $(KIT)/INSTALL.txt
	@echo "Offline kit ready in $(KIT)/: copy the folder to the laptop and follow INSTALL.txt."

chromium:
	@[ -x "$(PAPILLON_CHROMIUM)" ] || { [ "$(PAPILLON_CHROMIUM)" = "$(DEBIAN_CHROMIUM)" ] || \
	  { echo "PAPILLON_CHROMIUM=$(PAPILLON_CHROMIUM) is not an executable file" >&2; exit 1; }; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The programs tests/test_deploy_docs.py checks docs/deploy.md's files with, from Debian's packages.
DEPLOY_TOOLS := /usr/sbin/nginx /usr/bin/caddy /usr/sbin/tor /usr/bin/systemd-analyze /usr/bin/redis-server
deploy-tools:
	@for tool in $(DEPLOY_TOOLS); do [ -x $$tool ] || missing=1; done; \
	[ -z "$$missing" ] || { $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq nginx-light caddy tor systemd redis-server >/dev/null; }

# wrk drives the load benchmark (benchmarks/load.py), on loopback only.
wrk:
	@[ -x /usr/bin/wrk ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }

# Every test runs here, the browser, PostgreSQL, Redis and node ones included: markers (pyproject.toml) only let a
# person pick a part, as in `.venv/bin/pytest -m "not browser"`. Coverage counts branches, and is reported.
test: lint translations chromium deploy-tools node_modules/.installed
	$(PY) -m pytest --cov --cov-report=term-missing:skip-covered

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed chromium
	$(PY) -m benchmarks.seal
	$(PY) -m benchmarks.pow
	$(PY) -m benchmarks.decrypt

bench-load: $(VENV)/.installed wrk
	$(PY) -m benchmarks.load

clean:
	rm -rf $(VENV) node_modules offline-kit build *.egg-info .pytest_cache .ruff_cache .mypy_cache .coverage htmlcov
