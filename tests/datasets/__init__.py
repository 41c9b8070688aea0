"""Tests of fastloader.datasets."""
