"""Subscribers of the notifier chain other than ODP: a KVM-style secondary MMU and an
HMM-mirror-style subscriber, on the `Subscriber` base your own class can extend.

See `odp_async.subscribers.base` for the contract every subscriber keeps.
"""

from .base import Subscriber
from .hmm_mirror import HmmMirror
from .kvm import KvmMmu

__all__ = ["HmmMirror", "KvmMmu", "Subscriber"]
