"""station: firmware for a bidirectional (V2G) EV charging station."""

__version__ = "0.1.0"

__all__ = ["__version__"]
