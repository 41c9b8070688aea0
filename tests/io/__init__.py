"""Tests of fastloader.io."""
