"""Site workers: hosts of a client network (``site:`` var) run from a worker inside that
network, which dials out to the hub over NATS JetStream. Owns the subject naming
(``subjects``), the hub side (publishing jobs, ingesting results, liveness) and the worker
side (pulling jobs, running them with the ordinary engine, outbox). May import engine,
after_run, store and below; imported by schedule, web and cli only.
"""
