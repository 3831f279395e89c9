"""zerodrop: proves that a blue-green or canary switch drops no request and loses no data.

The repository keeps the design card's folders as its face and each is mapped into this
package (pyproject.toml, ``[tool.setuptools] package-dir``); nothing else is installed:

=====================  ==================================================================
folder                 import name and what it holds
=====================  ==================================================================
records/               ``zerodrop.records``: shapes that cross seams (ledger record, events,
                       progress, results); imports nothing of zerodrop
platforms/             ``zerodrop.platforms``: the Platform interface, the target registry,
                       the local platform and the Kubernetes platform with its providers
load/                  ``zerodrop.load``: Locust users, the load runner, the ledger writer
scenarios/             ``zerodrop.scenarios``: switch, rollback and the proof, as steps
reports/               ``zerodrop.reports``: the verdict (pure), evidence, Allure helpers
checks/                ``zerodrop.checks``: the seed's checks as functions, jq expectations,
                       the checks file, the HTTP client
fixtures/              ``zerodrop.fixtures``: pytest fixtures that stand things up
plugin/                ``zerodrop.plugin``: the pytest plugin (options, session hooks);
                       the ``pytest11`` entry point
suites/                ``zerodrop.suites``: the verification suites a user runs
payment_service/       ``zerodrop.payment_service``: the reference service and its manifests
zerodrop/              ``zerodrop``: this file and the ``zerodrop`` command
=====================  ==================================================================
"""
__version__ = "0.2.0"
