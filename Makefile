# Two entry points for a fresh machine: `make chart` and `make test`.
PY := .venv/bin/python
.PHONY: tools chart render check lint test demo

tools: ## install pinned helm 3/4, promtool, amtool, the venv (idempotent)
	scripts/bootstrap

render: tools
	$(PY) -m generator render

check: tools
	$(PY) -m generator render --check

lint: tools
	$(PY) -m generator lint

chart: tools ## render chart/ from templates_src/ and values/, then lint it
	$(PY) -m generator render
	$(PY) -m generator lint

test: tools ## every test, with the real tools (one worker per core, a test file's tests on one worker)
	$(PY) -m pytest -q -n auto --dist loadfile --durations=25

demo: tools ## run the prod alerting locally (simulator, Prometheus, Alertmanager, PagerDuty/Opsgenie stand-ins); type a scenario to page
	$(PY) -m generator render
	$(PY) scripts/demo
