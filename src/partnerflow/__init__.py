"""partnerflow: self-hostable affiliate and performance-marketing platform."""

from partnerflow import speedups

__version__ = "0.1.0"

# Before any module of the tracker's hot path is imported: its compiled build, if current.
speedups.install()
