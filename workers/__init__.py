"""The worker pool: loads generators once, batches jobs across clients, answers.

Modules: ``models`` (registry + architectures + loading), ``latent_math`` (edit
and projection math), ``methods`` (SeFa, inversion), ``direction_store``
(Redis-backed directions with an LRU cache), ``jobs`` (turning Job messages
into results, fused per batch), ``worker`` (the Redis Streams consumer loop).
"""
