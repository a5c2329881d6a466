"""medtune's trial side: data, models and the training function. Never imports ``medtune.search``."""
