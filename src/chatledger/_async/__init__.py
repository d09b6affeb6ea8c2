"""The asynchronous surface: the source from which the synchronous one is generated."""
