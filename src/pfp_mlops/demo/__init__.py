"""The built-in synthetic dataset: three shape classes a tiny detector learns in minutes."""
