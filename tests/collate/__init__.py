"""Tests of fastloader.collate."""
