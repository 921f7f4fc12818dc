"""Speed benchmark of the impact index against its peers (`make bench`); never imported by the pipeline."""
