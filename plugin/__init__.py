"""The zerodrop pytest plugin, registered through the ``pytest11`` entry point ``zerodrop``
(pyproject.toml), so ``pip install zerodrop`` is all another repository needs: its options
appear under "zerodrop" in ``pytest --help``.

It is made of small plugins: ``core`` (the options, the target through the registry, the
session hooks), ``proofs`` (the load's options, proofs deselected where nothing can switch) and
``summary`` (the verdicts in the terminal, summary.md, JUnit XML, the INCONCLUSIVE exit code),
and the fixtures that stand things up: ``fixtures.session`` (the run's session on its target),
``fixtures.targets`` (the suites' deployment and its client) and ``fixtures.proofs`` (a platform
per proof and what a proof needs around it).
"""
pytest_plugins = [
    "zerodrop.plugin.core",
    "zerodrop.plugin.proofs",
    "zerodrop.plugin.gameday",
    "zerodrop.plugin.summary",
    "zerodrop.fixtures.session",
    "zerodrop.fixtures.targets",
    "zerodrop.fixtures.proofs",
    "zerodrop.plugin.nightly",
    "zerodrop.fixtures.nightly",
]
