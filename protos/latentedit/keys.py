"""Redis key names: the meeting point of gateways and workers, in one place.

=============================  ======  =========================================
key                            type    what
=============================  ======  =========================================
``le:jobs:{model}``            stream  jobs for one model (field ``job``: Job)
``le:replies:{gateway}``       stream  JobResults for one gateway (``result``)
``le:models``                  hash    model name -> ModelInfo (set by workers)
``le:workers:{worker}``        string  worker heartbeat, expires when it dies
``le:dirs:{model}``            hash    direction name -> Direction (with vector)
``le:dirvers:{model}``         hash    direction name -> version
``le:alive:{model}``           string  set while some worker serves the model
``le:cancel:{job}``            string  the caller gave up: stop the job
``le:tuning:{model}:{id}``     bytes   a tuning delta from Invert "tune" (expires)
=============================  ======  =========================================
"""

from __future__ import annotations

PREFIX = "le"
WORKER_GROUP = "workers"
JOB_FIELD = "job"
RESULT_FIELD = "result"
MODELS = f"{PREFIX}:models"


def job_stream(model: str) -> str:
    return f"{PREFIX}:jobs:{model}"


def reply_stream(gateway_id: str) -> str:
    return f"{PREFIX}:replies:{gateway_id}"


def worker_heartbeat(worker_id: str) -> str:
    return f"{PREFIX}:workers:{worker_id}"


def directions(model: str) -> str:
    return f"{PREFIX}:dirs:{model}"


def split_direction_id(direction: str, default_model: str = "") -> tuple[str, str]:
    """``"model/name"`` -> ``("model", "name")``; a bare ``"name"`` takes ``default_model``."""
    model, sep, name = direction.partition("/")
    if not sep:
        return default_model, direction
    return model, name


def direction_versions(model: str) -> str:
    """hash: direction name -> version (int), checked on every use to never serve stale."""
    return f"{PREFIX}:dirvers:{model}"


def model_alive(model: str) -> str:
    """string with a TTL, refreshed by every worker that serves ``model``."""
    return f"{PREFIX}:alive:{model}"


def cancelled(job_id: str) -> str:
    """string with a TTL: set by the gateway when the caller gave up on the job."""
    return f"{PREFIX}:cancel:{job_id}"


def tuning(model: str, tuning_id: str) -> str:
    """bytes with a TTL: a pivotal-tuning generator delta (fp16 tensors, torch.save)."""
    return f"{PREFIX}:tuning:{model}:{tuning_id}"
