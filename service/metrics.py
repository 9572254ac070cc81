"""The gateway's Prometheus metrics (names follow the conventions: ``_total``, ``_seconds``...).

Defined once at import, in the default registry, so every app made in a process shares them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NAMESPACE = "imdsr_gateway"
STAGES = ("read", "decode", "infer", "encode")  # "infer" is tiling + Triton + stitching

# Seconds: from a small tile on a GPU to a large image on a CPU.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
PIXEL_BUCKETS = tuple(float(4 ** k) for k in range(5, 15))  # 1 Ki .. 256 Mi pixels
BYTE_BUCKETS = tuple(float(4 ** k) for k in range(6, 15))   # 4 KiB .. 256 MiB
TILE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

REQUESTS = Counter(f"{NAMESPACE}_requests", "HTTP requests by route, model and status",
                   ["route", "model", "status"])
REQUEST_SECONDS = Histogram(f"{NAMESPACE}_request_duration_seconds",
                            "Total time of an HTTP request", ["route"], buckets=LATENCY_BUCKETS)
STAGE_SECONDS = Histogram(f"{NAMESPACE}_stage_duration_seconds",
                          "Time per /upscale stage (read, decode, infer, encode)", ["stage"],
                          buckets=LATENCY_BUCKETS)
IN_FLIGHT = Gauge(f"{NAMESPACE}_requests_in_flight", "/upscale requests being processed")
INPUT_PIXELS = Histogram(f"{NAMESPACE}_input_pixels", "Pixels of decoded input images",
                         buckets=PIXEL_BUCKETS)
OUTPUT_PIXELS = Histogram(f"{NAMESPACE}_output_pixels", "Pixels of output images",
                          buckets=PIXEL_BUCKETS)
REQUEST_BYTES = Histogram(f"{NAMESPACE}_request_body_bytes", "Size of /upscale request bodies",
                          buckets=BYTE_BUCKETS)
RESPONSE_BYTES = Histogram(f"{NAMESPACE}_response_body_bytes", "Size of encoded output images",
                           buckets=BYTE_BUCKETS)
TILES = Histogram(f"{NAMESPACE}_tiles_per_request", "Tiles sent to Triton per request",
                  buckets=TILE_BUCKETS)
TRITON_ERRORS = Counter(f"{NAMESPACE}_triton_errors", "Failed Triton calls by kind", ["kind"])
TRITON_INFER_SECONDS = Histogram(f"{NAMESPACE}_triton_infer_duration_seconds",
                                 "Round trip of one tile inference", ["model"],
                                 buckets=LATENCY_BUCKETS)
REJECTED = Counter(f"{NAMESPACE}_rejected_requests", "Requests refused by a limit", ["reason"])
ADMITTED_SECONDS = Gauge(f"{NAMESPACE}_admitted_work_seconds",
                         "Estimated Triton seconds of the requests admitted and not finished")
ADMITTED_BYTES = Gauge(f"{NAMESPACE}_admitted_memory_bytes",
                       "Estimated gateway memory of the requests admitted and not finished")
# Hang-ups (service/hangups.py): the client left before its answer; its remaining tiles were not
# sent and its admitted work was released.
ABANDONED = Counter(f"{NAMESPACE}_abandoned_requests",
                    "Requests whose client disconnected before the answer (their work was stopped)",
                    ["route"])
# Jobs (service/jobs/): what this gateway ran, and the store's state as this gateway last saw it.
JOBS_SUBMITTED = Counter(f"{NAMESPACE}_jobs_submitted", "Jobs accepted by POST /jobs")
JOBS_FINISHED = Counter(f"{NAMESPACE}_jobs_finished",
                        "Jobs this gateway stopped running, by how (done, failed, cancelled, requeued, lost)",
                        ["status"])
JOBS_RUNNING = Gauge(f"{NAMESPACE}_jobs_running", "Jobs running in this gateway")
JOBS_STORED_BYTES = Gauge(f"{NAMESPACE}_jobs_stored_bytes",
                          "Bytes of job inputs and results on disk, reserved or written (all jobs)")
# GET /models: what each ready model says it computes in (precision "auto" resolved where it
# loaded); Triton's own /metrics carries imdsr_model_info{model, instance, runtime, precision}.
MODEL_INFO = Gauge(f"{NAMESPACE}_model_info", "Served models by precision (1), as GET /models "
                   "last learnt it", ["model", "precision"])
