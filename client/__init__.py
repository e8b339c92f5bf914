"""The latentedit Python SDK (torch-free): :class:`Client` and :class:`AsyncClient`.

::

    from latentedit.client import Client

    with Client("127.0.0.1:50051") as c:
        faces = c.generate("dcgan-faces", seeds=[1, 2, 3])
        c.discover("dcgan-faces", "sefa", top_k=5)
        out = c.edit("dcgan-faces", faces.latents, {"sefa_00": 3.0}, sweep=(5, -1, 1))

Errors are the classes of :mod:`latentedit.errors`, one per gRPC status.
"""

from latentedit.errors import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    LatentEditError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

from ._transport import TLS
from .async_client import AsyncClient
from .async_jobs import AsyncTrainingJob
from .evaluation import Evaluation
from .jobs import JobStatus
from .paste import paste_back
from .sync_client import Client
from .sync_jobs import TrainingJob
from .types import (
    Analysis,
    CodeExtras,
    ConditionallyEdited,
    Direction,
    Edited,
    Generated,
    Inverted,
    InvertProgress,
    ModelInfo,
    Scores,
)

__all__ = [
    "TLS",
    "Analysis",
    "AsyncClient",
    "AsyncTrainingJob",
    "Cancelled",
    "Client",
    "CodeExtras",
    "ConditionallyEdited",
    "DeadlineExceeded",
    "Direction",
    "Edited",
    "Evaluation",
    "FailedPrecondition",
    "Generated",
    "Internal",
    "InvalidArgument",
    "InvertProgress",
    "Inverted",
    "JobStatus",
    "LatentEditError",
    "ModelInfo",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Scores",
    "TrainingJob",
    "Unauthenticated",
    "Unavailable",
    "paste_back",
]
