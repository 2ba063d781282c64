"""What tests share: checks, tiny models, runs that fail on purpose, the repository's paths."""
