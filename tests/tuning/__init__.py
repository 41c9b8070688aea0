"""Tests of fastloader.tuning."""
