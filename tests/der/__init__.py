"""Tests of the DER control core."""
