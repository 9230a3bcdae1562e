"""The package version, in one place (read by setup.cfg and ``rawtf.__version__``)."""

__version__ = "0.2.0"
