"""Model registry (data), architectures, and the loaded-model runtime."""
