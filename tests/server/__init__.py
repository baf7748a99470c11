"""Tests of the trio server layer."""
