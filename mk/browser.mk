# Headless Chromium for the report's browser test (tests/e2e/test_report_browser.py): Debian's
# package, installed once by `make test` (a no-op when it is already there).
CHROMIUM_PACKAGE ?= chromium
# The e2e test lane needs it (the deploy lane's tools are in TEST_TOOLS).
E2E_TEST_TOOLS += browser

.PHONY: browser

browser: ## install Debian's chromium (headless browser for the report test), once
	@command -v chromium >/dev/null 2>&1 || { $(APT_INSTALL) $(CHROMIUM_PACKAGE); }
	@chromium --version
