"""Tests that pin mechanisms of `odp_async.sync` no other test pins (found by mutmut)."""
