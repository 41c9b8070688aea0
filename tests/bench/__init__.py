"""Tests of fastloader.bench."""
