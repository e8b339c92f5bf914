"""latentedit: edit images by moving the latent codes of pretrained GANs.

Packages (one namespace, folders mapped by setuptools ``package-dir``):

- ``latentedit.v1``: generated protobuf + gRPC code (``protos/latentedit/v1``).
- ``latentedit.codec``, ``latentedit.errors``, ``latentedit.keys``: the contract
  every role shares (tensor/image wire format, error table, Redis key names).
- ``latentedit.client``: the SDK (``client/``), torch-free.
- ``latentedit.server``: the gRPC gateway (``server/``), torch-free.
- ``latentedit.workers``: the batching worker pool (``workers/``), torch.
- ``latentedit.deploy``: the CLI (``latentedit up|gateway|worker|demo``).

Data flows one way: SDK -> gateway -> Redis -> worker -> Redis -> gateway -> SDK.
"""

__version__ = "0.1.0"
