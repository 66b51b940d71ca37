"""The write path: feeds hand over deliveries (:mod:`.feeds`), the service scores, stores, decides
and enqueues (:mod:`.service`), the outbox drains actions to a sink (:mod:`.outbox`), and the
runner is what the CLI calls (:mod:`.runner`). None of it imports a sink: it depends on
:mod:`brightscan.autoscan.actions` only."""
