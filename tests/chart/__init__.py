"""Render, lint and schema tests of charts/kafka-connect, run under Helm 3 and Helm 4."""
