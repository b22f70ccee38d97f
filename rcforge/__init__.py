"""rcforge: build referring-and-grounding instruction corpora for multimodal LLMs.

See ARCHITECTURE.md for the map of the packages and README.md for the commands.
"""

__version__ = "0.1.0"
