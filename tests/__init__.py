"""sockserve tests."""
