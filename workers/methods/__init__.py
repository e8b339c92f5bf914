"""Direction discovery and inversion methods: one module per method, pure functions."""
