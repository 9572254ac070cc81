"""Locust load for ``POST /upscale`` with real photos (scenarios: ``loadtest/scenarios.py``).

``make loadtest`` (``loadtest/run.py``) runs it; by hand, against a running gateway::

    IMDSR_LOAD_SCENARIOS=small .venv/bin/locust -f loadtest/locustfile.py --headless \
        --host http://127.0.0.1:8080 -u 4 -r 4 -t 60s

Environment:

- ``IMDSR_LOAD_SCENARIOS``: which scenarios (``small``, ``small,c4``, ...; default all).
- ``IMDSR_LOAD_SHAPE``: ``constant`` (default: ``-u`` users throughout) or ``step`` (one user
  more every ``IMDSR_LOAD_STEP_S`` seconds, default ``-t / -u``, up to ``-u``, for ``-t``).

Each user is a closed loop: it sends its next request when the last answer has arrived. Every
scenario is its own request name. 429 and 503 with Retry-After (the gateway's admission control)
are counted under the name plus ``[shed]`` as successes, and the user waits as told; any other
non-200, or a 200 of the wrong size, is a failure.
"""

from __future__ import annotations

import os
import time

import scenarios  # loadtest/scenarios.py: Locust puts the locustfile's folder on sys.path
from locust import HttpUser, LoadTestShape, constant

SELECTED = scenarios.select(os.environ.get("IMDSR_LOAD_SCENARIOS", ""))
BODIES = {s.name: scenarios.encode(s) for s in SELECTED}   # encoded once, at start-up
TIMEOUT_S = 300.0        # the gateway's own request timeout; a large c16nla photo takes seconds
MAX_RETRY_AFTER_S = 10.0


def _task(scenario: scenarios.Scenario):  # noqa: ANN202 - a Locust task callable
    def task(user: UpscaleUser) -> None:
        user.upscale(scenario)

    task.__name__ = scenario.name  # what --show-task-ratio prints
    return task


class UpscaleUser(HttpUser):
    wait_time = constant(0)
    tasks = {_task(s): s.weight for s in SELECTED}

    def upscale(self, scenario: scenarios.Scenario) -> None:
        retry_after = 0.0
        with self.client.post("/upscale", data=BODIES[scenario.name], params={"model": scenario.model},
                              headers={"Content-Type": scenario.content_type}, name=scenario.name,
                              timeout=TIMEOUT_S, catch_response=True) as response:
            status, headers = response.status_code, response.headers
            if status == 200:
                if headers.get("X-Output-Size") != scenario.output_size:
                    response.failure(f"X-Output-Size {headers.get('X-Output-Size')}, "
                                     f"expected {scenario.output_size}")
            elif status in scenarios.SHED_STATUSES and "Retry-After" in headers:
                response.request_meta["name"] = scenario.name + scenarios.SHED_SUFFIX
                response.success()
                retry_after = min(float(headers["Retry-After"]), MAX_RETRY_AFTER_S)
            else:  # status 0: no answer (connection refused, timeout): Locust keeps the error
                response.failure(f"{status}: {response.text[:200] if status else response.error!r}")
        if retry_after:
            time.sleep(retry_after)  # gevent-patched: yields to the other users


SHAPE = os.environ.get("IMDSR_LOAD_SHAPE", "constant")
if SHAPE not in ("constant", "step"):
    raise ValueError(f"IMDSR_LOAD_SHAPE={SHAPE!r}: constant or step")

if SHAPE == "step":
    # Locust uses a LoadTestShape only when the locustfile defines one: defined for step only.
    class StepLoad(LoadTestShape):
        """One user more every step, up to -u, until -t has passed."""

        use_common_options = True  # reads -u and -t itself

        def tick(self) -> tuple[int, float] | None:
            options = self.runner.environment.parsed_options
            users, duration = max(1, options.num_users or 1), options.run_time or 60
            step = float(os.environ.get("IMDSR_LOAD_STEP_S") or duration / users)
            elapsed = self.get_run_time()
            if elapsed >= duration:
                return None
            return min(users, 1 + int(elapsed // step)), float(users)
