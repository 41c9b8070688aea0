"""Tests of fastloader.sampling."""
