"""medtune's sweep driver: the space file, its validation, the Tuner and the CLI."""
