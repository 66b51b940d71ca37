"""brightscan inside other engines: Spark brokers (Fink) through a pandas UDF (:mod:`.spark`)."""
