"""The gRPC gateway: validates every request, queues it on Redis Streams, waits for the reply.

Torch-free. ``settings`` (GatewaySettings), ``job_queue`` (Redis side: bounded
enqueue, one reply stream per gateway, model catalogue), ``gateway`` (the
``grpc.aio`` servicer, health, reflection, metrics).
"""
