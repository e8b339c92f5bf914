"""Operating latentedit: the CLI, a one-machine stack launcher, the demo, Docker files."""
