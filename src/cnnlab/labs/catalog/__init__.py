"""The labs themselves, one module per course claim; :func:`cnnlab.labs.list_labs` imports them all."""
