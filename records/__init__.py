"""The shapes that cross zerodrop's seams, at the bottom of the import graph: this package
imports nothing else of zerodrop (tests/test_architecture.py holds it to that).

- ``records.ledger``: one record per request (``LedgerRecord``), its writer and reader, and
  ``failed(outcome)``, the one predicate that decides a failure;
- ``records.events``: the timeline event, the catalogue of event names, the event log;
- ``records.progress``: the live counters of a load run;
- ``records.results``: what a scenario and the data check hand to the verdict.
"""
