"""Plots and run reports (matplotlib, Agg backend: works on headless machines)."""
