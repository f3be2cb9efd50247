"""Applications of the spine: `harness run`, `validate` (its dry run), `compare`, the CLI
and the demo. They may import every stage; no stage imports them."""
