"""The operator's layer: the `coinstream` command, the local stack, demo, doctor, deploy."""
