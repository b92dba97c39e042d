"""Cluster mode on Ray Core (`pip install .[cluster]`): many engines, one API (docs/cluster.md).

Ray is imported only by this package, and only when cluster mode is asked for (`streamer serve
--cluster` or `--ray-address`); the default single-process engine never loads it.

    capacity.py    a worker's budget and a stream's load (object-frames per second), the table
    placement.py   which worker gets a stream (pure policy)
    worker.py      the Ray actor: one Engine per GPU or CPU slot
    report.py      one stream as a worker reports it
    controller.py  placement, drain and failover, from polled worker status
    remote.py      a stream on a worker as the API sees it
    relay.py       events from NATS into the API's hub (WebSockets)
    metrics.py     Prometheus series per worker and per stream
    host.py        ClusterHost: the API's stream host over the workers
    routes.py      /v1/workers and drain
    config.py      ClusterConfig and its registry (a `tiny` entry for tests)
    launch.py      `streamer serve --cluster`: Ray, a local NATS, the API
"""
