# make run / make test: each sets everything up from nothing.
# The newest CPython at hand, 3.11 at the least: from 3.12 on, immortal
# objects keep forked workers from copying the pages their refcounts touch
# (measured with 100 services: 0.82 MiB PSS per worker on 3.13, 0.94 on 3.11).
PYTHON ?= $(shell for v in 3.13 3.12 3.11; do \
	  for p in $$(command -v python$$v) $$HOME/.pyenv/versions/$$v*/bin/python$$v /usr/bin/python$$v; do \
	    [ -x "$$p" ] && "$$p" -c 'import venv' 2>/dev/null && { echo "$$p"; exit 0; }; \
	  done; done; echo python3)
VENV := .venv
BIN := $(VENV)/bin
# The Debian packages the tests and benchmarks need: the reference
# implementations to compare with, the real clients to test with, the
# time zones tai64nlocal is compared in, and what unpacks the .rpm.
DEBS := daemontools runit s6 supervisor dbus systemd libglib2.0-bin curl procps util-linux groff-base mandoc man-db prometheus-node-exporter tzdata rpm2cpio cpio

.PHONY: run test debs venv bench clean chaos

run: venv
	@echo
	@echo "dtd is supervising examples/service/. In another terminal try:"
	@echo "  PATH=$$PWD/$(BIN):\$$PATH"
	@echo "  svstat examples/service/*"
	@echo "  svc -t examples/service/clock     # restart it"
	@echo "  svc -d examples/service/clock     # bring it down; svc -u: up again"
	@echo "  tail -f examples/service/clock/log/main/current"
	@echo "Ctrl-C stops every service and dtd."
	@echo
	PATH="$$PWD/$(BIN):$$PATH" exec $(BIN)/dtd --scan examples/service

test: venv debs
	PATH="$$PWD/$(BIN):$$PATH" $(BIN)/python -m pytest -q

bench: venv debs
	PATH="$$PWD/$(BIN):$$PATH" $(BIN)/python -m bench

# The full fault suite of tests/chaos (a few minutes); its fast profile runs
# in make test. The report goes to bench/results/chaos-*.json, or to CHAOS_REPORT=PATH.
chaos: venv debs
	PATH="$$PWD/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m chaos tests/chaos

# Missing Debian packages are installed; "apt-get update" first on a machine
# that has never fetched the package lists.
debs:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

# A real interpreter in the shebang, not a version manager's shim: each
# command then starts in a few milliseconds instead of a hundred.
$(VENV)/.installed: pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -c 'import sys, venv; venv.create(".venv", with_pip=True, symlinks=True)' \
	  || { apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info

# make deb / make rpm: binary packages built with Debian's own tools from
# the files git knows (a clean checkout's worth; files not yet committed
# are taken too), into PKG_DIST. Each installs its build tools when missing.
PKG_DIST ?= dist
PKG_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
DEB_BUILD_DEBS := debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools dpkg-dev lintian
RPM_BUILD_DEBS := rpm python3-build python3-installer python3-setuptools python3-wheel
# Debian's interpreter and tools, not a virtualenv's or a version manager's.
PKG_ENV := env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8

.PHONY: deb rpm

# $(call pkg_tree,DIR): the source tree, as git knows it, copied into DIR.
define pkg_tree
rm -rf $(1) && mkdir -p $(1)
git ls-files -z -co --exclude-standard | \
  tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C $(1)
endef

deb:
	$(MAKE) --no-print-directory debs DEBS="$(DEB_BUILD_DEBS)"
	rm -rf $(PKG_DIST)/deb
	$(call pkg_tree,$(PKG_DIST)/deb/dtd-$(PKG_VERSION))
	rm -rf $(PKG_DIST)/deb/dtd-$(PKG_VERSION)/debian
	cp -rL packaging/debian $(PKG_DIST)/deb/dtd-$(PKG_VERSION)/debian
	cd $(PKG_DIST)/deb/dtd-$(PKG_VERSION) && $(PKG_ENV) dpkg-buildpackage -b -us -uc
	$(PKG_ENV) lintian --fail-on error $(PKG_DIST)/deb/dtd_$(PKG_VERSION)_all.deb
	@ls -l $(PKG_DIST)/deb/*.deb

rpm:
	$(MAKE) --no-print-directory debs DEBS="$(RPM_BUILD_DEBS)"
	rm -rf $(PKG_DIST)/rpm
	$(call pkg_tree,$(PKG_DIST)/rpm/dtd-$(PKG_VERSION))
	mkdir -p $(PKG_DIST)/rpm/SOURCES
	tar -C $(PKG_DIST)/rpm -czf $(PKG_DIST)/rpm/SOURCES/dtd-$(PKG_VERSION).tar.gz dtd-$(PKG_VERSION)
	rm -rf $(PKG_DIST)/rpm/dtd-$(PKG_VERSION)
	# --nodeps: the BuildRequires name Fedora's packages, unknown to the
	# empty rpm database of a Debian machine.
	$(PKG_ENV) rpmbuild -bb --nodeps --define "_topdir $(abspath $(PKG_DIST))/rpm" \
	  --define "version $(PKG_VERSION)" packaging/rpm/dtd.spec
	@ls -l $(PKG_DIST)/rpm/RPMS/noarch/*.rpm
