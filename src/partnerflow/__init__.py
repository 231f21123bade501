"""partnerflow: self-hostable affiliate and performance-marketing platform."""

__version__ = "0.1.0"
