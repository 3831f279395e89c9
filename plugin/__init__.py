"""The zerodrop pytest plugin, registered through the ``pytest11`` entry point ``zerodrop``
(pyproject.toml), so ``pip install zerodrop`` is all another repository needs: its options
appear under "zerodrop" in ``pytest --help``.

It is made of small plugins: ``core`` (options of the suites, the target, session hooks) and
``proofs`` (options and fixtures of the zero-downtime proofs).
"""
pytest_plugins = ["zerodrop.plugin.core", "zerodrop.plugin.proofs"]
