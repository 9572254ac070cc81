"""Jobs: ``POST /upscale`` as a resource to submit, poll, fetch and cancel (issue 25).

* ``records.py``: a job's record and every change of its state, as pure functions;
* ``store.py``: what a store of records does (``JobStore``); ``stores.py``: which one the
  settings name;
  ``local_store.py`` (SQLite in the jobs folder: the gateways of one host) and
  ``redis_store.py`` (Redis: replicas share jobs);
* ``files.py``: inputs and results as files, written atomically (never held in memory);
* ``runner.py``: the workers that run queued jobs through the same plan and ``run_upscale`` as
  ``/upscale``, with their heartbeat (progress, lease, cancellation) and the store's upkeep;
* ``service.py``: what the routes (service/jobs_api.py) call: submit, status, result, cancel.
"""
