"""The test suite: one folder per subpackage of python/fastloader, shared helpers in `helpers`."""
