"""Root plugin: registers zerodrop's options and fixtures (fixtures/plugin.py for targets and
suites, fixtures/zero_downtime.py for the proofs under load)."""
pytest_plugins = ["fixtures.plugin", "fixtures.zero_downtime"]
