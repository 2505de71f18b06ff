"""Dramatiq actors, one module per job. Importing the app (Django's ready()) declares them all."""
