"""The evaluation spec: the YAML config as pydantic models, gate criteria, MLflow URIs.

No stage is imported here: every later stage reads the spec, the spec reads none of them.
"""
