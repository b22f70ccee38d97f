"""Layer 2, turning records into text: coordinate formats (`coordinates`), Jinja templating (`templating`), the
markup guard for text from data (`markup`), English helpers (`english`) and the dialogue renderer (`renderer`).
Readers (`rcforge.readers`) and tasks (`rcforge.rc_tasks`) are this layer's other halves.
"""
