"""Everything that touches files: atomic writers, CSV/JSON, figures, reports."""
