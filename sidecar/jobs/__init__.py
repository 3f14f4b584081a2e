"""The AI job queue (seed 001's analysis_queue) and the workers that drain it."""
