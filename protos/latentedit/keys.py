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
``le:dirsets:{model}``         hash    learned set name -> safetensors blob
``le:trainjobs:{model}``       stream  training jobs (field ``job``: Job), group ``trainers``
``le:tjob:{id}``               hash    a training job: state, rev, owner, cancel, status, job
``le:tjob:{id}:events``        stream  its JobStatus updates (field ``status``), tailed by WatchJob
``le:tjob:{id}:ckpt``          bytes   its last checkpoint (torch.save of the trainer state)
``le:tjobs:{model}``           zset    job ids of a model by creation time (ms)
``le:dead``                    stream  dead letters: jobs delivered too often
``le:gateway:{gateway}``       string  a gateway's marker: gone = Redis was emptied
``le:inflight:{api key}``      zset    calls in flight per API key (score: deadline ms)
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


def learned_sets(model: str) -> str:
    """hash: learned direction-set name -> safetensors blob (``workers/learned``)."""
    return f"{PREFIX}:dirsets:{model}"


# ---- jobs (branch `jobs`): long-running training jobs ----------------------------------
TRAINER_GROUP = "trainers"


def training_stream(model: str) -> str:
    """stream: training jobs of ``model`` (consumer group ``trainers``, one lane per worker)."""
    return f"{PREFIX}:trainjobs:{model}"


def training_job(job_id: str) -> str:
    """hash: one training job's state, revision, owner, cancel flag, JobStatus and Job."""
    return f"{PREFIX}:tjob:{job_id}"


def training_events(job_id: str) -> str:
    """stream: the job's JobStatus updates, newest last (capped, expires after the job)."""
    return f"{PREFIX}:tjob:{job_id}:events"


def training_checkpoint(job_id: str) -> str:
    """bytes: the job's last checkpoint (torch.save of the trainer's state_dict)."""
    return f"{PREFIX}:tjob:{job_id}:ckpt"


def training_index(model: str) -> str:
    """zset: job ids of ``model`` scored by creation time (unix ms)."""
    return f"{PREFIX}:tjobs:{model}"


DEAD_LETTERS = f"{PREFIX}:dead"  # stream: jobs that exhausted their deliveries, with the error


def gateway_marker(gateway_id: str) -> str:
    """string with a TTL, refreshed by its gateway; found missing = Redis lost its data."""
    return f"{PREFIX}:gateway:{gateway_id}"


def inflight(key_name: str) -> str:
    return f"{PREFIX}:inflight:{key_name}"
