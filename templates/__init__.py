"""The bundled Jinja template set (one YAML file per task; see rcforge.render.templating for the format)."""
