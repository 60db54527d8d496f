"""One module per command, each the recipe of that command: preflight checks (preflight.py),
then the pipeline's stages, then the outputs through one commit. The CLI imports them late:
Spark and TensorFlow load slowly."""
