"""``lakescore bench``: measure a model on this machine and turn the rates into a plan."""
