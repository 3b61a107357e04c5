"""Typer command layer: parse → call a service → render. Commands never call each other."""
