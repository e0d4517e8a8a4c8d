"""Engines drive the model kernel through time; they never contain physics."""
