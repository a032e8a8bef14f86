"""tinybounty: tinygrad's bounty list as working, measured software on top of tinygrad 0.14.0."""
__version__ = "0.1.0"
