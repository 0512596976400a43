"""odp_async: a model of RDMA On-Demand Paging, and a deterministic explorer for async code."""

from __future__ import annotations

__version__ = "0.1.0"
