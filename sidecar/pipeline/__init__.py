"""On-device AI: pipeline definitions, validation, the ONNX engine, and criteria judgment.

Free of FastAPI and database sessions; the job queue (``sidecar.jobs``) drives it:

- :mod:`.definition` parses a pipeline's JSON; :mod:`.validate` checks it against the op library
  (:mod:`.nodes`) and the models, naming the step at fault;
- :mod:`.engine` (``PipelineEngine``) compiles once and runs definitions on images, with sessions
  from :mod:`.runtime` and model files from :mod:`.store` (content-addressed by SHA-256);
- :mod:`.judgment` (``judge``) turns measurements and an item's criteria into OK / NG /
  PENDING_REVIEW.

Submodules are imported explicitly (nothing here) so that importing one does not load ONNX Runtime.
"""
