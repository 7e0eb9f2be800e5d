"""cofi: fine-tune an aligned LLM for a speciality without forgetting its versatility.

Importing the package is free (its modules import what they need); ``python -m cofi`` is the command line.
"""

# Nothing at run time may reach a hub: models and data are local paths only. Set (where not set) before any
# Hugging Face library is imported, which reads them once: by the command line and by the job server.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
