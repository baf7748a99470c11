"""Tests of the compliance evidence bundle."""
