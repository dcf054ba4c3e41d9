"""airpods: run local AI services (llama.cpp, Ollama, Open WebUI) as Podman pods."""

__version__ = "0.1.0"
