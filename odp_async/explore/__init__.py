"""Systematic and randomized exploration of sim schedules."""
