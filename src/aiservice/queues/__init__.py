"""Queues for async orchestrator executions, behind one small protocol (see ``base``)."""
