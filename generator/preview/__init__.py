"""Dashboard previews without a Grafana server.

``python -m generator preview --env prod [--prometheus URL] [--out preview/]``
renders every dashboard the chart ships in an environment to static HTML,
desktop (Grafana's 24-column grid) and phone (stacked, full width), dark and
light, with each panel's data fetched from Prometheus; Chromium (Debian's
``chromium``) screenshots every page. Findings (``checks``): a query with
no data, overlapping panels or panels past column 24, text that does not
fit at phone width, a stat or gauge without a unit.

Modules, in the order a preview runs them: ``source`` (which dashboards),
``stack`` (a local simulator + Prometheus when no URL is given),
``queries`` (variables resolved, Prometheus HTTP API), ``page`` + ``svg``
+ ``units`` (HTML and charts), ``browser`` (Chromium), ``checks``, ``run``
(the command, index and diff pages). ``grafana`` talks to a real Grafana
for those who have one.
"""
__all__ = ["Options", "Report", "preview"]


def __getattr__(name: str):
    """``Options``, ``Report`` and ``preview`` load the preview machinery (HTTP, pages, browser) on first use,
    so ``generator render``, whose command line names the preview subcommand, does not import it."""
    if name in __all__:
        from . import run
        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
