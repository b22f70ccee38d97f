"""The bundled Jinja template set (one YAML file per task; see rcforge.templating for the format)."""
