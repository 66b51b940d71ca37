"""The read-only pages over the autoscan database: the night page (:mod:`.night`), the live status
page (:mod:`.status`) and the JSON-ready queries both use (:mod:`.views`). Nothing here writes."""
